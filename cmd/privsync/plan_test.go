package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const demoConfig = "../../testdata/demo.toml"

// runPlan runs `privsync plan` in process with a fresh ledger path (no
// ledger file: an empty ledger) and returns its exit code and output.
func runPlan(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	full := append([]string{"plan", "--config", demoConfig, "--ledger", filepath.Join(t.TempDir(), "x.db")}, args...)
	code = m.Exit(m.Run(context.Background(), full))
	return code, out.String(), errOut.String()
}

// sampleWant is testdata/sample.csv planned against an empty ledger,
// counted by hand from the file (292 data rows):
//   - rejected 11: prof-bad-1..4 (unknown restriction, bad erasure, bad
//     updated_at, id_type on sfmc), marketo (unknown vendor), an empty
//     subject_id, a formula as subject_id, user-bad-1 (id_type email),
//     customer-x (bloomreach without id_type), and both prof-dup-2 rows
//     (conflicting, no updated_at);
//   - superseded 2: prof-dup-1's older row, one of the identical prof-dup-3;
//   - sfmc: 17 delete, 12 suppress, 94 declarative arrays; prof-ar-1's
//     access request is unsupported; 11 rows ask nothing of never-seen
//     profiles (prof-0042 ... hashed-id-08): unchanged;
//   - batch-ios: 25 reviews and 32 removes (8 rows ask both), 6 restriction
//     and 7 suppress rows unsupported;
//   - bloomreach: 61 anonymize, 13 restriction and 8 access rows unsupported.
const sampleWant = `{
  "operations": {
    "batch-ios": {"remove": 32, "review": 25},
    "bloomreach": {"anonymize": 61},
    "sfmc": {"restrict": 94, "rtbf_delete": 17, "rtbf_suppress": 12}
  },
  "outcomes": {"unsupported": 35, "conflict": 0, "rejected": 11, "stale": 0},
  "unchanged": 11, "waiting": 0, "superseded": 2, "rows": 292
}`

func normJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPlanJSONSameForCSVParquetAndParts(t *testing.T) {
	inputs := []string{"../../testdata/sample.csv", "../../testdata/sample.parquet", "../../testdata/sample-parts"}
	for _, in := range inputs[1:] {
		if _, err := os.Stat(in); err != nil {
			t.Skipf("%s is missing (made by go run ./bench/gen convert, see bench/gen): %v", in, err)
		}
	}
	var first string
	for _, in := range inputs {
		code, out, errOut := runPlan(t, "--format", "json", in)
		if code != ExitOK {
			t.Fatalf("plan %s: exit %d\n%s", in, code, errOut)
		}
		if first == "" {
			first = out
			if got, want := normJSON(t, out), normJSON(t, sampleWant); got != want {
				t.Fatalf("plan %s:\n got %s\nwant %s", in, got, want)
			}
			continue
		}
		if out != first {
			t.Errorf("plan %s printed other JSON than plan %s:\n%s\nvs\n%s", in, inputs[0], out, first)
		}
	}
	// Standard input too.
	csv, err := os.ReadFile(inputs[0])
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	m := &Main{Stdin: bytes.NewReader(csv), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	if code := m.Exit(m.Run(context.Background(), []string{"plan", "--config", demoConfig, "--ledger", filepath.Join(t.TempDir(), "x.db"), "--format", "json", "-"})); code != ExitOK || out.String() != first {
		t.Errorf("plan - (standard input): exit %d, output differs from plan %s:\n%s\n%s", code, inputs[0], out.String(), errOut.String())
	}
	// The JSON has the documented shape: these keys, at least.
	var v struct {
		Operations map[string]map[string]int `json:"operations"`
		Outcomes   map[string]int            `json:"outcomes"`
		Unchanged  *int                      `json:"unchanged"`
		Rows       *int                      `json:"rows"`
	}
	if err := json.Unmarshal([]byte(first), &v); err != nil || v.Unchanged == nil || v.Rows == nil || len(v.Outcomes) != 4 {
		t.Fatalf("JSON shape: %+v, %v", v, err)
	}
}

func TestPlanText(t *testing.T) {
	code, out, errOut := runPlan(t, "../../testdata/sample.csv")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"sfmc        restrict       94", "bloomreach  anonymize      61",
		"292 rows: 11 unchanged, 2 superseded", "35 unsupported, 0 conflict, 11 rejected, 0 stale"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
}

func TestPlanExitCodes(t *testing.T) {
	broken, _ := filepath.Glob("../../testdata/broken/*")
	if len(broken) == 0 {
		t.Log("testdata/broken is missing: only the inputs made here are tried")
	}
	dir := t.TempDir()
	made := map[string]string{
		"empty.csv":      "",
		"no-vendor.csv":  "subject_id,erasure\np1,delete\n",
		"quote.csv":      "vendor,subject_id,erasure\nsfmc,\"p1,delete\n",
		"not.parquet":    "vendor,subject_id\n",
		"data.json":      "{}",
		"empty.parquet":  "",
		"nested/x.txt":   "not an input",
		"nested/bad.csv": "vendor\n",
	}
	for name, body := range made {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if name != "nested/x.txt" {
			broken = append(broken, p)
		}
	}
	cases := [][]string{
		{filepath.Join(dir, "missing.csv")},
		{"../../testdata/sample.csv", filepath.Join(dir, "missing.parquet")},
		{},
		{"--format", "yaml", "../../testdata/sample.csv"},
		{"--no-such-flag", "../../testdata/sample.csv"},
		{filepath.Join(dir, "nested")},
	}
	for _, b := range broken {
		cases = append(cases, []string{"../../testdata/sample.csv", b})
	}
	for _, args := range cases {
		code, out, errOut := runPlan(t, args...)
		if code != ExitUsage {
			t.Errorf("plan %v: exit %d, want %d\n%s", args, code, ExitUsage, errOut)
		}
		if out != "" {
			t.Errorf("plan %v printed a plan for an input it cannot read:\n%s", args, out)
		}
		if !strings.Contains(errOut, "privsync: ") {
			t.Errorf("plan %v: no error message on stderr: %q", args, errOut)
		}
	}
	t.Run("config", func(t *testing.T) {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
		code := m.Exit(m.Run(context.Background(), []string{"plan", "--config", filepath.Join(dir, "none.toml"), "../../testdata/sample.csv"}))
		if code != ExitUsage {
			t.Fatalf("missing config: exit %d, want 2", code)
		}
		big := filepath.Join(dir, "big.toml")
		os.WriteFile(big, []byte("[vendors.bloomreach]\nkind = \"bloomreach\"\nbase_url = \"sim\"\nproject_token = \"p\"\nbatch_size = 5000\n"), 0o644)
		code = m.Exit(m.Run(context.Background(), []string{"plan", "--config", big, "../../testdata/sample.csv"}))
		if code != ExitUsage || !strings.Contains(errOut.String(), "1000") {
			t.Fatalf("bloomreach batch_size 5000: exit %d, %q; want 2, at most 1000", code, errOut.String())
		}
	})
}

func TestPlanMaxChanges(t *testing.T) {
	code, out, errOut := runPlan(t, "--format", "json", "--max-changes", "5", "../../testdata/sample.csv")
	if code != ExitUsage {
		t.Fatalf("--max-changes 5 on a 241-operation plan: exit %d, want 2", code)
	}
	if !strings.Contains(errOut, "241") || !strings.Contains(errOut, "--max-changes 5") {
		t.Errorf("stderr %q does not say how large the plan is", errOut)
	}
	if normJSON(t, out) != normJSON(t, sampleWant) {
		t.Errorf("the refused plan is not printed for checking:\n%s", out)
	}
	if code, _, errOut := runPlan(t, "--max-changes", "241", "../../testdata/sample.csv"); code != ExitOK {
		t.Errorf("--max-changes 241 on a 241-operation plan: exit %d\n%s", code, errOut)
	}
}

func TestPlanHelp(t *testing.T) {
	for _, h := range []string{"--help", "-h"} {
		code, _, errOut := runPlan(t, h)
		if code != ExitOK {
			t.Fatalf("plan %s: exit %d, want 0", h, code)
		}
		for _, flag := range []string{"-config", "-ledger", "-report-dir", "-log-level", "-quiet", "-snapshot", "-max-changes", "-format"} {
			if !strings.Contains(errOut, "  "+flag+" ") && !strings.Contains(errOut, "  "+flag+"\n") {
				t.Errorf("plan %s does not list %s:\n%s", h, flag, errOut)
			}
		}
		if !strings.Contains(errOut, "Usage: privsync plan") {
			t.Errorf("plan %s: no usage line:\n%s", h, errOut)
		}
	}
}

// TestPlanLedgerNotALedger: a missing ledger is an empty one (every other
// test here), but a file that is not a ledger is a failure, not an empty
// plan.
func TestPlanLedgerNotALedger(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, []byte("this is not a SQLite file, it is long enough to have a header........................................................"), 0o644)
	var out, errOut bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code := m.Exit(m.Run(context.Background(), []string{"plan", "--config", demoConfig, "--ledger", bad, "../../testdata/sample.csv"}))
	if code == ExitOK || out.Len() != 0 {
		t.Fatalf("plan on a corrupt ledger: exit %d, output %q; want a failure and no plan", code, out.String())
	}
}

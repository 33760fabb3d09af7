package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// evidence is a demo workspace whose runs are signed with a key ssh-keygen
// made.
type evidence struct {
	dir, config, ledger, reports, key, allowed string
}

func newEvidence(t *testing.T, signed bool) *evidence {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen is not installed (openssh-client; .ci/run installs it)")
	}
	dir := t.TempDir()
	e := &evidence{dir: dir, config: filepath.Join(dir, "privsync.toml"), ledger: filepath.Join(dir, "demo.db"),
		reports: filepath.Join(dir, "reports"), key: filepath.Join(dir, "id_ed25519"), allowed: filepath.Join(dir, "allowed_signers")}
	sshKeygen(t, "-q", "-t", "ed25519", "-N", "", "-C", "privacy@company", "-f", e.key)
	pub, err := os.ReadFile(e.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.allowed, []byte("privacy@company "+string(pub)), 0o600); err != nil {
		t.Fatal(err)
	}
	demo, err := os.ReadFile("../../testdata/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(demo)
	if signed {
		cfg = "signing_key_env = \"PRIVSYNC_SIGNING_KEY\"\n" + cfg
	}
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func sshKeygen(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
}

// privsync runs the binary with the signing key in its environment.
func (e *evidence) privsync(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	bin, _ := binaries(t)
	if args[0] == "run" {
		args = append([]string{"run", "--config", e.config, "--ledger", e.ledger, "--report-dir", e.reports, "--wait", "1s", "--quiet"}, args[1:]...)
	}
	key, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PRIVSYNC_SIGNING_KEY="+string(key))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// runDemo runs the demo's two days. The first exits 3 (the sample has bad
// rows); the second, 0 or 3, depending on what the vendors confirm in time.
func (e *evidence) runDemo(t *testing.T) (runs []string, stderr string) {
	t.Helper()
	for _, in := range []string{"../../testdata/sample.csv", "../../testdata/sample-day2.csv"} {
		code, _, errOut := e.privsync(t, "run", in)
		if code != ExitPartial && (code != ExitOK || stderr == "") {
			t.Fatalf("run %s: exit %d\n%s", in, code, errOut)
		}
		stderr += errOut
	}
	files, _ := filepath.Glob(filepath.Join(e.reports, "*.summary.json"))
	for _, f := range files {
		runs = append(runs, strings.TrimSuffix(filepath.Base(f), ".summary.json"))
	}
	slices.Sort(runs)
	if len(runs) != 2 {
		t.Fatalf("summaries: %v, want 2", files)
	}
	return runs, stderr
}

// keygenVerify runs `ssh-keygen -Y verify` on a run's summary, as the
// README tells a stranger to.
func (e *evidence) keygenVerify(t *testing.T, dir, run string) (string, error) {
	t.Helper()
	summary := filepath.Join(dir, run+".summary.json")
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", e.allowed, "-I", "privacy@company", "-n", "privsync-report", "-s", summary+".sig")
	f, err := os.Open(summary)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// copyReports copies the report directory, for one attack each.
func (e *evidence) copyReports(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(e.reports, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestE2ESignedRunsVerifyWithPrivsyncAndSSHKeygen(t *testing.T) {
	e := newEvidence(t, true)
	runs, stderr := e.runDemo(t)

	for _, run := range runs {
		if out, err := e.keygenVerify(t, e.reports, run); err != nil || !strings.Contains(out, `Good "privsync-report" signature for privacy@company with ED25519 key`) {
			t.Errorf("ssh-keygen -Y verify %s: %v\n%s", run, err, out)
		}
		code, out, errOut := e.privsync(t, "report", "verify", "--allowed-signers", e.allowed, filepath.Join(e.reports, run+".csv"))
		if code != ExitOK || !strings.Contains(out, "matches its summary") || !strings.Contains(out, "good signature by privacy@company (ED25519 SHA256:") {
			t.Errorf("report verify %s: exit %d\n%s%s", run, code, out, errOut)
		}
		if run == runs[1] && !strings.Contains(out, "chained to the previous run "+runs[0]) {
			t.Errorf("report verify %s does not check its link to the run before:\n%s", run, out)
		}
	}
	// The page for people says it is signed and how to check it, and loads nothing.
	page, err := os.ReadFile(filepath.Join(e.reports, runs[0]+".summary.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<span class="status ok">signed</span>`, "ssh-keygen -Y verify -f allowed_signers -I privacy@company -n privsync-report -s " + runs[0],
		"privsync report verify --allowed-signers allowed_signers " + runs[0] + ".csv", "<svg ", "testdata/sample.csv"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the HTML summary does not hold %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", " src=", " href="} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("the HTML summary is not self-contained: %q", bad)
		}
	}
	// The second run chains to the first.
	var second struct {
		Previous struct {
			RunID         string `json:"run_id"`
			SummarySHA256 string `json:"summary_sha256"`
		} `json:"previous"`
	}
	b, _ := os.ReadFile(filepath.Join(e.reports, runs[1]+".summary.json"))
	if err := json.Unmarshal(b, &second); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(filepath.Join(e.reports, runs[0]+".summary.json"))
	sum := sha256.Sum256(first)
	if second.Previous.RunID != runs[0] || second.Previous.SummarySHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("the second summary's previous = %+v, want %s %x", second.Previous, runs[0], sum)
	}
	code, out, errOut := e.privsync(t, "report", "verify", "--all", e.reports, "--allowed-signers", e.allowed, "--ledger", e.ledger)
	if code != ExitOK || !strings.Contains(out, "valid, 2 runs in one chain") || strings.Contains(out, "unsigned") {
		t.Errorf("verify --all: exit %d\n%s%s", code, out, errOut)
	}

	// The key is a secret: never in logs, reports or the ledger.
	key, _ := os.ReadFile(e.key)
	var secretLines []string
	for _, l := range strings.Split(string(key), "\n") {
		if len(l) > 40 && !strings.HasPrefix(l, "-----") {
			secretLines = append(secretLines, l)
		}
	}
	files, _ := filepath.Glob(filepath.Join(e.reports, "*"))
	files = append(files, e.ledger)
	for _, l := range secretLines {
		if strings.Contains(stderr+out+errOut, l) {
			t.Fatal("the signing key is in privsync's output")
		}
		for _, f := range files {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(l)) {
				t.Fatalf("the signing key is in %s", f)
			}
		}
	}

	t.Run("forged row", func(t *testing.T) {
		dir := e.copyReports(t)
		forgeRun(t, dir, runs[0])
		csvPath := filepath.Join(dir, runs[0]+".csv")
		// The report and its recomputed summary agree...
		code, out, errOut := e.privsync(t, "report", "verify", csvPath)
		if !strings.Contains(out, "matches its summary") {
			t.Fatalf("the forgery is not even consistent: exit %d\n%s%s", code, out, errOut)
		}
		// ...but the signature, and the next run's record of the summary, do not.
		if code != ExitFailure || !strings.Contains(errOut, "NOT validly signed") {
			t.Errorf("verify of the forged run without --allowed-signers: exit %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = e.privsync(t, "report", "verify", "--allowed-signers", e.allowed, csvPath)
		if code != ExitFailure || !strings.Contains(errOut, "NOT validly signed") {
			t.Errorf("verify --allowed-signers of the forged run: exit %d\n%s%s", code, out, errOut)
		}
		// The next run, checked alone, sees its predecessor was altered.
		code, out, errOut = e.privsync(t, "report", "verify", filepath.Join(dir, runs[1]+".csv"))
		if code != ExitFailure || !strings.Contains(errOut, "the previous run's summary") || !strings.Contains(errOut, "was altered") {
			t.Errorf("verify of the run after the forgery: exit %d\n%s%s", code, out, errOut)
		}
		if out, err := e.keygenVerify(t, dir, runs[0]); err == nil {
			t.Errorf("ssh-keygen verified the forged summary:\n%s", out)
		}
		code, out, errOut = e.privsync(t, "report", "verify", "--all", dir)
		if code != ExitFailure || !strings.Contains(errOut, "run "+runs[0]+" was altered: its summary's SHA-256") ||
			!strings.Contains(errOut, "run "+runs[0]+" has a bad signature") {
			t.Errorf("verify --all of the forgery: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("deleted runs", func(t *testing.T) {
		for i, run := range runs {
			dir := e.copyReports(t)
			files, _ := filepath.Glob(filepath.Join(dir, run+".*"))
			for _, f := range files {
				os.Remove(f)
			}
			code, out, errOut := e.privsync(t, "report", "verify", "--all", dir, "--ledger", e.ledger)
			if code != ExitFailure || !strings.Contains(errOut, "run "+run+" is missing") {
				t.Errorf("run %d of 2 deleted: exit %d\n%s%s", i+1, code, out, errOut)
			}
		}
	})
}

// forgeRun is the attack: a failed row made completed, every hash after
// it recomputed, and the summary's final hash rewritten to match.
func forgeRun(t *testing.T, dir, run string) {
	t.Helper()
	path := filepath.Join(dir, run+".csv")
	b, _ := os.ReadFile(path)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	prev, forged := strings.Repeat("0", 64), false
	for _, r := range recs[1:] {
		if !forged && r[colOutcome] == "failed" {
			r[colOutcome], forged = "completed", true
		}
		r[12] = prev
		sum := sha256.Sum256([]byte(strings.Join(r[:13], "\x1f")))
		r[13] = hex.EncodeToString(sum[:])
		prev = r[13]
	}
	if !forged {
		t.Fatal("no failed row to forge")
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(dir, run+".summary.json")
	js, _ := os.ReadFile(summary)
	var s map[string]any
	if err := json.Unmarshal(js, &s); err != nil {
		t.Fatal(err)
	}
	s["report"].(map[string]any)["final_hash"] = prev
	js, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(summary, append(js, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestE2EUnsignedReportDirSaysUnsigned(t *testing.T) {
	e := newEvidence(t, false)
	runs, _ := e.runDemo(t)
	if _, err := os.Stat(filepath.Join(e.reports, runs[0]+".summary.json.sig")); err == nil {
		t.Fatal("an unsigned run wrote a signature")
	}
	code, out, errOut := e.privsync(t, "report", "verify", "--all", e.reports)
	if code != ExitOK || !strings.Contains(out, "2 of 2 summaries are unsigned: "+runs[0]+", "+runs[1]) {
		t.Errorf("verify --all of an unsigned directory: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = e.privsync(t, "report", "verify", "--all", e.reports, "--allowed-signers", e.allowed)
	if code != ExitFailure || !strings.Contains(errOut, "run "+runs[0]+" is unsigned") {
		t.Errorf("verify --all --allowed-signers of an unsigned directory: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = e.privsync(t, "report", "verify", "--allowed-signers", e.allowed, filepath.Join(e.reports, runs[1]+".csv"))
	if code != ExitFailure || !strings.Contains(errOut, "is NOT signed") {
		t.Errorf("verify --allowed-signers of an unsigned run: exit %d\n%s%s", code, out, errOut)
	}
}

func TestE2EPassphraseKeyIsRefused(t *testing.T) {
	e := newEvidence(t, true)
	os.Remove(e.key)
	os.Remove(e.key + ".pub")
	sshKeygen(t, "-q", "-t", "ed25519", "-N", "hunter2-passphrase", "-f", e.key)
	code, _, errOut := e.privsync(t, "run", "../../testdata/sample.csv")
	if code != ExitUsage || !strings.Contains(errOut, "signing_key_env PRIVSYNC_SIGNING_KEY: the signing key is protected by a passphrase") ||
		strings.Contains(errOut, "hunter2") || strings.Contains(errOut, "OPENSSH PRIVATE KEY") {
		t.Errorf("a passphrase-protected key: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(e.ledger); err == nil {
		t.Error("the run went ahead with a key it cannot use")
	}
}

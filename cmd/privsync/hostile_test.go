package main

// Hostile inputs and configs: each is run through the real privsync binary
// against a real vendorsim, and must end with its exit code, a message
// naming the file, row and column or the config key, and no request sent.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const hostileHeader = "vendor,subject_id,id_type,restrictions,erasure,access_request,updated_at\n"

// hostileInput is a valid input that sends to every vendor under a good
// config: a config case that exits before sending proves something.
const hostileInput = hostileHeader + "sfmc,p1,,do_not_track,,,\nbatch-ios,u1,custom_id,,delete,,\nbloomreach,b1,registered,,delete,,\n"

type hostileCase struct {
	name  string
	cfg   func(base string) string          // the config; nil keeps the workspace's
	files map[string]string                 // files to write under the workspace, by relative name
	setup func(t *testing.T, dir string)    // what files cannot say (FIFOs, links)
	args  []string                          // after the command and --config; default run --wait 20s in.csv
	code  int                               // the exit code
	want  []string                          // in stderr (exit 2) or in one report row's detail (exit 3)
	check func(t *testing.T, stdout string) // more to assert, if anything
	sends bool                              // the control case: requests must be sent
}

// setKey sets key = value in the table [vendors.vendor] of a config,
// replacing the key if the table has it.
func setKey(vendor, key, value string) func(string) string {
	return func(base string) string {
		lines := strings.Split(base, "\n")
		header := "[vendors." + vendor + "]"
		in, at := false, -1
		for i, l := range lines {
			switch {
			case l == header:
				in, at = true, i+1
			case strings.HasPrefix(l, "["):
				in = false
			case in && strings.HasPrefix(l, key+" ="):
				lines[i] = key + " = " + value
				return strings.Join(lines, "\n")
			}
		}
		if at < 0 {
			panic("no table " + header)
		}
		lines = append(lines[:at], append([]string{key + " = " + value}, lines[at:]...)...)
		return strings.Join(lines, "\n")
	}
}

// columns puts a [columns] table, of these lines, into a config.
func columns(lines string) func(string) string {
	return func(base string) string {
		return strings.Replace(base, "[vendors.sfmc]", "[columns]\n"+lines+"[vendors.sfmc]", 1)
	}
}

func appendCfg(s string) func(string) string { return func(base string) string { return base + s } }

// rows is an input of the header and these rows.
func rows(r ...string) map[string]string {
	return map[string]string{"in.csv": hostileHeader + strings.Join(r, "\n") + "\n"}
}

func hostileCases() []hostileCase {
	rate := func(v string) func(string) string { return setKey("sfmc", "requests_per_second", v) }
	limitCase := func(vendor, key, value string, want ...string) hostileCase {
		return hostileCase{name: vendor + " " + key + " " + value, cfg: setKey(vendor, key, value), code: 2,
			want: append([]string{"[vendors." + vendor + "] " + key}, want...)}
	}
	baseURL := func(u string) hostileCase {
		return hostileCase{name: "base_url " + u, cfg: setKey("sfmc", "base_url", fmt.Sprintf("%q", u)), code: 2,
			want: []string{"[vendors.sfmc] base_url", u}}
	}
	date := func(name, at, want string) hostileCase {
		// The hostile date asks for a restriction; the clean row, dated
		// 2026, asks for nothing: if the hostile date won, a restriction
		// would be sent.
		return hostileCase{name: "updated_at " + name, files: rows(
			"sfmc,p1,,do_not_track,,,"+at,
			"sfmc,p1,,,,,2026-01-01T00:00:00Z"), code: 3,
			want: []string{"in.csv: row 2, column updated_at: " + want}}
	}
	order := func(name string, r ...string) hostileCase {
		// Rows whose latest asks for nothing: sending anything means
		// they were ordered wrong.
		return hostileCase{name: "order " + name, files: rows(r...), code: 0}
	}
	subject := func(name, id string) hostileCase {
		return hostileCase{name: "subject_id " + name, files: rows("sfmc," + id + ",,do_not_track,,,"), code: 3,
			want: []string{"in.csv: row 2, column subject_id: subject_id contains a control character"}}
	}
	const rangeReason = "updated_at must be between 1678-01-01 and 2261-12-31"
	const formatReason = "updated_at must be an RFC 3339 timestamp"
	long := strings.Repeat("x", 3<<20)
	cases := []hostileCase{
		{name: "control: a good config and input send", sends: true},

		// Configuration: the limits.
		{name: "requests_per_second negative", cfg: rate("-1"), code: 2, want: []string{"[vendors.sfmc] requests_per_second -1", "above 0 and at most 10000"}},
		{name: "requests_per_second inf", cfg: rate("inf"), code: 2, want: []string{"requests_per_second +Inf", "above 0"}},
		{name: "requests_per_second -inf", cfg: rate("-inf"), code: 2, want: []string{"requests_per_second -Inf", "above 0"}},
		{name: "requests_per_second nan", cfg: rate("nan"), code: 2, want: []string{"requests_per_second NaN", "above 0"}},
		{name: "requests_per_second 0", cfg: rate("0"), code: 2, want: []string{"requests_per_second 0", "above 0"}},
		{name: "requests_per_second huge", cfg: rate("1e12"), code: 2, want: []string{"requests_per_second 1e+12", "at most 10000"}},
		{name: "requests_per_second a string", cfg: rate(`"fast"`), code: 2, want: []string{"requests_per_second"}},
		limitCase("sfmc", "burst", "0", "from 1 to 10000"),
		limitCase("sfmc", "burst", "-3", "from 1 to 10000"),
		limitCase("batch-ios", "burst", "100000", "from 1 to 10000"),
		limitCase("sfmc", "batch_size", "0", "from 1 to 1000"),
		limitCase("sfmc", "batch_size", "1001", "from 1 to 1000"),
		limitCase("sfmc", "batch_size", "-1", "from 1 to 1000"),
		limitCase("bloomreach", "batch_size", "1001", "from 1 to 1000"),
		limitCase("bloomreach", "batch_size", "0", "from 1 to 1000"),
		limitCase("batch-ios", "batch_size", "2", "from 1 to 1"),
		limitCase("sfmc", "max_in_flight", "-1", "from 1 to 1000"),
		limitCase("sfmc", "max_in_flight", "0", "from 1 to 1000"),
		limitCase("sfmc", "suppression_days", "-1", "from 1 to 30"),
		limitCase("sfmc", "suppression_days", "0", "from 1 to 30"),
		limitCase("sfmc", "suppression_days", "31", "from 1 to 30"),
		limitCase("bloomreach", "suppression_days", "14", "only sfmc"),
		limitCase("sfmc", "timeout", `"-1s"`, "above 0s"),
		limitCase("sfmc", "timeout", `"0s"`, "above 0s"),
		limitCase("batch-ios", "timeout", `"1000h"`, "at most 24h"),
		limitCase("sfmc", "poll_interval", `"-5s"`, "above 0s"),
		limitCase("bloomreach", "poll_interval", `"0s"`, "above 0s"),
		{name: "timeout without a unit", cfg: setKey("sfmc", "timeout", `"30"`), code: 2, want: []string{"vendors.sfmc.timeout", "missing unit"}},
		{name: "burst a float", cfg: setKey("sfmc", "burst", "2.5"), code: 2, want: []string{"vendors.sfmc.burst"}},
		{name: "misspelt key", cfg: setKey("sfmc", "burts", "2"), code: 2, want: []string{"unknown key vendors.sfmc.burts"}},
		{name: "unknown kind", cfg: setKey("sfmc", "kind", `"marketo"`), code: 2, want: []string{"[vendors.sfmc] kind \"marketo\""}},

		// Configuration: names.
		{name: "vendor names differing by case", cfg: appendCfg("[vendors.SFMC]\nkind = \"sfmc\"\nbase_url = \"sim\"\ncustomer_mid = \"1\"\n"), code: 2,
			want: []string{"[vendors.SFMC] and [vendors.sfmc]", "differ by more than case"}},
		{name: "vendor names differing by case, batch", cfg: appendCfg("[vendors.Batch-IOS]\nkind = \"batch\"\nbase_url = \"sim\"\napp_api_key = \"K\"\n"), code: 2,
			want: []string{"[vendors.Batch-IOS] and [vendors.batch-ios]"}},
		{name: "vendor name with spaces", cfg: appendCfg("[vendors.\" sfmc2\"]\nkind = \"sfmc\"\nbase_url = \"sim\"\ncustomer_mid = \"1\"\n"), code: 2,
			want: []string{"a vendor name must be non-empty, printable, without surrounding spaces"}},
		{name: "vendor name with a bidi override", cfg: appendCfg("[vendors.\"sfmc\u202e2\"]\nkind = \"sfmc\"\nbase_url = \"sim\"\ncustomer_mid = \"1\"\n"), code: 2,
			want: []string{`[vendors."sfmc\u202e2"]`, "printable"}},
		{name: "two columns read from one name", cfg: columns("subject_id = \"id\"\nid_type = \"id\"\n"), code: 2,
			want: []string{"[columns] columns", "both read the file column \"id\""}},
		{name: "a column renamed to another's name", cfg: columns("vendor = \"subject_id\"\n"), code: 2,
			want: []string{"[columns] columns", "both read the file column \"subject_id\""}},
		{name: "a column renamed to nothing", cfg: columns("subject_id = \" \"\n"), code: 2,
			want: []string{"[columns] empty file column name for \"subject_id\""}},
		{name: "an unknown column renamed", cfg: columns("email = \"e\"\n"), code: 2,
			want: []string{"[columns] email is not a column"}},

		// Configuration: plain http only to this machine.
		baseURL("http://127.0.0.1@example.com"),
		baseURL("http://localhost.example.com"),
		baseURL("http://127.0.0.1.nip.io"),
		baseURL("http://localhost@evil.example"),
		baseURL("http://0x7f000001/"),
		baseURL("http://example.com"),
		baseURL("https://user:pass@api.batch.com"),
		baseURL("ftp://127.0.0.1/"),
		baseURL("https://"),
		baseURL("https:api.batch.com"),
		baseURL("http://[fe80::1%25lo]:8080"),

		// Input files.
		{name: "a FIFO in an input directory", setup: func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "in"), 0o755)
			os.WriteFile(filepath.Join(dir, "in", "part-0.csv"), []byte(hostileInput), 0o644)
			if err := syscall.Mkfifo(filepath.Join(dir, "in", "part-1.csv"), 0o644); err != nil {
				t.Skip("no FIFOs here:", err)
			}
		}, args: []string{"run", "in"}, code: 2, want: []string{filepath.Join("in", "part-1.csv"), "named pipe (FIFO)", "regular files"}},
		{name: "a FIFO given as INPUT", setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe.csv"), 0o644); err != nil {
				t.Skip("no FIFOs here:", err)
			}
		}, args: []string{"run", "in.csv", "pipe.csv"}, code: 2, want: []string{"pipe.csv: a named pipe (FIFO)"}},
		{name: "a link to a device in an input directory", setup: func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "in"), 0o755)
			os.WriteFile(filepath.Join(dir, "in", "a.csv"), []byte(hostileInput), 0o644)
			if err := os.Symlink("/dev/zero", filepath.Join(dir, "in", "b.csv")); err != nil {
				t.Skip(err)
			}
		}, args: []string{"run", "in"}, code: 2, want: []string{filepath.Join("in", "b.csv") + ": a device"}},
		{name: "a 3 MiB header without a newline", files: map[string]string{"in.csv": long}, code: 2,
			want: []string{"in.csv: row 1: row is longer than 1 MiB"}},
		{name: "a 3 MiB row", files: rows("sfmc,p1,,do_not_track,,," + long), code: 2,
			want: []string{"in.csv: row 2: row is longer than 1 MiB"}},
		{name: "a 3 MiB row after good rows", files: rows("sfmc,p1,,do_not_track,,,", "sfmc,p2,,do_not_track,,,", long), code: 2,
			want: []string{"in.csv: row 4: row is longer than 1 MiB"}},
		{name: "a 3 MiB quoted field over many lines", files: rows("sfmc,p1,,do_not_track,,\"" + strings.Repeat("a\n", 3<<19) + "\","), code: 2,
			want: []string{"in.csv: row 2: row is longer than 1 MiB"}},
		{name: "a row of 2 MiB of short lines in an open quote", files: rows("sfmc,\"p1" + strings.Repeat(",,,\n", 1<<19)), code: 2,
			want: []string{"in.csv: row 2: row is longer than 1 MiB"}},

		// Flags after INPUT.
		{name: "flags after INPUT are flags", args: []string{"run", "in.csv", "--max-changes", "1"}, code: 2,
			want: []string{"more than --max-changes 1"}},
		{name: "a flag between inputs", files: map[string]string{"a.csv": hostileInput, "b.csv": hostileHeader}, args: []string{"run", "a.csv", "--max-changes", "2", "b.csv"}, code: 2,
			want: []string{"more than --max-changes 2"}},
		{name: "an unknown flag after INPUT", args: []string{"run", "in.csv", "--bogus"}, code: 2, want: []string{"flag provided but not defined: -bogus"}},
		{name: "-- ends the flags", files: map[string]string{"--max-changes": ""}, args: []string{"run", "in.csv", "--", "--max-changes"}, code: 2,
			want: []string{"--max-changes: unknown input type"}},
		{name: "plan takes --format after INPUT", args: []string{"plan", "in.csv", "--format", "json"}, code: 0, check: func(t *testing.T, out string) {
			if !strings.HasPrefix(strings.TrimSpace(out), "{") || !strings.Contains(out, `"rows": 3`) {
				t.Errorf("plan --format json after INPUT printed %q, want the JSON plan of 3 rows", out)
			}
		}},

		// Dates: a hostile updated_at is rejected (row and column), never
		// read as now or wrapped around.
		date("9999-12-31", "9999-12-31T23:59:59Z", rangeReason),
		date("0001-01-01 placeholder", "0001-01-01T00:00:00Z", rangeReason),
		date("0000-01-01", "0000-01-01T00:00:00Z", rangeReason),
		date("1677", "1677-12-31T23:59:59Z", rangeReason),
		date("2262", "2262-01-01T00:00:00Z", rangeReason),
		date("2261 pushed over by its offset", "2261-12-31T23:30:00-01:00", rangeReason),
		date("1678 pushed under by its offset", "1678-01-01T00:30:00+01:00", rangeReason),
		date("leap second", "2016-12-31T23:59:60Z", formatReason),
		date("no zone", "2026-02-01T00:00:00", formatReason),
		date("date only", "2026-02-01", formatReason),
		date("unix seconds", "1767225600", formatReason),
		order("two rows before 1970", "sfmc,p1,,do_not_track,,,1950-01-01T00:00:00Z", "sfmc,p1,,,,,1960-01-01T00:00:00Z"),
		order("a nanosecond before 1970", "sfmc,p1,,do_not_track,,,1969-12-31T23:59:59.999999998Z", "sfmc,p1,,,,,1969-12-31T23:59:59.999999999Z"),
		order("the first and last instants", "sfmc,p1,,,,,2261-12-31T23:59:59.999999999Z", "sfmc,p1,,do_not_track,,,1678-01-01T00:00:00Z"),
		order("the epoch is a date", "sfmc,p1,,,,,1970-01-01T00:00:00Z", "sfmc,p1,,do_not_track,,,1969-01-01T00:00:00Z"),
		order("offsets order by instant", "sfmc,p1,,,,,2026-01-01T00:30:00+01:00", "sfmc,p1,,do_not_track,,,2025-12-31T23:00:00Z"),

		// Ids that disguise themselves.
		subject("U+202E right-to-left override", "p\u202e1"),
		subject("U+202A left-to-right embedding", "\u202ap1"),
		subject("U+202C pop directional formatting", "p1\u202c"),
		subject("U+2066 left-to-right isolate", "p\u20661"),
		subject("U+2067 right-to-left isolate", "p\u20671"),
		subject("U+2069 pop directional isolate", "p1\u2069"),
		subject("U+200F right-to-left mark", "p\u200f1"),
		subject("U+0085 next line", "p\u00851"),
		subject("U+200B zero-width space", "p\u200b1"),
		subject("U+FEFF byte order mark", "\ufeffp1"),
		subject("U+2028 line separator", "p\u20281"),
		subject("U+007F delete", "p\x7f1"),
	}
	return cases
}

// TestHostileInputsAndConfigs runs every hostile case against one vendorsim
// and checks that none sent anything.
func TestHostileInputsAndConfigs(t *testing.T) {
	s := startSim(t)
	bin, _ := binaries(t)
	cases := hostileCases()
	if len(cases) < 60 {
		t.Fatalf("%d hostile cases, want at least 60", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorkspace(t, s, 80)
			if tc.cfg != nil {
				base, err := os.ReadFile(w.config)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(w.config, []byte(tc.cfg(string(base))), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			files := tc.files
			if files == nil && tc.setup == nil {
				files = map[string]string{"in.csv": hostileInput}
			}
			if _, ok := files["in.csv"]; !ok && tc.setup == nil {
				files["in.csv"] = hostileInput
			}
			for name, body := range files {
				if err := os.WriteFile(filepath.Join(w.dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				if _, err := os.Stat(filepath.Join(w.dir, "in.csv")); err != nil {
					os.WriteFile(filepath.Join(w.dir, "in.csv"), []byte(hostileInput), 0o644)
				}
				tc.setup(t, w.dir)
			}
			args := tc.args
			if args == nil {
				args = []string{"run", "in.csv"}
			}
			flags := []string{args[0], "--config", w.config, "--quiet"}
			if args[0] == "run" {
				flags = append(flags, "--wait", "20s")
			}
			args = append(flags, args[1:]...)
			var before, after simStats
			s.get(t, "/_sim/stats", &before)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = w.dir
			cmd.Env = append(os.Environ(), "E2E_SFMC_KEY=sfmc-token", "E2E_BATCH_KEY=batch-token", "E2E_BR_ID=br-id")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("privsync %s did not end in 2 minutes\n%s", strings.Join(args, " "), stderr.String())
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			s.get(t, "/_sim/stats", &after)
			sent := after.total() - before.total()
			if tc.sends {
				if code != 0 || sent == 0 {
					t.Fatalf("the control case: exit %d, %d requests; want 0 and some sent: the harness proves nothing\n%s", code, sent, stderr.String())
				}
				return
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, tc.code, stderr.String())
			}
			if sent != 0 {
				t.Errorf("%d requests were sent, want none", sent)
			}
			where := stderr.String()
			if tc.code == ExitPartial {
				where = ""
				for _, rows := range w.reportRows(t) {
					for _, r := range rows {
						where += r[colDetail] + "\n"
					}
				}
			}
			for _, want := range tc.want {
				if !strings.Contains(where, want) {
					t.Errorf("the message does not say %q:\n%s", want, where)
				}
			}
			for _, secret := range []string{"sfmc-token", "batch-token", "s3cret"} {
				if strings.Contains(stderr.String(), secret) || strings.Contains(stdout.String(), secret) {
					t.Errorf("a secret is in the output")
				}
			}
			if tc.check != nil {
				tc.check(t, stdout.String())
			}
		})
	}
}

// TestCtrlCWhileWaitingForStandardInput: an interrupt stops privsync while
// it waits for standard input that never ends, removes its copy, and
// sends nothing.
func TestCtrlCWhileWaitingForStandardInput(t *testing.T) {
	s := startSim(t)
	w := newWorkspace(t, s, 80)
	bin, _ := binaries(t)
	tmp := t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd := w.command(t, bin, "run", "--quiet", "-")
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	cmd.Stdin = pr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pw.WriteString(hostileInput) // and never closed: a terminal, a stuck producer
	// The copy of standard input exists once privsync reads it (and has
	// set up its signal handling, which comes first).
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(tmp, "privsync-stdin-*")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("privsync did not start reading standard input in 30s\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("privsync ignored Ctrl-C while it waited for standard input")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("interrupted: %v, want exit 1\n%s", err, stderr.String())
	}
	if m, _ := filepath.Glob(filepath.Join(tmp, "privsync-stdin-*")); len(m) > 0 {
		t.Errorf("the copy of standard input was left behind: %v", m)
	}
	var st simStats
	s.get(t, "/_sim/stats", &st)
	if st.total() != 0 {
		t.Errorf("%d requests sent", st.total())
	}
}

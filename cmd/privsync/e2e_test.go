package main

// End-to-end tests: the real privsync binary against the real vendorsim
// binary over loopback HTTP, on files in testdata/.

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privsync/privsync/ledger/report"
	_ "modernc.org/sqlite"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds privsync and vendorsim once per test process.
func binaries(t testing.TB) (privsync, vendorsim string) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "privsync-e2e-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{".", "../vendorsim"} {
			name := filepath.Base(pkg)
			if pkg == "." {
				name = "privsync"
			}
			args := []string{"build", "-o", filepath.Join(binDir, name)}
			if raceEnabled {
				args = append(args, "-race")
			}
			out, err := exec.Command("go", append(args, pkg)...).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "privsync"), filepath.Join(binDir, "vendorsim")
}

// sim is a running vendorsim process.
type sim struct{ url string }

func startSim(t testing.TB, args ...string) *sim {
	t.Helper()
	return startSimEnv(t, nil, args...)
}

// startSimEnv starts vendorsim with extra environment (the credentials it
// insists on come only from there).
func startSimEnv(t testing.TB, env []string, args ...string) *sim {
	t.Helper()
	_, vs := binaries(t)
	cmd := exec.Command(vs, append([]string{"--addr", "127.0.0.1:0", "--log-level", "info"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "url="); i >= 0 && strings.Contains(line, "listening") {
			url := strings.Fields(line[i+4:])[0]
			go io.Copy(io.Discard, stderr)
			return &sim{url: url}
		}
	}
	t.Fatalf("vendorsim did not say where it listens")
	return nil
}

func (s *sim) get(t testing.TB, path string, into any) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
}

type simStats map[string]struct {
	Requests int            `json:"requests"`
	ByStatus map[string]int `json:"by_status"`
	Sent429  int            `json:"sent_429"`
}

func (s simStats) total() int {
	n := 0
	for _, v := range s {
		n += v.Requests
	}
	return n
}

// workspace is one test's config, ledger and report directory.
type workspace struct {
	dir, config, ledger, reports string
}

func newWorkspace(t testing.TB, s *sim, batchRPS int) *workspace {
	t.Helper()
	dir := t.TempDir()
	w := &workspace{dir: dir, config: filepath.Join(dir, "privsync.toml"), ledger: filepath.Join(dir, "ledger.db"), reports: filepath.Join(dir, "reports")}
	cfg := fmt.Sprintf(`ledger = %q
report_dir = %q
[vendors.sfmc]
kind = "sfmc"
base_url = %q
customer_mid = "12345678"
api_key_env = "E2E_SFMC_KEY"
requests_per_second = 40
burst = 4
max_in_flight = 4
batch_size = 50
poll_interval = "50ms"
[vendors.batch-ios]
kind = "batch"
base_url = %q
app_api_key = "IOSKEY"
rest_api_key_env = "E2E_BATCH_KEY"
requests_per_second = %d
burst = 4
max_in_flight = 8
poll_interval = "50ms"
[vendors.bloomreach]
kind = "bloomreach"
base_url = %q
project_token = "proj-1"
api_key_id_env = "E2E_BR_ID"
api_secret_file = %q
requests_per_second = 40
burst = 4
`, w.ledger, w.reports, s.url, s.url, batchRPS, s.url, filepath.Join(dir, "br-secret"))
	if err := os.WriteFile(filepath.Join(dir, "br-secret"), []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// privsync runs the binary and returns its exit code and output.
func (w *workspace) privsync(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	bin, _ := binaries(t)
	cmd := w.command(t, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func (w *workspace) command(t testing.TB, bin string, args ...string) *exec.Cmd {
	if args[0] != "report" {
		args = append([]string{args[0], "--config", w.config}, args[1:]...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "E2E_SFMC_KEY=sfmc-token", "E2E_BATCH_KEY=batch-token", "E2E_BR_ID=br-id")
	return cmd
}

// desiredState computes, independently of privsync's code, what the
// vendors must hold after a clean input (no bad rows, no duplicates, no
// magic ids) has been synced: the /_sim/state JSON.
func desiredState(t *testing.T, path string) map[string]any {
	t.Helper()
	recs := readCSV(t, path)
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	sfmcState := map[string]any{}
	batchState := map[string]any{}
	var anonymized []string
	for _, r := range recs[1:] {
		v, id, typ, restr, erase, access := r[col["vendor"]], r[col["subject_id"]], r[col["id_type"]], r[col["restrictions"]], r[col["erasure"]], r[col["access_request"]]
		switch v {
		case "sfmc":
			switch {
			case erase == "delete":
				sfmcState[id] = map[string]any{"restrictions": []any{}, "erasure": "deleted"}
			case erase == "suppress":
				sfmcState[id] = map[string]any{"restrictions": []any{}, "erasure": "suppressed"}
			case restr != "":
				list := []any{}
				for _, name := range []string{"do_not_track", "do_not_profile", "do_not_process"} {
					if slices.Contains(strings.Split(restr, "|"), name) {
						list = append(list, name)
					}
				}
				sfmcState[id] = map[string]any{"restrictions": list, "erasure": "none"}
			}
		case "batch-ios":
			reviews := 0.0
			if access != "" {
				reviews = 1
			}
			batchState[typ+":"+id] = map[string]any{"reviews": reviews, "removed": erase == "delete"}
		case "bloomreach":
			if erase == "delete" {
				anonymized = append(anonymized, typ+":"+id)
			}
		}
	}
	slices.Sort(anonymized)
	list := make([]any, len(anonymized))
	for i, a := range anonymized {
		list[i] = a
	}
	return map[string]any{
		"sfmc":       map[string]any{"12345678": sfmcState},
		"batch":      map[string]any{"IOSKEY": batchState},
		"bloomreach": map[string]any{"proj-1": map[string]any{"anonymized": list}},
	}
}

func assertStateIs(t *testing.T, s *sim, want map[string]any) {
	t.Helper()
	var got map[string]any
	s.get(t, "/_sim/state", &got)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("vendor state differs from the desired state of the input:\n%s", strings.Join(stateDiff("", got, want), "\n"))
	}
}

// stateDiff lists the paths where two decoded JSON documents differ.
func stateDiff(path string, got, want any) []string {
	g, gok := got.(map[string]any)
	w, wok := want.(map[string]any)
	if !gok || !wok {
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if bytes.Equal(gb, wb) {
			return nil
		}
		return []string{fmt.Sprintf("%s: got %s, want %s", path, gb, wb)}
	}
	var out []string
	keys := map[string]bool{}
	for k := range g {
		keys[k] = true
	}
	for k := range w {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for _, k := range sorted {
		out = append(out, stateDiff(path+"/"+k, g[k], w[k])...)
		if len(out) > 20 {
			return append(out[:20], "...")
		}
	}
	return out
}

const desiredCSV = "../../testdata/e2e/desired.csv"

func TestE2ERunReachesDesiredStateAndRerunSendsNothing(t *testing.T) {
	s := startSim(t, "--async-delay", "100ms", "--sfmc-rps", "40", "--batch-rps", "80", "--bloomreach-rps", "40")
	w := newWorkspace(t, s, 80)
	code, _, stderr := w.privsync(t, "run", "--wait", "60s", "--quiet", desiredCSV)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	assertStateIs(t, s, desiredState(t, desiredCSV))
	if strings.Contains(stderr, "token") || strings.Contains(stderr, "s3cret") {
		t.Errorf("a secret leaked into the output:\n%s", stderr)
	}

	var before, after simStats
	s.get(t, "/_sim/stats", &before)
	code, _, stderr = w.privsync(t, "run", "--wait", "60s", "--quiet", desiredCSV)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	s.get(t, "/_sim/stats", &after)
	if n := after.total() - before.total(); n != 0 {
		t.Fatalf("second run of the same input sent %d requests, want 0", n)
	}
	if before["sfmc"].Sent429+before["batch"].Sent429+before["bloomreach"].Sent429 != 0 {
		t.Errorf("limits at the vendor's rate still met 429s: %+v", before)
	}
}

func TestE2EFaultsStillReachDesiredState(t *testing.T) {
	s := startSim(t, "--async-delay", "100ms", "--error-rate", "0.1", "--rate-429", "0.05", "--reset-rate", "0.02",
		"--latency", "50ms", "--sfmc-rps", "0", "--batch-rps", "0", "--bloomreach-rps", "0", "--seed", "7")
	w := newWorkspace(t, s, 80)
	code, _, stderr := w.privsync(t, "run", "--wait", "120s", "--quiet", desiredCSV)
	if code != 0 {
		t.Fatalf("run under faults: exit %d\n%s", code, stderr)
	}
	assertStateIs(t, s, desiredState(t, desiredCSV))
	var st simStats
	s.get(t, "/_sim/stats", &st)
	if st["batch"].ByStatus["500"]+st["batch"].ByStatus["503"]+st["sfmc"].ByStatus["500"]+st["sfmc"].ByStatus["503"] == 0 {
		t.Fatalf("no fault was injected, the test proves nothing: %+v", st)
	}
}

func TestE2ECrashAtRandomMomentsLosesNothing(t *testing.T) {
	// Vendor limits below the config's: 429s on top of the kills.
	simArgs := []string{"--async-delay", "300ms", "--latency", "20ms", "--seed", "3", "--sfmc-rps", "20", "--batch-rps", "30", "--bloomreach-rps", "20"}
	// An uninterrupted run first: the reference report, and how long a run
	// takes, so the kill points fall inside one.
	s2 := startSim(t, simArgs...)
	w2 := newWorkspace(t, s2, 80)
	start := time.Now()
	if code, _, stderr := w2.privsync(t, "run", "--wait", "60s", "--quiet", desiredCSV); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}
	span := time.Since(start) * 9 / 10

	s := startSim(t, simArgs...)
	w := newWorkspace(t, s, 80)
	bin, _ := binaries(t)
	rng := rand.New(rand.NewPCG(42, 1))
	kills, launches := 0, 0
	for ; kills < 12 && launches < 40; launches++ {
		cmd := w.command(t, bin, "run", "--wait", "60s", "--quiet", desiredCSV)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		// Short kill points (a tenth of a whole run at most), so a dozen
		// kills fall inside the work: planning, sending, polling.
		case <-time.After(span/50 + time.Duration(rng.Int64N(int64(span/10)))):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		case <-done: // finished before its kill point
		}
	}
	if kills < 10 {
		t.Fatalf("only %d of %d runs were killed mid-way: make the run slower", kills, launches)
	}
	code, _, stderr := w.privsync(t, "run", "--wait", "60s", "--quiet", desiredCSV)
	if code != 0 {
		t.Fatalf("run after %d kills: exit %d\n%s", kills, code, stderr)
	}
	assertStateIs(t, s, desiredState(t, desiredCSV))

	db, err := sql.Open("sqlite", "file:"+w.ledger+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dupes int
	if err := db.QueryRow(`SELECT COUNT(*) FROM (SELECT vendor, subject_id, operation FROM events
		WHERE outcome IN ('completed', 'accepted', 'failed', 'expired') GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)`).Scan(&dupes); err != nil {
		t.Fatal(err)
	}
	if dupes != 0 {
		t.Fatalf("%d (vendor, subject, operation) have more than one final outcome in the ledger", dupes)
	}
	var finals, items int
	db.QueryRow(`SELECT COUNT(*) FROM events WHERE outcome IN ('completed', 'accepted')`).Scan(&finals)
	db.QueryRow(`SELECT COUNT(*) FROM items`).Scan(&items)
	if finals != items {
		t.Fatalf("%d items but %d confirmed outcomes: every item must be confirmed once", items, finals)
	}

	// The killed-and-resumed run's report holds the same rows as the report
	// of an uninterrupted run of the same input, none twice, and verifies.
	var resumed [][]string
	for f, rows := range w.reportRows(t) {
		if len(rows) > 0 {
			if resumed != nil {
				t.Fatalf("rows in more than one report (%s): the resumed run must keep its report", f)
			}
			resumed = rows
		}
	}
	var straight [][]string
	for _, rows := range w2.reportRows(t) {
		straight = append(straight, rows...)
	}
	got, want := reportSet(resumed), reportSet(straight)
	if len(resumed) != len(straight) || len(got) != len(want) {
		t.Fatalf("resumed report has %d rows (%d distinct), uninterrupted %d (%d distinct)", len(resumed), len(got), len(straight), len(want))
	}
	var diffs []string
	for _, m := range []map[string]int{want, got} {
		for k := range m {
			if got[k] != want[k] {
				diffs = append(diffs, fmt.Sprintf("%q: %d times in the resumed report, %d in the uninterrupted one", strings.ReplaceAll(k, "\x1f", ","), got[k], want[k]))
			}
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Fatalf("the reports differ:\n%s", strings.Join(slices.Compact(diffs), "\n"))
	}
}

func TestE2ESecondRunOnSameLedgerIsRefused(t *testing.T) {
	s := startSim(t, "--async-delay", "5s", "--sfmc-rps", "0")
	w := newWorkspace(t, s, 80)
	bin, _ := binaries(t)
	first := w.command(t, bin, "run", "--wait", "30s", "--quiet", desiredCSV)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	// The lock file names its holder once the lock is taken.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(w.ledger + ".lock")
		if bytes.Contains(b, []byte("pid")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run never took the ledger lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, _, stderr := w.privsync(t, "run", "--quiet", desiredCSV)
	if code != 1 || !strings.Contains(stderr, "in use") || !strings.Contains(stderr, fmt.Sprint(first.Process.Pid)) {
		t.Fatalf("second run: exit %d, want 1 naming the holder (pid %d)\n%s", code, first.Process.Pid, stderr)
	}
}

func TestE2EBadInputStopsBeforeSending(t *testing.T) {
	s := startSim(t)
	w := newWorkspace(t, s, 80)
	missing := filepath.Join(t.TempDir(), "nope.csv")
	code, _, stderr := w.privsync(t, "run", "--quiet", desiredCSV, missing)
	if code != 2 || !strings.Contains(stderr, "nope.csv") {
		t.Fatalf("missing input: exit %d, want 2 naming the file\n%s", code, stderr)
	}
	var st simStats
	s.get(t, "/_sim/stats", &st)
	if st.total() != 0 {
		t.Fatalf("%d requests were sent for an input that could not be read", st.total())
	}
}

// reportRows reads every report of a workspace: file name -> rows (without
// the header), each row as the report's columns.
func (w *workspace) reportRows(t testing.TB) map[string][][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(w.reports, "*.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(recs) == 0 || recs[0][0] != "seq" || recs[0][len(recs[0])-1] != "hash" {
			t.Fatalf("%s: no report header", f)
		}
		out[f] = recs[1:]
		code, _, stderr := w.privsync(t, "report", "verify", f)
		if code != 0 {
			t.Fatalf("report verify %s: exit %d\n%s", f, code, stderr)
		}
	}
	return out
}

// Report columns, by name.
var (
	colVendor       = slices.Index(report.Columns, "vendor")
	colSubject      = slices.Index(report.Columns, "subject_id")
	colIDType       = slices.Index(report.Columns, "id_type")
	colOperation    = slices.Index(report.Columns, "operation")
	colRestrictions = slices.Index(report.Columns, "restrictions")
	colOutcome      = slices.Index(report.Columns, "outcome")
	colDetail       = slices.Index(report.Columns, "detail")
)

func TestE2ESampleReportHasEveryOutcome(t *testing.T) {
	s := startSim(t, "--async-delay", "100ms", "--sfmc-rps", "40", "--batch-rps", "80", "--bloomreach-rps", "40")
	w := newWorkspace(t, s, 80)
	for _, in := range []string{"../../testdata/sample.csv", "../../testdata/sample-day2.csv"} {
		code, _, stderr := w.privsync(t, "run", "--wait", "5s", "--quiet", in)
		if code != 3 {
			t.Fatalf("run %s: exit %d, want 3 (some items failed, were rejected or conflict)\n%s", in, code, stderr)
		}
	}
	seen := map[string]int{}
	var formula bool
	for _, rows := range w.reportRows(t) {
		for _, r := range rows {
			seen[r[colOutcome]]++
			if strings.HasPrefix(r[colSubject], "'=HYPERLINK") {
				formula = true
			}
			if strings.HasPrefix(r[colSubject], "=") {
				t.Errorf("a subject id a spreadsheet would run as a formula was written as is: %q", r[colSubject])
			}
		}
	}
	for _, o := range []string{"completed", "accepted", "failed", "rejected", "unsupported", "conflict", "expired", "pending"} {
		if seen[o] == 0 {
			t.Errorf("no %s row in the sample's reports (outcomes seen: %v)", o, seen)
		}
	}
	if !formula {
		t.Error("the formula-looking subject id of the sample is not in the report with a leading '")
	}
	for _, f := range []string{"*.summary.json", "*.summary.md"} {
		if m, _ := filepath.Glob(filepath.Join(w.reports, f)); len(m) != 2 {
			t.Errorf("%s: %d files, want one per run", f, len(m))
		}
	}
}

var receiptURL = regexp.MustCompile(`https://\S+`)

// reportSet is a multiset of report rows without what differs between two
// runs of the same input: seq, run, times, vendor refs (and the data-report
// URLs, which are receipts too), attempts, hashes.
func reportSet(rows [][]string) map[string]int {
	set := map[string]int{}
	for _, r := range rows {
		detail := receiptURL.ReplaceAllString(r[colDetail], "<url>")
		key := strings.Join([]string{r[colVendor], r[colSubject], r[colIDType], r[colOperation], r[colRestrictions], r[colOutcome], detail}, "\x1f")
		set[key]++
	}
	return set
}

func TestE2EDemoAgainstTheInProcessSimulator(t *testing.T) {
	bin, _ := binaries(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "run", "--config", "../../testdata/demo.toml", "--ledger", filepath.Join(dir, "demo.db"),
		"--report-dir", filepath.Join(dir, "reports"), "--wait", "4s", "--quiet", "../../testdata/sample.csv")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("demo run: %v, want exit 3 (the sample has bad rows and failing subjects)\n%s", err, stderr.String())
	}
	w := &workspace{dir: dir, reports: filepath.Join(dir, "reports")}
	seen := map[string]bool{}
	for _, rows := range w.reportRows(t) {
		for _, r := range rows {
			seen[r[colOutcome]] = true
		}
	}
	for _, o := range []string{"completed", "accepted", "failed", "rejected", "unsupported", "pending"} {
		if !seen[o] {
			t.Errorf("the demo's report has no %s row: %v", o, seen)
		}
	}
}

func TestE2EInterruptStopsCleanlyAndTheNextRunFinishes(t *testing.T) {
	s := startSim(t, "--async-delay", "2s", "--sfmc-rps", "40", "--batch-rps", "80", "--bloomreach-rps", "40")
	w := newWorkspace(t, s, 80)
	bin, _ := binaries(t)
	cmd := w.command(t, bin, "run", "--wait", "60s", "--quiet", desiredCSV)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the vendors hold work (batches submitted, not yet
	// confirmed: the async delay keeps them pending).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st simStats
		s.get(t, "/_sim/stats", &st)
		if st.total() > 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run sent nothing in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("interrupted run: %v, want exit 1 saying it was interrupted\n%s", err, stderr.String())
	}
	if code, _, stderr := w.privsync(t, "run", "--wait", "60s", "--quiet", desiredCSV); code != 0 {
		t.Fatalf("run after the interrupt: exit %d\n%s", code, stderr)
	}
	assertStateIs(t, s, desiredState(t, desiredCSV))
	rows := 0
	for _, r := range w.reportRows(t) {
		rows += len(r)
	}
	if rows == 0 {
		t.Fatal("no report rows after the interrupted and resumed run")
	}
}

func TestE2EARefusedCredentialStopsOnlyThatVendor(t *testing.T) {
	s := startSimEnv(t, []string{"VENDORSIM_SFMC_API_KEY=the-right-token"},
		"--async-delay", "100ms", "--sfmc-rps", "40", "--batch-rps", "80", "--bloomreach-rps", "40")
	w := newWorkspace(t, s, 80) // its sfmc token is "sfmc-token": refused
	code, _, stderr := w.privsync(t, "run", "--wait", "60s", "--quiet", desiredCSV)
	if code != 1 || !strings.Contains(stderr, "sfmc") || strings.Contains(stderr, "the-right-token") {
		t.Fatalf("run with a refused sfmc token: exit %d, want 1 naming sfmc\n%s", code, stderr)
	}
	var st struct {
		SFMC  map[string]map[string]any `json:"sfmc"`
		Batch map[string]map[string]any `json:"batch"`
	}
	s.get(t, "/_sim/state", &st)
	if len(st.SFMC["12345678"]) != 0 {
		t.Fatalf("sfmc holds %d profiles although every request was refused", len(st.SFMC["12345678"]))
	}
	if len(st.Batch["IOSKEY"]) == 0 {
		t.Fatal("the other vendors did not go on")
	}
	cmd := w.command(t, binOf(t), "run", "--wait", "60s", "--quiet", desiredCSV)
	cmd.Env = append(cmd.Env, "E2E_SFMC_KEY=the-right-token")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run with the right token: %v\n%s", err, out)
	}
	assertStateIs(t, s, desiredState(t, desiredCSV))
}

func binOf(t testing.TB) string {
	bin, _ := binaries(t)
	return bin
}

func TestE2ELogsNameNoSubjectBelowDebug(t *testing.T) {
	s := startSim(t, "--async-delay", "100ms", "--sfmc-rps", "40", "--batch-rps", "80", "--bloomreach-rps", "40")
	w := newWorkspace(t, s, 80)
	_, _, stderr := w.privsync(t, "run", "--wait", "3s", "--log-level", "info", "../../testdata/sample.csv")
	for _, id := range []string{"sim-fail", "prof-", "user-", "customer", "hashed-id"} {
		if strings.Contains(stderr, id) {
			t.Errorf("info-level output names a subject (%q):\n%s", id, stderr)
		}
	}
	if !strings.Contains(stderr, "status=400") {
		t.Errorf("the vendor's refusal is not logged at all:\n%s", stderr)
	}
}

// A vendor that takes long to finish must not hold the workers: every
// request is sent, and the batches wait for the vendor in the queue.
func TestE2ESlowVendorDoesNotHoldTheWorkers(t *testing.T) {
	s := startSim(t, "--async-delay", "10m", "--batch-rps", "200")
	w := newWorkspace(t, s, 200)
	var in strings.Builder
	in.WriteString("vendor,subject_id,id_type,erasure\n")
	const users = 200 // several times the workers a vendor gets
	for i := range users {
		fmt.Fprintf(&in, "batch-ios,slow-%03d,custom_id,delete\n", i)
	}
	input := filepath.Join(w.dir, "slow.csv")
	if err := os.WriteFile(input, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := w.privsync(t, "run", "--wait", "6s", "--quiet", input)
	if code != 0 {
		t.Fatalf("run: exit %d, want 0 (pending by design)\n%s", code, stderr)
	}
	var st simStats
	s.get(t, "/_sim/stats", &st)
	if got := st["batch"].ByStatus["202"]; got != users {
		t.Fatalf("%d requests accepted, want all %d", got, users)
	}
	// Every batch is followed up during the wait. Workers that each sat
	// on one batch until the deadline sent most requests after it and
	// never asked about them (224 status requests here, against ~1,200).
	if got := st["batch"].ByStatus["200"]; got < 2*users {
		t.Fatalf("%d status requests for %d pending batches within the wait: polling holds the workers", got, users)
	}
	pending := 0
	for _, rows := range w.reportRows(t) {
		for _, r := range rows {
			if r[colOutcome] == "pending" {
				pending++
			}
		}
	}
	if pending != users {
		t.Fatalf("%d pending rows, want %d", pending, users)
	}
}

// readCSV reads every record of a CSV file.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

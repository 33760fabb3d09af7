package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestE2ERateLimitedRunIsQuietAndWritesMetrics runs privsync against
// vendorsim refusing a fifth of all requests with 429: at info level the
// log says a few lines per vendor, not one per refusal, and the metrics
// file parses as the Prometheus text format with the figures vendorsim
// counted itself.
func TestE2ERateLimitedRunIsQuietAndWritesMetrics(t *testing.T) {
	s := startSim(t, "--async-delay", "50ms", "--rate-429", "0.2", "--seed", "11",
		"--sfmc-rps", "0", "--batch-rps", "0", "--bloomreach-rps", "0")
	w := newWorkspace(t, s, 200)
	metrics := filepath.Join(w.dir, "textfile", "privsync.prom")
	if err := os.MkdirAll(filepath.Dir(metrics), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := w.privsync(t, "run", "--wait", "60s", "--log-format", "json", "--metrics-file", metrics, desiredCSV)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	var st simStats
	s.get(t, "/_sim/stats", &st)
	sent429 := st["sfmc"].Sent429 + st["batch"].Sent429 + st["bloomreach"].Sent429
	if sent429 < 20 {
		t.Fatalf("vendorsim sent only %d 429s: the test proves nothing (%+v)", sent429, st)
	}

	// The log: JSON lines; at info level and above, a few per vendor.
	perVendor := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue // the run's closing lines are not log records
		}
		var rec struct {
			Level, Msg, Vendor string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-format json wrote a line that is not JSON: %q: %v", line, err)
		}
		if rec.Level == "DEBUG" {
			t.Fatalf("a debug record at the default level: %s", line)
		}
		perVendor[rec.Vendor] = append(perVendor[rec.Vendor], rec.Msg)
	}
	t.Logf("vendorsim sent %d 429s; info lines per vendor: %q", sent429, perVendor)
	// A vendor that drew no 429 by chance (20% of few requests) logs
	// nothing; the others summarise, each in a few lines.
	summarised := 0
	for _, v := range []string{"sfmc", "batch-ios", "bloomreach"} {
		n := len(perVendor[v])
		if n > 4 {
			t.Errorf("vendor %s: %d log lines at info level, want at most 4: %q", v, n, perVendor[v])
		}
		if n > 0 {
			summarised++
		}
	}
	if sent429 > 0 && summarised == 0 {
		t.Errorf("vendorsim sent %d 429s and no vendor logged a summary", sent429)
	}
	if n := len(perVendor[""]); n > 3 {
		t.Errorf("%d log lines at info level name no vendor: %q", n, perVendor[""])
	}

	// The metrics file: the Prometheus text format, with vendorsim's counts.
	families := readMetrics(t, metrics)
	value := func(name string, labels map[string]string) (float64, bool) {
		fam := families[name]
		if fam == nil {
			t.Fatalf("metric %s missing; have %v", name, keys(families))
		}
		if fam.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %v, want a gauge", name, fam.GetType())
		}
	next:
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
		return 0, false
	}
	simName := map[string]string{"sfmc": "sfmc", "batch-ios": "batch", "bloomreach": "bloomreach"}
	for v, sv := range simName {
		if got, _ := value("privsync_run_rate_limited_responses", map[string]string{"vendor": v}); int(got) != st[sv].Sent429 {
			t.Errorf("%s: metrics say %v 429s, vendorsim sent %d", v, got, st[sv].Sent429)
		}
		if got, _ := value("privsync_run_requests", map[string]string{"vendor": v}); int(got) != st[sv].Requests {
			t.Errorf("%s: metrics say %v requests, vendorsim served %d", v, got, st[sv].Requests)
		}
	}
	// Items by vendor and outcome add up to the report's rows.
	var items float64
	for _, m := range families["privsync_run_items"].GetMetric() {
		items += m.GetGauge().GetValue()
	}
	rows := oneReportRowCount(t, w)
	if int(items) != rows || rows == 0 {
		t.Errorf("metrics count %v items, the report has %d rows", items, rows)
	}
	if got, ok := value("privsync_run_exit_code", nil); !ok || got != 0 {
		t.Errorf("privsync_run_exit_code = %v, want 0", got)
	}
	if got, _ := value("privsync_run_duration_seconds", nil); got <= 0 {
		t.Errorf("privsync_run_duration_seconds = %v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(metrics), "*")); len(left) != 1 {
		t.Errorf("the textfile directory holds %v, want only the metrics file (no temporaries)", left)
	}
}

// TestMetricsFileOnUsageError: a run refused for bad input or a bad config still says so
// to the monitoring (exit code 2), and --log-format refuses what it does
// not know.
func TestMetricsFileOnUsageError(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "privsync.toml")
	os.WriteFile(cfg, []byte("[vendors.sfmc]\nkind = \"sfmc\"\nbase_url = \"sim\"\ncustomer_mid = \"1\"\n"), 0o600)
	metrics := filepath.Join(dir, "m.prom")
	m, _, stderr := testMain()
	code := m.Exit(m.Run(t.Context(), []string{"run", "--config", cfg, "--ledger", filepath.Join(dir, "l.db"),
		"--metrics-file", metrics, filepath.Join(dir, "missing.csv")}))
	if code != ExitUsage {
		t.Fatalf("exit %d, want 2\n%s", code, stderr)
	}
	families := readMetrics(t, metrics)
	if got := families["privsync_run_exit_code"].GetMetric()[0].GetGauge().GetValue(); got != 2 {
		t.Fatalf("privsync_run_exit_code = %v, want 2", got)
	}

	// A config that does not load.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[vendors.x]\nkind = \"nope\"\n"), 0o600)
	os.Remove(metrics)
	m, _, stderr = testMain()
	if code := m.Exit(m.Run(t.Context(), []string{"run", "--config", bad, "--metrics-file", metrics, "x.csv"})); code != ExitUsage {
		t.Fatalf("a bad config: exit %d\n%s", code, stderr)
	}
	if data, err := os.ReadFile(metrics); err != nil || !strings.Contains(string(data), "privsync_run_exit_code 2") {
		t.Fatalf("metrics after a bad config: %v\n%s", err, data)
	}

	m, _, stderr = testMain()
	if code := m.Exit(m.Run(t.Context(), []string{"run", "--config", cfg, "--log-format", "xml", "x.csv"})); code != ExitUsage ||
		!strings.Contains(stderr.String(), "--log-format") {
		t.Fatalf("--log-format xml: exit %d, %s", code, stderr)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// testMain is a Main on buffers, with an empty environment.
func testMain() (*Main, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &Main{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}, &out, &errOut
}

// oneReportRowCount counts the rows of the workspace's one report.
func oneReportRowCount(t *testing.T, w *workspace) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(w.reports, "*.csv"))
	if len(files) != 1 {
		t.Fatalf("reports: %v, want one", files)
	}
	return len(readCSV(t, files[0])) - 1
}

// readMetrics parses a metrics file in the Prometheus text format.
func readMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the metrics file does not parse as the Prometheus text format: %v", err)
	}
	return families
}

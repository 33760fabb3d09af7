package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkE2ERateLimit runs privsync against vendorsim with both set to
// the same R requests/s for Batch.com (one user per request, so requests =
// users + status polls) and reports the achieved rate and the 429s met.
// Run it with: go test ./cmd/privsync -run '^$' -bench E2ERateLimit -benchtime 1x
func BenchmarkE2ERateLimit(b *testing.B) {
	const users, rps = 600, 50
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := startSim(b, "--async-delay", "50ms", "--batch-rps", fmt.Sprint(rps))
		dir := b.TempDir()
		input := filepath.Join(dir, "in.csv")
		var sb strings.Builder
		sb.WriteString("vendor,subject_id,id_type,erasure\n")
		for i := range users {
			fmt.Fprintf(&sb, "batch-ios,bench-%05d,custom_id,delete\n", i)
		}
		if err := os.WriteFile(input, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		w := newWorkspace(b, s, rps)
		b.StartTimer()
		start := time.Now()
		code, _, stderr := w.privsync(b, "run", "--wait", "120s", "--quiet", input)
		elapsed := time.Since(start)
		b.StopTimer()
		if code != 0 {
			b.Fatalf("run: exit %d\n%s", code, stderr)
		}
		var st simStats
		s.get(b, "/_sim/stats", &st)
		reqs := st["batch"].Requests
		b.ReportMetric(float64(reqs)/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(reqs)/elapsed.Seconds()/rps*100, "%ofR")
		b.ReportMetric(float64(st["batch"].Sent429), "429s")
		b.ReportMetric(float64(reqs), "requests")
	}
}

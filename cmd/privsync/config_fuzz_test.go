package main

import (
	"errors"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/privsync/privsync"
)

// fuzzSecret is what every environment variable holds in FuzzLoadConfig:
// no error may show it.
const fuzzSecret = "FUZZ-SECRET-3b1f"

// FuzzLoadConfig: whatever a config file holds, loadConfig either refuses
// it as a usage error (exit 2) that shows no secret, or returns a config
// every part of privsync can run with: known kinds, limits in range,
// durations above zero, vendor names distinct beyond case, column names
// distinct, and plain http only to this machine. Its seed corpus is in
// testdata/fuzz/FuzzLoadConfig.
func FuzzLoadConfig(f *testing.F) {
	if b, err := os.ReadFile("../../testdata/demo.toml"); err == nil {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(path, func(string) string { return fuzzSecret })
		if err != nil {
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != ExitUsage {
				t.Fatalf("error %v is not a usage error (exit 2)", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("the error shows a secret: %v", err)
			}
			return
		}
		folded := map[string]bool{}
		for name, v := range c.Vendors {
			if folded[strings.ToLower(name)] {
				t.Fatalf("two vendors named %q but for case", name)
			}
			folded[strings.ToLower(name)] = true
			if strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Fatalf("vendor name %q holds an invisible character", name)
			}
			if !v.kind().Valid() {
				t.Fatalf("vendor %s: kind %q accepted", name, v.Kind)
			}
			if r := v.RequestsPerSecond; math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 || r > maxRate {
				t.Fatalf("vendor %s: requests_per_second %v accepted", name, r)
			}
			max := map[privsync.Kind]int{privsync.KindSFMC: 1000, privsync.KindBatch: 1, privsync.KindBloomreach: 1000}[v.kind()]
			switch {
			case v.Burst < 1 || v.Burst > maxBurst:
				t.Fatalf("vendor %s: burst %d accepted", name, v.Burst)
			case v.MaxInFlight < 1 || v.MaxInFlight > maxInFlight:
				t.Fatalf("vendor %s: max_in_flight %d accepted", name, v.MaxInFlight)
			case v.BatchSize < 1 || v.BatchSize > max:
				t.Fatalf("vendor %s: batch_size %d accepted", name, v.BatchSize)
			case v.Timeout.Duration <= 0 || v.PollInterval.Duration <= 0:
				t.Fatalf("vendor %s: timeout %v, poll_interval %v accepted", name, v.Timeout, v.PollInterval)
			case v.SuppressionDay < 1 || v.SuppressionDay > 30:
				t.Fatalf("vendor %s: suppression_days %d accepted", name, v.SuppressionDay)
			}
			if v.Sim() {
				continue
			}
			u, err := url.Parse(v.BaseURL)
			if err != nil || u.Host == "" || u.User != nil {
				t.Fatalf("vendor %s: base_url %q accepted", name, v.BaseURL)
			}
			if u.Scheme != "https" {
				ip, err := netip.ParseAddr(u.Hostname())
				if u.Scheme != "http" || u.Hostname() != "localhost" && (err != nil || !ip.IsLoopback()) {
					t.Fatalf("vendor %s: base_url %q accepted: a token would cross the network in clear", name, v.BaseURL)
				}
			}
		}
		seen := map[string]bool{}
		for _, col := range canonicalColumns {
			name := col
			if m, ok := c.Columns[col]; ok {
				name = strings.TrimSpace(m)
			}
			if seen[name] || name == "" {
				t.Fatalf("[columns] reads %q twice or not at all: %v", name, c.Columns)
			}
			seen[name] = true
		}
	})
}

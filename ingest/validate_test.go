package ingest

import (
	"testing"
	"time"
)

// TestParseUTCSeconds: the fast path agrees with time.Parse.
func TestParseUTCSeconds(t *testing.T) {
	for _, s := range []string{
		"2026-01-02T03:04:05Z", "1970-01-01T00:00:00Z", "2000-02-29T23:59:59Z", "1969-12-31T23:59:59Z",
		"0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-02-29T12:00:00Z", "2100-03-01T00:00:00Z", "0000-03-01T00:00:00Z",
	} {
		got, ok := parseUTCSeconds(s)
		want, err := time.Parse(time.RFC3339, s)
		if !ok || err != nil || got != want.UTC() {
			t.Errorf("%s: got %v, %v; want %v, %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{
		"2023-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-01T24:00:00Z",
		"2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z", "2026-01-00T00:00:00Z", "2026-1-01T00:00:00Z",
	} {
		if _, ok := parseUTCSeconds(s); ok {
			t.Errorf("%s accepted", s)
		}
		if _, err := time.Parse(time.RFC3339, s); err == nil {
			t.Errorf("%s: time.Parse accepts it", s)
		}
	}
}

package executor

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
)

// recorder keeps the records a logger writes.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// atLeast returns the messages logged at level or above.
func (r *recorder) atLeast(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Level >= level {
			out = append(out, rec.Message)
		}
	}
	return out
}

func TestPacerSummarisesEpisodes(t *testing.T) {
	ctx := context.Background()
	var rec recorder
	now := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	p := newPacer(slog.New(&rec), func() time.Time { return now }, 10*time.Second)
	tooMany := &vendorapi.Error{Action: vendorapi.Retry, StatusCode: 429, RetryAfter: time.Second}
	rng := rand.New(rand.NewPCG(1, 2))

	// 1,000 requests over 100 s, a fifth of them refused: one episode.
	limited := 0
	for range 1000 {
		now = now.Add(100 * time.Millisecond)
		if rng.IntN(5) == 0 {
			limited++
			p.observe(ctx, tooMany)
		} else {
			p.observe(ctx, nil)
		}
	}
	if got := rec.atLeast(slog.LevelInfo); len(got) != 1 || !strings.Contains(got[0], "rate limiting") {
		t.Fatalf("info lines while limited = %q, want one saying the vendor rate limits", got)
	}
	// Calm for 9 s: still limited; then 10 s: recovered, once.
	for range 90 {
		now = now.Add(100 * time.Millisecond)
		p.observe(ctx, nil)
	}
	if got := rec.atLeast(slog.LevelInfo); len(got) != 1 {
		t.Fatalf("recovered before calm_after: %q", got)
	}
	for range 50 {
		now = now.Add(100 * time.Millisecond)
		p.observe(ctx, nil)
	}
	got := rec.atLeast(slog.LevelInfo)
	if len(got) != 2 || !strings.Contains(got[1], "recovered") {
		t.Fatalf("info lines after calm = %q, want the start and one recovery", got)
	}
	// A 503 starts a second episode, said differently.
	p.observe(ctx, &vendorapi.Error{Action: vendorapi.Retry, StatusCode: 503})
	p.observe(ctx, &vendorapi.Error{Action: vendorapi.Retry, StatusCode: 503})
	// A rejection is not a retry and starts nothing.
	p.observe(ctx, &vendorapi.Error{Action: vendorapi.Reject, StatusCode: 400})
	got = rec.atLeast(slog.LevelInfo)
	if len(got) != 3 || !strings.Contains(got[2], "failing") {
		t.Fatalf("info lines after 503s = %q, want a third saying the vendor fails", got)
	}
	// A cancelled request is nobody's failure.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p.observe(cctx, errors.New("context canceled"))

	st := p.finish(ctx)
	want := VendorStats{Requests: 1000 + 140 + 3, RateLimited: limited, Retried: limited + 2, Failed: limited + 3}
	if st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
	got = rec.atLeast(slog.LevelInfo)
	if len(got) != 4 || got[3] != "vendor requests" {
		t.Fatalf("final info lines = %q, want the counts last", got)
	}
}

func TestPacerQuietWithoutTrouble(t *testing.T) {
	ctx := context.Background()
	var rec recorder
	p := newPacer(slog.New(&rec), time.Now, 0)
	for range 100 {
		p.observe(ctx, nil)
	}
	if st := p.finish(ctx); st.Requests != 100 || st.Failed != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if got := rec.atLeast(slog.LevelInfo); len(got) != 0 {
		t.Fatalf("a vendor without trouble logged at info: %q", got)
	}
}

package executor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
)

// DefaultCalmAfter is how long a vendor must answer without a 429 or a
// retryable error before it is said to have recovered.
const DefaultCalmAfter = 30 * time.Second

// VendorStats counts one vendor's requests in an execution.
type VendorStats struct {
	Requests    int // HTTP exchanges attempted (submissions, status requests, look-ups)
	RateLimited int // answered 429
	Retried     int // failed with a retryable error (429s included) and tried again later
	Failed      int // every failed exchange, whatever the cause
}

// pacer watches one vendor's answers and tells the operator about trouble
// an episode at a time rather than a request at a time: one line when the
// vendor starts refusing (429) or failing requests that are retried, one
// when it has answered without trouble for calmAfter, and the counts at
// the end. Every failed request is still logged, at debug level.
type pacer struct {
	log       *slog.Logger
	now       func() time.Time
	calmAfter time.Duration

	mu       sync.Mutex
	stats    VendorStats
	troubled bool      // in an episode
	since    time.Time // start of the episode
	lastTrbl time.Time // last 429 or retryable error
	episode  VendorStats
	episodes int
}

func newPacer(log *slog.Logger, now func() time.Time, calmAfter time.Duration) *pacer {
	if calmAfter <= 0 {
		calmAfter = DefaultCalmAfter
	}
	return &pacer{log: log, now: now, calmAfter: calmAfter}
}

// observe records the outcome of one exchange (err nil: it succeeded).
func (p *pacer) observe(ctx context.Context, err error) {
	if err != nil && ctx.Err() != nil {
		return // cancelled, not the vendor's doing
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	p.episode.Requests++
	if err == nil {
		if p.troubled && now.Sub(p.lastTrbl) >= p.calmAfter {
			p.troubled = false
			p.log.LogAttrs(ctx, slog.LevelInfo, "vendor recovered: requests succeed again",
				slog.Duration("after", now.Sub(p.since).Round(time.Millisecond)),
				slog.Int("requests", p.episode.Requests), slog.Int("rate_limited", p.episode.RateLimited),
				slog.Int("retried", p.episode.Retried))
		}
		return
	}
	p.stats.Failed++
	limited := isRateLimited(err)
	retryable := limited
	switch vendorapi.ActionOf(err) {
	case vendorapi.Retry, vendorapi.RetryLater:
		retryable = true
	}
	if limited {
		p.stats.RateLimited++
	}
	if !retryable {
		return
	}
	p.stats.Retried++
	if !p.troubled {
		p.troubled, p.since, p.episode = true, now, VendorStats{Requests: 1}
		p.episodes++
		attrs := []slog.Attr{slog.Duration("calm_after", p.calmAfter)}
		msg := "vendor is rate limiting requests (429): backing off, retries are summarised until it recovers"
		if !limited {
			msg = "vendor is failing requests: retrying with back-off, retries are summarised until it recovers"
			var ve *vendorapi.Error
			if errors.As(err, &ve) && ve.StatusCode != 0 {
				attrs = append(attrs, slog.Int("status", ve.StatusCode))
			} else {
				attrs = append(attrs, slog.String("error", "network: "+networkCause(err)))
			}
		}
		p.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
	}
	p.lastTrbl = now
	if limited {
		p.episode.RateLimited++
	}
	p.episode.Retried++
}

// finish logs the vendor's counts, and returns them.
func (p *pacer) finish(ctx context.Context) VendorStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats.Requests > 0 {
		level := slog.LevelDebug
		if p.stats.Failed > 0 {
			level = slog.LevelInfo
		}
		p.log.LogAttrs(ctx, level, "vendor requests", slog.Int("requests", p.stats.Requests),
			slog.Int("rate_limited", p.stats.RateLimited), slog.Int("retried", p.stats.Retried),
			slog.Int("failed", p.stats.Failed), slog.Int("episodes", p.episodes))
	}
	return p.stats
}

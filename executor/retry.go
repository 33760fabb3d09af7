package executor

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
)

// Policy is the retry policy: exponential back-off with full jitter,
// capped, Retry-After honoured.
type Policy struct {
	MaxAttempts int           // attempts per request, 429s and 409s not counted (default 8)
	Base        time.Duration // first back-off (default 500ms)
	Cap         time.Duration // longest back-off (default 30s)
	PollCap     time.Duration // longest wait between status requests (default 30s)
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.Base <= 0 {
		p.Base = 500 * time.Millisecond
	}
	if p.Cap <= 0 {
		p.Cap = 30 * time.Second
	}
	if p.PollCap <= 0 {
		p.PollCap = 30 * time.Second
	}
	return p
}

func (p Policy) backoff() *backoff { return &backoff{p: p} }

// backoff counts one request's attempts.
type backoff struct {
	p        Policy
	failures int // counted against MaxAttempts
	waits    int // 429 and 409 waits, not counted
}

// next returns how long to wait before trying again after err, and false
// when it is time to give up: the budget is spent, or the wait would end
// after deadline (only for waits that do not count: they can go on while
// the run may wait).
func (b *backoff) next(err error, now, deadline time.Time) (time.Duration, bool) {
	var ve *vendorapi.Error
	errors.As(err, &ve)
	counted := true
	if ve != nil && (ve.StatusCode == 429 || ve.Action == vendorapi.RetryLater) {
		counted = false
	}
	n := b.waits
	if counted {
		b.failures++
		if b.failures >= b.p.MaxAttempts {
			return 0, false
		}
		n = b.failures
	} else {
		b.waits++
	}
	wait := b.jitter(n)
	if ve != nil && ve.RetryAfter > 0 {
		wait = ve.RetryAfter
	}
	if !counted && now.Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// jitter is "full jitter": uniform in [0, min(cap, base·2^n)).
func (b *backoff) jitter(n int) time.Duration {
	d := b.p.Base << min(n, 20)
	if d <= 0 || d > b.p.Cap {
		d = b.p.Cap
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

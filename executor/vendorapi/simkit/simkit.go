// Package simkit is the machinery the vendor simulators share, so that each
// simulator (executor/sfmc, executor/batch, executor/bloomreach) holds only
// its vendor's contract: a Base that wraps a vendor's handler with seeded
// fault injection (500/503 errors, injected 429s, connection resets,
// latency), a token-bucket rate limit answered with 429 and Retry-After,
// request counters per status code, an injectable clock for async
// completion, seeded ids, and small JSON and credential helpers.
//
// Everything random comes from one generator seeded by Options.Seed, so a
// run with the same seed and the same request order behaves the same.
// Nothing sleeps but the configured latency; async work completes when the
// injected clock says so.
package simkit

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("250ms", "2s"); a bare number is taken as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "250ms" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration: %w", err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string such as \"250ms\" or a number of seconds: %w", err)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Faults are the failures a simulator injects, each request drawing once.
type Faults struct {
	ErrorRate float64  `json:"error_rate"` // share of requests answered 500 or 503 (half each)
	Rate429   float64  `json:"rate_429"`   // share answered 429 with Retry-After: 1
	ResetRate float64  `json:"reset_rate"` // share whose connection is closed without an answer
	Latency   Duration `json:"latency"`    // added before every answer
}

// Validate checks that the rates are shares and the latency is not negative.
func (f Faults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"error_rate", f.ErrorRate}, {"rate_429", f.Rate429}, {"reset_rate", f.ResetRate}} {
		if r.v < 0 || r.v > 1 || math.IsNaN(r.v) {
			return fmt.Errorf("%s must be between 0 and 1, got %v", r.name, r.v)
		}
	}
	if f.Latency < 0 {
		return fmt.Errorf("latency must not be negative")
	}
	return nil
}

// Options are the settings every simulator has.
type Options struct {
	Seed       uint64
	Now        func() time.Time // time.Now when nil
	Faults     Faults
	RateLimit  float64       // requests per second; 0 disables
	AsyncDelay time.Duration // how long async work takes before it completes
}

// ErrorWriter answers a request with the vendor's error body for status.
type ErrorWriter func(w http.ResponseWriter, status int, message string)

// Stats counts what a simulator answered.
type Stats struct {
	Requests    int64            `json:"requests"`
	ByStatus    map[string]int64 `json:"by_status"`    // status code → answers
	Sent429     int64            `json:"sent_429"`     // every 429, limited or injected
	RateLimited int64            `json:"rate_limited"` // 429s from the rate limit
	Injected429 int64            `json:"injected_429"` // 429s from Faults.Rate429
	Resets      int64            `json:"resets"`       // connections closed unanswered
}

// Base is the part of a simulator that is the same for every vendor. Embed
// it; its ServeHTTP runs the faults and the rate limit, then the vendor's
// handler, counting every answer.
type Base struct {
	name       string
	now        func() time.Time
	writeError ErrorWriter
	next       http.Handler

	mu         sync.Mutex
	rng        *rand.Rand
	faults     Faults
	limiter    *rate.Limiter // nil: no limit
	asyncDelay time.Duration
	stats      Stats
}

// NewBase returns a Base named name (for logs and errors) around next.
func NewBase(name string, o Options, writeError ErrorWriter, next http.Handler) *Base {
	b := &Base{
		name:       name,
		now:        o.Now,
		writeError: writeError,
		next:       next,
		rng:        rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		faults:     o.Faults,
		asyncDelay: o.AsyncDelay,
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.SetRateLimit(o.RateLimit)
	b.ResetStats()
	return b
}

// Now is the simulator's clock.
func (b *Base) Now() time.Time { return b.now() }

// AsyncDelay is how long async work takes to complete now.
func (b *Base) AsyncDelay() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asyncDelay
}

// SetAsyncDelay changes the delay for work accepted from now on.
func (b *Base) SetAsyncDelay(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asyncDelay = d
}

// SetFaults changes the faults injected.
func (b *Base) SetFaults(f Faults) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = f
}

// SetRateLimit sets the token bucket: rps requests per second with a burst
// of one second's worth (at least 1); 0 or less removes the limit.
func (b *Base) SetRateLimit(rps float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rps <= 0 {
		b.limiter = nil
		return
	}
	b.limiter = rate.NewLimiter(rate.Limit(rps), max(1, int(math.Ceil(rps))))
}

// Stats returns a copy of the counters.
func (b *Base) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.ByStatus = make(map[string]int64, len(b.stats.ByStatus))
	for k, v := range b.stats.ByStatus {
		s.ByStatus[k] = v
	}
	return s
}

// ResetStats zeroes the counters.
func (b *Base) ResetStats() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats = Stats{ByStatus: map[string]int64{}}
}

// NewID returns a UUID-shaped id drawn from the seeded generator.
func (b *Base) NewID() string {
	b.mu.Lock()
	hi, lo := b.rng.Uint64(), b.rng.Uint64()
	b.mu.Unlock()
	hi = hi&^0xf000 | 0x4000     // version 4
	lo = lo&^(0xc<<60) | 0x8<<60 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// verdict is what the faults and the limit decided for one request.
type verdict int

const (
	pass verdict = iota
	reset
	limited
	injected429
	fail500
	fail503
)

func (b *Base) decide(now time.Time) (v verdict, retryAfter int, latency time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.Requests++
	f := b.faults
	latency = time.Duration(f.Latency)
	switch {
	case f.ResetRate > 0 && b.rng.Float64() < f.ResetRate:
		b.stats.Resets++
		return reset, 0, latency
	case b.limiter != nil && !b.limiter.AllowN(now, 1):
		b.stats.RateLimited++
		b.stats.Sent429++
		missing := 1 - b.limiter.TokensAt(now)
		return limited, max(1, int(math.Ceil(missing/float64(b.limiter.Limit())))), latency
	case f.Rate429 > 0 && b.rng.Float64() < f.Rate429:
		b.stats.Injected429++
		b.stats.Sent429++
		return injected429, 1, latency
	case f.ErrorRate > 0 && b.rng.Float64() < f.ErrorRate:
		if b.rng.IntN(2) == 0 {
			return fail500, 0, latency
		}
		return fail503, 0, latency
	}
	return pass, 0, latency
}

func (b *Base) count(status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.ByStatus[strconv.Itoa(status)]++
}

// ServeHTTP applies latency, faults and the rate limit, then the vendor's
// handler.
func (b *Base) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, retryAfter, latency := b.decide(b.now())
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if v == reset {
		resetConn(w)
		return
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	switch v {
	case limited, injected429:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		b.writeError(rec, http.StatusTooManyRequests, "rate limit exceeded")
	case fail500:
		b.writeError(rec, http.StatusInternalServerError, "simulated server error")
	case fail503:
		b.writeError(rec, http.StatusServiceUnavailable, "simulated maintenance")
	default:
		b.next.ServeHTTP(rec, r)
	}
	b.count(rec.status)
}

// resetConn closes the connection under w without an answer; with TCP the
// peer sees a reset. Where hijacking is impossible (HTTP/2) the stream is
// aborted instead.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(p)
}

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// SecretOK reports whether got is an acceptable credential: equal to want
// (compared in constant time), or any non-empty value when want is empty.
func SecretOK(got, want string) bool {
	if want == "" {
		return got != ""
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Magic subject ids: a subject id containing one of these strings makes a
// simulator behave so, whatever the vendor.
const (
	MagicFail   = "sim-fail"   // the vendor reports a failure for the item
	MagicExpire = "sim-expire" // Batch.com: once done, the request is forgotten (404)
	MagicSlow   = "sim-slow"   // the async work never completes (until reset)
)

// Is reports whether subject carries the magic marker.
func Is(subject, magic string) bool { return strings.Contains(subject, magic) }

// ManualClock is a clock that moves only when told: tests and demos use its
// Now as Options.Now to complete async work without sleeping.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock standing at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// RequireAuth passes to next the requests that ok accepts and answers the
// others with deny.
func RequireAuth(ok func(*http.Request) bool, deny func(http.ResponseWriter), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ok(r) {
			deny(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

package executor

import (
	"errors"
	"testing"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
)

func TestBackoff(t *testing.T) {
	now := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	far := now.Add(time.Hour)
	p := Policy{MaxAttempts: 3, Base: 100 * time.Millisecond, Cap: time.Second}.withDefaults()
	err500 := &vendorapi.Error{Action: vendorapi.Retry, StatusCode: 500}
	err429 := &vendorapi.Error{Action: vendorapi.Retry, StatusCode: 429, RetryAfter: 2 * time.Second}
	err409 := &vendorapi.Error{Action: vendorapi.RetryLater, StatusCode: 409}
	netErr := errors.New("connection reset by peer")

	tests := []struct {
		name     string
		errs     []error
		deadline time.Time
		wantOK   []bool
		check    func(t *testing.T, i int, wait time.Duration)
	}{
		{"5xx uses up the attempts", []error{err500, err500, err500}, far, []bool{true, true, false}, func(t *testing.T, i int, wait time.Duration) {
			if limit := p.Base << (i + 1); i < 2 && (wait <= 0 || wait > limit) {
				t.Errorf("attempt %d: wait %v outside full jitter (0, %v]", i, wait, limit)
			}
		}},
		{"network errors count too", []error{netErr, netErr, netErr}, far, []bool{true, true, false}, nil},
		{"429 honours Retry-After and never counts", []error{err429, err429, err429, err429, err429}, far, []bool{true, true, true, true, true},
			func(t *testing.T, i int, wait time.Duration) {
				if wait != 2*time.Second {
					t.Errorf("wait %v, want Retry-After 2s", wait)
				}
			}},
		{"409 waits without counting", []error{err409, err409, err409, err409}, far, []bool{true, true, true, true}, nil},
		{"a wait past the deadline gives up", []error{err429}, now.Add(time.Second), []bool{false}, nil},
		{"429s between failures do not count", []error{err500, err429, err429, err500, err500}, far, []bool{true, true, true, true, false}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bo := p.backoff()
			for i, err := range tc.errs {
				wait, ok := bo.next(err, now, tc.deadline)
				if ok != tc.wantOK[i] {
					t.Fatalf("after error %d (%v): ok = %v, want %v", i, err, ok, tc.wantOK[i])
				}
				if ok && (wait <= 0 || wait > p.Cap && wait != 2*time.Second) {
					t.Errorf("after error %d: wait %v, want in (0, %v]", i, wait, p.Cap)
				}
				if ok && tc.check != nil {
					tc.check(t, i, wait)
				}
			}
		})
	}
}

func TestBackoffIsCapped(t *testing.T) {
	p := Policy{MaxAttempts: 100, Base: time.Second, Cap: 3 * time.Second}.withDefaults()
	bo := p.backoff()
	now := time.Now()
	for i := 0; i < 50; i++ {
		wait, ok := bo.next(&vendorapi.Error{Action: vendorapi.Retry, StatusCode: 503}, now, now.Add(time.Hour))
		if !ok || wait > p.Cap {
			t.Fatalf("attempt %d: wait %v ok %v, want at most the cap %v", i, wait, ok, p.Cap)
		}
	}
}

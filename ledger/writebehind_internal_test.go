package ledger

import (
	"errors"
	"slices"
	"testing"
)

// Jobs run in the order queued; after one fails, the later ones are
// skipped, and do and wait report the failure.
func TestWriteBehindOrderAndFailure(t *testing.T) {
	b := newWriteBehind(2)
	defer b.stop()
	var ran []int
	errBad := errors.New("bad statement")
	for i := range 100 {
		if err := b.do(func() error { ran = append(ran, i); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.wait(); err != nil {
		t.Fatal(err)
	}
	if want := 100; len(ran) != want || !slices.IsSorted(ran) {
		t.Fatalf("ran %d jobs, in order: %v; want %d in order", len(ran), slices.IsSorted(ran), want)
	}
	ran = ran[:0]
	b.do(func() error { ran = append(ran, 1); return errBad })
	b.do(func() error { ran = append(ran, 2); return nil })
	if err := b.wait(); !errors.Is(err, errBad) {
		t.Fatalf("wait: %v, want the failed job's error", err)
	}
	if err := b.do(func() error { ran = append(ran, 3); return nil }); !errors.Is(err, errBad) {
		t.Fatalf("do after a failure: %v, want the failed job's error", err)
	}
	if !slices.Equal(ran, []int{1}) {
		t.Fatalf("jobs run %v, want only the failing one: [1]", ran)
	}
}

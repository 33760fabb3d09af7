package executor

import (
	"context"
	"testing"
	"time"

	"github.com/privsync/privsync/ledger"
)

// A task taken from the queue is no longer referenced by it: a backfill
// queues thousands of batches at once and drains them, and a popped slot
// that kept its task kept the batch's thousand items with it.
func TestQueueForgetsPoppedTasks(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	q := newQueue(func() time.Time { return now })
	for i := range 100 {
		q.push(&task{b: &ledger.Batch{ID: int64(i), Items: make([]ledger.Item, 10)}, at: now})
	}
	for range 60 {
		if q.pop(context.Background()) == nil {
			t.Fatal("the queue ended early")
		}
		q.done()
	}
	if got := len(q.h); got != 40 {
		t.Fatalf("%d tasks queued, want 40", got)
	}
	for i, tk := range q.h[len(q.h):cap(q.h)] {
		if tk != nil {
			t.Fatalf("slot %d past the queue's end still holds batch %d", len(q.h)+i, tk.b.ID)
		}
	}
}

package executor

import (
	"context"
	"sync"

	"github.com/privsync/privsync/ledger"
)

// queue holds a vendor's batches waiting for a worker. Workers pop until
// nothing is queued and nothing is being worked on (a batch being worked
// on may release follow-up batches or split in halves).
type queue struct {
	mu      sync.Mutex
	items   []*ledger.Batch
	pending int           // queued + being worked on
	wake    chan struct{} // closed and replaced on every change
}

func (q *queue) init() { q.wake = make(chan struct{}) }

func (q *queue) push(b *ledger.Batch) {
	q.mu.Lock()
	q.items = append(q.items, b)
	q.pending++
	q.broadcast()
	q.mu.Unlock()
}

// done marks one popped batch finished.
func (q *queue) done() {
	q.mu.Lock()
	q.pending--
	q.broadcast()
	q.mu.Unlock()
}

func (q *queue) broadcast() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// pop returns the next batch, or nil when all work is done or ctx ends.
func (q *queue) pop(ctx context.Context) *ledger.Batch {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			b := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return b
		}
		if q.pending == 0 {
			q.mu.Unlock()
			return nil
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
}

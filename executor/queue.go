package executor

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/privsync/privsync/ledger"
)

// task is one thing to do for a batch: send it, or ask for its status,
// not before at.
type task struct {
	b        *ledger.Batch
	poll     bool
	at       time.Time
	interval time.Duration // the wait before the next status request
	held     int           // items b keeps while queued (counted in runner.held)
	seq      int           // push order: ties go first in, first out
}

type taskHeap []*task

func (h taskHeap) Len() int { return len(h) }
func (h taskHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)   { *h = append(*h, x.(*task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	// The slot past the end would keep the task, its batch and the batch's
	// items reachable until a push reused it: a backfill queues all its
	// batches at once and then drains, so every batch sent stayed in memory.
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// queue holds a vendor's tasks by time. Workers take the earliest task
// that is due, and wait only when none is: a batch waiting for the vendor
// to finish holds no worker (Batch.com requests can take hours). Workers
// stop when nothing is queued and nothing is being worked on (work in hand
// may queue a status request, a follow-up batch or two halves).
type queue struct {
	now     func() time.Time
	mu      sync.Mutex
	h       taskHeap
	seq     int
	pending int           // queued + being worked on
	wake    chan struct{} // closed and replaced on every change
}

func newQueue(now func() time.Time) *queue {
	return &queue{now: now, wake: make(chan struct{})}
}

func (q *queue) push(t *task) {
	q.mu.Lock()
	q.seq++
	t.seq = q.seq
	heap.Push(&q.h, t)
	q.pending++
	q.broadcast()
	q.mu.Unlock()
}

// done marks one popped task finished.
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

// pop returns the next due task, or nil when all work is done or ctx ends.
func (q *queue) pop(ctx context.Context) *task {
	for {
		q.mu.Lock()
		var wait time.Duration = -1
		if len(q.h) > 0 {
			d := q.h[0].at.Sub(q.now())
			if d <= 0 {
				t := heap.Pop(&q.h).(*task)
				q.mu.Unlock()
				return t
			}
			wait = d
		} else if q.pending == 0 {
			q.mu.Unlock()
			return nil
		}
		wake := q.wake
		q.mu.Unlock()
		var timer *time.Timer
		var due <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			due = timer.C
		}
		select {
		case <-wake:
		case <-due:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

package planner

import (
	"context"

	"github.com/privsync/privsync"
)

// Batch is one request's worth of operations for one vendor.
type Batch struct {
	ID     int // local to the plan, from 1
	Vendor string
	Op     privsync.Operation
	// After is the batch whose items must be confirmed before this one is
	// sent (0 for none): a Batch.com remove after its review, an sfmc
	// restrict after the cancellation of a suppression.
	After int
}

type batchKey struct {
	vendor string
	op     privsync.Operation
	after  int
}

type openBatch struct {
	*Batch
	n int
}

// batcher packs operations into batches of at most the vendor's limit, in
// the order they are decided: first operations by (vendor, operation),
// follow-ups by the batch they follow, so a follow-up batch never waits on
// more than one batch.
type batcher struct {
	sink      Sink
	limits    map[string]int
	open      map[batchKey]*openBatch
	followers map[int][]batchKey
	next      int
}

func newBatcher(sink Sink, limits map[string]int) *batcher {
	return &batcher{sink: sink, limits: limits, open: map[batchKey]*openBatch{}, followers: map[int][]batchKey{}}
}

// place puts one operation into a batch and returns the batch's id.
func (b *batcher) place(ctx context.Context, vendor string, op privsync.Operation, after int) (int, error) {
	k := batchKey{vendor, op, after}
	ob := b.open[k]
	limit := max(b.limits[vendor], 1)
	if ob == nil || ob.n >= limit {
		if ob != nil {
			b.close(k, ob)
		}
		b.next++
		ob = &openBatch{Batch: &Batch{ID: b.next, Vendor: vendor, Op: op, After: after}}
		b.open[k] = ob
		if after != 0 {
			b.followers[after] = append(b.followers[after], k)
		}
		if err := b.sink.Batch(ctx, ob.Batch); err != nil {
			return 0, err
		}
	}
	ob.n++
	return ob.ID, nil
}

// close forgets a full batch and the follow-up batches that hang on it:
// no more operations can follow a batch that takes no more items.
func (b *batcher) close(k batchKey, ob *openBatch) {
	delete(b.open, k)
	for _, fk := range b.followers[ob.ID] {
		if fb := b.open[fk]; fb != nil {
			b.close(fk, fb)
		}
	}
	delete(b.followers, ob.ID)
}

package executor

import (
	"context"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
)

// Connector is one configured vendor, as the executor uses it. The
// implementations live in executor/sfmc, executor/batch and
// executor/bloomreach; cmd/privsync builds them from the config.
type Connector interface {
	// MaxItems is the most items one Submit may carry.
	MaxItems() int
	// Submit sends one request carrying items (all of one operation) and
	// returns the vendor's receipt. Errors are *vendorapi.Error where the
	// vendor answered, so vendorapi.ActionOf says what to do next.
	Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error)
	// Poll asks the vendor where a submitted request stands, one status per
	// item it knows about (matched by SubjectID).
	Poll(ctx context.Context, ref string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error)
}

// Finder is a connector that can look for a request the vendor may already
// have accepted, for a vendor where sending again is not harmless (a
// second Batch.com review is a second report). The executor asks it before
// sending again a batch that may have left: found after a crash in
// sending, or met with a 409 after an attempt whose answer was lost.
type Finder interface {
	Find(ctx context.Context, item vendorapi.Item, since time.Time) (ref string, found bool, err error)
}

package executor

import (
	"context"

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

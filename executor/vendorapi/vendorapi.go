// Package vendorapi is the machinery every vendor connector shares: the item
// and status types the executor hands over, the one error type that tells
// the executor what to do next, and (in http.go) the HTTP client with its
// timeouts, size limits and retry classification. The connectors under
// executor/ differ only in what their vendors differ in.
package vendorapi

import (
	"errors"
	"fmt"
	"time"

	"github.com/privsync/privsync"
)

// Item is one subject's operation inside a request.
type Item struct {
	IDType       string
	SubjectID    string
	Op           privsync.Operation
	Restrictions privsync.Restrictions // the declarative final state, for OpRestrict
}

// Receipt is what a vendor answers when it takes a request.
type Receipt struct {
	Ref string // batch_id, token or bulk_id
	// Final is true when the vendor has no status endpoint: the request is
	// as done as the API can tell (Bloomreach's accepted bulk).
	Final bool
}

// State is where one item stands at the vendor.
type State int

// Item states reported by Poll.
const (
	StatePending State = iota // still being processed
	StateDone                 // confirmed
	StateFailed               // the vendor reports a failure for this item
	StateExpired              // the vendor no longer knows the request
)

func (s State) String() string {
	return [...]string{"pending", "done", "failed", "expired"}[s]
}

// ItemStatus is the vendor's word on one item of a submitted request.
type ItemStatus struct {
	IDType    string // with SubjectID, the item it is about
	SubjectID string
	State     State
	Detail    string // the vendor's error text, when failed
	DataURL   string // Batch.com review report
}

// Action tells the executor what to do with a request that did not succeed.
type Action int

// Actions, from most to least hopeful.
const (
	Retry      Action = iota // transient: back off and send again (429, 5xx, network)
	RetryLater               // the vendor is busy with this subject (Batch.com 409): wait, then send again
	Reject                   // the request is wrong: do not resend it as it is (400, success:false)
	StopVendor               // credentials or permission: every later request would fail too (401, 403)
	NotFound                 // the vendor does not know the thing asked about (404)
)

func (a Action) String() string {
	return [...]string{"retry", "retry-later", "reject", "stop-vendor", "not-found"}[a]
}

// Error is a vendor's refusal, classified. Body is the raw response body
// (truncated); it never holds request headers, so it carries no secret.
type Error struct {
	Action     Action
	StatusCode int           // 0 for network errors
	Code       string        // vendor error code, when the body gives one
	Message    string        // vendor message, or the raw body when it does not parse
	RetryAfter time.Duration // from Retry-After; 0 when absent
	Err        error         // underlying network error, if any
}

func (e *Error) Error() string {
	var s string
	switch {
	case e.StatusCode == 0 && e.Err != nil:
		s = fmt.Sprintf("%s: %v", e.Action, e.Err)
	case e.Code != "":
		s = fmt.Sprintf("HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
	default:
		s = fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ActionOf classifies any error returned by a connector: a *Error gives its
// action; anything else (a context error aside) is treated as transient.
func ActionOf(err error) Action {
	var ve *Error
	if errors.As(err, &ve) {
		return ve.Action
	}
	return Retry
}

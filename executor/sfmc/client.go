// Package sfmc is the connector for Salesforce Marketing Cloud
// Personalization Builder privacy batches, and its simulator.
//
// The client POSTs {"batch": {"<profile>": [...]}} to
// /api/v2/organization/{customer_mid}/privacy with a Bearer token; each
// array is the profile's intended final state (declarative), so sending a
// batch again is harmless. It polls /privacy/{batch_id}, whose array has a
// row per change, and maps the rows to one status per profile: all rows
// success → done; any failed or cancelled → failed (Detail names the
// actions); any still initiated → pending; no row at all (nothing needed to
// change) → done.
//
// The simulator (Sim) holds per customer_mid the rows of every batch and
// derives each profile's state from them, by an injectable clock: rows go
// initiated → success after the async delay; rtbf_suppress leaves the
// profile suppressed for the suppression window (14 days by default, at
// most 30), then deleted; remove_rtbf_suppress cancels it while suppressed
// (a suppress row still initiated then becomes cancelled); a change to a
// deleted profile fails. A profile whose declared state equals what the
// vendor has been told yields no row. Mixing an exclusive RTBF value with
// anything, an unknown value or malformed JSON is a 400.
//
// Magic profile ids: an id containing "sim-fail" gets failed rows; one
// containing "sim-slow" stays initiated until the simulator is reset.
package sfmc

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/vendorapi"
)

// Client defaults.
const (
	DefaultBaseURL   = "https://app.igodigital.com"
	DefaultBatchSize = 1000
)

// Config configures a Client.
type Config struct {
	BaseURL     string // DefaultBaseURL when empty
	CustomerMID string
	APIKey      string // the Bearer token
	HTTPClient  *http.Client
	Timeout     time.Duration // per request, when HTTPClient is nil
	BatchSize   int           // profiles per POST; DefaultBatchSize when zero
}

// Client speaks to one SFMC account.
type Client struct {
	api       *vendorapi.API
	mid       string
	batchSize int
}

// New checks c and returns a client.
func New(c Config) (*Client, error) {
	if err := vendorapi.RequireFields("sfmc customer_mid", c.CustomerMID, "sfmc api key", c.APIKey); err != nil {
		return nil, err
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	api, err := vendorapi.NewAPI(vendorapi.APIConfig{
		BaseURL:    c.BaseURL,
		HTTPClient: c.HTTPClient,
		Timeout:    c.Timeout,
		Header:     http.Header{"Authorization": {"Bearer " + c.APIKey}},
		// A status row is about 250 bytes and a profile has at most three.
		MaxBody: max(vendorapi.DefaultMaxBody, int64(c.BatchSize)*1024),
	})
	if err != nil {
		return nil, fmt.Errorf("sfmc: %w", err)
	}
	return &Client{api: api, mid: c.CustomerMID, batchSize: c.BatchSize}, nil
}

// MaxItems is the batch size.
func (c *Client) MaxItems() int { return c.batchSize }

// Values is the privacy array that asks SFMC for item's operation.
func Values(it vendorapi.Item) ([]string, error) {
	switch it.Op {
	case privsync.OpRestrict:
		return it.Restrictions.Names(), nil
	case privsync.OpRTBFDelete, privsync.OpRTBFSuppress, privsync.OpRemoveRTBFSuppress:
		return []string{string(it.Op)}, nil
	}
	return nil, fmt.Errorf("sfmc cannot do %q", it.Op)
}

// Submit sends one batch.
func (c *Client) Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error) {
	if len(items) == 0 || len(items) > c.batchSize {
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: fmt.Sprintf("sfmc batch of %d profiles (want 1 to %d)", len(items), c.batchSize)}
	}
	batch := make(map[string][]string, len(items))
	for _, it := range items {
		v, err := Values(it)
		if err != nil {
			return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: err.Error()}
		}
		if _, dup := batch[it.SubjectID]; dup {
			return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: "profile " + it.SubjectID + " twice in one batch"}
		}
		batch[it.SubjectID] = v
	}
	var out struct {
		BatchID string `json:"batch_id"`
	}
	if err := c.api.Do(ctx, http.MethodPost, c.path(), map[string]any{"batch": batch}, &out); err != nil {
		return vendorapi.Receipt{}, fmt.Errorf("sfmc create batch: %w", err)
	}
	if out.BatchID == "" {
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Retry, StatusCode: http.StatusOK, Message: "sfmc answered without a batch_id"}
	}
	return vendorapi.Receipt{Ref: out.BatchID}, nil
}

// Poll reads the batch's status rows and gives each item its state.
func (c *Client) Poll(ctx context.Context, ref string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error) {
	var rows []struct {
		ProfileID string `json:"profile_id"`
		Action    string `json:"action"`
		Status    string `json:"status"`
	}
	if err := c.api.Do(ctx, http.MethodGet, c.path(ref), nil, &rows); err != nil {
		return nil, fmt.Errorf("sfmc batch status: %w", err)
	}
	type tally struct {
		pending bool
		failed  []string
	}
	byProfile := map[string]*tally{}
	for _, r := range rows {
		t := byProfile[r.ProfileID]
		if t == nil {
			t = &tally{}
			byProfile[r.ProfileID] = t
		}
		switch r.Status {
		case "success":
		case "failed", "cancelled":
			t.failed = append(t.failed, r.Action+" "+r.Status)
		default: // initiated, or a status this client does not know yet
			t.pending = true
		}
	}
	out := make([]vendorapi.ItemStatus, 0, len(items))
	for _, it := range items {
		st := vendorapi.ItemStatus{IDType: it.IDType, SubjectID: it.SubjectID, State: vendorapi.StateDone}
		if t := byProfile[it.SubjectID]; t != nil {
			switch {
			case len(t.failed) > 0:
				st.State, st.Detail = vendorapi.StateFailed, strings.Join(t.failed, "; ")
			case t.pending:
				st.State = vendorapi.StatePending
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func (c *Client) path(rest ...string) string {
	return vendorapi.Path(append([]string{"api", "v2", "organization", c.mid, "privacy"}, rest...)...)
}

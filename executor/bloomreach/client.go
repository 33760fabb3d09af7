// Package bloomreach is the connector for Bloomreach Engagement bulk
// anonymization, and its simulator.
//
// The client POSTs {"customers": [{"customer_ids": {"<name>": "<value>"}} |
// {"internal_id": "<24 hex>"}]} (1 to 1,000 customers) to
// /data/v2/projects/{project_token}/customers/anonymize_bulk with Basic
// auth base64(api_key_id:api_secret). A {"success": true, "bulk_id"} answer
// is final: the vendor has no status endpoint, so the Receipt has
// Final=true and the executor records the items as accepted without
// polling; Poll, if called anyway, reports every item done.
//
// Errors: 400, or 200 with "success": false, are Reject (the executor
// splits the bulk to find the bad customer); 401 and 403 (also a project
// the key may not use) StopVendor; 429 and 500 Retry. Error bodies come in
// three shapes, all parsed: {"error": "...", "success": false},
// {"errors": ["..."], "success": false} and
// {"errors": {"_global": ["..."]}, "success": false}.
//
// The simulator (Sim) answers 401 {"error"} for bad credentials, 403
// {"errors": {"_global"}} for a project outside SimOptions.Projects,
// 400 {"errors": [...]} for malformed JSON, 400 {"errors": {"customers"}}
// for none or over 1,000 customers and 400 {"errors": {"_global"}} for a
// malformed customer; it records anonymized ids per project token.
//
// Magic ids: a bulk holding an id value containing "sim-fail" is answered
// 400 {"errors": ["customer <name>:<value> cannot be anonymized"]}, so
// splitting the bulk isolates that customer.
package bloomreach

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/vendorapi"
)

// Client defaults and limits.
const (
	DefaultBaseURL = "https://api.exponea.com"
	MaxCustomers   = 1000 // per bulk, documented
)

// Config configures a Client.
type Config struct {
	BaseURL      string // DefaultBaseURL when empty (projects often have their own)
	ProjectToken string
	APIKeyID     string
	APISecret    string
	HTTPClient   *http.Client
	Timeout      time.Duration // per request, when HTTPClient is nil
	BatchSize    int           // customers per bulk; MaxCustomers when zero or above it
}

// Client speaks to one Bloomreach project.
type Client struct {
	api       *vendorapi.API
	project   string
	batchSize int
}

// New checks c and returns a client.
func New(c Config) (*Client, error) {
	if err := vendorapi.RequireFields("bloomreach project token", c.ProjectToken, "bloomreach api key id", c.APIKeyID, "bloomreach api secret", c.APISecret); err != nil {
		return nil, err
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.BatchSize <= 0 || c.BatchSize > MaxCustomers {
		c.BatchSize = MaxCustomers
	}
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	req.SetBasicAuth(c.APIKeyID, c.APISecret)
	api, err := vendorapi.NewAPI(vendorapi.APIConfig{
		BaseURL:    c.BaseURL,
		HTTPClient: c.HTTPClient,
		Timeout:    c.Timeout,
		Header:     http.Header{"Authorization": req.Header["Authorization"]},
	})
	if err != nil {
		return nil, fmt.Errorf("bloomreach: %w", err)
	}
	return &Client{api: api, project: c.ProjectToken, batchSize: c.BatchSize}, nil
}

// MaxItems is the bulk size (at most 1,000).
func (c *Client) MaxItems() int { return c.batchSize }

// Customer is the bulk element that names item's subject.
func Customer(it vendorapi.Item) (map[string]any, error) {
	switch {
	case it.Op != privsync.OpAnonymize:
		return nil, fmt.Errorf("bloomreach cannot do %q", it.Op)
	case it.IDType == "" || it.SubjectID == "":
		return nil, fmt.Errorf("bloomreach needs an id type and a value")
	case it.IDType == "internal_id":
		return map[string]any{"internal_id": it.SubjectID}, nil
	}
	return map[string]any{"customer_ids": map[string]string{it.IDType: it.SubjectID}}, nil
}

// Submit sends one bulk; an accepted bulk is final.
func (c *Client) Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error) {
	if len(items) == 0 || len(items) > c.batchSize {
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: fmt.Sprintf("bloomreach bulk of %d customers (want 1 to %d)", len(items), c.batchSize)}
	}
	customers := make([]map[string]any, len(items))
	for i, it := range items {
		cu, err := Customer(it)
		if err != nil {
			return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: err.Error()}
		}
		customers[i] = cu
	}
	var raw json.RawMessage
	path := vendorapi.Path("data", "v2", "projects", c.project, "customers", "anonymize_bulk")
	if err := c.api.Do(ctx, http.MethodPost, path, map[string]any{"customers": customers}, &raw); err != nil {
		return vendorapi.Receipt{}, fmt.Errorf("bloomreach anonymize bulk: %w", err)
	}
	var out struct {
		Success *bool  `json:"success"`
		BulkID  string `json:"bulk_id"`
	}
	_ = json.Unmarshal(raw, &out)
	switch {
	case out.Success != nil && !*out.Success:
		code, msg := vendorapi.ParseErrorBody(raw)
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, StatusCode: http.StatusOK, Code: code, Message: msg}
	case out.Success == nil && out.BulkID == "":
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Retry, StatusCode: http.StatusOK, Message: "bloomreach answered neither success nor bulk_id: " + vendorapi.Truncate(string(raw))}
	}
	return vendorapi.Receipt{Ref: out.BulkID, Final: true}, nil
}

// Poll reports every item done: an accepted bulk is as done as the API can
// tell (there is no status endpoint), and the executor need not call it.
func (c *Client) Poll(_ context.Context, _ string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error) {
	out := make([]vendorapi.ItemStatus, len(items))
	for i, it := range items {
		out[i] = vendorapi.ItemStatus{IDType: it.IDType, SubjectID: it.SubjectID, State: vendorapi.StateDone}
	}
	return out, nil
}

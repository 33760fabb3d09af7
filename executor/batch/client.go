// Package batch is the connector for the Batch.com GDPR API, and its
// simulator.
//
// One request concerns one user (MaxItems is 1): POST
// /1.0/{app_api_key}/gdpr/request with X-Authorization: {rest_api_key} and
// {"request_type": "review"|"remove", "id": {"type", "value"}} answers 202
// with a token ({"token"}, or {"request_id"}). While that user has a
// request pending the vendor answers 409, which the client classifies as
// RetryLater. Poll reads /gdpr/request/{token}: done without error → done
// (a review's data_url in DataURL), done with error → failed, pending →
// pending, and a 404 → expired (requests leave the API 20–30 days after
// creation).
//
// The simulator (Sim) answers every documented error with its status, code
// and name in {"code": N, "error": "NAME", "message": "..."}:
// AUTHENTICATION_INVALID (401, 10), ROUTE_NOT_FOUND (404, 20),
// MISSING_PARAMETER (400, 30), MALFORMED_PARAMETER (400, 31),
// MALFORMED_JSON_BODY (400, 32), and SERVER_ERROR (500, 1) /
// MAINTENANCE_ERROR (503, 2) as injected faults. Requests complete after
// the async delay by the injectable clock; done ones leave the API after
// 25 days. The callback is checked (https only) but never called.
//
// Magic id values: one containing "sim-fail" ends done with
// "error": "user not found"; "sim-expire" is forgotten (404) as soon as it
// is done; "sim-slow" stays pending until the simulator is reset.
package batch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/vendorapi"
)

// DefaultBaseURL is the vendor's API.
const DefaultBaseURL = "https://api.batch.com"

// Config configures a Client.
type Config struct {
	BaseURL     string // DefaultBaseURL when empty
	AppAPIKey   string // the app (iOS and Android apps have different keys)
	RESTAPIKey  string // the company REST API key, sent as X-Authorization
	CallbackURL string // optional; must be https
	HTTPClient  *http.Client
	Timeout     time.Duration // per request, when HTTPClient is nil
}

// Client speaks to one Batch.com app.
type Client struct {
	api      *vendorapi.API
	app      string
	callback string
}

// New checks c and returns a client.
func New(c Config) (*Client, error) {
	if err := vendorapi.RequireFields("batch app api key", c.AppAPIKey, "batch rest api key", c.RESTAPIKey); err != nil {
		return nil, err
	}
	if c.CallbackURL != "" {
		if u, err := url.Parse(c.CallbackURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("batch callback url must be an https URL")
		}
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	api, err := vendorapi.NewAPI(vendorapi.APIConfig{
		BaseURL:    c.BaseURL,
		HTTPClient: c.HTTPClient,
		Timeout:    c.Timeout,
		Header:     http.Header{"X-Authorization": {c.RESTAPIKey}},
		Actions:    map[int]vendorapi.Action{http.StatusConflict: vendorapi.RetryLater},
	})
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return &Client{api: api, app: c.AppAPIKey, callback: c.CallbackURL}, nil
}

// MaxItems is 1: the API takes one user per request.
func (c *Client) MaxItems() int { return 1 }

type userID struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Submit creates the GDPR request for the one item.
func (c *Client) Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error) {
	if len(items) != 1 {
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: fmt.Sprintf("batch takes one user per request, got %d", len(items))}
	}
	it := items[0]
	if it.Op != privsync.OpReview && it.Op != privsync.OpRemove {
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Reject, Message: fmt.Sprintf("batch cannot do %q", it.Op)}
	}
	body := struct {
		RequestType string `json:"request_type"`
		CallbackURL string `json:"callback_url,omitempty"`
		ID          userID `json:"id"`
	}{string(it.Op), c.callback, userID{it.IDType, it.SubjectID}}
	var out struct {
		Token     string `json:"token"`
		RequestID string `json:"request_id"`
	}
	if err := c.api.Do(ctx, http.MethodPost, c.path("request"), body, &out); err != nil {
		return vendorapi.Receipt{}, fmt.Errorf("batch create request: %w", err)
	}
	ref := out.Token
	if ref == "" {
		ref = out.RequestID
	}
	if ref == "" {
		return vendorapi.Receipt{}, &vendorapi.Error{Action: vendorapi.Retry, StatusCode: http.StatusAccepted, Message: "batch answered without a token"}
	}
	return vendorapi.Receipt{Ref: ref}, nil
}

// Poll reads the request's status; every item gets it (there is one).
func (c *Client) Poll(ctx context.Context, ref string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error) {
	var out struct {
		Status  string `json:"status"`
		Error   string `json:"error"`
		DataURL string `json:"data_url"`
	}
	st := vendorapi.ItemStatus{State: vendorapi.StatePending}
	err := c.api.Do(ctx, http.MethodGet, c.path("request", ref), nil, &out)
	switch {
	case vendorapi.ActionOf(err) == vendorapi.NotFound:
		st.State, st.Detail = vendorapi.StateExpired, "the vendor no longer knows request "+ref
	case err != nil:
		return nil, fmt.Errorf("batch request status: %w", err)
	case out.Status == "done" && out.Error != "":
		st.State, st.Detail = vendorapi.StateFailed, out.Error
	case out.Status == "done":
		st.State, st.DataURL = vendorapi.StateDone, out.DataURL
	}
	res := make([]vendorapi.ItemStatus, len(items))
	for i, it := range items {
		res[i] = st
		res[i].IDType, res[i].SubjectID = it.IDType, it.SubjectID
	}
	return res, nil
}

func (c *Client) path(rest ...string) string {
	return vendorapi.Path(append([]string{"1.0", c.app, "gdpr"}, rest...)...)
}

// requestDate is Batch.com's request_date: UTC without a zone.
const requestDate = "2006-01-02T15:04:05.999999999"

// Find looks among the app's requests for one of item's kind for the same
// user created at or after since, and returns its token. The executor asks
// before sending again a request that may already have been accepted (a
// crash or a lost answer after the vendor took it), so a user is not sent
// two reviews.
func (c *Client) Find(ctx context.Context, it vendorapi.Item, since time.Time) (string, bool, error) {
	var list []StatusObject
	if err := c.api.Do(ctx, http.MethodGet, c.path("requests"), nil, &list); err != nil {
		return "", false, fmt.Errorf("batch list requests: %w", err)
	}
	var best string
	var bestAt time.Time
	for _, r := range list {
		if r.RequestType != string(it.Op) || r.ID.Type != it.IDType || r.ID.Value != it.SubjectID {
			continue
		}
		at, err := time.Parse(requestDate, r.RequestDate)
		if err != nil || at.Before(since) || at.Before(bestAt) {
			continue
		}
		best, bestAt = r.RequestID, at
	}
	return best, best != "", nil
}

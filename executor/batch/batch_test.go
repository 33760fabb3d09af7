package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/executor/batch"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"github.com/privsync/privsync/executor/vendorapi/simkit/simtest"
)

var _ executor.Connector = (*batch.Client)(nil)

const (
	app   = "APPKEY-IOS"
	rest  = "rest-key"
	delay = 10 * time.Second
)

type env = simtest.Env[*batch.Sim, *batch.Client]

func setup(t *testing.T, o batch.SimOptions) *env {
	t.Helper()
	return simtest.Start(t, func(now func() time.Time) *batch.Sim {
		o.Now, o.AsyncDelay, o.RESTKey = now, delay, rest
		return batch.NewSim(o)
	}, func(url string) (*batch.Client, error) {
		return batch.New(batch.Config{BaseURL: url, AppAPIKey: app, RESTAPIKey: rest})
	})
}

func newClient(t *testing.T, c batch.Config) *batch.Client {
	t.Helper()
	if c.AppAPIKey == "" {
		c.AppAPIKey = app
	}
	if c.RESTAPIKey == "" {
		c.RESTAPIKey = rest
	}
	cl, err := batch.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func item(idType, id string, op privsync.Operation) vendorapi.Item {
	return vendorapi.Item{IDType: idType, SubjectID: id, Op: op}
}

func submit(t *testing.T, e *env, it vendorapi.Item) string {
	t.Helper()
	r := e.Submit(t, it)
	if r.Ref == "" || r.Final {
		t.Fatalf("receipt %+v", r)
	}
	return r.Ref
}

func poll(t *testing.T, e *env, ref string, it vendorapi.Item) vendorapi.ItemStatus {
	t.Helper()
	st, err := e.Client.Poll(context.Background(), ref, []vendorapi.Item{it})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].SubjectID != it.SubjectID {
		t.Fatalf("statuses %+v", st)
	}
	return st[0]
}

func raw(t *testing.T, e *env, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	code, b := e.Raw(t, method, path, http.Header{"X-Authorization": {auth}}, body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return code, out
}

func TestReviewWhilePendingThenDone(t *testing.T) {
	e := setup(t, batch.SimOptions{})
	review := item("custom_id", "u1", privsync.OpReview)
	ref := submit(t, e, review)
	if st := poll(t, e, ref, review); st.State != vendorapi.StatePending {
		t.Fatalf("%+v", st)
	}
	_, err := e.Client.Submit(context.Background(), []vendorapi.Item{item("custom_id", "u1", privsync.OpRemove)})
	var ve *vendorapi.Error
	if !errors.As(err, &ve) || ve.StatusCode != 409 || ve.Action != vendorapi.RetryLater {
		t.Fatalf("second request while pending: %v", err)
	}
	// Another user, or the same value under another id type, is not blocked.
	submit(t, e, item("install_id", "u1", privsync.OpReview))
	e.Clock.Advance(delay)
	st := poll(t, e, ref, review)
	if st.State != vendorapi.StateDone || !strings.HasPrefix(st.DataURL, "https://") || st.Detail != "" {
		t.Fatalf("%+v", st)
	}
	remove := item("custom_id", "u1", privsync.OpRemove)
	ref2 := submit(t, e, remove)
	e.Clock.Advance(delay)
	if st := poll(t, e, ref2, remove); st.State != vendorapi.StateDone || st.DataURL != "" {
		t.Fatalf("%+v", st)
	}
	want := map[string]map[string]batch.UserState{app: {
		"custom_id:u1":  {Reviews: 1, Removed: true},
		"install_id:u1": {Reviews: 1},
	}}
	if got := e.Sim.State(); !reflect.DeepEqual(got, want) {
		t.Fatalf("state %+v", got)
	}

	code, obj := raw(t, e, "GET", "/1.0/"+app+"/gdpr/request/"+ref, rest, "")
	wantObj := map[string]any{"request_id": ref, "request_date": "2026-11-23T06:00:00.000", "status": "done",
		"request_type": "review", "trigger_type": "api", "id": map[string]any{"type": "custom_id", "value": "u1"},
		"data_url": "https://gdpr-reports.vendorsim.invalid/" + ref + ".zip"}
	if code != 200 || !reflect.DeepEqual(obj, wantObj) {
		t.Fatalf("%d %v", code, obj)
	}
	req, _ := http.NewRequest("GET", e.Srv.URL+"/1.0/"+app+"/gdpr/requests", nil)
	req.Header.Set("X-Authorization", rest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []batch.StatusObject
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list) != 3 || list[0].RequestID != ref || list[2].Status != "done" {
		t.Fatalf("list %+v %v", list, err)
	}
}

func TestMagicIDsAndExpiry(t *testing.T) {
	e := setup(t, batch.SimOptions{RequestTTL: 20 * 24 * time.Hour})
	fail := item("custom_id", "x-sim-fail", privsync.OpRemove)
	expire := item("custom_id", "x-sim-expire", privsync.OpReview)
	slow := item("advertising_id", "x-sim-slow", privsync.OpRemove)
	plain := item("custom_id", "plain", privsync.OpRemove)
	refs := map[string]string{}
	for _, it := range []vendorapi.Item{fail, expire, slow, plain} {
		refs[it.SubjectID] = submit(t, e, it)
	}
	if st := poll(t, e, refs["x-sim-expire"], expire); st.State != vendorapi.StatePending {
		t.Fatalf("expire before done: %+v", st)
	}
	e.Clock.Advance(delay)
	if st := poll(t, e, refs["x-sim-fail"], fail); st.State != vendorapi.StateFailed || st.Detail != "user not found" {
		t.Fatalf("fail: %+v", st)
	}
	if st := poll(t, e, refs["x-sim-expire"], expire); st.State != vendorapi.StateExpired {
		t.Fatalf("expire: %+v", st)
	}
	if st := poll(t, e, refs["plain"], plain); st.State != vendorapi.StateDone {
		t.Fatalf("plain: %+v", st)
	}
	e.Clock.Advance(20 * 24 * time.Hour)
	if st := poll(t, e, refs["plain"], plain); st.State != vendorapi.StateExpired {
		t.Fatalf("plain after the TTL: %+v", st)
	}
	if st := poll(t, e, refs["x-sim-slow"], slow); st.State != vendorapi.StatePending {
		t.Fatalf("slow requests never complete, nor expire: %+v", st)
	}
	if got := e.Sim.State()[app]; got["custom_id:x-sim-fail"] != (batch.UserState{}) || !got["custom_id:plain"].Removed || got["advertising_id:x-sim-slow"].Removed {
		t.Fatalf("state %+v", got)
	}
	e.Sim.Reset()
	if len(e.Sim.State()) != 0 {
		t.Fatal("state after reset")
	}
}

// corrupt replaces every request body with broken JSON.
type corrupt struct{}

func (corrupt) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader([]byte(`{"request_type": "remove",`)))
	r.ContentLength = -1
	return http.DefaultTransport.RoundTrip(r)
}

func TestEveryDocumentedError(t *testing.T) {
	e := setup(t, batch.SimOptions{Options: simkit.Options{Seed: 3}})
	faulty := setup(t, batch.SimOptions{Options: simkit.Options{Seed: 3, Faults: simkit.Faults{ErrorRate: 1}}})
	ok := item("custom_id", "u", privsync.OpRemove)
	for _, tc := range []struct {
		name   string
		client *batch.Client
		it     vendorapi.Item
		status int
		code   string
		action vendorapi.Action
	}{
		{"bad auth", newClient(t, batch.Config{BaseURL: e.Srv.URL, RESTAPIKey: "wrong"}), ok, 401, "AUTHENTICATION_INVALID", vendorapi.StopVendor},
		{"unknown route", newClient(t, batch.Config{BaseURL: e.Srv.URL + "/v9"}), ok, 404, "ROUTE_NOT_FOUND", vendorapi.NotFound},
		{"missing parameter", e.Client, item("custom_id", "", privsync.OpRemove), 400, "MISSING_PARAMETER", vendorapi.Reject},
		{"malformed parameter", e.Client, item("email", "u", privsync.OpRemove), 400, "MALFORMED_PARAMETER", vendorapi.Reject},
		{"malformed JSON", newClient(t, batch.Config{BaseURL: e.Srv.URL, HTTPClient: &http.Client{Transport: corrupt{}}}), ok, 400, "MALFORMED_JSON_BODY", vendorapi.Reject},
		{"server error", faulty.Client, ok, 500, "SERVER_ERROR", vendorapi.Retry},
		{"maintenance", faulty.Client, ok, 503, "MAINTENANCE_ERROR", vendorapi.Retry},
	} {
		var ve *vendorapi.Error
		// A fault is drawn per request: draw until the one wanted comes.
		for range 20 {
			_, err := tc.client.Submit(context.Background(), []vendorapi.Item{tc.it})
			if !errors.As(err, &ve) {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if ve.StatusCode == tc.status {
				break
			}
		}
		if ve.StatusCode != tc.status || ve.Code != tc.code || ve.Action != tc.action || ve.Message == "" {
			t.Errorf("%s: %+v", tc.name, ve)
		}
	}
	if s := faulty.Sim.Stats(); s.ByStatus["500"] == 0 || s.ByStatus["503"] == 0 || s.Requests != s.ByStatus["500"]+s.ByStatus["503"] {
		t.Errorf("faulty stats %+v", s)
	}
	if len(e.Sim.State()) != 0 {
		t.Errorf("a refused request changed the state: %+v", e.Sim.State())
	}
}

func TestCreateRules(t *testing.T) {
	e := setup(t, batch.SimOptions{})
	path := "/1.0/" + app + "/gdpr/request"
	for _, tc := range []struct {
		name, auth, body string
		status           int
		code             float64
	}{
		{"no auth", "", `{}`, 401, 10},
		{"not JSON", rest, `request_type=remove`, 400, 32},
		{"JSON array", rest, `[]`, 400, 32},
		{"no request_type", rest, `{"id": {"type": "custom_id", "value": "u"}}`, 400, 30},
		{"no id", rest, `{"request_type": "review"}`, 400, 30},
		{"no id.type", rest, `{"request_type": "review", "id": {"value": "u"}}`, 400, 30},
		{"no id.value", rest, `{"request_type": "review", "id": {"type": "custom_id"}}`, 400, 30},
		{"empty id.value", rest, `{"request_type": "review", "id": {"type": "custom_id", "value": ""}}`, 400, 30},
		{"request_type number", rest, `{"request_type": 1, "id": {"type": "custom_id", "value": "u"}}`, 400, 31},
		{"request_type unknown", rest, `{"request_type": "export", "id": {"type": "custom_id", "value": "u"}}`, 400, 31},
		{"id not object", rest, `{"request_type": "review", "id": "u"}`, 400, 31},
		{"id.type unknown", rest, `{"request_type": "review", "id": {"type": "email", "value": "u"}}`, 400, 31},
		{"id.value number", rest, `{"request_type": "review", "id": {"type": "custom_id", "value": 7}}`, 400, 31},
		{"http callback", rest, `{"request_type": "review", "callback_url": "http://x.example", "id": {"type": "custom_id", "value": "u"}}`, 400, 31},
		{"valid with callback", rest, `{"request_type": "review", "callback_url": "https://x.example/cb", "id": {"type": "custom_id", "value": "u"}}`, 202, 0},
		{"valid, unknown fields", rest, `{"request_type": "remove", "extra": true, "id": {"type": "install_id", "value": "u"}}`, 202, 0},
	} {
		code, body := raw(t, e, "POST", path, tc.auth, tc.body)
		got, _ := body["code"].(float64)
		if code != tc.status || got != tc.code || (code == 202) != (body["token"] != nil) {
			t.Errorf("%s: %d %v", tc.name, code, body)
		}
	}
	if code, body := raw(t, e, "GET", "/1.0/"+app+"/gdpr/request", rest, ""); code != 404 || body["error"] != "ROUTE_NOT_FOUND" {
		t.Errorf("GET on the create route: %d %v", code, body)
	}
}

func TestClientChecks(t *testing.T) {
	for name, c := range map[string]batch.Config{
		"no app key":    {RESTAPIKey: rest},
		"no rest key":   {AppAPIKey: app},
		"http callback": {AppAPIKey: app, RESTAPIKey: rest, CallbackURL: "http://x.example"},
	} {
		if _, err := batch.New(c); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	e := setup(t, batch.SimOptions{})
	if e.Client.MaxItems() != 1 {
		t.Fatal("MaxItems")
	}
	for name, items := range map[string][]vendorapi.Item{
		"two":      {item("custom_id", "a", privsync.OpRemove), item("custom_id", "b", privsync.OpRemove)},
		"restrict": {item("custom_id", "a", privsync.OpRestrict)},
	} {
		if _, err := e.Client.Submit(context.Background(), items); vendorapi.ActionOf(err) != vendorapi.Reject {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRequestIDAndRetryAfterDate(t *testing.T) {
	now := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Authorization") == "slow-down" {
			w.Header().Set("Retry-After", now.Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(429)
			return
		}
		w.WriteHeader(202)
		_, _ = w.Write([]byte(`{"request_id": "r-1"}`))
	}))
	defer srv.Close()
	r, err := newClient(t, batch.Config{BaseURL: srv.URL}).Submit(context.Background(), []vendorapi.Item{item("custom_id", "u", privsync.OpRemove)})
	if err != nil || r.Ref != "r-1" {
		t.Fatalf("%+v %v", r, err)
	}
	_, err = newClient(t, batch.Config{BaseURL: srv.URL, RESTAPIKey: "slow-down"}).Submit(context.Background(), []vendorapi.Item{item("custom_id", "u", privsync.OpRemove)})
	var ve *vendorapi.Error
	if !errors.As(err, &ve) || ve.Action != vendorapi.Retry || ve.RetryAfter < 59*time.Minute || ve.RetryAfter > time.Hour {
		t.Fatalf("%v", err)
	}
}

func TestClientOverTLS(t *testing.T) {
	url, hc := simtest.TLS(t, batch.NewSim(batch.SimOptions{}))
	c := newClient(t, batch.Config{BaseURL: url, HTTPClient: hc})
	if _, err := c.Submit(context.Background(), []vendorapi.Item{item("custom_id", "u", privsync.OpReview)}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRequestRoundTrip is one Batch.com request and its status poll.
func BenchmarkRequestRoundTrip(b *testing.B) {
	e := simtest.Start(b, func(now func() time.Time) *batch.Sim {
		return batch.NewSim(batch.SimOptions{Options: simkit.Options{Now: now}})
	}, func(url string) (*batch.Client, error) {
		return batch.New(batch.Config{BaseURL: url, AppAPIKey: app, RESTAPIKey: rest})
	})
	for i := 0; b.Loop(); i++ {
		it := item("custom_id", fmt.Sprintf("u%d", i), privsync.OpRemove)
		e.Poll(b, e.Submit(b, it).Ref, it)
	}
}

package bloomreach_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/executor/bloomreach"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"github.com/privsync/privsync/executor/vendorapi/simkit/simtest"
)

var _ executor.Connector = (*bloomreach.Client)(nil)

const (
	project = "c3c8f2a4-project"
	keyID   = "key-id"
	secret  = "secret"
)

type env = simtest.Env[*bloomreach.Sim, *bloomreach.Client]

func setup(t *testing.T, o bloomreach.SimOptions) *env {
	t.Helper()
	return simtest.Start(t, func(now func() time.Time) *bloomreach.Sim {
		o.Now, o.KeyID, o.Secret = now, keyID, secret
		return bloomreach.NewSim(o)
	}, func(url string) (*bloomreach.Client, error) {
		return newClient(bloomreach.Config{BaseURL: url})
	})
}

func newClient(c bloomreach.Config) (*bloomreach.Client, error) {
	if c.ProjectToken == "" {
		c.ProjectToken = project
	}
	if c.APIKeyID == "" {
		c.APIKeyID, c.APISecret = keyID, secret
	}
	return bloomreach.New(c)
}

func anon(idType, id string) vendorapi.Item {
	return vendorapi.Item{IDType: idType, SubjectID: id, Op: privsync.OpAnonymize}
}

func many(n int) []vendorapi.Item {
	items := make([]vendorapi.Item, n)
	for i := range items {
		items[i] = anon("registered", fmt.Sprintf("u%04d@example.com", i))
	}
	return items
}

func TestAcceptedBulkIsFinal(t *testing.T) {
	e := setup(t, bloomreach.SimOptions{})
	items := []vendorapi.Item{anon("registered", "b@example.com"), anon("internal_id", "57e99c7bfb60099395b94b6d"), anon("cookie", "a1")}
	r := e.Submit(t, items...)
	if !r.Final || len(r.Ref) != 36 {
		t.Fatalf("receipt %+v", r)
	}
	if got := e.Poll(t, r.Ref, items...); !reflect.DeepEqual(got, map[string]string{"b@example.com": "done", "57e99c7bfb60099395b94b6d": "done", "a1": "done"}) {
		t.Fatalf("poll %v", got)
	}
	want := map[string]bloomreach.ProjectState{project: {Anonymized: []string{"cookie:a1", "internal_id:57e99c7bfb60099395b94b6d", "registered:b@example.com"}}}
	if got := e.Sim.State(); !reflect.DeepEqual(got, want) {
		t.Fatalf("state %+v", got)
	}
	e.Sim.Reset()
	if len(e.Sim.State()) != 0 || e.Sim.Stats().Requests != 0 {
		t.Fatal("reset")
	}
}

func TestThousandLimit(t *testing.T) {
	e := setup(t, bloomreach.SimOptions{})
	if r := e.Submit(t, many(1000)...); !r.Final {
		t.Fatalf("%+v", r)
	}
	if got := len(e.Sim.State()[project].Anonymized); got != 1000 {
		t.Fatalf("%d anonymized", got)
	}
	// The client refuses 1,001 before sending.
	_, err := e.Client.Submit(context.Background(), many(1001))
	if ve := simtest.VendorError(t, err); ve.Action != vendorapi.Reject || e.Sim.Stats().Requests != 1 {
		t.Fatalf("%+v", ve)
	}
	// And the vendor refuses it too.
	customers := make([]string, 1001)
	for i := range customers {
		customers[i] = fmt.Sprintf(`{"internal_id": "%024x"}`, i)
	}
	code, body := e.Raw(t, "POST", "/data/v2/projects/"+project+"/customers/anonymize_bulk", basic(keyID, secret), `{"customers": [`+strings.Join(customers, ",")+`]}`)
	if _, msg := vendorapi.ParseErrorBody(body); code != 400 || msg != "customers: at most 1000 customers per bulk, got 1001" {
		t.Fatalf("%d %s", code, body)
	}
	if len(e.Sim.State()[project].Anonymized) != 1000 {
		t.Fatal("a refused bulk changed the state")
	}
}

func basic(id, secret string) http.Header {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(id, secret)
	return r.Header
}

func TestErrorShapes(t *testing.T) {
	e := setup(t, bloomreach.SimOptions{Projects: []string{project}})
	ctx := context.Background()
	wrongKey, _ := newClient(bloomreach.Config{BaseURL: e.Srv.URL, APIKeyID: keyID, APISecret: "nope"})
	wrongProject, _ := newClient(bloomreach.Config{BaseURL: e.Srv.URL, ProjectToken: "other"})
	for _, tc := range []struct {
		name   string
		client *bloomreach.Client
		items  []vendorapi.Item
		status int
		action vendorapi.Action
		msg    string
	}{
		{"error string", wrongKey, many(1), 401, vendorapi.StopVendor, "access key not found"},
		{"errors _global", wrongProject, many(1), 403, vendorapi.StopVendor, "access key has no access to project other"},
		{"errors list", e.Client, append(many(2), anon("registered", "x-sim-fail"), anon("email", "y-sim-fail")), 400, vendorapi.Reject,
			"customer registered:x-sim-fail cannot be anonymized; customer email:y-sim-fail cannot be anonymized"},
		{"errors _global for a customer", e.Client, []vendorapi.Item{anon("internal_id", "not-hex")}, 400, vendorapi.Reject, "customers[0]: internal_id must be 24 hex digits"},
	} {
		_, err := tc.client.Submit(ctx, tc.items)
		if ve := simtest.VendorError(t, err); ve.StatusCode != tc.status || ve.Action != tc.action || ve.Message != tc.msg {
			t.Errorf("%s: %+v", tc.name, ve)
		}
	}
	if len(e.Sim.State()) != 0 {
		t.Fatalf("state %+v", e.Sim.State())
	}
	for _, tc := range []struct{ name, body, msg string }{
		{"malformed JSON", `{"customers": [`, "malformed JSON body"},
		{"no customers", `{"customers": []}`, "customers: at least one customer is required"},
		{"both ids", `{"customers": [{"internal_id": "57e99c7bfb60099395b94b6d", "customer_ids": {"a": "b"}}]}`, "customers[0]: give customer_ids or internal_id, not both"},
		{"empty id", `{"customers": [{"customer_ids": {"registered": ""}}]}`, "customers[0]: customer_ids needs a name and a value"},
		{"neither", `{"customers": [{}]}`, "customers[0]: customer_ids or internal_id is required"},
		{"not an object", `{"customers": ["a"]}`, `customers[0]: want {"customer_ids": {name: value}} or {"internal_id": hex}`},
	} {
		code, body := e.Raw(t, "POST", "/data/v2/projects/"+project+"/customers/anonymize_bulk", basic(keyID, secret), tc.body)
		var b struct{ Success *bool }
		_ = json.Unmarshal(body, &b)
		if _, msg := vendorapi.ParseErrorBody(body); code != 400 || msg != tc.msg || b.Success == nil || *b.Success {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
}

// A bulk refused for one customer is split in halves until the customer is
// alone, as the executor does; the others go through.
func TestSplittingIsolatesTheFailingCustomer(t *testing.T) {
	e := setup(t, bloomreach.SimOptions{})
	items := many(8)
	items[5] = anon("registered", "bad-sim-fail")
	var refused []string
	var split func([]vendorapi.Item)
	split = func(part []vendorapi.Item) {
		_, err := e.Client.Submit(context.Background(), part)
		switch {
		case err == nil:
		case vendorapi.ActionOf(err) != vendorapi.Reject:
			t.Fatal(err)
		case len(part) == 1:
			refused = append(refused, part[0].SubjectID)
		default:
			split(part[:len(part)/2])
			split(part[len(part)/2:])
		}
	}
	split(items)
	if !reflect.DeepEqual(refused, []string{"bad-sim-fail"}) || len(e.Sim.State()[project].Anonymized) != 7 {
		t.Fatalf("refused %v, state %v", refused, e.Sim.State())
	}
	if s := e.Sim.Stats(); s.ByStatus["400"] != 4 || s.ByStatus["200"] != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSuccessFalseAndOddAnswers(t *testing.T) {
	answer := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(answer)) }))
	defer srv.Close()
	c, _ := newClient(bloomreach.Config{BaseURL: srv.URL})
	for _, tc := range []struct {
		answer string
		action vendorapi.Action
		msg    string
		ok     bool
	}{
		{`{"success": false, "errors": ["customer is locked"]}`, vendorapi.Reject, "customer is locked", false},
		{`{"success": false}`, vendorapi.Reject, `{"success": false}`, false},
		{`{"success": true, "bulk_id": "b-1", "more": 1}`, 0, "", true},
		{`{"bulk_id": "b-2"}`, 0, "", true},
		{`{}`, vendorapi.Retry, "bloomreach answered neither success nor bulk_id: {}", false},
	} {
		answer = tc.answer
		r, err := c.Submit(context.Background(), many(1))
		if tc.ok {
			if err != nil || !r.Final || r.Ref == "" {
				t.Errorf("%s: %+v %v", tc.answer, r, err)
			}
			continue
		}
		if ve := simtest.VendorError(t, err); ve.Action != tc.action || ve.Message != tc.msg || ve.StatusCode != 200 {
			t.Errorf("%s: %+v", tc.answer, ve)
		}
	}
}

func TestRateLimitFaultsAndStats(t *testing.T) {
	e := setup(t, bloomreach.SimOptions{Options: simkit.Options{RateLimit: 2}})
	ctx := context.Background()
	e.Submit(t, many(1)...)
	e.Submit(t, many(1)...)
	ve := simtest.VendorError(t, func() error { _, err := e.Client.Submit(ctx, many(1)); return err }())
	if ve.StatusCode != 429 || ve.Action != vendorapi.Retry || ve.RetryAfter != time.Second || ve.Message != "rate limit exceeded" {
		t.Fatalf("%+v", ve)
	}
	e.Clock.Advance(time.Second)
	e.Sim.SetFaults(simkit.Faults{ErrorRate: 1})
	ve = simtest.VendorError(t, func() error { _, err := e.Client.Submit(ctx, many(1)); return err }())
	if ve.StatusCode < 500 || ve.Action != vendorapi.Retry {
		t.Fatalf("%+v", ve)
	}
	s := e.Sim.Stats()
	if s.Requests != 4 || s.ByStatus["200"] != 2 || s.Sent429 != 1 || s.ByStatus["429"] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestClientChecks(t *testing.T) {
	for name, c := range map[string]bloomreach.Config{
		"no project": {APIKeyID: keyID, APISecret: secret},
		"no key id":  {ProjectToken: project, APISecret: secret},
		"no secret":  {ProjectToken: project, APIKeyID: keyID},
		"bad url":    {ProjectToken: project, APIKeyID: keyID, APISecret: secret, BaseURL: "exponea"},
	} {
		if _, err := bloomreach.New(c); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	for size, want := range map[int]int{0: 1000, 50: 50, 5000: 1000} {
		if c, _ := newClient(bloomreach.Config{BatchSize: size}); c.MaxItems() != want {
			t.Errorf("batch size %d: %d", size, c.MaxItems())
		}
	}
	c, _ := newClient(bloomreach.Config{})
	for name, items := range map[string][]vendorapi.Item{
		"none":      nil,
		"no idtype": {{SubjectID: "x", Op: privsync.OpAnonymize}},
		"remove":    {{IDType: "registered", SubjectID: "x", Op: privsync.OpRemove}},
	} {
		if _, err := c.Submit(context.Background(), items); vendorapi.ActionOf(err) != vendorapi.Reject {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestClientOverTLS(t *testing.T) {
	url, hc := simtest.TLS(t, bloomreach.NewSim(bloomreach.SimOptions{}))
	c, _ := newClient(bloomreach.Config{BaseURL: url, HTTPClient: hc})
	if _, err := c.Submit(context.Background(), many(3)); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkBulkOf1000(b *testing.B) {
	e := simtest.Start(b, func(now func() time.Time) *bloomreach.Sim {
		return bloomreach.NewSim(bloomreach.SimOptions{Options: simkit.Options{Now: now}})
	}, func(url string) (*bloomreach.Client, error) { return newClient(bloomreach.Config{BaseURL: url}) })
	items := many(1000)
	for b.Loop() {
		e.Submit(b, items...)
	}
}

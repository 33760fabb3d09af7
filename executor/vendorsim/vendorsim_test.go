package vendorsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/batch"
	"github.com/privsync/privsync/executor/bloomreach"
	"github.com/privsync/privsync/executor/sfmc"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"github.com/privsync/privsync/executor/vendorapi/simkit/simtest"
	"github.com/privsync/privsync/executor/vendorsim"
)

type clients struct {
	sfmc       *sfmc.Client
	batch      *batch.Client
	bloomreach *bloomreach.Client
}

func demoClients(t *testing.T, url string) clients {
	t.Helper()
	s, err := sfmc.New(sfmc.Config{BaseURL: url, CustomerMID: "12345678", APIKey: vendorsim.DemoSFMCKey})
	if err != nil {
		t.Fatal(err)
	}
	b, err := batch.New(batch.Config{BaseURL: url, AppAPIKey: "IOSKEY", RESTAPIKey: vendorsim.DemoBatchRESTKey})
	if err != nil {
		t.Fatal(err)
	}
	br, err := bloomreach.New(bloomreach.Config{BaseURL: url, ProjectToken: "proj-1", APIKeyID: vendorsim.DemoBloomreachKeyID, APISecret: vendorsim.DemoBloomreachSecret})
	if err != nil {
		t.Fatal(err)
	}
	return clients{s, b, br}
}

func start(t *testing.T, o vendorsim.Options) (*vendorsim.Server, *httptest.Server, *simkit.ManualClock) {
	t.Helper()
	clock := simkit.NewManualClock(simtest.T0)
	o.Now = clock.Now
	s, err := vendorsim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv, clock
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func submit(t *testing.T, c interface {
	Submit(context.Context, []vendorapi.Item) (vendorapi.Receipt, error)
}, items ...vendorapi.Item) {
	t.Helper()
	if _, err := c.Submit(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestOneAddressThreeVendorsAndTheStateShape(t *testing.T) {
	_, srv, clock := start(t, vendorsim.DemoOptions())
	c := demoClients(t, srv.URL)
	submit(t, c.sfmc,
		vendorapi.Item{SubjectID: "p1", Op: privsync.OpRestrict, Restrictions: privsync.DoNotProcess | privsync.DoNotTrack},
		vendorapi.Item{SubjectID: "p2", Op: privsync.OpRTBFSuppress},
		vendorapi.Item{SubjectID: "p3", Op: privsync.OpRTBFDelete},
		vendorapi.Item{SubjectID: "p4-sim-slow", Op: privsync.OpRTBFDelete})
	submit(t, c.batch, vendorapi.Item{IDType: "custom_id", SubjectID: "u1", Op: privsync.OpReview})
	submit(t, c.batch, vendorapi.Item{IDType: "install_id", SubjectID: "u2", Op: privsync.OpRemove})
	submit(t, c.bloomreach,
		vendorapi.Item{IDType: "registered", SubjectID: "z@example.com", Op: privsync.OpAnonymize},
		vendorapi.Item{IDType: "internal_id", SubjectID: "57e99c7bfb60099395b94b6d", Op: privsync.OpAnonymize},
		vendorapi.Item{IDType: "registered", SubjectID: "a@example.com", Op: privsync.OpAnonymize})
	_, before := call(t, "GET", srv.URL+"/_sim/state", "")
	sameJSON(t, before, `{
		"sfmc": {"12345678": {
			"p1": {"restrictions": [], "erasure": "none"},
			"p2": {"restrictions": [], "erasure": "none"},
			"p3": {"restrictions": [], "erasure": "none"},
			"p4-sim-slow": {"restrictions": [], "erasure": "none"}}},
		"batch": {"IOSKEY": {"custom_id:u1": {"reviews": 0, "removed": false}, "install_id:u2": {"reviews": 0, "removed": false}}},
		"bloomreach": {"proj-1": {"anonymized": ["internal_id:57e99c7bfb60099395b94b6d", "registered:a@example.com", "registered:z@example.com"]}}}`)
	clock.Advance(vendorsim.DefaultAsyncDelay)
	code, after := call(t, "GET", srv.URL+"/_sim/state", "")
	if code != 200 {
		t.Fatal(code)
	}
	sameJSON(t, after, `{
		"sfmc": {"12345678": {
			"p1": {"restrictions": ["do_not_track", "do_not_process"], "erasure": "none"},
			"p2": {"restrictions": [], "erasure": "suppressed"},
			"p3": {"restrictions": [], "erasure": "deleted"},
			"p4-sim-slow": {"restrictions": [], "erasure": "none"}}},
		"batch": {"IOSKEY": {"custom_id:u1": {"reviews": 1, "removed": false}, "install_id:u2": {"reviews": 0, "removed": true}}},
		"bloomreach": {"proj-1": {"anonymized": ["internal_id:57e99c7bfb60099395b94b6d", "registered:a@example.com", "registered:z@example.com"]}}}`)

	_, stats := call(t, "GET", srv.URL+"/_sim/stats", "")
	var st map[string]simkit.Stats
	if err := json.Unmarshal([]byte(stats), &st); err != nil {
		t.Fatal(err)
	}
	if st["sfmc"].ByStatus["200"] != 1 || st["batch"].ByStatus["202"] != 2 || st["bloomreach"].ByStatus["200"] != 1 || st["batch"].Requests != 2 {
		t.Fatalf("stats %s", stats)
	}

	if code, _ := call(t, "POST", srv.URL+"/_sim/reset", ""); code != http.StatusNoContent {
		t.Fatal(code)
	}
	_, empty := call(t, "GET", srv.URL+"/_sim/state", "")
	sameJSON(t, empty, `{"sfmc": {}, "batch": {}, "bloomreach": {}}`)
	_, stats = call(t, "GET", srv.URL+"/_sim/stats", "")
	if strings.Contains(stats, `"requests":1`) || strings.Contains(stats, `"requests":2`) {
		t.Fatalf("stats after reset %s", stats)
	}
}

func TestCredentials(t *testing.T) {
	_, demo, _ := start(t, vendorsim.DemoOptions())
	_, open, _ := start(t, vendorsim.DefaultOptions())
	item := vendorapi.Item{IDType: "custom_id", SubjectID: "u", Op: privsync.OpRemove}
	for _, tc := range []struct {
		url, key string
		action   vendorapi.Action
		ok       bool
	}{
		{demo.URL, vendorsim.DemoBatchRESTKey, 0, true},
		{demo.URL, "anything", vendorapi.StopVendor, false},
		{open.URL, "anything", 0, true},
	} {
		c, _ := batch.New(batch.Config{BaseURL: tc.url, AppAPIKey: "APP", RESTAPIKey: tc.key})
		_, err := c.Submit(context.Background(), []vendorapi.Item{item})
		if (err == nil) != tc.ok || (err != nil && vendorapi.ActionOf(err) != tc.action) {
			t.Errorf("%s with %q: %v", tc.url, tc.key, err)
		}
		item.SubjectID += "x"
	}
}

func TestFaultsEndpoint(t *testing.T) {
	s, srv, clock := start(t, vendorsim.DemoOptions())
	c := demoClients(t, srv.URL)
	code, body := call(t, "GET", srv.URL+"/_sim/faults", "")
	sameJSON(t, body, `{"error_rate": 0, "rate_429": 0, "reset_rate": 0, "latency": "0s",
		"rate_limits": {"sfmc": 10, "batch": 20, "bloomreach": 10}, "async_delay": "1s", "suppression_window": "336h0m0s"}`)
	if code != 200 {
		t.Fatal(code)
	}
	// A partial update changes only what it names.
	code, body = call(t, "POST", srv.URL+"/_sim/faults", `{"error_rate": 1, "rate_limits": {"sfmc": 1, "batch": 20, "bloomreach": 0}, "async_delay": "1m"}`)
	if code != 200 || !strings.Contains(body, `"suppression_window":"336h0m0s"`) || !strings.Contains(body, `"async_delay":"1m0s"`) {
		t.Fatalf("%d %s", code, body)
	}
	_, err := c.bloomreach.Submit(context.Background(), []vendorapi.Item{{IDType: "registered", SubjectID: "x", Op: privsync.OpAnonymize}})
	if ve := simtest.VendorError(t, err); ve.StatusCode < 500 || ve.Action != vendorapi.Retry {
		t.Fatalf("%+v", ve)
	}
	if s.Settings().ErrorRate != 1 {
		t.Fatal("settings")
	}
	call(t, "POST", srv.URL+"/_sim/faults", `{"error_rate": 0}`)
	item := vendorapi.Item{SubjectID: "p", Op: privsync.OpRTBFDelete}
	submit(t, c.sfmc, item)
	_, err = c.sfmc.Submit(context.Background(), []vendorapi.Item{item})
	if ve := simtest.VendorError(t, err); ve.StatusCode != 429 || ve.RetryAfter != time.Second {
		t.Fatalf("%+v", ve)
	}
	clock.Advance(59 * time.Second)
	if got := s.State().SFMC["12345678"]["p"].Erasure; got != "none" {
		t.Fatalf("before the new async delay: %s", got)
	}
	clock.Advance(time.Second)
	if got := s.State().SFMC["12345678"]["p"].Erasure; got != "deleted" {
		t.Fatalf("after it: %s", got)
	}
	for _, bad := range []string{`{"error_rate": 2}`, `{"latency": "soon"}`, `{"suppression_window": "800h"}`, `{"rate_limits": {"sfmc": -1}}`, `[`} {
		if code, _ := call(t, "POST", srv.URL+"/_sim/faults", bad); code != 400 {
			t.Errorf("%s: %d", bad, code)
		}
	}
	if s.Settings().ErrorRate != 0 || s.Settings().RateLimits.SFMC != 1 {
		t.Fatalf("a refused update changed the settings: %+v", s.Settings())
	}
	if code, _ := call(t, "GET", srv.URL+"/nowhere", ""); code != 404 {
		t.Fatal(code)
	}
}

func TestStartLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, url, err := vendorsim.StartLoopback(ctx, vendorsim.DemoOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatal(url)
	}
	c := demoClients(t, url)
	r, err := c.bloomreach.Submit(context.Background(), []vendorapi.Item{{IDType: "registered", SubjectID: "x", Op: privsync.OpAnonymize}})
	if err != nil || !r.Final {
		t.Fatalf("%+v %v", r, err)
	}
	cancel()
}

func TestServeStopsWhenTheContextEnds(t *testing.T) {
	s, err := vendorsim.New(vendorsim.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	if code, _ := call(t, "GET", url+"/_sim/stats", ""); code != 200 {
		t.Fatal(code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url + "/_sim/stats"); err == nil {
		t.Fatal("still serving after the context ended")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	o := vendorsim.DefaultOptions()
	o.SuppressionWindow = simkit.Duration(31 * 24 * time.Hour)
	if _, err := vendorsim.New(o); err == nil {
		t.Fatal("31-day window accepted")
	}
}

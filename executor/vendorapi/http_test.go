package vendorapi_test

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit/simtest"
)

var now = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{"-3", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(2 * time.Second).Format(time.RFC850), 2 * time.Second, true},
	} {
		got, ok := vendorapi.ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDefaultAction(t *testing.T) {
	for status, want := range map[int]vendorapi.Action{
		400: vendorapi.Reject, 401: vendorapi.StopVendor, 403: vendorapi.StopVendor,
		404: vendorapi.NotFound, 409: vendorapi.Reject, 422: vendorapi.Reject,
		429: vendorapi.Retry, 500: vendorapi.Retry, 502: vendorapi.Retry,
		503: vendorapi.Retry, 504: vendorapi.Retry,
	} {
		if got := vendorapi.DefaultAction(status); got != want {
			t.Errorf("DefaultAction(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestParseErrorBody(t *testing.T) {
	for _, tc := range []struct{ body, code, msg string }{
		{`{"code": 31, "error": "MALFORMED_PARAMETER", "message": "bad id type"}`, "MALFORMED_PARAMETER", "bad id type"},
		{`{"error": "invalid_token", "message": "token expired", "extra": 1}`, "invalid_token", "token expired"},
		{`{"error": "access key not found", "success": false}`, "", "access key not found"},
		{`{"errors": ["first", "second"], "success": false}`, "", "first; second"},
		{`{"errors": {"_global": ["bad bulk"]}, "success": false}`, "", "bad bulk"},
		{`{"errors": {"customers": ["too many"], "_global": ["x"]}, "success": false}`, "", "x; customers: too many"},
		{`{"code": 7}`, "7", `{"code": 7}`},
		{`<html>Bad Gateway</html>`, "", "<html>Bad Gateway</html>"},
		{``, "", ""},
	} {
		code, msg := vendorapi.ParseErrorBody([]byte(tc.body))
		if code != tc.code || msg != tc.msg {
			t.Errorf("ParseErrorBody(%s) = %q, %q; want %q, %q", tc.body, code, msg, tc.code, tc.msg)
		}
	}
}

func newAPI(t *testing.T, url string, hc *http.Client, actions map[int]vendorapi.Action) *vendorapi.API {
	t.Helper()
	api, err := vendorapi.NewAPI(vendorapi.APIConfig{
		BaseURL: url, HTTPClient: hc, Actions: actions,
		Header: http.Header{"X-Authorization": {"secret-key"}},
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func TestDoSuccessOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Authorization") != "secret-key" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.EscapedPath() != "/v1/a%20b/x" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"token": "t-1", "unknown": {"deep": [1, 2]}}`))
	}))
	defer srv.Close()
	pool := srvPool(srv)
	api := newAPI(t, srv.URL+"/v1/", vendorapi.NewHTTPClient(vendorapi.HTTPOptions{RootCAs: pool, Timeout: 5 * time.Second}), nil)
	var out struct{ Token string }
	if err := api.Do(context.Background(), "POST", vendorapi.Path("a b", "x"), map[string]string{"k": "v"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Token != "t-1" {
		t.Fatalf("token = %q", out.Token)
	}

	// Without the server's certificate the same request fails verification.
	untrusting := newAPI(t, srv.URL+"/v1", vendorapi.NewHTTPClient(vendorapi.HTTPOptions{}), nil)
	err := untrusting.Do(context.Background(), "POST", vendorapi.Path("a b", "x"), nil, nil)
	if ve := simtest.VendorError(t, err); ve.Action != vendorapi.Retry || !strings.Contains(ve.Error(), "certificate") {
		t.Fatalf("untrusted TLS: %v (action %v)", err, ve.Action)
	}
}

func TestDoClassifiesStatus(t *testing.T) {
	date := now.Add(30 * time.Second).Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/429s":
			w.Header().Set("Retry-After", "12")
			w.WriteHeader(429)
		case "/429d":
			w.Header().Set("Retry-After", date)
			w.WriteHeader(429)
		case "/409":
			w.WriteHeader(409)
			_, _ = w.Write([]byte(`{"error": "CONFLICT", "message": "busy"}`))
		case "/502":
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		case "/400":
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"code": 30, "error": "MISSING_PARAMETER", "message": "id is missing"}`))
		case "/big-error":
			w.WriteHeader(500)
			_, _ = w.Write([]byte(strings.Repeat("x", 3<<20)))
		case "/big-ok":
			_, _ = w.Write([]byte(`{"token": "` + strings.Repeat("x", 2<<20) + `"}`))
		case "/not-json":
			_, _ = w.Write([]byte(`ok`))
		}
	}))
	defer srv.Close()
	api := newAPI(t, srv.URL, nil, map[int]vendorapi.Action{409: vendorapi.RetryLater})
	for _, tc := range []struct {
		path       string
		action     vendorapi.Action
		status     int
		code       string
		msg        string
		retryAfter time.Duration
	}{
		{"/429s", vendorapi.Retry, 429, "", "", 12 * time.Second},
		{"/429d", vendorapi.Retry, 429, "", "", 30 * time.Second},
		{"/409", vendorapi.RetryLater, 409, "CONFLICT", "busy", 0},
		{"/502", vendorapi.Retry, 502, "", "<html>bad gateway</html>", 0},
		{"/400", vendorapi.Reject, 400, "MISSING_PARAMETER", "id is missing", 0},
		{"/nowhere", vendorapi.Retry, 200, "", "undecodable response: ", 0},
		{"/not-json", vendorapi.Retry, 200, "", "undecodable response: ok", 0},
		{"/big-ok", vendorapi.Retry, 200, "", "response body over 1048576 bytes, cut", 0},
	} {
		var out struct{ Token string }
		ve := simtest.VendorError(t, api.Do(context.Background(), "GET", tc.path, nil, &out))
		if ve.Action != tc.action || ve.StatusCode != tc.status || ve.Code != tc.code || ve.Message != tc.msg || ve.RetryAfter != tc.retryAfter {
			t.Errorf("%s: got %+v", tc.path, ve)
		}
	}
	ve := simtest.VendorError(t, api.Do(context.Background(), "GET", "/big-error", nil, nil))
	if ve.Action != vendorapi.Retry || len(ve.Message) > vendorapi.MaxMessage+16 || !strings.HasSuffix(ve.Message, "(cut)") {
		t.Errorf("big error body: action %v, message of %d bytes", ve.Action, len(ve.Message))
	}
}

func TestRedirects(t *testing.T) {
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("X-Authorization"))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		case "/final":
			_, _ = w.Write([]byte(`{"token": "same-host"}`))
		}
	}))
	defer srv.Close()
	for name, hc := range map[string]*http.Client{"own client": nil, "caller's client": {}} {
		api := newAPI(t, srv.URL, hc, nil)
		ve := simtest.VendorError(t, api.Do(context.Background(), "POST", "/away", map[string]int{}, nil))
		if ve.Action != vendorapi.StopVendor || !errors.Is(ve, vendorapi.ErrRedirectRefused) {
			t.Errorf("%s: cross-host redirect gave %v (%v)", name, ve, ve.Action)
		}
		if strings.Contains(ve.Error(), "secret-key") {
			t.Errorf("%s: error carries the credential: %v", name, ve)
		}
		var out struct{ Token string }
		if err := api.Do(context.Background(), "POST", "/here", map[string]int{}, &out); err != nil || out.Token != "same-host" {
			t.Errorf("%s: same-host redirect: %v, %q", name, err, out.Token)
		}
	}
	if len(leaked) != 0 {
		t.Fatalf("the other host got %d requests", len(leaked))
	}
}

func TestNetworkAndContextErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	api := newAPI(t, url+"/1.0/APPKEY", nil, nil)
	err := api.Do(context.Background(), "GET", "/x", nil, nil)
	ve := simtest.VendorError(t, err)
	if ve.Action != vendorapi.Retry || ve.StatusCode != 0 || ve.Err == nil {
		t.Fatalf("refused connection: %+v", ve)
	}
	if strings.Contains(err.Error(), "APPKEY") {
		t.Fatalf("network error carries the URL: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := api.Do(ctx, "GET", "/x", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestNewAPIChecks(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "https://", "::"} {
		if _, err := vendorapi.NewAPI(vendorapi.APIConfig{BaseURL: u}); err == nil {
			t.Errorf("NewAPI(%q) accepted", u)
		}
	}
	if err := vendorapi.RequireFields("a", "x", "b", " "); err == nil || err.Error() != "b is required" {
		t.Errorf("RequireFields: %v", err)
	}
}

func srvPool(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// A client keeps its connections to a vendor open between requests sent
// side by side: rounds of 16 concurrent requests reuse them instead of
// dialling (the default transport kept 2 and dialled the rest every round).
func TestClientReusesConnections(t *testing.T) {
	var mu sync.Mutex
	dials := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			dials++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	hc := vendorapi.NewHTTPClient(vendorapi.HTTPOptions{})
	const width, rounds = 16, 20
	for range rounds {
		var wg sync.WaitGroup
		for range width {
			wg.Go(func() {
				resp, err := hc.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if dials > 2*width {
		t.Fatalf("%d connections for %d rounds of %d requests: they are not kept", dials, rounds, width)
	}
}

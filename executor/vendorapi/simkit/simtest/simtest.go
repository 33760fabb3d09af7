// Package simtest is what the connector tests share: a simulator served
// over real HTTP with a manual clock, a client pointed at it, and raw
// requests for what a client never sends. Only tests import it.
package simtest

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
)

// T0 is when every test clock starts.
var T0 = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

// Connector is the part of executor.Connector the helpers use.
type Connector interface {
	Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error)
	Poll(ctx context.Context, ref string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error)
}

// Env is one simulator behind an httptest server, and a client of it.
type Env[S http.Handler, C Connector] struct {
	Clock  *simkit.ManualClock
	Sim    S
	Srv    *httptest.Server
	Client C
}

// Start serves newSim(clock) and builds newClient(server URL); both are
// closed when the test ends.
func Start[S http.Handler, C Connector](t testing.TB, newSim func(now func() time.Time) S, newClient func(url string) (C, error)) *Env[S, C] {
	t.Helper()
	e := &Env[S, C]{Clock: simkit.NewManualClock(T0)}
	e.Sim = newSim(e.Clock.Now)
	e.Srv = httptest.NewServer(e.Sim)
	t.Cleanup(e.Srv.Close)
	c, err := newClient(e.Srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	e.Client = c
	return e
}

// Submit sends items with the client and returns the receipt's Ref.
func (e *Env[S, C]) Submit(t testing.TB, items ...vendorapi.Item) vendorapi.Receipt {
	t.Helper()
	r, err := e.Client.Submit(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Poll polls ref and returns subject → "state" or "state: detail".
func (e *Env[S, C]) Poll(t testing.TB, ref string, items ...vendorapi.Item) map[string]string {
	t.Helper()
	st, err := e.Client.Poll(context.Background(), ref, items)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range st {
		out[s.SubjectID] = s.State.String()
		if s.Detail != "" {
			out[s.SubjectID] += ": " + s.Detail
		}
	}
	return out
}

// Raw sends a request to the simulator without the client.
func (e *Env[S, C]) Raw(t testing.TB, method, path string, header http.Header, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.Srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TLS serves h over TLS and returns the server's URL and a client that
// trusts its certificate (and nothing is ever skipped).
func TLS(t testing.TB, h http.Handler) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv.URL, vendorapi.NewHTTPClient(vendorapi.HTTPOptions{RootCAs: pool})
}

// VendorError returns err as a *vendorapi.Error, failing the test when it
// is not one.
func VendorError(t testing.TB, err error) *vendorapi.Error {
	t.Helper()
	var ve *vendorapi.Error
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *vendorapi.Error", err, err)
	}
	return ve
}

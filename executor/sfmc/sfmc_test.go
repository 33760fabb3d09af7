package sfmc_test

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
	"github.com/privsync/privsync/executor/sfmc"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"github.com/privsync/privsync/executor/vendorapi/simkit/simtest"
)

var _ executor.Connector = (*sfmc.Client)(nil)

const (
	mid   = "12345678"
	key   = "test-key"
	delay = 5 * time.Second
)

type env = simtest.Env[*sfmc.Sim, *sfmc.Client]

func setup(t *testing.T, o sfmc.SimOptions) *env {
	t.Helper()
	return simtest.Start(t, func(now func() time.Time) *sfmc.Sim {
		o.Now, o.AsyncDelay, o.APIKey = now, delay, key
		return sfmc.NewSim(o)
	}, func(url string) (*sfmc.Client, error) {
		return sfmc.New(sfmc.Config{BaseURL: url, CustomerMID: mid, APIKey: key})
	})
}

func newClient(t *testing.T, url, apiKey string, hc *http.Client) *sfmc.Client {
	t.Helper()
	c, err := sfmc.New(sfmc.Config{BaseURL: url, CustomerMID: mid, APIKey: apiKey, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func restrict(id string, r privsync.Restrictions) vendorapi.Item {
	return vendorapi.Item{SubjectID: id, Op: privsync.OpRestrict, Restrictions: r}
}

func op(id string, o privsync.Operation) vendorapi.Item {
	return vendorapi.Item{SubjectID: id, Op: o}
}

// The seed's example: ten profiles with exactly its arrays.
var seedBody = `{"batch": {
	"hashed-id-01": ["do_not_track"],
	"hashed-id-02": ["do_not_profile"],
	"hashed-id-03": ["do_not_process"],
	"hashed-id-04": ["do_not_track", "do_not_profile"],
	"hashed-id-05": ["do_not_track", "do_not_process"],
	"hashed-id-06": ["do_not_profile", "do_not_process"],
	"hashed-id-07": ["do_not_track", "do_not_profile", "do_not_process"],
	"hashed-id-08": [],
	"hashed-id-09": ["rtbf_delete"],
	"hashed-id-10": ["rtbf_suppress"]}}`

var seedItems = []vendorapi.Item{
	restrict("hashed-id-01", privsync.DoNotTrack),
	restrict("hashed-id-02", privsync.DoNotProfile),
	restrict("hashed-id-03", privsync.DoNotProcess),
	restrict("hashed-id-04", privsync.DoNotTrack|privsync.DoNotProfile),
	restrict("hashed-id-05", privsync.DoNotTrack|privsync.DoNotProcess),
	restrict("hashed-id-06", privsync.DoNotProfile|privsync.DoNotProcess),
	restrict("hashed-id-07", privsync.DoNotTrack|privsync.DoNotProfile|privsync.DoNotProcess),
	restrict("hashed-id-08", 0),
	op("hashed-id-09", privsync.OpRTBFDelete),
	op("hashed-id-10", privsync.OpRTBFSuppress),
}

func bearer(token string) http.Header { return http.Header{"Authorization": {token}} }

type statusRow struct {
	ProfileID     string `json:"profile_id"`
	Action        string
	Status        string
	DateInitiated string  `json:"date_initiated"`
	DateCompleted *string `json:"date_completed"`
	Source        string
	BatchID       string `json:"batch_id"`
}

func statusRows(e *env, t *testing.T, ref string) []statusRow {
	t.Helper()
	code, b := e.Raw(t, "GET", "/api/v2/organization/"+mid+"/privacy/"+ref, bearer("Bearer "+key), "")
	if code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	var rows []statusRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestSeedExample(t *testing.T) {
	e := setup(t, sfmc.SimOptions{})
	// The client sends exactly the seed's body.
	var sent []byte
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(sent))
		e.Sim.ServeHTTP(w, r)
	}))
	defer spy.Close()
	e.Client = newClient(t, spy.URL, key, nil)
	receipt := e.Submit(t, seedItems...)
	ref := receipt.Ref
	if ref == "" || receipt.Final {
		t.Fatalf("receipt %+v", receipt)
	}
	var got, want any
	_ = json.Unmarshal(sent, &got)
	_ = json.Unmarshal([]byte(seedBody), &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("client sent %s", sent)
	}

	wantActions := map[string][]string{
		"hashed-id-01": {"add_do_not_track"},
		"hashed-id-02": {"add_do_not_profile"},
		"hashed-id-03": {"add_do_not_process"},
		"hashed-id-04": {"add_do_not_track", "add_do_not_profile"},
		"hashed-id-05": {"add_do_not_track", "add_do_not_process"},
		"hashed-id-06": {"add_do_not_profile", "add_do_not_process"},
		"hashed-id-07": {"add_do_not_track", "add_do_not_profile", "add_do_not_process"},
		"hashed-id-09": {"rtbf_delete"},
		"hashed-id-10": {"rtbf_suppress"},
	}
	check := func(status string, completed bool) {
		t.Helper()
		actions := map[string][]string{}
		for _, r := range statusRows(e, t, ref) {
			actions[r.ProfileID] = append(actions[r.ProfileID], r.Action)
			if r.Status != status || r.Source != "api" || r.BatchID != ref || r.DateInitiated != "2026-11-23 06:00:00 UTC" || (r.DateCompleted != nil) != completed {
				t.Errorf("row %+v", r)
			}
			if completed && *r.DateCompleted != "2026-11-23 06:00:05 UTC" {
				t.Errorf("completed %s", *r.DateCompleted)
			}
		}
		if !reflect.DeepEqual(actions, wantActions) {
			t.Fatalf("actions %v", actions)
		}
	}
	check("initiated", false)
	pending := e.Poll(t, ref, seedItems...)
	for id, s := range pending {
		if want := "pending"; id == "hashed-id-08" {
			if s != "done" {
				t.Errorf("%s (no row) is %s", id, s)
			}
		} else if s != want {
			t.Errorf("%s is %s", id, s)
		}
	}
	e.Clock.Advance(delay)
	check("success", true)
	for id, s := range e.Poll(t, ref, seedItems...) {
		if s != "done" {
			t.Errorf("%s is %s", id, s)
		}
	}
	st := e.Sim.State()[mid]
	for id, want := range map[string]sfmc.ProfileState{
		"hashed-id-01": {Restrictions: []string{"do_not_track"}, Erasure: "none"},
		"hashed-id-07": {Restrictions: []string{"do_not_track", "do_not_profile", "do_not_process"}, Erasure: "none"},
		"hashed-id-09": {Restrictions: []string{}, Erasure: "deleted"},
		"hashed-id-10": {Restrictions: []string{}, Erasure: "suppressed"},
	} {
		if !reflect.DeepEqual(st[id], want) {
			t.Errorf("%s: %+v", id, st[id])
		}
	}
	if _, ok := st["hashed-id-08"]; ok {
		t.Error("a profile that never changed is in the state")
	}
	e.Clock.Advance(sfmc.DefaultSuppressionWindow)
	if got := e.Sim.State()[mid]["hashed-id-10"].Erasure; got != "deleted" {
		t.Errorf("after the window hashed-id-10 is %s", got)
	}
}

func TestDeclarativeArrays(t *testing.T) {
	e := setup(t, sfmc.SimOptions{})
	e.Submit(t, restrict("p", privsync.DoNotTrack|privsync.DoNotProfile))
	ref := e.Submit(t, restrict("p", privsync.DoNotProfile|privsync.DoNotProcess)).Ref
	var actions []string
	for _, r := range statusRows(e, t, ref) {
		actions = append(actions, r.Action)
	}
	if !reflect.DeepEqual(actions, []string{"remove_do_not_track", "add_do_not_process"}) {
		t.Fatalf("actions %v", actions)
	}
	// Declaring what the vendor was already told changes nothing: no row, done.
	again := e.Submit(t, restrict("p", privsync.DoNotProfile|privsync.DoNotProcess)).Ref
	if rows := statusRows(e, t, again); len(rows) != 0 {
		t.Fatalf("rows %v", rows)
	}
	if got := e.Poll(t, again, restrict("p", 0)); got["p"] != "done" {
		t.Fatal(got)
	}
	e.Clock.Advance(delay)
	ref = e.Submit(t, restrict("p", 0)).Ref
	e.Clock.Advance(delay)
	if got := e.Poll(t, ref, restrict("p", 0)); got["p"] != "done" {
		t.Fatal(got)
	}
	if st := e.Sim.State()[mid]["p"]; len(st.Restrictions) != 0 || st.Erasure != "none" {
		t.Fatalf("%+v", st)
	}
}

func TestSuppressCancelDelete(t *testing.T) {
	e := setup(t, sfmc.SimOptions{SuppressionWindow: 3 * 24 * time.Hour})
	erasure := func() string { return e.Sim.State()[mid]["p"].Erasure }

	// A suppression cancelled before it took effect: its row is cancelled.
	first := e.Submit(t, op("p", privsync.OpRTBFSuppress)).Ref
	cancel := e.Submit(t, op("p", privsync.OpRemoveRTBFSuppress)).Ref
	e.Clock.Advance(delay)
	if got := e.Poll(t, first, op("p", privsync.OpRTBFSuppress)); got["p"] != "failed: rtbf_suppress cancelled" {
		t.Fatalf("first suppression: %v", got)
	}
	if got := e.Poll(t, cancel, op("p", privsync.OpRemoveRTBFSuppress)); got["p"] != "done" {
		t.Fatalf("cancel: %v", got)
	}
	if erasure() != "none" {
		t.Fatal(erasure())
	}

	// Suppressed, then cancelled inside the window.
	e.Submit(t, op("p", privsync.OpRTBFSuppress))
	e.Clock.Advance(delay)
	if erasure() != "suppressed" {
		t.Fatal(erasure())
	}
	e.Clock.Advance(24 * time.Hour)
	ref := e.Submit(t, op("p", privsync.OpRemoveRTBFSuppress)).Ref
	e.Clock.Advance(delay)
	if got := e.Poll(t, ref, op("p", privsync.OpRemoveRTBFSuppress)); got["p"] != "done" || erasure() != "none" {
		t.Fatalf("%v, %s", got, erasure())
	}
	// Cancelling what is not suppressed needs no change.
	if rows := statusRows(e, t, e.Submit(t, op("p", privsync.OpRemoveRTBFSuppress)).Ref); len(rows) != 0 {
		t.Fatalf("rows %v", rows)
	}

	// Suppressed again, and the window runs out: deleted, for good.
	e.Submit(t, op("p", privsync.OpRTBFSuppress))
	e.Clock.Advance(delay + 3*24*time.Hour - time.Second)
	if erasure() != "suppressed" {
		t.Fatal(erasure())
	}
	e.Clock.Advance(time.Second)
	if erasure() != "deleted" {
		t.Fatal(erasure())
	}
	late := e.Submit(t, op("p", privsync.OpRemoveRTBFSuppress)).Ref
	track := e.Submit(t, restrict("p", privsync.DoNotTrack)).Ref
	e.Clock.Advance(delay)
	if got := e.Poll(t, late, op("p", privsync.OpRemoveRTBFSuppress)); got["p"] != "failed: remove_rtbf_suppress failed" {
		t.Fatalf("late cancel: %v", got)
	}
	if got := e.Poll(t, track, op("p", privsync.OpRemoveRTBFSuppress)); got["p"] != "failed: add_do_not_track failed" {
		t.Fatalf("restrict a deleted profile: %v", got)
	}
	// A repeated erasure is harmless: nothing to do.
	if rows := statusRows(e, t, e.Submit(t, op("p", privsync.OpRTBFDelete)).Ref); len(rows) != 0 {
		t.Fatalf("rows %v", rows)
	}
}

func TestMagicIDs(t *testing.T) {
	e := setup(t, sfmc.SimOptions{})
	items := []vendorapi.Item{restrict("ok", privsync.DoNotTrack), restrict("x-sim-fail", privsync.DoNotTrack|privsync.DoNotProfile), op("y-sim-slow", privsync.OpRTBFDelete)}
	ref := e.Submit(t, items...).Ref
	e.Clock.Advance(365 * 24 * time.Hour)
	want := map[string]string{"ok": "done", "x-sim-fail": "failed: add_do_not_track failed; add_do_not_profile failed", "y-sim-slow": "pending"}
	if got := e.Poll(t, ref, items...); !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
	if st := e.Sim.State()[mid]["x-sim-fail"]; len(st.Restrictions) != 0 {
		t.Fatalf("a failed change was applied: %+v", st)
	}
	e.Sim.Reset()
	if len(e.Sim.State()) != 0 {
		t.Fatal("state after reset")
	}
	if _, err := e.Client.Poll(context.Background(), ref, items); vendorapi.ActionOf(err) != vendorapi.NotFound {
		t.Fatalf("poll after reset: %v", err)
	}
}

func TestRules(t *testing.T) {
	e := setup(t, sfmc.SimOptions{MaxProfiles: 2})
	path := "/api/v2/organization/" + mid + "/privacy"
	for _, tc := range []struct {
		name, method, path, auth, body string
		status                         int
		message                        string
	}{
		{"no auth", "POST", path, "", `{"batch": {"p": []}}`, 401, "bearer"},
		{"wrong key", "POST", path, "Bearer nope", `{"batch": {"p": []}}`, 401, "bearer"},
		{"basic scheme", "POST", path, "Basic " + key, `{"batch": {"p": []}}`, 401, "bearer"},
		{"malformed JSON", "POST", path, "Bearer " + key, `{"batch": {"p": [}`, 400, "malformed JSON"},
		{"batch is an array", "POST", path, "Bearer " + key, `{"batch": [["do_not_track"]]}`, 400, "malformed JSON"},
		{"no batch", "POST", path, "Bearer " + key, `{}`, 400, "at least one profile"},
		{"null array", "POST", path, "Bearer " + key, `{"batch": {"p": null}}`, 400, "must be an array"},
		{"unknown value", "POST", path, "Bearer " + key, `{"batch": {"p": ["do_not_sell"]}}`, 400, "unknown privacy value do_not_sell"},
		{"mixed exclusive", "POST", path, "Bearer " + key, `{"batch": {"p": ["rtbf_delete", "do_not_track"]}}`, 400, "rtbf_delete must be alone"},
		{"two exclusive", "POST", path, "Bearer " + key, `{"batch": {"p": ["rtbf_suppress", "remove_rtbf_suppress"]}}`, 400, "must be alone"},
		{"too many", "POST", path, "Bearer " + key, `{"batch": {"a": [], "b": [], "c": []}}`, 400, "more than"},
		{"empty profile id", "POST", path, "Bearer " + key, `{"batch": {"": []}}`, 400, "empty profile id"},
		{"unknown batch", "GET", path + "/nope", "Bearer " + key, ``, 404, "unknown batch_id"},
		{"unknown route", "GET", "/api/v3/x", "Bearer " + key, ``, 404, "no such route"},
		{"valid", "POST", path, "bearer " + key, `{"batch": {"a": ["do_not_track", "do_not_track"], "b": []}}`, 200, ""},
	} {
		code, body := e.Raw(t, tc.method, tc.path, bearer(tc.auth), tc.body)
		var eb struct{ Error, Message string }
		_ = json.Unmarshal(body, &eb)
		if code != tc.status || !strings.Contains(eb.Message, tc.message) || (code != 200 && eb.Error == "") {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if len(e.Sim.State()[mid]) != 1 {
		t.Fatalf("a rejected batch changed the state: %+v", e.Sim.State())
	}
}

func TestClientClassifiesErrors(t *testing.T) {
	e := setup(t, sfmc.SimOptions{})
	ctx := context.Background()
	bad := newClient(t, e.Srv.URL, "wrong", nil)
	_, err := bad.Submit(ctx, []vendorapi.Item{restrict("p", 0)})
	var ve *vendorapi.Error
	if !errors.As(err, &ve) || ve.Action != vendorapi.StopVendor || ve.StatusCode != 401 || ve.Code != "unauthorized" {
		t.Fatalf("bad key: %v", err)
	}
	for name, items := range map[string][]vendorapi.Item{
		"empty":       nil,
		"duplicate":   {restrict("p", 0), restrict("p", privsync.DoNotTrack)},
		"unsupported": {op("p", privsync.OpReview)},
	} {
		if _, err := e.Client.Submit(ctx, items); vendorapi.ActionOf(err) != vendorapi.Reject {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := e.Client.Poll(ctx, "no-such-batch", nil); vendorapi.ActionOf(err) != vendorapi.NotFound {
		t.Fatalf("unknown batch: %v", err)
	}
	if _, err := sfmc.New(sfmc.Config{CustomerMID: mid}); err == nil {
		t.Fatal("no api key accepted")
	}
	if c, err := sfmc.New(sfmc.Config{CustomerMID: mid, APIKey: key, BatchSize: 50}); err != nil || c.MaxItems() != 50 {
		t.Fatal("batch size")
	}
	if c, _ := sfmc.New(sfmc.Config{CustomerMID: mid, APIKey: key}); c.MaxItems() != sfmc.DefaultBatchSize {
		t.Fatal("default batch size")
	}
}

func TestRateLimitAndStats(t *testing.T) {
	e := setup(t, sfmc.SimOptions{Options: simkit.Options{RateLimit: 1}})
	ctx := context.Background()
	e.Submit(t, restrict("p", 0))
	_, err := e.Client.Submit(ctx, []vendorapi.Item{restrict("p", 0)})
	var ve *vendorapi.Error
	if !errors.As(err, &ve) || ve.StatusCode != 429 || ve.Action != vendorapi.Retry || ve.RetryAfter != time.Second {
		t.Fatalf("over the limit: %v", err)
	}
	e.Clock.Advance(time.Second)
	e.Submit(t, restrict("p", 0))
	s := e.Sim.Stats()
	if s.Requests != 3 || s.ByStatus["200"] != 2 || s.ByStatus["429"] != 1 || s.RateLimited != 1 {
		t.Fatalf("stats %+v", s)
	}
	e.Sim.SetFaults(simkit.Faults{ErrorRate: 1})
	e.Clock.Advance(time.Second)
	if _, err := e.Client.Submit(ctx, []vendorapi.Item{restrict("p", 0)}); !errors.As(err, &ve) || ve.StatusCode < 500 || ve.Action != vendorapi.Retry || ve.Code == "" {
		t.Fatalf("injected error: %v", err)
	}
}

func TestClientOverTLS(t *testing.T) {
	url, hc := simtest.TLS(t, sfmc.NewSim(sfmc.SimOptions{APIKey: key}))
	if _, err := newClient(t, url, key, hc).Submit(context.Background(), []vendorapi.Item{op("p", privsync.OpRTBFDelete)}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkBatchOf1000 sends 1,000 profiles that each change all three
// flags and polls the 3,000 rows: the largest status body a batch makes.
func BenchmarkBatchOf1000(b *testing.B) {
	e := simtest.Start(b, func(now func() time.Time) *sfmc.Sim {
		return sfmc.NewSim(sfmc.SimOptions{Options: simkit.Options{Now: now}, APIKey: key})
	}, func(url string) (*sfmc.Client, error) {
		return sfmc.New(sfmc.Config{BaseURL: url, CustomerMID: mid, APIKey: key})
	})
	items := make([]vendorapi.Item, 1000)
	all := privsync.DoNotTrack | privsync.DoNotProfile | privsync.DoNotProcess
	var bodyBytes int
	for i := 0; b.Loop(); i++ {
		for j := range items {
			items[j] = restrict(fmt.Sprintf("profile-%d-%04d", i, j), all)
		}
		ref := e.Submit(b, items...).Ref
		if got := e.Poll(b, ref, items...); len(got) != 1000 {
			b.Fatal(len(got))
		}
		if i == 0 {
			_, body := e.Raw(b, "GET", "/api/v2/organization/"+mid+"/privacy/"+ref, bearer("Bearer "+key), "")
			bodyBytes = len(body)
		}
	}
	b.ReportMetric(float64(bodyBytes), "status-bytes")
}

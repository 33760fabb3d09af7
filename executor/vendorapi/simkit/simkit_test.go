package simkit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/privsync/privsync/executor/vendorapi/simkit"
)

func newBase(o simkit.Options) *simkit.Base {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	return simkit.NewBase("test", o, func(w http.ResponseWriter, status int, msg string) {
		simkit.WriteJSON(w, status, map[string]string{"error": msg})
	}, ok)
}

func get(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	return rec
}

func TestRateLimitUsesTheInjectedClock(t *testing.T) {
	c := simkit.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := newBase(simkit.Options{Now: c.Now, RateLimit: 2})
	var codes []int
	for range 3 {
		codes = append(codes, get(b).Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("burst of 2 then limit: %v", codes)
	}
	if ra := get(b).Header().Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After = %q", ra)
	}
	c.Advance(time.Second)
	if code := get(b).Code; code != 200 {
		t.Fatalf("after a second: %d", code)
	}
	s := b.Stats()
	if s.Requests != 5 || s.ByStatus["200"] != 3 || s.ByStatus["429"] != 2 || s.RateLimited != 2 || s.Sent429 != 2 {
		t.Fatalf("stats %+v", s)
	}
	b.SetRateLimit(0)
	for range 10 {
		if code := get(b).Code; code != 200 {
			t.Fatalf("unlimited: %d", code)
		}
	}
	b.ResetStats()
	if s := b.Stats(); s.Requests != 0 || len(s.ByStatus) != 0 {
		t.Fatalf("after reset %+v", s)
	}
}

func TestSlowRateGivesLongerRetryAfter(t *testing.T) {
	c := simkit.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := newBase(simkit.Options{Now: c.Now, RateLimit: 0.1})
	get(b)
	if ra := get(b).Header().Get("Retry-After"); ra != "10" {
		t.Fatalf("Retry-After = %q, want 10", ra)
	}
}

func TestFaultsAreSeededAndCounted(t *testing.T) {
	run := func(seed uint64) []int {
		b := newBase(simkit.Options{Seed: seed, Faults: simkit.Faults{ErrorRate: 0.3, Rate429: 0.2}})
		var codes []int
		for range 200 {
			codes = append(codes, get(b).Code)
		}
		s := b.Stats()
		if s.Injected429 != s.ByStatus["429"] || s.Requests != 200 {
			t.Fatalf("stats %+v", s)
		}
		if s.ByStatus["500"] == 0 || s.ByStatus["503"] == 0 || s.ByStatus["429"] == 0 || s.ByStatus["200"] == 0 {
			t.Fatalf("expected every kind of answer, got %v", s.ByStatus)
		}
		return codes
	}
	a, b, c := run(7), run(7), run(8)
	same := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("the same seed gave different answers")
	}
	if same(a, c) {
		t.Fatal("different seeds gave the same 200 answers")
	}
}

func TestResetClosesTheConnection(t *testing.T) {
	b := newBase(simkit.Options{Faults: simkit.Faults{ResetRate: 1}})
	srv := httptest.NewServer(b)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer %d", resp.StatusCode)
	}
	if s := b.Stats(); s.Resets != 1 || len(s.ByStatus) != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNewIDIsUUIDShapedAndSeeded(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	x, y := newBase(simkit.Options{Seed: 1}), newBase(simkit.Options{Seed: 1})
	for range 50 {
		id := x.NewID()
		if !re.MatchString(id) {
			t.Fatalf("id %q", id)
		}
		if id != y.NewID() {
			t.Fatal("same seed, different ids")
		}
	}
}

func TestFaultsJSON(t *testing.T) {
	var f simkit.Faults
	if err := json.Unmarshal([]byte(`{"error_rate": 0.5, "latency": "25ms"}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.ErrorRate != 0.5 || time.Duration(f.Latency) != 25*time.Millisecond {
		t.Fatalf("%+v", f)
	}
	if err := json.Unmarshal([]byte(`{"latency": 1.5}`), &f); err != nil || time.Duration(f.Latency) != 1500*time.Millisecond {
		t.Fatalf("%+v %v", f, err)
	}
	if err := json.Unmarshal([]byte(`{"latency": "soon"}`), &f); err == nil {
		t.Fatal("bad duration accepted")
	}
	for _, bad := range []simkit.Faults{{ErrorRate: 1.5}, {Rate429: -0.1}, {Latency: -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	out, _ := json.Marshal(simkit.Faults{Latency: simkit.Duration(time.Second)})
	if string(out) != `{"error_rate":0,"rate_429":0,"reset_rate":0,"latency":"1s"}` {
		t.Fatalf("%s", out)
	}
}

func TestSecretOK(t *testing.T) {
	if !simkit.SecretOK("x", "") || simkit.SecretOK("", "") || simkit.SecretOK("x", "y") || !simkit.SecretOK("y", "y") {
		t.Fatal("SecretOK")
	}
}

func TestLatencyDelaysTheAnswer(t *testing.T) {
	b := newBase(simkit.Options{Faults: simkit.Faults{Latency: simkit.Duration(30 * time.Millisecond)}})
	start := time.Now()
	if code := get(b).Code; code != 200 {
		t.Fatal(code)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("answered after %v", d)
	}
}

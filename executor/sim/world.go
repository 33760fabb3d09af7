// Package sim is a deterministic simulation of privsync's execution: the
// real executor and the real ledger against the three vendor simulators,
// reached through an in-memory transport that injects a seeded schedule
// of faults (5xx, 429 with Retry-After, connection resets, answers lost
// after the vendor applied the request, requests the vendor forgets, 409,
// a 400 for one bad item, 401), and a process that can be killed at any
// ledger commit, as SIGKILL would, and resumed.
//
// A World holds the vendors and the faults; a Scenario (scenario.go) is a
// few nights of changing desired state, each run by a Runner (the
// in-process Direct runner here, or the whole command in cmd/privsync);
// Check (check.go) verifies the invariants I1–I7 after every night. Run it
// inside testing/synctest so time is fake: a night of back-offs and
// polling takes milliseconds.
package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/executor/batch"
	"github.com/privsync/privsync/executor/bloomreach"
	"github.com/privsync/privsync/executor/sfmc"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
	"golang.org/x/time/rate"
)

// The vendors of every scenario, as a config names them.
const (
	SFMC       = "sfmc"
	Batch      = "batch-ios"
	Bloomreach = "bloomreach"

	CustomerMID  = "12345678"
	AppAPIKey    = "simapp"
	ProjectToken = "simproject"
)

// Kinds maps the vendor names to their kinds.
var Kinds = map[string]privsync.Kind{SFMC: privsync.KindSFMC, Batch: privsync.KindBatch, Bloomreach: privsync.KindBloomreach}

// Magic subject-id markers. simkit.MagicFail ("sim-fail") makes a vendor
// fail the item; Bad makes the transport answer 400 to any request that
// carries the item, so a batch holding it is rejected as a whole.
const Bad = "sim-bad"

// ErrKilled is what every ledger commit and request returns once the
// simulated process is dead.
var ErrKilled = errors.New("sim: process killed")

// Faults is what the transport injects in one night, each a share of
// requests.
type Faults struct {
	Reset, Lost, Err5xx, Rate429, Conflict, Forget float64
	// LongRetryAfter gives some 5xx answers a Retry-After of an hour.
	LongRetryAfter bool
	// Unauthorized vendors answer 401 to everything.
	Unauthorized map[string]bool
}

// World is the vendors' side of a simulation, shared by every process
// (run) of a scenario: the three simulators, the fault schedule, the
// crash point, and the observer of what privsync sends.
type World struct {
	seed  uint64
	SFMC  *sfmc.Sim
	Batch *batch.Sim
	Bloom *bloomreach.Sim

	mu        sync.Mutex
	faults    Faults
	seen      map[string]int // request key → times seen (for the seeded schedule)
	forgotten map[string]bool
	// crash
	dead       bool
	commits    int
	crashAt    int // kill at this commit (0: never)
	crashAfter bool
	cancel     context.CancelFunc
	// observer
	Submits     int // requests that reached a vendor's handler to create something, this process
	denied      int // 401s answered, this process
	outstanding map[privsync.Key]privsync.Operation
	violations  []string
}

// NewWorld builds the vendors of a scenario; call it inside the synctest
// bubble (the simulators read time.Now).
func NewWorld(seed uint64) *World {
	o := simkit.Options{Seed: seed, Now: time.Now}
	return &World{
		seed:        seed,
		SFMC:        sfmc.NewSim(sfmc.SimOptions{Options: o}),
		Batch:       batch.NewSim(batch.SimOptions{Options: o}),
		Bloom:       bloomreach.NewSim(bloomreach.SimOptions{Options: o}),
		seen:        map[string]int{},
		forgotten:   map[string]bool{},
		outstanding: map[privsync.Key]privsync.Operation{},
	}
}

// SetNight sets the faults and the vendors' processing time for what
// follows.
func (w *World) SetNight(f Faults, async time.Duration) {
	w.mu.Lock()
	w.faults = f
	w.mu.Unlock()
	w.SFMC.SetAsyncDelay(async)
	w.Batch.SetAsyncDelay(async)
}

// Start begins a new process: alive, killed at its crashAt-th ledger
// commit (0: never; after the commit when after is true), cancelling ctx
// through cancel then. pending lists the subjects the ledger still has
// items in flight for: the others have nothing in flight as far as
// privsync can know.
func (w *World) Start(crashAt int, after bool, cancel context.CancelFunc, pending map[privsync.Key]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dead, w.commits, w.crashAt, w.crashAfter, w.cancel = false, 0, crashAt, after, cancel
	w.Submits, w.denied = 0, 0
	for k := range w.outstanding {
		if !pending[k] {
			delete(w.outstanding, k)
		}
	}
}

// Killed reports whether the process died.
func (w *World) Killed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dead
}

// SubmitCount is how many create requests reached a vendor in this process.
func (w *World) SubmitCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.Submits
}

// Denied reports whether a vendor refused privsync's credentials in this
// process (the run must exit 1).
func (w *World) Denied() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.denied > 0
}

// Violations returns what the observer saw go wrong (I3), and forgets it.
func (w *World) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.violations
	w.violations = nil
	return v
}

// CommitHook is the ledger's commit hook (ledger.DB.SetCommitHook): it
// kills the process at the chosen commit, before or after it lands.
func (w *World) CommitHook(commit func() error) error {
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return ErrKilled
	}
	w.commits++
	kill := w.crashAt > 0 && w.commits == w.crashAt
	after := w.crashAfter
	w.mu.Unlock()
	if !kill {
		return commit()
	}
	if after {
		if err := commit(); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.dead = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return ErrKilled
}

// Vendors returns the executor's vendors, talking to the simulators
// through the fault-injecting transport, observed.
func (w *World) Vendors() ([]executor.Vendor, error) {
	conns, err := w.Connectors()
	if err != nil {
		return nil, err
	}
	var out []executor.Vendor
	for _, name := range []string{SFMC, Batch, Bloomreach} {
		out = append(out, executor.Vendor{Name: name, Conn: conns[name], Limiter: rate.NewLimiter(20, 5),
			MaxInFlight: 2, PollInterval: 2 * time.Second})
	}
	return out, nil
}

// Connectors returns the three observed connectors by vendor name.
func (w *World) Connectors() (map[string]executor.Connector, error) {
	sf, err := sfmc.New(sfmc.Config{BaseURL: "http://sfmc.sim", CustomerMID: CustomerMID, APIKey: "k", HTTPClient: w.client(SFMC, w.SFMC)})
	if err != nil {
		return nil, err
	}
	bt, err := batch.New(batch.Config{BaseURL: "http://batch.sim", AppAPIKey: AppAPIKey, RESTAPIKey: "k", HTTPClient: w.client(Batch, w.Batch)})
	if err != nil {
		return nil, err
	}
	bl, err := bloomreach.New(bloomreach.Config{BaseURL: "http://bloomreach.sim", ProjectToken: ProjectToken, APIKeyID: "id", APISecret: "s",
		HTTPClient: w.client(Bloomreach, w.Bloom)})
	if err != nil {
		return nil, err
	}
	return map[string]executor.Connector{
		SFMC:       &observed{w: w, vendor: SFMC, Connector: sf},
		Batch:      &observedFinder{observed{w: w, vendor: Batch, Connector: bt}, bt},
		Bloomreach: &observed{w: w, vendor: Bloomreach, Connector: bl},
	}, nil
}

func (w *World) client(vendor string, h http.Handler) *http.Client {
	return &http.Client{Transport: &transport{w: w, vendor: vendor, h: h}, Timeout: 30 * time.Second}
}

// transport serves requests from the simulator in memory, injecting the
// night's faults. Each request's fate is drawn from the seed and the
// request itself (method, path, body, how many times it was seen), not
// from the order of requests, so goroutine scheduling does not change it.
type transport struct {
	w      *World
	vendor string
	h      http.Handler
}

var errReset = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	w := t.w
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrKilled}
	}
	key := t.vendor + " " + req.Method + " " + req.URL.Path + " " + string(body)
	n := w.seen[key]
	w.seen[key]++
	f := w.faults
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%d", w.seed, key, n)
	rng := rand.New(rand.NewPCG(h.Sum64(), w.seed))
	post := req.Method == http.MethodPost
	status, retryAfter, lost := 0, "", false
	switch p := rng.Float64(); {
	case f.Unauthorized[t.vendor]:
		status = http.StatusUnauthorized
	case p < f.Reset:
		w.mu.Unlock()
		return nil, errReset
	case p < f.Reset+f.Rate429:
		status, retryAfter = http.StatusTooManyRequests, strconv.Itoa(1+rng.IntN(5))
	case p < f.Reset+f.Rate429+f.Err5xx:
		status = http.StatusServiceUnavailable
		if f.LongRetryAfter && rng.IntN(2) == 0 {
			retryAfter = "3600"
		}
	case post && strings.Contains(string(body), Bad):
		status = http.StatusBadRequest
	case post && t.vendor == Batch && p < f.Reset+f.Rate429+f.Err5xx+f.Conflict:
		status = http.StatusConflict
	case !post && !strings.HasSuffix(req.URL.Path, "/requests") && (w.forgotten[req.URL.Path] || p > 1-f.Forget):
		// A status request (not Batch.com's list of requests) about a
		// request the vendor forgot.
		w.forgotten[req.URL.Path] = true
		status = http.StatusNotFound
	case rng.Float64() < f.Lost:
		lost = true
	}
	if status == 0 && post {
		w.Submits++
	}
	if status == http.StatusUnauthorized {
		w.denied++
	}
	w.mu.Unlock()
	if Trace != nil {
		fmt.Fprintf(Trace, "%s %s (seen %d): injected status %d, answer lost %v\n", time.Now().UTC().Format("01-02T15:04:05"), key, n, status, lost)
	}
	if status != 0 {
		rec := httptest.NewRecorder()
		if retryAfter != "" {
			rec.Header().Set("Retry-After", retryAfter)
		}
		rec.Header().Set("Content-Type", "application/json")
		rec.WriteHeader(status)
		fmt.Fprintf(rec, `{"error":"sim","message":"injected %d","success":false}`, status)
		return t.response(req, rec), nil
	}
	sreq := req.Clone(req.Context())
	sreq.Body = io.NopCloser(bytes.NewReader(body))
	sreq.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	if aborted := serve(t.h, rec, sreq); aborted || lost {
		return nil, errReset // the vendor may have acted; the answer never arrives
	}
	return t.response(req, rec), nil
}

// serve runs the handler, turning an aborted answer (a simulated reset)
// into aborted.
func serve(h http.Handler, rec *httptest.ResponseRecorder, req *http.Request) (aborted bool) {
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				panic(r)
			}
			aborted = true
		}
	}()
	h.ServeHTTP(rec, req)
	return false
}

func (t *transport) response(req *http.Request, rec *httptest.ResponseRecorder) *http.Response {
	resp := rec.Result()
	resp.Request = req
	return resp
}

// observed watches what the executor sends (I3): a subject's next
// operation must not leave before its previous one is final as far as
// privsync was told.
type observed struct {
	executor.Connector
	w      *World
	vendor string
}

func (o *observed) Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error) {
	o.w.mu.Lock()
	for _, it := range items {
		k := privsync.Key{Vendor: o.vendor, IDType: it.IDType, SubjectID: it.SubjectID}
		if prev, ok := o.w.outstanding[k]; ok && prev != it.Op {
			o.w.violations = append(o.w.violations, fmt.Sprintf("I3: %s %s sent while its %s was not confirmed", k.Vendor, it.Op, prev))
		}
		o.w.outstanding[k] = it.Op
	}
	o.w.mu.Unlock()
	rec, err := o.Connector.Submit(ctx, items)
	if (err == nil && rec.Final) || (err != nil && vendorapi.ActionOf(err) >= vendorapi.Reject) {
		o.settle(items) // final at once, or refused: nothing in flight
	}
	return rec, err
}

func (o *observed) Poll(ctx context.Context, ref string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error) {
	st, err := o.Connector.Poll(ctx, ref, items)
	if err != nil {
		if vendorapi.ActionOf(err) == vendorapi.NotFound {
			o.settle(items) // forgotten: privsync plans it again
		}
		return st, err
	}
	var final []vendorapi.Item
	for _, s := range st {
		if s.State == vendorapi.StatePending {
			continue
		}
		for _, it := range items {
			if it.IDType == s.IDType && it.SubjectID == s.SubjectID {
				final = append(final, it)
			}
		}
	}
	o.settle(final)
	return st, err
}

func (o *observed) settle(items []vendorapi.Item) {
	o.w.mu.Lock()
	defer o.w.mu.Unlock()
	for _, it := range items {
		k := privsync.Key{Vendor: o.vendor, IDType: it.IDType, SubjectID: it.SubjectID}
		if o.w.outstanding[k] == it.Op {
			delete(o.w.outstanding, k)
		}
	}
}

type observedFinder struct {
	observed
	f executor.Finder
}

func (o *observedFinder) Find(ctx context.Context, item vendorapi.Item, since time.Time) (string, bool, error) {
	return o.f.Find(ctx, item, since)
}

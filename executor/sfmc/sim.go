package sfmc

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
)

// Simulator defaults.
const (
	DefaultRateLimit         = 10                  // requests per second
	DefaultSuppressionWindow = 14 * 24 * time.Hour // rtbf_suppress → deleted
	MaxSuppressionWindow     = 30 * 24 * time.Hour
	DefaultMaxProfiles       = 1000
	timeLayout               = "2006-01-02 15:04:05 UTC"
)

// Row statuses.
const (
	statusInitiated = "initiated"
	statusSuccess   = "success"
	statusFailed    = "failed"
	statusCancelled = "cancelled"
)

// Erasure states of a profile, as /_sim/state shows them.
const (
	ErasureNone       = "none"
	ErasureSuppressed = "suppressed"
	ErasureDeleted    = "deleted"
)

// SimOptions configures a Sim.
type SimOptions struct {
	simkit.Options
	APIKey string // the Bearer token accepted; "" accepts any non-empty one
	// SuppressionWindow is how long rtbf_suppress waits before deleting
	// (DefaultSuppressionWindow when zero; capped at MaxSuppressionWindow).
	SuppressionWindow time.Duration
	MaxProfiles       int // per batch; DefaultMaxProfiles when zero
}

// Sim is the SFMC privacy batch API as an http.Handler, with one state per
// customer_mid.
type Sim struct {
	*simkit.Base
	apiKey      string
	maxProfiles int

	mu       sync.Mutex
	window   time.Duration
	accounts map[string]*account
}

type account struct {
	profiles map[string][]*row // every row of a profile, oldest first
	batches  map[string][]*row
}

type row struct {
	profile, action, batchID string
	initiated, completes     time.Time
	fail, slow               bool
	cancelled                time.Time // zero unless cancelled
}

func (r *row) status(now time.Time) string {
	switch {
	case !r.cancelled.IsZero() && !now.Before(r.cancelled):
		return statusCancelled
	case r.slow || now.Before(r.completes):
		return statusInitiated
	case r.fail:
		return statusFailed
	}
	return statusSuccess
}

// NewSim returns a simulator.
func NewSim(o SimOptions) *Sim {
	s := &Sim{apiKey: o.APIKey, maxProfiles: o.MaxProfiles, accounts: map[string]*account{}}
	if s.maxProfiles <= 0 {
		s.maxProfiles = DefaultMaxProfiles
	}
	s.SetSuppressionWindow(o.SuppressionWindow)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/organization/{mid}/privacy", s.create)
	mux.HandleFunc("GET /api/v2/organization/{mid}/privacy/{batch}", s.status)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	s.Base = simkit.NewBase("sfmc", o.Options, writeError, simkit.RequireAuth(s.authorized, func(w http.ResponseWriter) {
		writeError(w, http.StatusUnauthorized, "invalid or missing bearer token")
	}, mux))
	return s
}

// SetSuppressionWindow changes the window (0: the default; capped at 30 days).
func (s *Sim) SetSuppressionWindow(d time.Duration) {
	if d <= 0 {
		d = DefaultSuppressionWindow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = min(d, MaxSuppressionWindow)
}

// Reset forgets every account and zeroes the counters.
func (s *Sim) Reset() {
	s.mu.Lock()
	s.accounts = map[string]*account{}
	s.mu.Unlock()
	s.ResetStats()
}

// ProfileState is one profile as the vendor holds it.
type ProfileState struct {
	Restrictions []string `json:"restrictions"`
	Erasure      string   `json:"erasure"` // none, suppressed or deleted
}

// State returns customer_mid → profile id → state, for /_sim/state.
func (s *Sim) State() map[string]map[string]ProfileState {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]ProfileState{}
	for mid, a := range s.accounts {
		m := map[string]ProfileState{}
		for id, rows := range a.profiles {
			r, e := s.fold(rows, now, false)
			m[id] = ProfileState{Restrictions: r.Names(), Erasure: e}
		}
		out[mid] = m
	}
	return out
}

func writeError(w http.ResponseWriter, status int, message string) {
	name := strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	simkit.WriteJSON(w, status, map[string]string{"error": name, "message": message})
}

func (s *Sim) authorized(r *http.Request) bool {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Bearer") && simkit.SecretOK(token, s.apiKey)
}

// fold replays a profile's rows up to now: the succeeded ones, and with
// pending also those still initiated (what the vendor has been told).
func (s *Sim) fold(rows []*row, now time.Time, pending bool) (privsync.Restrictions, string) {
	var restr privsync.Restrictions
	erasure := ErasureNone
	var suppressedAt time.Time
	expire := func(at time.Time) {
		if erasure == ErasureSuppressed && !at.Before(suppressedAt.Add(s.window)) {
			erasure = ErasureDeleted
		}
	}
	for _, r := range rows {
		st := r.status(now)
		if st != statusSuccess && (!pending || st != statusInitiated) {
			continue
		}
		expire(r.completes)
		switch r.action {
		case "rtbf_delete":
			erasure = ErasureDeleted
		case "rtbf_suppress":
			if erasure == ErasureNone {
				erasure, suppressedAt = ErasureSuppressed, r.completes
			}
		case "remove_rtbf_suppress":
			if erasure == ErasureSuppressed {
				erasure = ErasureNone
			}
		default:
			verb, name, _ := strings.Cut(r.action, "_")
			f, _ := privsync.ParseRestriction(name)
			if verb == "add" {
				restr |= f
			} else {
				restr &^= f
			}
		}
	}
	expire(now)
	if erasure == ErasureDeleted {
		restr = 0
	}
	return restr, erasure
}

var exclusive = map[string]bool{"rtbf_delete": true, "rtbf_suppress": true, "remove_rtbf_suppress": true}

// parseValues checks one profile's array: restriction names, or a single
// exclusive RTBF value.
func parseValues(values []string) (privsync.Restrictions, string, string) {
	if values == nil {
		return 0, "", "must be an array"
	}
	var restr privsync.Restrictions
	for _, v := range values {
		if exclusive[v] {
			if len(values) != 1 {
				return 0, "", v + " must be alone in its array"
			}
			return 0, v, ""
		}
		f, err := privsync.ParseRestriction(v)
		if err != nil {
			return 0, "", "unknown privacy value " + v
		}
		restr |= f
	}
	return restr, "", ""
}

func (s *Sim) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Batch map[string][]string `json:"batch"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return
	}
	if len(body.Batch) == 0 {
		writeError(w, http.StatusBadRequest, "batch must be an object naming at least one profile")
		return
	}
	if len(body.Batch) > s.maxProfiles {
		writeError(w, http.StatusBadRequest, "batch holds more than the allowed number of profiles")
		return
	}
	ids := make([]string, 0, len(body.Batch))
	for id, values := range body.Batch {
		if id == "" {
			writeError(w, http.StatusBadRequest, "empty profile id")
			return
		}
		if _, _, msg := parseValues(values); msg != "" {
			writeError(w, http.StatusBadRequest, "profile "+id+": "+msg)
			return
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	now, delay, batchID := s.Now(), s.AsyncDelay(), s.NewID()

	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.account(r.PathValue("mid"))
	rows := []*row{}
	for _, id := range ids {
		restr, rtbf, _ := parseValues(body.Batch[id])
		for _, action := range s.changes(a.profiles[id], now, restr, rtbf) {
			rw := &row{profile: id, action: action, batchID: batchID, initiated: now, completes: now.Add(delay),
				fail: simkit.Is(id, simkit.MagicFail), slow: simkit.Is(id, simkit.MagicSlow)}
			if _, e := s.fold(a.profiles[id], now, true); e == ErasureDeleted {
				rw.fail = true // the profile is gone: nothing left to change
			}
			a.profiles[id] = append(a.profiles[id], rw)
			rows = append(rows, rw)
		}
	}
	a.batches[batchID] = rows
	simkit.WriteJSON(w, http.StatusOK, map[string]string{"batch_id": batchID})
}

// changes lists the actions that take a profile from what the vendor has
// been told to the declared state; it cancels a suppression still pending
// when asked to remove it.
func (s *Sim) changes(rows []*row, now time.Time, want privsync.Restrictions, rtbf string) []string {
	have, erasure := s.fold(rows, now, true)
	switch rtbf {
	case "rtbf_delete":
		if erasure != ErasureDeleted {
			return []string{rtbf}
		}
	case "rtbf_suppress":
		if erasure == ErasureNone {
			return []string{rtbf}
		}
	case "remove_rtbf_suppress":
		if erasure == ErasureNone {
			return nil
		}
		for _, r := range rows {
			if r.action == "rtbf_suppress" && r.status(now) == statusInitiated {
				r.cancelled = now
			}
		}
		return []string{rtbf}
	default:
		var out []string
		for _, f := range []privsync.Restrictions{privsync.DoNotTrack, privsync.DoNotProfile, privsync.DoNotProcess} {
			switch name := f.String(); {
			case want&f != 0 && have&f == 0:
				out = append(out, "add_"+name)
			case want&f == 0 && have&f != 0:
				out = append(out, "remove_"+name)
			}
		}
		return out
	}
	return nil
}

func (s *Sim) account(mid string) *account {
	a := s.accounts[mid]
	if a == nil {
		a = &account{profiles: map[string][]*row{}, batches: map[string][]*row{}}
		s.accounts[mid] = a
	}
	return a
}

// StatusRow is one element of the status array.
type StatusRow struct {
	DateInitiated string  `json:"date_initiated"`
	ProfileID     string  `json:"profile_id"`
	Action        string  `json:"action"`
	Source        string  `json:"source"`
	Status        string  `json:"status"`
	BatchID       string  `json:"batch_id"`
	DateCompleted *string `json:"date_completed"`
}

func (s *Sim) status(w http.ResponseWriter, r *http.Request) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[r.PathValue("mid")]
	var rows []*row
	ok := false
	if a != nil {
		rows, ok = a.batches[r.PathValue("batch")]
	}
	if !ok {
		writeError(w, http.StatusNotFound, "unknown batch_id")
		return
	}
	out := make([]StatusRow, 0, len(rows))
	for _, rw := range rows {
		sr := StatusRow{DateInitiated: rw.initiated.UTC().Format(timeLayout), ProfileID: rw.profile, Action: rw.action,
			Source: "api", Status: rw.status(now), BatchID: rw.batchID}
		switch sr.Status {
		case statusCancelled:
			sr.DateCompleted = ptr(rw.cancelled.UTC().Format(timeLayout))
		case statusSuccess, statusFailed:
			sr.DateCompleted = ptr(rw.completes.UTC().Format(timeLayout))
		}
		out = append(out, sr)
	}
	simkit.WriteJSON(w, http.StatusOK, out)
}

func ptr[T any](v T) *T { return &v }

// Package vendorsim serves the three vendor simulators (executor/sfmc,
// executor/batch, executor/bloomreach) on one address, told apart by path
// (/api/v2/... SFMC, /1.0/... Batch.com, /data/v2/... Bloomreach), so a
// config can point every base_url at it, plus a control API:
//
//	GET  /_sim/state   every subject's state as the vendors hold it
//	GET  /_sim/stats   requests per vendor and status code, 429s sent
//	GET  /_sim/faults  the settings in force
//	POST /_sim/faults  change settings: only the fields given (Settings)
//	POST /_sim/reset   forget all vendor state and zero the counters
//	                   (settings stay as they are)
//
// /_sim/state is shaped
//
//	{"sfmc": {"<customer_mid>": {"<profile_id>": {"restrictions": [...], "erasure": "none"|"suppressed"|"deleted"}}},
//	 "batch": {"<app_api_key>": {"<id type>:<id value>": {"reviews": N, "removed": bool}}},
//	 "bloomreach": {"<project_token>": {"anonymized": ["<id name>:<value>", "internal_id:<hex>"]}}}
//
// with restrictions in privsync's canonical order (do_not_track,
// do_not_profile, do_not_process) and anonymized ids sorted.
//
// In process (cmd/privsync with base_url = "sim"):
//
//	srv, url, err := vendorsim.StartLoopback(ctx, vendorsim.DemoOptions())
//
// serves on 127.0.0.1 until ctx ends; the clients then use the Demo*
// credentials. Options with empty credentials accept any non-empty ones.
//
// Magic subject ids, for every outcome (see each vendor package): an id
// containing "sim-fail" fails at the vendor, "sim-expire" (Batch.com) is
// forgotten once done, "sim-slow" never completes until a reset.
package vendorsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/privsync/privsync/executor/batch"
	"github.com/privsync/privsync/executor/bloomreach"
	"github.com/privsync/privsync/executor/sfmc"
	"github.com/privsync/privsync/executor/vendorapi/simkit"
)

// The credentials DemoOptions accepts.
const (
	DemoSFMCKey          = "demo-sfmc-api-key"
	DemoBatchRESTKey     = "demo-batch-rest-api-key"
	DemoBloomreachKeyID  = "demo-bloomreach-key-id"
	DemoBloomreachSecret = "demo-bloomreach-secret"
)

// DefaultAsyncDelay is how long SFMC rows and Batch.com requests take.
const DefaultAsyncDelay = time.Second

// RateLimits are requests per second per vendor; 0 disables a limit.
type RateLimits struct {
	SFMC       float64 `json:"sfmc"`
	Batch      float64 `json:"batch"`
	Bloomreach float64 `json:"bloomreach"`
}

// Settings are what POST /_sim/faults changes; the same as the flags of
// cmd/vendorsim. Durations are strings such as "250ms" (or seconds).
type Settings struct {
	simkit.Faults                     // error_rate, rate_429, reset_rate, latency
	RateLimits        RateLimits      `json:"rate_limits"`
	AsyncDelay        simkit.Duration `json:"async_delay"`
	SuppressionWindow simkit.Duration `json:"suppression_window"` // SFMC; at most 30 days
}

// Validate checks the settings.
func (s Settings) Validate() error {
	if err := s.Faults.Validate(); err != nil {
		return err
	}
	switch {
	case s.RateLimits.SFMC < 0 || s.RateLimits.Batch < 0 || s.RateLimits.Bloomreach < 0:
		return errors.New("rate limits must not be negative")
	case s.AsyncDelay < 0:
		return errors.New("async delay must not be negative")
	case s.SuppressionWindow < 0 || time.Duration(s.SuppressionWindow) > sfmc.MaxSuppressionWindow:
		return fmt.Errorf("suppression window must be between 0 and %v", sfmc.MaxSuppressionWindow)
	}
	return nil
}

// Options configure a Server.
type Options struct {
	Settings
	Seed uint64
	Now  func() time.Time // time.Now when nil; tests inject a manual clock
	// Credentials the simulators insist on; empty accepts any non-empty one.
	SFMCKey                           string
	BatchRESTKey                      string
	BloomreachKeyID, BloomreachSecret string
	BloomreachProjects                []string // project tokens allowed (others 403); empty allows any
	Logger                            *slog.Logger
}

// DefaultOptions are the vendors' default rate limits, a one-second async
// delay and the 14-day suppression window, with no credentials required.
func DefaultOptions() Options {
	return Options{Settings: Settings{
		RateLimits:        RateLimits{SFMC: sfmc.DefaultRateLimit, Batch: batch.DefaultRateLimit, Bloomreach: bloomreach.DefaultRateLimit},
		AsyncDelay:        simkit.Duration(DefaultAsyncDelay),
		SuppressionWindow: simkit.Duration(sfmc.DefaultSuppressionWindow),
	}}
}

// DemoOptions are DefaultOptions that insist on the Demo* credentials.
func DemoOptions() Options {
	o := DefaultOptions()
	o.SFMCKey, o.BatchRESTKey = DemoSFMCKey, DemoBatchRESTKey
	o.BloomreachKeyID, o.BloomreachSecret = DemoBloomreachKeyID, DemoBloomreachSecret
	return o
}

// Server is the three simulators and the control API.
type Server struct {
	sfmc       *sfmc.Sim
	batch      *batch.Sim
	bloomreach *bloomreach.Sim
	log        *slog.Logger
	handler    http.Handler

	mu       sync.Mutex
	settings Settings
}

// New checks o and returns a Server.
func New(o Options) (*Server, error) {
	if err := o.Settings.Validate(); err != nil {
		return nil, fmt.Errorf("vendorsim: %w", err)
	}
	base := func(seed uint64, rps float64) simkit.Options {
		return simkit.Options{Seed: seed, Now: o.Now, Faults: o.Faults, RateLimit: rps, AsyncDelay: time.Duration(o.AsyncDelay)}
	}
	s := &Server{
		sfmc: sfmc.NewSim(sfmc.SimOptions{Options: base(o.Seed, o.RateLimits.SFMC), APIKey: o.SFMCKey,
			SuppressionWindow: time.Duration(o.SuppressionWindow)}),
		batch: batch.NewSim(batch.SimOptions{Options: base(o.Seed+1, o.RateLimits.Batch), RESTKey: o.BatchRESTKey}),
		bloomreach: bloomreach.NewSim(bloomreach.SimOptions{Options: base(o.Seed+2, o.RateLimits.Bloomreach),
			KeyID: o.BloomreachKeyID, Secret: o.BloomreachSecret, Projects: o.BloomreachProjects}),
		log:      o.Logger,
		settings: o.Settings,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v2/", s.sfmc)
	mux.Handle("/1.0/", s.batch)
	mux.Handle("/data/v2/", s.bloomreach)
	mux.HandleFunc("GET /_sim/state", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, s.State())
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusOK, s.Settings())
	})
	mux.HandleFunc("POST /_sim/faults", s.postFaults)
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		s.log.Info("simulator state reset")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		simkit.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "message": "no simulator serves " + r.URL.Path})
	})
	s.handler = mux
	return s, nil
}

// Handler serves the vendors and the control API.
func (s *Server) Handler() http.Handler { return s.handler }

// State is the body of GET /_sim/state.
type State struct {
	SFMC       map[string]map[string]sfmc.ProfileState `json:"sfmc"`
	Batch      map[string]map[string]batch.UserState   `json:"batch"`
	Bloomreach map[string]bloomreach.ProjectState      `json:"bloomreach"`
}

// State returns every vendor's state now.
func (s *Server) State() State {
	return State{SFMC: s.sfmc.State(), Batch: s.batch.State(), Bloomreach: s.bloomreach.State()}
}

// Stats returns the counters per vendor kind.
func (s *Server) Stats() map[string]simkit.Stats {
	return map[string]simkit.Stats{"sfmc": s.sfmc.Stats(), "batch": s.batch.Stats(), "bloomreach": s.bloomreach.Stats()}
}

// Reset forgets every vendor's state and zeroes the counters.
func (s *Server) Reset() {
	s.sfmc.Reset()
	s.batch.Reset()
	s.bloomreach.Reset()
}

// Settings returns the settings in force.
func (s *Server) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// Apply puts new settings in force.
func (s *Server) Apply(st Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings = st
	for _, v := range []struct {
		base *simkit.Base
		rps  float64
	}{{s.sfmc.Base, st.RateLimits.SFMC}, {s.batch.Base, st.RateLimits.Batch}, {s.bloomreach.Base, st.RateLimits.Bloomreach}} {
		v.base.SetFaults(st.Faults)
		v.base.SetRateLimit(v.rps)
		v.base.SetAsyncDelay(time.Duration(st.AsyncDelay))
	}
	s.sfmc.SetSuppressionWindow(time.Duration(st.SuppressionWindow))
	return nil
}

func (s *Server) postFaults(w http.ResponseWriter, r *http.Request) {
	st := s.Settings()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	if err == nil {
		err = s.Apply(st)
	}
	if err != nil {
		simkit.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "bad_request", "message": err.Error()})
		return
	}
	s.log.Info("simulator settings changed", "settings", string(body))
	simkit.WriteJSON(w, http.StatusOK, st)
}

// Serve answers on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	defer stop()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("vendorsim: %w", err)
	}
	return nil
}

// StartLoopback serves a new Server on a free 127.0.0.1 port until ctx
// ends and returns it with its base URL ("http://127.0.0.1:PORT").
func StartLoopback(ctx context.Context, o Options) (*Server, string, error) {
	s, err := New(o)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("vendorsim: listen: %w", err)
	}
	go func() {
		if err := s.Serve(ctx, ln); err != nil {
			s.log.Error("simulator stopped", "err", err)
		}
	}()
	return s, "http://" + ln.Addr().String(), nil
}

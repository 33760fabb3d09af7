package batch

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/privsync/privsync/executor/vendorapi/simkit"
)

// Simulator defaults.
const (
	DefaultRateLimit  = 20                  // requests per second
	DefaultRequestTTL = 25 * 24 * time.Hour // done requests leave the API after this
	dateLayout        = "2006-01-02T15:04:05.000"
)

// The vendor's errors: HTTP status, error code and name, as the seed lists
// them; 409 and 429 have no documented code.
type apiError struct {
	status, code int
	name         string
}

var (
	errAuth        = apiError{http.StatusUnauthorized, 10, "AUTHENTICATION_INVALID"}
	errRoute       = apiError{http.StatusNotFound, 20, "ROUTE_NOT_FOUND"}
	errMissing     = apiError{http.StatusBadRequest, 30, "MISSING_PARAMETER"}
	errMalformed   = apiError{http.StatusBadRequest, 31, "MALFORMED_PARAMETER"}
	errJSON        = apiError{http.StatusBadRequest, 32, "MALFORMED_JSON_BODY"}
	errServer      = apiError{http.StatusInternalServerError, 1, "SERVER_ERROR"}
	errMaintenance = apiError{http.StatusServiceUnavailable, 2, "MAINTENANCE_ERROR"}
	errConflict    = apiError{http.StatusConflict, 0, "CONFLICT"}
	errTooMany     = apiError{http.StatusTooManyRequests, 0, "TOO_MANY_REQUESTS"}
)

func (e apiError) write(w http.ResponseWriter, message string) {
	simkit.WriteJSON(w, e.status, struct {
		Code    int    `json:"code,omitempty"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}{e.code, e.name, message})
}

// writeError answers the faults and limits of simkit in the vendor's shape.
func writeError(w http.ResponseWriter, status int, message string) {
	for _, e := range []apiError{errServer, errMaintenance, errTooMany, errAuth, errRoute} {
		if e.status == status {
			e.write(w, message)
			return
		}
	}
	errServer.write(w, message)
}

// SimOptions configures a Sim.
type SimOptions struct {
	simkit.Options
	RESTKey    string        // the X-Authorization accepted; "" accepts any non-empty one
	RequestTTL time.Duration // DefaultRequestTTL when zero
}

// Sim is the Batch.com GDPR API as an http.Handler, with one state per app
// API key.
type Sim struct {
	*simkit.Base
	restKey string
	ttl     time.Duration

	mu   sync.Mutex
	apps map[string]*app
}

type app struct {
	byToken map[string]*request
	order   []*request
}

type request struct {
	token, reqType, idType, idValue string
	created, completes              time.Time
	fail, slow, expire              bool
}

func (r *request) done(now time.Time) bool { return !r.slow && !now.Before(r.completes) }

// visible reports whether the API still knows the request.
func (r *request) visible(now time.Time, ttl time.Duration) bool {
	if !r.done(now) {
		return true
	}
	return !r.expire && now.Before(r.created.Add(ttl))
}

// NewSim returns a simulator.
func NewSim(o SimOptions) *Sim {
	s := &Sim{restKey: o.RESTKey, ttl: o.RequestTTL, apps: map[string]*app{}}
	if s.ttl <= 0 {
		s.ttl = DefaultRequestTTL
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /1.0/{app}/gdpr/request", s.create)
	mux.HandleFunc("GET /1.0/{app}/gdpr/request/{token}", s.status)
	mux.HandleFunc("GET /1.0/{app}/gdpr/requests", s.list)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		errRoute.write(w, "no route "+r.Method+" "+r.URL.Path)
	})
	s.Base = simkit.NewBase("batch", o.Options, writeError, simkit.RequireAuth(s.authorized, func(w http.ResponseWriter) {
		errAuth.write(w, "invalid or missing X-Authorization REST API key")
	}, mux))
	return s
}

func (s *Sim) authorized(r *http.Request) bool {
	return simkit.SecretOK(r.Header.Get("X-Authorization"), s.restKey)
}

// Reset forgets every app and zeroes the counters.
func (s *Sim) Reset() {
	s.mu.Lock()
	s.apps = map[string]*app{}
	s.mu.Unlock()
	s.ResetStats()
}

// UserState is what the vendor did for one user.
type UserState struct {
	Reviews int  `json:"reviews"` // data reports delivered
	Removed bool `json:"removed"`
}

// State returns app API key → "<id type>:<id value>" → state, for
// /_sim/state; a user with only pending or failed requests shows zeros.
func (s *Sim) State() map[string]map[string]UserState {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]UserState{}
	for key, a := range s.apps {
		users := map[string]UserState{}
		for _, r := range a.order {
			u := users[r.idType+":"+r.idValue]
			if r.done(now) && !r.fail {
				if r.reqType == "review" {
					u.Reviews++
				} else {
					u.Removed = true
				}
			}
			users[r.idType+":"+r.idValue] = u
		}
		out[key] = users
	}
	return out
}

type createBody struct {
	RequestType string `json:"request_type"`
	CallbackURL string `json:"callback_url"`
	ID          struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"id"`
}

// parseCreate checks a request body as the vendor documents it.
func parseCreate(body []byte) (createBody, apiError, string) {
	var c createBody
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return c, errJSON, "the body is not a JSON object"
	}
	var id map[string]json.RawMessage
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		into any
		opt  bool
	}{
		{"request_type", top["request_type"], &c.RequestType, false},
		{"callback_url", top["callback_url"], &c.CallbackURL, true},
		{"id", top["id"], &id, false},
	} {
		if f.raw == nil || string(f.raw) == "null" {
			if f.opt {
				continue
			}
			return c, errMissing, f.name + " is required"
		}
		if err := json.Unmarshal(f.raw, f.into); err != nil {
			return c, errMalformed, f.name + " has the wrong type"
		}
	}
	for _, f := range []struct {
		name string
		into *string
	}{{"type", &c.ID.Type}, {"value", &c.ID.Value}} {
		name, into := f.name, f.into
		raw := id[name]
		if raw == nil || string(raw) == "null" {
			return c, errMissing, "id." + name + " is required"
		}
		if err := json.Unmarshal(raw, into); err != nil {
			return c, errMalformed, "id." + name + " must be a string"
		}
	}
	switch {
	case c.RequestType != "review" && c.RequestType != "remove":
		return c, errMalformed, "request_type must be review or remove"
	case c.ID.Type != "custom_id" && c.ID.Type != "advertising_id" && c.ID.Type != "install_id":
		return c, errMalformed, "id.type must be custom_id, advertising_id or install_id"
	case c.ID.Value == "":
		return c, errMissing, "id.value is required"
	}
	if c.CallbackURL != "" {
		u, err := url.Parse(c.CallbackURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return c, errMalformed, "callback_url must be an https URL"
		}
	}
	return c, apiError{}, ""
}

func (s *Sim) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			errJSON.write(w, "body too large")
			return
		}
		errServer.write(w, "reading body")
		return
	}
	c, e, msg := parseCreate(body)
	if msg != "" {
		e.write(w, msg)
		return
	}
	now, delay, token := s.Now(), s.AsyncDelay(), s.NewID()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[r.PathValue("app")]
	if a == nil {
		a = &app{byToken: map[string]*request{}}
		s.apps[r.PathValue("app")] = a
	}
	for _, old := range a.order {
		if old.idType == c.ID.Type && old.idValue == c.ID.Value && !old.done(now) {
			errConflict.write(w, "this user is already being processed")
			return
		}
	}
	req := &request{token: token, reqType: c.RequestType, idType: c.ID.Type, idValue: c.ID.Value,
		created: now, completes: now.Add(delay),
		fail:   simkit.Is(c.ID.Value, simkit.MagicFail),
		slow:   simkit.Is(c.ID.Value, simkit.MagicSlow),
		expire: simkit.Is(c.ID.Value, simkit.MagicExpire)}
	a.byToken[token] = req
	a.order = append(a.order, req)
	simkit.WriteJSON(w, http.StatusAccepted, map[string]string{"token": token})
}

// StatusObject is the vendor's view of one request.
type StatusObject struct {
	RequestID   string `json:"request_id"`
	RequestDate string `json:"request_date"`
	Status      string `json:"status"`
	RequestType string `json:"request_type"`
	TriggerType string `json:"trigger_type"`
	ID          struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"id"`
	Error   string `json:"error,omitempty"`
	DataURL string `json:"data_url,omitempty"`
}

func (r *request) object(now time.Time) StatusObject {
	o := StatusObject{RequestID: r.token, RequestDate: r.created.UTC().Format(dateLayout), Status: "pending",
		RequestType: r.reqType, TriggerType: "api"}
	o.ID.Type, o.ID.Value = r.idType, r.idValue
	if r.done(now) {
		o.Status = "done"
		switch {
		case r.fail:
			o.Error = "user not found"
		case r.reqType == "review":
			o.DataURL = "https://gdpr-reports.vendorsim.invalid/" + r.token + ".zip"
		}
	}
	return o
}

func (s *Sim) status(w http.ResponseWriter, r *http.Request) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.apps[r.PathValue("app")]; a != nil {
		if req := a.byToken[r.PathValue("token")]; req != nil && req.visible(now, s.ttl) {
			simkit.WriteJSON(w, http.StatusOK, req.object(now))
			return
		}
	}
	errRoute.write(w, "unknown request token")
}

func (s *Sim) list(w http.ResponseWriter, r *http.Request) {
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []StatusObject{}
	if a := s.apps[r.PathValue("app")]; a != nil {
		for _, req := range a.order {
			if req.visible(now, s.ttl) {
				out = append(out, req.object(now))
			}
		}
	}
	simkit.WriteJSON(w, http.StatusOK, out)
}

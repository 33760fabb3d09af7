package bloomreach

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"sync"

	"github.com/privsync/privsync/executor/vendorapi/simkit"
)

// DefaultRateLimit is the simulator's requests per second (the vendor
// publishes none for GDPR endpoints).
const DefaultRateLimit = 10

var internalIDRe = regexp.MustCompile(`^[0-9a-fA-F]{24}$`)

// SimOptions configures a Sim.
type SimOptions struct {
	simkit.Options
	// KeyID and Secret are the Basic credentials accepted; when empty, any
	// non-empty pair is.
	KeyID, Secret string
	// Projects are the project tokens the key may use (others get 403);
	// empty allows any.
	Projects []string
}

// Sim is the Bloomreach anonymize_bulk API as an http.Handler, holding the
// anonymized customer ids per project token.
type Sim struct {
	*simkit.Base
	keyID, secret string
	projects      []string

	mu         sync.Mutex
	anonymized map[string]map[string]bool // project → "name:value"
}

// NewSim returns a simulator.
func NewSim(o SimOptions) *Sim {
	s := &Sim{keyID: o.KeyID, secret: o.Secret, projects: o.Projects, anonymized: map[string]map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /data/v2/projects/{token}/customers/anonymize_bulk", s.bulk)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrors(w, http.StatusNotFound, []string{"no route " + r.Method + " " + r.URL.Path})
	})
	s.Base = simkit.NewBase("bloomreach", o.Options, writeError, simkit.RequireAuth(s.authorized, func(w http.ResponseWriter) {
		writeError(w, http.StatusUnauthorized, "access key not found")
	}, mux))
	return s
}

func (s *Sim) authorized(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	return ok && simkit.SecretOK(id, s.keyID) && simkit.SecretOK(secret, s.secret)
}

// The vendor's three error body shapes.
func writeError(w http.ResponseWriter, status int, message string) {
	simkit.WriteJSON(w, status, map[string]any{"error": message, "success": false})
}

func writeErrors(w http.ResponseWriter, status int, messages []string) {
	simkit.WriteJSON(w, status, map[string]any{"errors": messages, "success": false})
}

func writeFieldErrors(w http.ResponseWriter, status int, field, message string) {
	simkit.WriteJSON(w, status, map[string]any{"errors": map[string][]string{field: {message}}, "success": false})
}

// Reset forgets every project and zeroes the counters.
func (s *Sim) Reset() {
	s.mu.Lock()
	s.anonymized = map[string]map[string]bool{}
	s.mu.Unlock()
	s.ResetStats()
}

// ProjectState is what was anonymized in one project.
type ProjectState struct {
	Anonymized []string `json:"anonymized"` // "<id name>:<value>", "internal_id:<hex>"; sorted
}

// State returns project token → state, for /_sim/state.
func (s *Sim) State() map[string]ProjectState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]ProjectState{}
	for p, ids := range s.anonymized {
		list := make([]string, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		sort.Strings(list)
		out[p] = ProjectState{Anonymized: list}
	}
	return out
}

// customerIDs checks one customer and returns its ids as "name:value".
func customerIDs(raw json.RawMessage) ([]string, error) {
	var c struct {
		CustomerIDs map[string]string `json:"customer_ids"`
		InternalID  *string           `json:"internal_id"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("want {\"customer_ids\": {name: value}} or {\"internal_id\": hex}")
	}
	switch {
	case c.InternalID != nil && c.CustomerIDs != nil:
		return nil, fmt.Errorf("give customer_ids or internal_id, not both")
	case c.InternalID != nil:
		if !internalIDRe.MatchString(*c.InternalID) {
			return nil, fmt.Errorf("internal_id must be 24 hex digits")
		}
		return []string{"internal_id:" + *c.InternalID}, nil
	case len(c.CustomerIDs) == 0:
		return nil, fmt.Errorf("customer_ids or internal_id is required")
	}
	var ids []string
	for name, v := range c.CustomerIDs {
		if name == "" || v == "" {
			return nil, fmt.Errorf("customer_ids needs a name and a value")
		}
		ids = append(ids, name+":"+v)
	}
	sort.Strings(ids)
	return ids, nil
}

func (s *Sim) bulk(w http.ResponseWriter, r *http.Request) {
	project := r.PathValue("token")
	if len(s.projects) > 0 && !slices.Contains(s.projects, project) {
		simkit.WriteJSON(w, http.StatusForbidden, map[string]any{"errors": map[string][]string{"_global": {"access key has no access to project " + project}}, "success": false})
		return
	}
	var body struct {
		Customers []json.RawMessage `json:"customers"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&body); err != nil {
		writeErrors(w, http.StatusBadRequest, []string{"malformed JSON body"})
		return
	}
	switch n := len(body.Customers); {
	case n == 0:
		writeFieldErrors(w, http.StatusBadRequest, "customers", "at least one customer is required")
		return
	case n > MaxCustomers:
		writeFieldErrors(w, http.StatusBadRequest, "customers", fmt.Sprintf("at most %d customers per bulk, got %d", MaxCustomers, n))
		return
	}
	var all, failing []string
	for i, raw := range body.Customers {
		ids, err := customerIDs(raw)
		if err != nil {
			writeFieldErrors(w, http.StatusBadRequest, "_global", fmt.Sprintf("customers[%d]: %v", i, err))
			return
		}
		for _, id := range ids {
			if simkit.Is(id, simkit.MagicFail) {
				failing = append(failing, "customer "+id+" cannot be anonymized")
			}
		}
		all = append(all, ids...)
	}
	if len(failing) > 0 {
		writeErrors(w, http.StatusBadRequest, failing)
		return
	}
	bulkID := s.NewID()
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.anonymized[project]
	if done == nil {
		done = map[string]bool{}
		s.anonymized[project] = done
	}
	for _, id := range all {
		done[id] = true
	}
	simkit.WriteJSON(w, http.StatusOK, map[string]any{"success": true, "bulk_id": bulkID})
}

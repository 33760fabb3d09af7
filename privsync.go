// Package privsync holds the domain types that every part of the job shares:
// what a desired-state row says, the vendor kinds, the operations sent to
// vendors and the outcomes recorded for them. It depends on nothing but the
// standard library, so ingest, planner, ledger and executor can all speak it
// without depending on each other.
package privsync

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is a vendor kind: what API a configured vendor speaks.
type Kind string

// The vendor kinds privsync knows.
const (
	KindSFMC       Kind = "sfmc"
	KindBatch      Kind = "batch"
	KindBloomreach Kind = "bloomreach"
)

// Kinds lists every known vendor kind.
var Kinds = []Kind{KindSFMC, KindBatch, KindBloomreach}

// Valid reports whether k is a known vendor kind.
func (k Kind) Valid() bool {
	switch k {
	case KindSFMC, KindBatch, KindBloomreach:
		return true
	}
	return false
}

// Batch.com id types.
var batchIDTypes = []string{"custom_id", "advertising_id", "install_id"}

var (
	internalIDRe   = regexp.MustCompile(`^[0-9a-fA-F]{24}$`)
	externalNameRe = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)
)

// CheckID reports whether a subject id of the given id type is acceptable to
// a vendor of kind k. The error message says what was expected.
func (k Kind) CheckID(idType, subjectID string) error {
	switch k {
	case KindSFMC:
		if idType != "" {
			return fmt.Errorf("sfmc profiles take no id_type (leave it empty), got %q", idType)
		}
	case KindBatch:
		for _, t := range batchIDTypes {
			if idType == t {
				return nil
			}
		}
		return fmt.Errorf("batch id_type must be one of %s", strings.Join(batchIDTypes, ", "))
	case KindBloomreach:
		if idType == "" {
			return fmt.Errorf("bloomreach needs an id_type: an external id name (e.g. registered) or internal_id")
		}
		if idType == "internal_id" {
			if !internalIDRe.MatchString(subjectID) {
				return fmt.Errorf("bloomreach internal_id must be 24 hex digits")
			}
			return nil
		}
		if !externalNameRe.MatchString(idType) {
			return fmt.Errorf("bloomreach id_type must be an external id name of letters, digits, '_', '.' or '-'")
		}
	default:
		return fmt.Errorf("unknown vendor kind %q", string(k))
	}
	return nil
}

// Restrictions is a set of processing restrictions (a bit set).
type Restrictions uint8

// The restriction flags, in canonical order.
const (
	DoNotTrack Restrictions = 1 << iota
	DoNotProfile
	DoNotProcess
)

var restrictionNames = [...]string{"do_not_track", "do_not_profile", "do_not_process"}

// Names returns the restriction names in canonical order; never nil, so an
// empty set encodes as [] (the SFMC "clear everything" array).
func (r Restrictions) Names() []string {
	names := make([]string, 0, 3)
	for i, n := range restrictionNames {
		if r&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return names
}

// String joins the names with '|', as the input column writes them.
func (r Restrictions) String() string { return strings.Join(r.Names(), "|") }

// ParseRestriction parses one restriction name.
func ParseRestriction(name string) (Restrictions, error) {
	for i, n := range restrictionNames {
		if name == n {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("unknown restriction %q (expected do_not_track, do_not_profile or do_not_process)", name)
}

// ParseRestrictions parses a '|'-separated list; the empty string is the
// empty set. Spaces around names are ignored; repeats are harmless.
func ParseRestrictions(s string) (Restrictions, error) {
	var r Restrictions
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	for _, part := range strings.Split(s, "|") {
		f, err := ParseRestriction(strings.TrimSpace(part))
		if err != nil {
			return 0, err
		}
		r |= f
	}
	return r, nil
}

// Erasure is what a row asks for a subject's data.
type Erasure uint8

// Erasure requests.
const (
	EraseNone Erasure = iota
	EraseDelete
	EraseSuppress
)

func (e Erasure) String() string {
	switch e {
	case EraseDelete:
		return "delete"
	case EraseSuppress:
		return "suppress"
	}
	return ""
}

// ParseErasure parses the erasure column.
func ParseErasure(s string) (Erasure, error) {
	switch strings.TrimSpace(s) {
	case "":
		return EraseNone, nil
	case "delete":
		return EraseDelete, nil
	case "suppress":
		return EraseSuppress, nil
	}
	return 0, fmt.Errorf("erasure must be empty, delete or suppress")
}

// Key identifies a subject at one configured vendor.
type Key struct {
	Vendor    string // the vendor's name in the config, e.g. "batch-ios"
	IDType    string
	SubjectID string
}

// Row is one validated desired-state row of the input.
type Row struct {
	File string // the input file it came from ("-" for standard input)
	Line int64  // its row number: CSV counts the header as row 1, Parquet counts from 1

	Key
	Restrictions  Restrictions
	Erasure       Erasure
	AccessRequest string
	UpdatedAt     time.Time // zero when the row has none
}

// RowError says why one input row was rejected and where it stands.
type RowError struct {
	File   string
	Line   int64
	Column string // canonical column name; empty when the row as a whole is at fault
	Value  string
	Reason string

	// Vendor and SubjectID are the row's raw values of those columns (empty
	// when absent), so the same bad row can be recognised on the next run.
	Vendor    string
	SubjectID string
}

func (e *RowError) Error() string {
	loc := fmt.Sprintf("%s: row %d", e.File, e.Line)
	if e.Column != "" {
		loc += ", column " + e.Column
	}
	if e.Value != "" {
		return fmt.Sprintf("%s: %s (got %q)", loc, e.Reason, e.Value)
	}
	return loc + ": " + e.Reason
}

// Operation is one change a vendor is asked to make.
type Operation string

// The operations, as the audit report names them.
const (
	OpRestrict           Operation = "restrict"             // sfmc: declarative restriction array
	OpRTBFDelete         Operation = "rtbf_delete"          // sfmc
	OpRTBFSuppress       Operation = "rtbf_suppress"        // sfmc
	OpRemoveRTBFSuppress Operation = "remove_rtbf_suppress" // sfmc
	OpReview             Operation = "review"               // batch: data report
	OpRemove             Operation = "remove"               // batch: erasure
	OpAnonymize          Operation = "anonymize"            // bloomreach: erasure
)

// Outcome is what became of one (vendor, subject, operation).
type Outcome string

// The outcomes of the audit report.
const (
	OutcomeCompleted   Outcome = "completed"   // the vendor confirmed it
	OutcomeAccepted    Outcome = "accepted"    // accepted by a vendor with no status endpoint
	OutcomeFailed      Outcome = "failed"      // the vendor said no, or retries ran out
	OutcomeRejected    Outcome = "rejected"    // the input row was invalid
	OutcomeUnsupported Outcome = "unsupported" // the vendor kind cannot do what the row asks
	OutcomeConflict    Outcome = "conflict"    // the row asks to undo an erasure
	OutcomeExpired     Outcome = "expired"     // the vendor forgot the request before it was confirmed
	OutcomePending     Outcome = "pending"     // not final when the run ended
)

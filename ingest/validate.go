package ingest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/privsync/privsync"
)

// field is a canonical input column.
type field int

const (
	fVendor field = iota
	fSubjectID
	fIDType
	fRestrictions
	fErasure
	fAccessRequest
	fUpdatedAt
	numFields
)

// canonicalNames are the canonical column names, indexed by field.
var canonicalNames = [numFields]string{
	"vendor", "subject_id", "id_type", "restrictions", "erasure", "access_request", "updated_at",
}

// MaxSubjectIDLen is the longest subject_id accepted, in bytes.
const MaxSubjectIDLen = 256

// maxValueLen caps the value quoted in a RowError.
const maxValueLen = 300

// The reasons of row rejects that are not built from a domain error.
const (
	ReasonInvalidUTF8     = "invalid UTF-8"
	ReasonMissingSubject  = "missing subject_id"
	ReasonSubjectSpaces   = "subject_id has leading or trailing spaces"
	ReasonSubjectControl  = "subject_id contains a control character"
	ReasonBadUpdatedAt    = "updated_at must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z"
	reasonSubjectTooLong  = "subject_id is longer than 256 bytes"
	reasonUnknownVendor   = "unknown vendor"
	reasonMissingVendor   = "missing vendor"
	reasonFieldCountFmt   = "wrong number of fields: %d, the header has %d"
	maxCachedIDTypes      = 1024
	checkContextEveryRows = 8192
)

// idTypeCheck is the cached verdict of Kind.CheckID for one id_type.
type idTypeCheck struct {
	interned string
	reason   string // empty when accepted
}

type vendorInfo struct {
	name string
	kind privsync.Kind
	ids  map[string]idTypeCheck
}

// validator turns raw column values into rows or rejects. It interns the
// vendor and id_type strings and caches id_type verdicts, so the common path
// allocates nothing.
type validator struct {
	vendors    map[string]*vendorInfo
	configured string
}

func newValidator(vendors map[string]privsync.Kind) (*validator, error) {
	if len(vendors) == 0 {
		return nil, fmt.Errorf("ingest: no vendors configured")
	}
	v := &validator{vendors: make(map[string]*vendorInfo, len(vendors))}
	names := slices.Sorted(maps.Keys(vendors))
	for _, n := range names {
		k := vendors[n]
		if !k.Valid() {
			return nil, fmt.Errorf("ingest: vendor %q has unknown kind %q", n, string(k))
		}
		v.vendors[n] = &vendorInfo{name: n, kind: k, ids: make(map[string]idTypeCheck)}
	}
	v.configured = "configured: " + strings.Join(names, ", ")
	return v, nil
}

// rawRow is one input row before validation.
type rawRow struct {
	vals  [numFields]string
	at    time.Time // updated_at read from a Parquet TIMESTAMP column
	hasAt bool
}

// validate fills r from raw, or fills rej and returns false. r.File, r.Line
// and rej.File, rej.Line are the caller's.
func (v *validator) validate(raw *rawRow, r *privsync.Row, rej *privsync.RowError) bool {
	vals := &raw.vals
	for f := range numFields {
		if !utf8.ValidString(vals[f]) {
			return reject(rej, f, vals[f], ReasonInvalidUTF8)
		}
	}
	vendor := vals[fVendor]
	vi := v.vendors[vendor]
	if vi == nil {
		if vendor == "" {
			return reject(rej, fVendor, "", reasonMissingVendor+" ("+v.configured+")")
		}
		return reject(rej, fVendor, vendor, reasonUnknownVendor+" ("+v.configured+")")
	}
	subject := vals[fSubjectID]
	if reason := checkSubject(subject); reason != "" {
		return reject(rej, fSubjectID, subject, reason)
	}
	idType := vals[fIDType]
	c, ok := vi.ids[idType]
	if !ok {
		c = checkIDType(vi.kind, idType)
		if len(vi.ids) < maxCachedIDTypes {
			vi.ids[c.interned] = c
		}
	}
	if c.reason != "" {
		return reject(rej, fIDType, idType, c.reason)
	}
	if vi.kind == privsync.KindBloomreach && c.interned == "internal_id" && !isHex24(subject) {
		if err := vi.kind.CheckID(idType, subject); err != nil {
			return reject(rej, fSubjectID, subject, err.Error())
		}
	}
	restr, err := parseRestrictions(vals[fRestrictions])
	if err != nil {
		return reject(rej, fRestrictions, vals[fRestrictions], err.Error())
	}
	erasure, err := privsync.ParseErasure(vals[fErasure])
	if err != nil {
		return reject(rej, fErasure, vals[fErasure], err.Error())
	}
	var at time.Time
	if raw.hasAt {
		at = raw.at
	} else if s := vals[fUpdatedAt]; s != "" {
		at, err = time.Parse(time.RFC3339, s)
		if err != nil {
			return reject(rej, fUpdatedAt, s, ReasonBadUpdatedAt)
		}
		at = at.UTC()
	}
	r.Key = privsync.Key{Vendor: vi.name, IDType: c.interned, SubjectID: subject}
	r.Restrictions = restr
	r.Erasure = erasure
	r.AccessRequest = vals[fAccessRequest]
	r.UpdatedAt = at
	return true
}

func reject(rej *privsync.RowError, f field, value, reason string) bool {
	if len(value) > maxValueLen {
		value = value[:maxValueLen] + "..."
	}
	rej.Column = canonicalNames[f]
	rej.Value = strings.ToValidUTF8(value, "\uFFFD")
	rej.Reason = reason
	return false
}

func checkIDType(k privsync.Kind, idType string) idTypeCheck {
	c := idTypeCheck{interned: strings.Clone(idType)}
	// The subject id matters only for bloomreach internal ids, checked per row.
	subject := ""
	if k == privsync.KindBloomreach && idType == "internal_id" {
		subject = "000000000000000000000000"
	}
	if err := k.CheckID(idType, subject); err != nil {
		c.reason = err.Error()
	}
	return c
}

func isHex24(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// checkSubject returns why a subject id is unacceptable, or "".
// UTF-8 validity is checked before.
func checkSubject(s string) string {
	if s == "" {
		return ReasonMissingSubject
	}
	if len(s) > MaxSubjectIDLen {
		return fmt.Sprintf("%s (%d)", reasonSubjectTooLong, len(s))
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return ReasonSubjectSpaces
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return ReasonSubjectControl
		}
		if c >= utf8.RuneSelf {
			for _, r := range s[i:] {
				if unicode.IsControl(r) {
					return ReasonSubjectControl
				}
			}
			break
		}
	}
	return ""
}

// parseRestrictions is privsync.ParseRestrictions without the allocations
// of strings.Split.
func parseRestrictions(s string) (privsync.Restrictions, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	var r privsync.Restrictions
	for rest, more := s, true; more; {
		var part string
		part, rest, more = strings.Cut(rest, "|")
		f, err := privsync.ParseRestriction(strings.TrimSpace(part))
		if err != nil {
			return 0, err
		}
		r |= f
	}
	return r, nil
}

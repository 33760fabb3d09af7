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

// Reasons of row rejects that are always spelled the same. The others are
// built from the value at fault or from the privsync parsers' errors.
const (
	ReasonInvalidUTF8    = "invalid UTF-8"
	ReasonMissingSubject = "missing subject_id"
	ReasonSubjectSpaces  = "subject_id has leading or trailing spaces"
	ReasonSubjectControl = "subject_id contains a control character"
	ReasonBadUpdatedAt   = "updated_at must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z"
)

const (
	reasonSubjectTooLong = "subject_id is longer than 256 bytes"
	reasonUnknownVendor  = "unknown vendor"
	reasonMissingVendor  = "missing vendor"
	reasonFieldCountFmt  = "wrong number of fields: %d, the header has %d"

	maxCachedIDTypes = 1024 // id types cached per vendor
	linearSearchMax  = 8    // vendors and id types searched before a map
)

// idTypeCheck is the cached verdict of Kind.CheckID for one id_type.
type idTypeCheck struct {
	interned string
	reason   string // empty when accepted
}

type vendorInfo struct {
	name  string
	kind  privsync.Kind
	ids   map[string]idTypeCheck
	first []idTypeCheck // the first id types seen, searched before the map
}

// vendor returns the configured vendor of that name, or nil.
func (v *validator) vendor(name string) *vendorInfo {
	for _, vi := range v.list {
		if vi.name == name {
			return vi
		}
	}
	if len(v.list) < linearSearchMax {
		return nil
	}
	return v.vendors[name]
}

// idType returns the verdict on an id_type for this vendor, cached.
func (vi *vendorInfo) idType(idType string) idTypeCheck {
	for _, c := range vi.first {
		if c.interned == idType {
			return c
		}
	}
	c, ok := vi.ids[idType]
	if ok {
		return c
	}
	c = checkIDType(vi.kind, idType)
	switch {
	case len(vi.first) < linearSearchMax:
		vi.first = append(vi.first, c)
	case len(vi.ids) < maxCachedIDTypes:
		vi.ids[c.interned] = c
	}
	return c
}

// validator turns raw column values into rows or rejects. It interns the
// vendor and id_type strings and caches id_type verdicts, so the common path
// allocates nothing.
type validator struct {
	vendors      map[string]*vendorInfo
	configured   string
	list         []*vendorInfo // searched first: faster than the map for a few vendors
	lastTimeText string
	lastTime     time.Time
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
		vi := &vendorInfo{name: n, kind: k, ids: make(map[string]idTypeCheck)}
		v.vendors[n] = vi
		if len(v.list) < linearSearchMax {
			v.list = append(v.list, vi)
		}
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
	// Values that parse are ASCII (or configured names): only the free-form
	// ones, and those that fail to parse, need a UTF-8 check.
	vendor := vals[fVendor]
	vi := v.vendor(vendor)
	if vi == nil {
		if !utf8.ValidString(vendor) {
			return reject(rej, fVendor, vendor, ReasonInvalidUTF8)
		}
		if vendor == "" {
			return reject(rej, fVendor, "", reasonMissingVendor+" ("+v.configured+")")
		}
		return reject(rej, fVendor, vendor, reasonUnknownVendor+" ("+v.configured+")")
	}
	subject := vals[fSubjectID]
	if !utf8.ValidString(subject) {
		return reject(rej, fSubjectID, subject, ReasonInvalidUTF8)
	}
	if reason := checkSubject(subject); reason != "" {
		return reject(rej, fSubjectID, subject, reason)
	}
	idType := vals[fIDType]
	c := vi.idType(idType)
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
		return rejectErr(rej, fRestrictions, vals[fRestrictions], err.Error())
	}
	erasure, err := privsync.ParseErasure(vals[fErasure])
	if err != nil {
		return rejectErr(rej, fErasure, vals[fErasure], err.Error())
	}
	access := vals[fAccessRequest]
	if !utf8.ValidString(access) {
		return reject(rej, fAccessRequest, access, ReasonInvalidUTF8)
	}
	var at time.Time
	if raw.hasAt {
		var reason string
		if at, reason = CheckUpdatedAt(raw.at); reason != "" {
			return reject(rej, fUpdatedAt, raw.at.UTC().Format(time.RFC3339Nano), reason)
		}
	} else if s := vals[fUpdatedAt]; s != "" {
		var reason string
		if at, reason = v.parseTime(s); reason != "" {
			return rejectErr(rej, fUpdatedAt, s, reason)
		}
	}
	r.Key = privsync.Key{Vendor: vi.name, IDType: c.interned, SubjectID: subject}
	r.Restrictions = restr
	r.Erasure = erasure
	r.AccessRequest = access
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

// rejectErr rejects a value that failed to parse, saying first if it is not
// even UTF-8.
func rejectErr(rej *privsync.RowError, f field, value, reason string) bool {
	if !utf8.ValidString(value) {
		reason = ReasonInvalidUTF8
	}
	return reject(rej, f, value, reason)
}

// parseTime parses an RFC 3339 updated_at into UTC and applies
// CheckUpdatedAt, returning the reason when the row must be rejected; it
// remembers the last accepted value, as exports often repeat it.
func (v *validator) parseTime(s string) (time.Time, string) {
	if s == v.lastTimeText {
		return v.lastTime, ""
	}
	t, ok := parseUTCSeconds(s)
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return time.Time{}, ReasonBadUpdatedAt
		}
	}
	t, reason := CheckUpdatedAt(t)
	if reason != "" {
		return time.Time{}, reason
	}
	v.lastTimeText, v.lastTime = s, t
	return t, ""
}

// parseUTCSeconds parses the common form 2006-01-02T15:04:05Z quickly; ok is
// false for anything else, which time.Parse then judges.
func parseUTCSeconds(s string) (time.Time, bool) {
	if len(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		x := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			x = x*10 + int(c-'0')
		}
		return x
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	if d > daysIn(mo, y) {
		return time.Time{}, false
	}
	return time.Unix(daysFromCivil(y, mo, d)*86400+int64(h*3600+mi*60+sec), 0).UTC(), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to a proleptic
// Gregorian date (Howard Hinnant's algorithm), for years 0 to 9999.
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func checkIDType(k privsync.Kind, idType string) idTypeCheck {
	c := idTypeCheck{interned: strings.Clone(idType)}
	if !utf8.ValidString(idType) {
		c.reason = ReasonInvalidUTF8
		return c
	}
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
				if isDisguising(r) {
					return ReasonSubjectControl
				}
			}
			break
		}
	}
	return ""
}

// isDisguising reports whether r is a control character or an invisible
// one that changes how an id reads: Unicode format characters (the
// bidirectional embeddings, overrides and isolates U+202A–U+202E and
// U+2066–U+2069, the direction marks, zero-width spaces and joiners, the
// byte order mark) and the line and paragraph separators.
func isDisguising(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
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

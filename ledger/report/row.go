// Package report writes and checks privsync's audit report: one CSV file per
// run, {report_dir}/{run_id}.csv, holding every outcome the ledger recorded
// for that run, in order, each row chained to the one before it by a SHA-256
// hash so that any edit, insertion or deletion shows.
//
// The report is written from the ledger's audit events, never from memory:
// events are committed to the ledger before they reach the file, so the file
// is always a prefix of the ledger's events for its run, and a Writer can
// complete a file cut short by a crash (or rebuild a lost one) byte for byte.
//
// A row's fields are the event's, with two changes so that every CSV reader
// and spreadsheet gives back exactly the bytes that were hashed:
//
//   - invalid UTF-8 and the unit separator U+001F (the hash's field
//     separator) become U+FFFD, and carriage returns become line feeds;
//   - a field starting with '=', '+', '-', '@', tab or carriage return gets a
//     leading apostrophe, so a spreadsheet shows it as text instead of
//     running it as a formula (subject ids come from outside).
//
// The hash of a row is the lowercase hex SHA-256 of its fields as written
// (after those changes, before CSV quoting), from seq to prev_hash, joined
// by U+001F; the first row's prev_hash is 64 zeros.
//
// Writer appends to a report (Open, then Sync after each batch of
// outcomes); Verify checks one; WriteSummary writes the run's
// {run_id}.summary.json beside it, chained to the previous run's summary
// and signed (SSHSIG) when given a key, with its renderings for people,
// .summary.md and .summary.html, from the embedded templates; VerifyDir
// checks a whole report directory and the chain of runs; Exporter writes
// the events of a run or of a subject for `privsync report export`.
package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/privsync/privsync/ledger"
)

// Columns are the report's columns, in order.
var Columns = []string{"seq", "run_id", "recorded_at", "vendor", "subject_id", "id_type", "operation",
	"restrictions", "outcome", "vendor_ref", "attempts", "detail", "prev_hash", "hash"}

// Column positions.
const (
	colSeq = iota
	colRunID
	colRecordedAt
	colVendor
	colSubjectID
	colIDType
	colOperation
	colRestrictions
	colOutcome
	colVendorRef
	colAttempts
	colDetail
	colPrevHash
	colHash
	numCols
)

// ZeroHash is the prev_hash of a report's first row.
var ZeroHash = strings.Repeat("0", 64)

// sep joins a row's fields for hashing.
const sep = "\x1f"

var normalizer = strings.NewReplacer("\r\n", "\n", "\r", "\n", sep, "\uFFFD")

// Safe returns s as the report writes it: with a leading apostrophe if it
// starts with a character a spreadsheet reads as the start of a formula
// ('=', '+', '-', '@', tab, carriage return), invalid UTF-8 and U+001F
// replaced by U+FFFD, and carriage returns turned into line feeds.
func Safe(s string) string {
	formula := formulaStart(s)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.ContainsAny(s, "\r"+sep) {
		s = normalizer.Replace(s)
	}
	if formula || formulaStart(s) {
		return "'" + s
	}
	return s
}

// formulaStart reports whether a spreadsheet could take s for a formula.
func formulaStart(s string) bool {
	if s == "" {
		return false
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	}
	return false
}

// rowHasher computes row hashes, reusing its buffers.
type rowHasher struct {
	buf []byte
	hex [2 * sha256.Size]byte
}

func newRowHasher() *rowHasher { return &rowHasher{} }

// hash returns the hash of a row's fields (seq to prev_hash).
func (r *rowHasher) hash(fields []string) string {
	r.buf = r.buf[:0]
	for i, f := range fields[:colHash] {
		if i > 0 {
			r.buf = append(r.buf, sep...)
		}
		r.buf = append(r.buf, f...)
	}
	sum := sha256.Sum256(r.buf)
	hex.Encode(r.hex[:], sum[:])
	return string(r.hex[:])
}

// fields renders an event as the report's fields after prev, hash included.
func (r *rowHasher) fields(dst []string, e *ledger.Event, prev string) []string {
	dst = append(dst[:0],
		strconv.FormatInt(e.Seq, 10),
		Safe(e.RunID),
		Safe(e.RecordedAt),
		Safe(e.Vendor),
		Safe(e.SubjectID),
		Safe(e.IDType),
		Safe(e.Operation),
		Safe(e.Restrictions),
		Safe(e.Outcome),
		Safe(e.VendorRef),
		Safe(strconv.Itoa(e.Attempts)),
		Safe(e.Detail),
		prev,
		"")
	dst[colHash] = r.hash(dst)
	return dst
}

// encoder encodes records exactly as encoding/csv writes them.
type encoder struct {
	buf bytes.Buffer
	w   *csv.Writer
}

func newEncoder() *encoder {
	e := &encoder{}
	e.w = csv.NewWriter(&e.buf)
	return e
}

// encode returns the bytes of one record, line end included; they are valid
// until the next call.
func (e *encoder) encode(rec []string) ([]byte, error) {
	e.buf.Reset()
	if err := e.w.Write(rec); err != nil {
		return nil, err
	}
	e.w.Flush()
	return e.buf.Bytes(), e.w.Error()
}

// headerLine is the report's first line.
var headerLine = []byte(strings.Join(Columns, ",") + "\n")

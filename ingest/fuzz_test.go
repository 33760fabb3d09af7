package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/bench/gen/gendata"
)

var fuzzVendors = map[string]privsync.Kind{
	"sfmc": privsync.KindSFMC, "batch-ios": privsync.KindBatch, "bloomreach": privsync.KindBloomreach,
}

// checkingHandler checks the invariants of what Read streams.
type checkingHandler struct {
	t        *testing.T
	lastLine int64
	rows     int64
	rejects  int64
}

func (h *checkingHandler) line(l int64, first int64) {
	if l < first || l <= h.lastLine {
		h.t.Fatalf("row number %d after %d", l, h.lastLine)
	}
	h.lastLine = l
}

func (h *checkingHandler) Row(r *privsync.Row) error {
	h.rows++
	h.line(r.Line, 1)
	kind, ok := fuzzVendors[r.Vendor]
	switch {
	case !ok:
		h.t.Fatalf("row of unknown vendor %q", r.Vendor)
	case r.SubjectID == "" || len(r.SubjectID) > MaxSubjectIDLen || !utf8.ValidString(r.SubjectID) || checkSubject(r.SubjectID) != "":
		h.t.Fatalf("bad subject_id accepted: %q", r.SubjectID)
	case kind.CheckID(r.IDType, r.SubjectID) != nil:
		h.t.Fatalf("bad id accepted: %q %q", r.IDType, r.SubjectID)
	case !utf8.ValidString(r.AccessRequest):
		h.t.Fatalf("bad access_request accepted: %q", r.AccessRequest)
	case !r.UpdatedAt.IsZero() && r.UpdatedAt.Location() != time.UTC:
		h.t.Fatalf("updated_at not in UTC: %v", r.UpdatedAt)
	}
	return nil
}

func (h *checkingHandler) Reject(e *privsync.RowError) error {
	h.rejects++
	h.line(e.Line, 1)
	if e.Reason == "" || !utf8.ValidString(e.Value) || len(e.Value) > maxValueLen+3 {
		h.t.Fatalf("bad reject %#v", e)
	}
	return nil
}

func fuzzRead(t *testing.T, input string, stdin []byte) {
	h := &checkingHandler{t: t}
	opts := Options{Vendors: fuzzVendors, Stdin: bytes.NewReader(stdin)}
	infos, err := Read(context.Background(), []string{input}, opts, h)
	var fe *FileError
	if err != nil && !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FileError", err, err)
	}
	if err == nil && (len(infos) != 1 || infos[0].Rows != h.rows || infos[0].Rejected != h.rejects) {
		t.Fatalf("infos %+v after %d rows, %d rejects", infos, h.rows, h.rejects)
	}
}

// FuzzCSV reads arbitrary bytes as a CSV on standard input.
func FuzzCSV(f *testing.F) {
	f.Add([]byte("vendor,subject_id,id_type,restrictions,erasure,access_request,updated_at\nsfmc,p-1,,do_not_track,,,2026-01-02T03:04:05Z\n"))
	f.Add([]byte("\uFEFFsubject_id,vendor\r\n\"a,b\",batch-ios\r\n"))
	f.Add([]byte("vendor,subject_id,id_type\nbloomreach,5f1a2b3c4d5e6f7a8b9c0d1e,internal_id\nbloomreach,x,\"multi\nline\"\n"))
	f.Add([]byte("vendor,subject_id\nsfmc,\"unterminated\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, Stdin, data)
	})
}

// FuzzParquet reads a generated Parquet file cut short at cut (when not 0)
// and patched at at: a truncated or corrupt file must give a *FileError,
// never a panic, a blow-up or a bad row.
func FuzzParquet(f *testing.F) {
	dir := f.TempDir()
	src := filepath.Join(dir, "in.csv")
	var b strings.Builder
	if err := gendata.WriteRows(&b, gendata.RowsOptions{N: 300, Seed: 3}); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
		f.Fatal(err)
	}
	base := filepath.Join(dir, "base.parquet")
	o := gendata.ParquetOptions{RowGroupRows: 100, ListRestrictions: true, Compressions: []string{"snappy"}}
	if err := gendata.ConvertCSV(src, o, base); err != nil {
		f.Fatal(err)
	}
	pq, err := os.ReadFile(base)
	if err != nil {
		f.Fatal(err)
	}
	footerLen := int(binary.LittleEndian.Uint32(pq[len(pq)-8:]))
	f.Add(uint32(0), uint32(0), []byte{})
	f.Add(uint32(len(pq)-9), uint32(0), []byte{})
	f.Add(uint32(0), uint32(30), []byte("0000#08"))
	f.Add(uint32(0), uint32(100), []byte{0xff, 0xff, 0xff, 0x7f})
	f.Add(uint32(0), uint32(len(pq)-footerLen), []byte{0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, cut, at uint32, patch []byte) {
		data := bytes.Clone(pq)
		copy(data[int(at)%len(data):], patch)
		if cut != 0 {
			data = data[:int(cut)%len(data)]
		}
		p := filepath.Join(t.TempDir(), "f.parquet")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fuzzRead(t, p, nil)
	})
}

// FuzzValidate checks the row validator against the domain parsers.
func FuzzValidate(f *testing.F) {
	f.Add("sfmc", "p-1", "", "do_not_track| do_not_profile", "", "", "2026-01-02T03:04:05Z")
	f.Add("batch-ios", "u 1", "custom_id", "", "delete", "AR-1", "2026-01-02T03:04:05+01:00")
	f.Add("bloomreach", "5f1a2b3c4d5e6f7a8b9c0d1e", "internal_id", "", "suppress", "", "2024-02-29T23:59:60Z")
	f.Add("bloomreach", "a@b.c", "registered", " ", " delete ", "", "2026-02-30T00:00:00Z")
	v, err := newValidator(fuzzVendors)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, vendor, subject, idType, restrictions, erasure, access, updatedAt string) {
		raw := rawRow{vals: [numFields]string{vendor, subject, idType, restrictions, erasure, access, updatedAt}}
		var r privsync.Row
		var rej privsync.RowError
		ok := v.validate(&raw, &r, &rej)

		wantR, errR := privsync.ParseRestrictions(restrictions)
		gotR, gotErrR := parseRestrictions(restrictions)
		if gotR != wantR || (gotErrR == nil) != (errR == nil) || (errR != nil && gotErrR.Error() != errR.Error()) {
			t.Fatalf("parseRestrictions(%q) = %v, %v; privsync says %v, %v", restrictions, gotR, gotErrR, wantR, errR)
		}
		wantT, errT := time.Parse(time.RFC3339, updatedAt)
		if gotT, fast := parseUTCSeconds(updatedAt); fast && (errT != nil || gotT != wantT.UTC()) {
			t.Fatalf("parseUTCSeconds(%q) = %v; time.Parse says %v, %v", updatedAt, gotT, wantT, errT)
		}
		_, errE := privsync.ParseErasure(erasure)
		kind, known := fuzzVendors[vendor]
		valid := known && utf8.ValidString(subject) && checkSubject(subject) == "" &&
			kind.CheckID(idType, subject) == nil && errR == nil && errE == nil &&
			utf8.ValidString(access) && (updatedAt == "" || errT == nil)
		if ok != valid {
			t.Fatalf("validate = %v (%+v), want %v", ok, rej, valid)
		}
		if ok && (r.Restrictions != wantR || r.SubjectID != subject || r.Vendor != vendor || r.IDType != idType ||
			(updatedAt != "" && !r.UpdatedAt.Equal(wantT))) {
			t.Fatalf("row %+v", r)
		}
		if !ok && (rej.Reason == "" || !utf8.ValidString(rej.Value)) {
			t.Fatalf("reject %+v", rej)
		}
	})
}

package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/privsync/privsync/ledger"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testRun = "20261123T060000Z-a1b2"

// testEvents is a fixed run: every outcome, and fields that need quoting
// of both kinds (CSV and spreadsheet).
func testEvents() []*ledger.Event {
	at := "2026-11-23T06:00:00Z"
	evs := []*ledger.Event{
		{Vendor: "sfmc", SubjectID: "p-0001", Operation: "restrict", Restrictions: "do_not_track|do_not_profile", Outcome: "completed", VendorRef: "req-17", Attempts: 1, ItemID: 1},
		{Vendor: "batch-ios", SubjectID: "=HYPERLINK(\"http://x\",\"y\")", IDType: "custom_id", Operation: "review", Outcome: "accepted", VendorRef: "tok,42", Attempts: 2, ItemID: 2},
		{Vendor: "batch-ios", SubjectID: "+33612345678", IDType: "custom_id", Operation: "remove", Outcome: "failed", Attempts: 5, Detail: "409: user has a pending request, \"retry later\"", ItemID: 3},
		{Vendor: "bloomreach", SubjectID: "-1", IDType: "registered", Operation: "anonymize", Outcome: "pending", VendorRef: "bulk-9", Attempts: 1, ItemID: 4},
		{Vendor: "", SubjectID: "@SUM(A1)", Outcome: "rejected", Detail: "in.csv: row 7, column vendor: unknown vendor (got \"acme\")"},
		{Vendor: "sfmc", SubjectID: "\tTabbed", Operation: "rtbf_delete", Outcome: "conflict", Detail: "in.csv row 8: the row asks to undo an erasure"},
		{Vendor: "batch-ios", SubjectID: "\rcarriage", IDType: "custom_id", Operation: "review", Outcome: "unsupported", Detail: "line one\r\nline two\rthree"},
		{Vendor: "bloomreach", SubjectID: " Zoë", IDType: "registered", Operation: "anonymize", Outcome: "expired", VendorRef: "bulk-9", Attempts: 3, Detail: "unit\x1fsep and bad \xff utf-8, multi\nline"},
		{Vendor: "sfmc", SubjectID: `\.`, Operation: "rtbf_suppress", Outcome: "failed", Attempts: 5, Detail: "409: user has a pending request, \"retry later\"", ItemID: 9},
	}
	for i, e := range evs {
		e.RunID, e.Seq, e.RecordedAt = testRun, int64(i+1), at
	}
	return evs
}

// fakeSource serves events like the ledger does.
type fakeSource struct {
	events []*ledger.Event
	failAt int64 // fail when reaching this seq (0: never)
	calls  int
}

var errFake = errors.New("fake ledger failure")

func (f *fakeSource) Events(ctx context.Context, runID string, after int64, fn func(*ledger.Event) error) error {
	f.calls++
	for _, e := range f.events {
		if e.RunID != runID || e.Seq <= after {
			continue
		}
		if e.Seq == f.failAt {
			return errFake
		}
		c := *e
		if err := fn(&c); err != nil {
			return err
		}
	}
	return nil
}

// writeReport writes the report of evs in a new directory and returns the
// directory and the file's bytes.
func writeReport(t *testing.T, evs []*ledger.Event) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, testRun)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(context.Background(), &fakeSource{events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(Path(dir, testRun))
	if err != nil {
		t.Fatal(err)
	}
	return dir, b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.SplitAfter(got, []byte("\n")), bytes.SplitAfter(want, []byte("\n"))
		i := 0
		for i < len(gl) && i < len(wl) && bytes.Equal(gl[i], wl[i]) {
			i++
		}
		line := func(ls [][]byte) []byte {
			if i < len(ls) {
				return ls[i]
			}
			return nil
		}
		t.Errorf("%s differs from the golden file at line %d (run go test -update if the change is intended):\n got: %q\nwant: %q", name, i+1, line(gl), line(wl))
	}
}

func TestGolden(t *testing.T) {
	_, got := writeReport(t, testEvents())
	golden(t, "report.golden.csv", got)
	rows, final, err := Verify(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(testEvents()) {
		t.Errorf("rows = %d, want %d", rows, len(testEvents()))
	}
	recs := readCSV(t, got)
	if last := recs[len(recs)-1]; final != last[colHash] {
		t.Errorf("final hash %s, want the last row's %s", final, last[colHash])
	}
}

// readCSV parses a report with encoding/csv, as any reader would.
func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestHashByHand recomputes the first two rows' hashes from the design's
// words, independently of the package's code.
func TestHashByHand(t *testing.T) {
	_, b := writeReport(t, testEvents())
	recs := readCSV(t, b)
	if strings.Join(recs[0], ",") != "seq,run_id,recorded_at,vendor,subject_id,id_type,operation,restrictions,outcome,vendor_ref,attempts,detail,prev_hash,hash" {
		t.Fatalf("header %q", recs[0])
	}
	row1 := "1\x1f" + testRun + "\x1f2026-11-23T06:00:00Z\x1fsfmc\x1fp-0001\x1f\x1frestrict\x1fdo_not_track|do_not_profile\x1fcompleted\x1freq-17\x1f1\x1f\x1f" + strings.Repeat("0", 64)
	sum := sha256.Sum256([]byte(row1))
	h1 := hex.EncodeToString(sum[:])
	if recs[1][13] != h1 {
		t.Errorf("row 1 hash %s, want %s", recs[1][13], h1)
	}
	row2 := "2\x1f" + testRun + "\x1f2026-11-23T06:00:00Z\x1fbatch-ios\x1f'=HYPERLINK(\"http://x\",\"y\")\x1fcustom_id\x1freview\x1f\x1faccepted\x1ftok,42\x1f2\x1f\x1f" + h1
	sum = sha256.Sum256([]byte(row2))
	if got, want := recs[2][13], hex.EncodeToString(sum[:]); got != want || recs[2][12] != h1 {
		t.Errorf("row 2 hash %s prev %s, want %s prev %s", got, recs[2][12], want, h1)
	}
}

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"":               "",
		"plain":          "plain",
		"=1+1":           "'=1+1",
		"+336":           "'+336",
		"-1":             "'-1",
		"@SUM(A1)":       "'@SUM(A1)",
		"\tx":            "'\tx",
		"\rx":            "'\nx",
		"a=b":            "a=b",
		"'quoted":        "'quoted",
		"a\r\nb\rc":      "a\nb\nc",
		"x\x1fy":         "x\uFFFDy",
		"bad\xffbyte":    "bad\uFFFDbyte",
		"=\xff":          "'=\uFFFD",
		" leading space": " leading space",
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFormulaFieldsQuoted checks that every field a spreadsheet could run
// is written as text, and that the report still verifies.
func TestFormulaFieldsQuoted(t *testing.T) {
	_, b := writeReport(t, testEvents())
	recs := readCSV(t, b)
	want := map[int64]string{2: "'=HYPERLINK(", 3: "'+336", 4: "'-1", 5: "'@SUM", 6: "'\tTabbed", 7: "'\ncarriage"}
	for _, r := range recs[1:] {
		for i, f := range r[:colPrevHash] {
			if i != colSeq && formulaStart(f) {
				t.Errorf("seq %s: %s %q can run as a formula", r[colSeq], Columns[i], f)
			}
		}
		var seq int64
		fmt.Sscan(r[colSeq], &seq)
		if p, ok := want[seq]; ok && !strings.HasPrefix(r[colSubjectID], p) {
			t.Errorf("seq %d: subject_id %q, want it to start with %q", seq, r[colSubjectID], p)
		}
	}
	if _, _, err := Verify(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// rowStarts returns the offset where each record starts (the header is
// record 0) and the file's length at the end.
func rowStarts(t *testing.T, b []byte) []int {
	t.Helper()
	c := newChecker(bytes.NewReader(b))
	if err := c.header(); err != nil {
		t.Fatal(err)
	}
	starts := []int{0, int(c.off)}
	for {
		if _, err := c.next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, int(c.off))
	}
	return starts
}

// rowOf returns the record that holds byte p.
func rowOf(starts []int, p int) int {
	for i := len(starts) - 2; i >= 0; i-- {
		if p >= starts[i] {
			return i
		}
	}
	return 0
}

func expectChainError(t *testing.T, b []byte, row int, what string) *ChainError {
	t.Helper()
	_, _, err := Verify(bytes.NewReader(b))
	var ce *ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: Verify = %v, want a *ChainError", what, err)
	}
	if ce.Row != row {
		t.Fatalf("%s: Verify names row %d (%v), want row %d", what, ce.Row, err, row)
	}
	return ce
}

// TestVerifyCatchesEverySingleByteEdit replaces, deletes and inserts one
// byte at every position of a small report: each edit must be caught, and
// the error must name the row that holds the byte.
func TestVerifyCatchesEverySingleByteEdit(t *testing.T) {
	_, orig := writeReport(t, testEvents())
	starts := rowStarts(t, orig)
	if got := len(starts) - 2; got != len(testEvents()) {
		t.Fatalf("found %d rows", got)
	}
	edits := 0
	for p := range orig {
		row := rowOf(starts, p)
		cands := []byte{orig[p] ^ 0x01, orig[p] ^ 0x20, '"', ',', '\n', '\r', '\'', '=', '0', 'a', 0x1f, 0xff}
		for _, c := range cands {
			if c == orig[p] {
				continue
			}
			b := bytes.Clone(orig)
			b[p] = c
			expectChainError(t, b, row, fmt.Sprintf("byte %d (%q) set to %q", p, orig[p], c))
			edits++
		}
		del := append(bytes.Clone(orig[:p]), orig[p+1:]...)
		expectChainError(t, del, row, fmt.Sprintf("byte %d (%q) deleted", p, orig[p]))
		for _, c := range []byte{'"', ',', '\n', ' ', 'x'} {
			if c == orig[p] {
				continue // the same as inserting it after this byte
			}
			ins := append(append(bytes.Clone(orig[:p]), c), orig[p:]...)
			expectChainError(t, ins, row, fmt.Sprintf("%q inserted before byte %d", c, p))
			edits++
		}
		edits++
	}
	t.Logf("%d edits of a %d-byte report, all caught", edits, len(orig))
}

// records re-encodes parsed records as a report file.
func encodeRecords(t *testing.T, recs [][]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rechain recomputes prev_hash and hash from row `from` on, as a forger
// would.
func rechain(recs [][]string, from int) {
	h := newRowHasher()
	for i := from; i < len(recs); i++ {
		if i > 1 {
			recs[i][colPrevHash] = recs[i-1][colHash]
		}
		recs[i][colHash] = h.hash(recs[i])
	}
}

func TestVerifyProblems(t *testing.T) {
	_, orig := writeReport(t, testEvents())
	recs := func() [][]string { return readCSV(t, orig) }
	lines := bytes.SplitAfter(orig, []byte("\n"))
	for _, tc := range []struct {
		name string
		file func() []byte
		row  int
		want string
	}{
		{"deleted first row", func() []byte { r := recs(); return encodeRecords(t, append(r[:1], r[2:]...)) }, 1, "seq out of order: 2 where 1"},
		{"deleted middle row", func() []byte { r := recs(); return encodeRecords(t, append(r[:4], r[5:]...)) }, 4, "seq out of order: 5 where 4"},
		{"swapped rows", func() []byte { r := recs(); r[2], r[3] = r[3], r[2]; return encodeRecords(t, r) }, 2, "seq out of order: 3 where 2"},
		{"renumbered after a deletion", func() []byte {
			r := recs()
			r = append(r[:3], r[4:]...)
			for i := 3; i < len(r); i++ {
				r[i][colSeq] = fmt.Sprint(i)
			}
			return encodeRecords(t, r)
		}, 3, "prev_hash does not chain"},
		{"edited field", func() []byte { r := recs(); r[5][colOutcome] = "completed"; return encodeRecords(t, r) }, 5, "bad hash"},
		{"re-hashed row", func() []byte {
			r := recs()
			r[5][colOutcome] = "completed"
			r[5][colHash] = newRowHasher().hash(r[5])
			return encodeRecords(t, r)
		}, 6, "prev_hash does not chain"},
		{"first prev_hash", func() []byte {
			r := recs()
			r[1][colPrevHash] = strings.Repeat("1", 64)
			rechain(r, 1)
			return encodeRecords(t, r)
		}, 1, "64 zeros"},
		{"extra column", func() []byte { r := recs(); r[3] = append(r[3], "x"); return encodeRecords(t, r) }, 3, "wrong column count: 15"},
		{"missing column", func() []byte { r := recs(); r[3] = r[3][:13]; return encodeRecords(t, r) }, 3, "wrong column count: 13"},
		{"truncated mid-line", func() []byte { return orig[:len(orig)-10] }, len(testEvents()), "truncated last line"},
		{"no final line end", func() []byte { return orig[:len(orig)-1] }, len(testEvents()), "truncated last line"},
		{"truncated in a quoted field", func() []byte { return bytes.Join(lines[:10], nil)[:len(bytes.Join(lines[:10], nil))-3] }, 0, ""},
		{"missing header", func() []byte { return bytes.Join(lines[1:], nil) }, 0, "missing header"},
		{"empty file", func() []byte { return nil }, 0, "missing header: the file is empty"},
		{"CRLF line ends", func() []byte { return bytes.ReplaceAll(orig, []byte("\n"), []byte("\r\n")) }, 0, "missing header"},
		{"extra quotes", func() []byte {
			return bytes.Replace(orig, []byte(",sfmc,p-0001,"), []byte(`,"sfmc",p-0001,`), 1)
		}, 1, "not written as privsync writes it"},
		{"blank line", func() []byte {
			return append(bytes.Join(lines[:3], nil), append([]byte("\n"), bytes.Join(lines[3:], nil)...)...)
		}, 3, "wrong column count: 1"},
		{"unquoted formula", func() []byte {
			r := recs()
			r[2][colSubjectID] = strings.TrimPrefix(r[2][colSubjectID], "'")
			rechain(r, 2)
			return encodeRecords(t, r)
		}, 2, "subject_id starts with \"=\""},
		{"another run's row", func() []byte { r := recs(); r[4][colRunID] = "other"; rechain(r, 4); return encodeRecords(t, r) }, 4, "run_id \"other\" differs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.file()
			if tc.want == "" { // a cut inside a multi-line row: find its row
				_, _, err := Verify(bytes.NewReader(b))
				var ce *ChainError
				if !errors.As(err, &ce) || !ce.Torn {
					t.Fatalf("Verify = %v, want a torn last line", err)
				}
				return
			}
			ce := expectChainError(t, b, tc.row, tc.name)
			if !strings.Contains(ce.Error(), tc.want) {
				t.Errorf("error %q does not say %q", ce, tc.want)
			}
		})
	}
}

// TestVerifyCutAtRowEnd documents the chain's limit: a report cut at a
// line end verifies, with fewer rows and another final hash, which is why
// the summary records both.
func TestVerifyCutAtRowEnd(t *testing.T) {
	_, orig := writeReport(t, testEvents())
	starts := rowStarts(t, orig)
	_, full, _ := Verify(bytes.NewReader(orig))
	rows, final, err := Verify(bytes.NewReader(orig[:starts[len(starts)-2]]))
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(testEvents())-1 || final == full {
		t.Errorf("cut report: %d rows, hash %s; full: %s", rows, final, full)
	}
	rows, final, err = Verify(bytes.NewReader(orig[:starts[1]]))
	if err != nil || rows != 0 || final != ZeroHash {
		t.Errorf("header only: %d rows, hash %s, %v", rows, final, err)
	}
}

func TestVerifyLongField(t *testing.T) {
	evs := testEvents()
	evs[0].Detail = strings.Repeat("x\"y,\n", 40000) // longer than the read buffer
	_, b := writeReport(t, evs)
	if rows, _, err := Verify(bytes.NewReader(b)); err != nil || rows != len(evs) {
		t.Fatalf("Verify = %d, %v", rows, err)
	}
}

package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/privsync/privsync/ledger"
)

// syncFile puts content (nil: no file) in a new report directory, opens
// and syncs it from src, and returns the resulting bytes.
func syncFile(t *testing.T, content []byte, src Source) ([]byte, *Writer, error) {
	t.Helper()
	return syncFileIn(t, t.TempDir(), content, src)
}

func syncFileIn(t *testing.T, dir string, content []byte, src Source) ([]byte, *Writer, error) {
	t.Helper()
	if content != nil {
		if err := os.WriteFile(Path(dir, testRun), content, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	w, err := Open(dir, testRun)
	if err != nil {
		return nil, nil, err
	}
	defer w.Close()
	err = w.Sync(context.Background(), src)
	b, rerr := os.ReadFile(Path(dir, testRun))
	if rerr != nil {
		t.Fatal(rerr)
	}
	return b, w, err
}

// openEmpty opens a new report in a new directory; the test closes it.
func openEmpty(t *testing.T) *Writer {
	t.Helper()
	w, err := Open(t.TempDir(), testRun)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestSyncIncremental syncs after each new event, as the executor does
// after each batch, and gets the bytes of a single write.
func TestSyncIncremental(t *testing.T) {
	_, want := writeReport(t, testEvents())
	w := openEmpty(t)
	src := &fakeSource{}
	all := testEvents()
	for i := 0; i <= len(all); i++ {
		src.events = all[:i]
		if err := w.Sync(context.Background(), src); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(context.Background(), src); err != nil { // nothing new: a no-op
			t.Fatal(err)
		}
		if w.Rows() != int64(i) {
			t.Fatalf("after %d events the writer has %d rows", i, w.Rows())
		}
	}
	got, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("incremental report differs from a single write:\n got %q\nwant %q", got, want)
	}
	_, final, _ := Verify(bytes.NewReader(want))
	if w.LastHash() != final {
		t.Errorf("LastHash %s, want %s", w.LastHash(), final)
	}
}

// TestSyncRepairsCuts cuts the report at many bytes, as a crash in the
// middle of a write (or a lost tail) would, and checks that Open and Sync
// give back exactly the uninterrupted report.
func TestSyncRepairsCuts(t *testing.T) {
	_, want := writeReport(t, testEvents())
	starts := rowStarts(t, want)
	atRowEnd := map[int]bool{}
	for _, s := range starts {
		atRowEnd[s] = true
	}
	src := &fakeSource{events: testEvents()}
	dir := t.TempDir()
	// Every byte of the header, the first row and the last rows (which
	// span lines), and both ends and the middle of the others: each cut
	// costs two fsyncs.
	var cuts []int
	for cut := 0; cut <= len(want); cut++ {
		r := rowOf(starts, min(cut, len(want)-1))
		if r <= 1 || r >= 6 || atRowEnd[cut] || atRowEnd[cut-1] || atRowEnd[cut+1] || cut == (starts[r]+starts[r+1])/2 {
			cuts = append(cuts, cut)
		}
	}
	for _, cut := range cuts {
		got, w, err := syncFileIn(t, dir, want[:cut], src)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cut at %d: Sync gave\n%q\nwant\n%q", cut, got, want)
		}
		if torn := !atRowEnd[cut] && cut != 0; (w.Dropped() > 0) != torn {
			t.Errorf("cut at %d: dropped %d bytes", cut, w.Dropped())
		}
	}
}

func TestSyncMissingFile(t *testing.T) {
	_, want := writeReport(t, testEvents())
	got, _, err := syncFile(t, nil, &fakeSource{events: testEvents()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("rebuilt report differs:\n got %q\nwant %q", got, want)
	}
}

// TestSyncRefuses checks that Sync never overwrites a file whose rows are
// not the ledger's, says which row, and leaves the file alone.
func TestSyncRefuses(t *testing.T) {
	_, orig := writeReport(t, testEvents())
	recs := func() [][]string { return readCSV(t, orig) }
	for _, tc := range []struct {
		name    string
		file    func() []byte
		events  []*ledger.Event
		openErr bool
		want    string
	}{
		{name: "edited and re-hashed", file: func() []byte {
			r := recs()
			r[3][colOutcome] = "completed"
			rechain(r, 3)
			return encodeRecords(t, r)
		}, want: `line 4 (row 3, seq 3): outcome is "completed" in the file but "failed" in the ledger`},
		{name: "edited, chain broken", file: func() []byte {
			r := recs()
			r[3][colOutcome] = "completed"
			return encodeRecords(t, r)
		}, openErr: true, want: "line 4 (row 3, seq 3): bad hash"},
		{name: "more rows than the ledger", file: func() []byte { return orig }, events: testEvents()[:5], want: "the file has 9 rows but the ledger has only 5"},
		{name: "another ledger's run", file: func() []byte { return orig }, events: func() []*ledger.Event {
			evs := testEvents()
			evs[0].Detail = "something else"
			return evs
		}(), want: `line 2 (row 1, seq 1): detail is "" in the file but "something else" in the ledger`},
		{name: "tail not from the ledger", file: func() []byte {
			starts := rowStarts(t, orig)
			return append(bytes.Clone(orig[:starts[3]]), "3,forged"...)
		}, want: "incomplete last line is not the start of the ledger's row 3"},
		{name: "tail the ledger has no row for", file: func() []byte {
			return append(bytes.Clone(orig), "10,"...)
		}, want: "incomplete line the ledger has no row for"},
		{name: "wrong header", file: func() []byte { return append([]byte("seq,when\n"), orig[len(headerLine):]...) }, openErr: true, want: "missing header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := tc.file()
			events := tc.events
			if events == nil {
				events = testEvents()
			}
			dir := t.TempDir()
			path := Path(dir, testRun)
			if err := os.WriteFile(path, content, 0o640); err != nil {
				t.Fatal(err)
			}
			w, err := Open(dir, testRun)
			if err == nil {
				if tc.openErr {
					t.Fatal("Open accepted the file")
				}
				err = w.Sync(context.Background(), &fakeSource{events: events})
				w.Close()
			} else if !tc.openErr {
				t.Fatalf("Open: %v", err)
			}
			if !errors.Is(err, ErrEdited) {
				t.Fatalf("error %v, want ErrEdited", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "move it aside") {
				t.Errorf("error %q does not say %q and what to do", err, tc.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
				t.Error("the refused file was changed")
			}
		})
	}
}

// TestSyncFailureLeavesFile checks that a Sync that fails half-way leaves
// the file as it was, and that the next Sync completes it.
func TestSyncFailureLeavesFile(t *testing.T) {
	_, want := writeReport(t, testEvents())
	starts := rowStarts(t, want)
	dir := t.TempDir()
	torn := want[:starts[3]+5]
	if err := os.WriteFile(Path(dir, testRun), torn, 0o640); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, testRun)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	src := &fakeSource{events: testEvents(), failAt: 7}
	if err := w.Sync(context.Background(), src); !errors.Is(err, errFake) {
		t.Fatalf("Sync = %v, want the source's error", err)
	}
	got, _ := os.ReadFile(w.Path())
	if !bytes.Equal(got, want[:starts[3]]) { // the torn line went, nothing else came
		t.Fatalf("after a failed Sync the file is\n%q\nwant\n%q", got, want[:starts[3]])
	}
	src.failAt = 0
	if err := w.Sync(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(w.Path()); !bytes.Equal(got, want) {
		t.Fatalf("after a second Sync the file is\n%q\nwant\n%q", got, want)
	}
	if src.calls != 2 {
		t.Errorf("the source was read %d times, want 2", src.calls)
	}
}

// TestSyncConcurrent calls Sync from several goroutines (run with -race).
func TestSyncConcurrent(t *testing.T) {
	_, want := writeReport(t, testEvents())
	w := openEmpty(t)
	evs := testEvents()
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- w.Sync(context.Background(), &fakeSource{events: evs}) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(w.Path()); !bytes.Equal(got, want) {
		t.Fatalf("concurrent syncs wrote\n%q\nwant\n%q", got, want)
	}
}

func TestSyncLedgerGap(t *testing.T) {
	evs := testEvents()
	evs = append(evs[:3], evs[4:]...)
	_, _, err := syncFile(t, nil, &fakeSource{events: evs})
	if err == nil || !strings.Contains(err.Error(), "event 5") {
		t.Fatalf("Sync = %v, want an error about the gap", err)
	}
}

func TestOpenBadRunID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "../x"} {
		if _, err := Open(t.TempDir(), id); err == nil {
			t.Errorf("Open accepted run id %q", id)
		}
	}
}

func TestSyncAfterClose(t *testing.T) {
	w, err := Open(t.TempDir(), testRun)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(context.Background(), &fakeSource{}); err == nil {
		t.Fatal("Sync after Close succeeded")
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reports", "nested")
	w, err := Open(dir, testRun)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b, err := os.ReadFile(Path(dir, testRun))
	if err != nil || !bytes.Equal(b, headerLine) {
		t.Fatalf("new report holds %q, %v", b, err)
	}
}

func benchEvents(n int) []*ledger.Event {
	evs := make([]*ledger.Event, n)
	for i := range evs {
		evs[i] = &ledger.Event{RunID: testRun, Seq: int64(i + 1), RecordedAt: "2026-11-23T06:00:00Z", Vendor: "sfmc",
			SubjectID: "subject-" + strings.Repeat("x", 20), Operation: "restrict", Restrictions: "do_not_track|do_not_profile",
			Outcome: "completed", VendorRef: "req-123456", Attempts: 1, ItemID: int64(i + 1)}
	}
	return evs
}

// BenchmarkSync measures writing a 100,000-row report, and opening it
// again (which reads and checks it against the ledger).
func BenchmarkSync(b *testing.B) {
	src := &fakeSource{events: benchEvents(100_000)}
	b.Run("100k rows", func(b *testing.B) {
		for b.Loop() {
			benchSync(b, b.TempDir(), src)
		}
	})
	b.Run("reopen 100k rows", func(b *testing.B) {
		dir := b.TempDir()
		benchSync(b, dir, src)
		for b.Loop() {
			benchSync(b, dir, src)
		}
	})
}

func benchSync(b *testing.B, dir string, src Source) {
	w, err := Open(dir, testRun)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := w.Sync(context.Background(), src); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	benchSync(b, dir, &fakeSource{events: benchEvents(100_000)})
	data, _ := os.ReadFile(Path(dir, testRun))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := Verify(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// Outcomes counts every row of the file, those a killed run had written
// before this Writer opened it included, as a CSV reader counts them.
func TestOutcomesCountEveryRow(t *testing.T) {
	all := testEvents()
	dir := t.TempDir()
	if _, _, err := syncFileIn(t, dir, nil, &fakeSource{events: all[:2]}); err != nil {
		t.Fatal(err)
	}
	w, err := Open(dir, testRun)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := w.Outcomes(); got != nil {
		t.Fatalf("outcomes before the first sync: %v, want nil", got)
	}
	if err := w.Sync(context.Background(), &fakeSource{events: all}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(rows[0], "outcome")
	want := map[string]int64{}
	for _, r := range rows[1:] {
		want[r[col]]++
	}
	if got := w.Outcomes(); !maps.Equal(got, want) || len(rows)-1 != len(all) {
		t.Fatalf("outcomes %v, the file's %d rows say %v", got, len(rows)-1, want)
	}
}

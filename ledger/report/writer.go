package report

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/privsync/privsync/ledger"
)

// Source is where a report's rows come from: the ledger's audit events of a
// run after a seq, in order. *ledger.DB satisfies it.
type Source interface {
	Events(ctx context.Context, runID string, after int64, fn func(*ledger.Event) error) error
}

var _ Source = (*ledger.DB)(nil)

// ErrEdited is wrapped by the errors of Open and Sync when a report file
// does not hold what the ledger says it should: someone edited it, or it
// belongs to another ledger. privsync never overwrites such a file.
var ErrEdited = errors.New("the report file does not match the ledger")

// maxTail bounds the bytes of an incomplete last record Open keeps: a torn
// write leaves at most part of one row.
const maxTail = 1 << 20

// Writer keeps one run's report file in step with the ledger. Sync is
// cheap to call often: after the first call it reads only the new events
// and appends them. A Writer is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	path  string
	runID string
	f     *os.File

	off  int64  // end of the last complete row
	seq  int64  // rows in the file
	prev string // the last row's hash
	tail []byte // an incomplete last record found by Open (a torn write)

	checked bool  // the file's rows were compared with the ledger
	broken  error // a failed write could not be undone

	// agg counts the rows of the file that Sync checked or appended: with
	// the first Sync after Open, every row (see WriteSummary).
	agg *aggregate

	dropped int64
	hasher  *rowHasher
	enc     *encoder
	fields  []string
}

// Path returns the name of the report file for a run in dir.
func Path(dir, runID string) string { return filepath.Join(dir, runID+".csv") }

// Open opens the report of runID in dir, creating the directory and the
// file (with its header) if needed. It reads and checks what the file
// already holds; an incomplete last line (a write cut short by a crash) is
// kept aside and replaced on the first Sync if the ledger explains it. A
// file whose chain is broken is refused with an error wrapping ErrEdited.
func Open(dir, runID string) (*Writer, error) {
	if runID == "" || runID != filepath.Base(runID) || runID == "." || runID == ".." {
		return nil, fmt.Errorf("report: run id %q cannot name a file", runID)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating the report directory: %w", err)
	}
	path := Path(dir, runID)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening the report: %w", err)
	}
	w := &Writer{path: path, runID: runID, f: f, prev: ZeroHash, hasher: newRowHasher(), enc: newEncoder()}
	if err := w.load(); err != nil {
		f.Close()
		return nil, err
	}
	if created {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// load reads the file, checks it, and writes the header to an empty file.
func (w *Writer) load() error {
	c := newChecker(w.f)
	err := c.header()
	var ce *ChainError
	if errors.As(err, &ce) && ce.Torn {
		// Empty, or a header cut short: start again.
		w.dropped = c.off + int64(len(c.raw))
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("report %s: %w", w.path, err)
		}
		if _, err := w.f.WriteAt(headerLine, 0); err != nil {
			return fmt.Errorf("writing the report header: %w", err)
		}
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("writing the report header: %w", err)
		}
		w.off = int64(len(headerLine))
		return nil
	}
	if err != nil {
		return w.edited(err)
	}
	for {
		_, err := c.next()
		if err == io.EOF {
			break
		}
		if errors.As(err, &ce) && ce.Torn {
			if len(c.raw) > maxTail {
				return w.edited(err)
			}
			w.tail = slices.Clone(c.raw)
			break
		}
		if err != nil {
			return w.edited(err)
		}
	}
	w.off, w.seq, w.prev = c.off, c.seq, c.prev
	return nil
}

// edited wraps a problem found in the file as ErrEdited with advice.
func (w *Writer) edited(err error) error {
	return fmt.Errorf("report %s: %w: %w; privsync will not overwrite it: move it aside (keep it, it is evidence) and sync again to rebuild it from the ledger", w.path, ErrEdited, err)
}

// Path returns the report file's name.
func (w *Writer) Path() string { return w.path }

// Rows returns the number of rows in the file.
func (w *Writer) Rows() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// LastHash returns the hash of the file's last row (ZeroHash when empty).
func (w *Writer) LastHash() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.prev
}

// Outcomes returns how many of the file's rows have each outcome, as Sync
// counted them: every row of the run once a Sync has succeeded (nil
// before). Counting them again in the ledger (GROUP BY outcome) sorted
// every event of the run in SQLite's memory: a quarter of a GiB for three
// million.
func (w *Writer) Outcomes() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.agg == nil {
		return nil
	}
	return maps.Clone(w.agg.outcomes)
}

// Dropped returns how many bytes of an incomplete last line (a torn write)
// were cut from the file, by Open or by Sync.
func (w *Writer) Dropped() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("closing the report: %w", err)
	}
	return nil
}

// syncState follows the chain through the events Sync reads.
type syncState struct {
	seq      int64
	prev     string
	mismatch bool // the rows in the file are not the ledger's
}

// Sync brings the file up to date with src: it appends the run's events
// after the file's last row and flushes the file to disk. The first Sync
// after Open also checks that the rows already in the file are the
// ledger's (else an error wrapping ErrEdited) and replaces a torn last line.
// If Sync fails, the file is left as it was and Sync can be called again.
// It counts every event it reads into w.agg once the file holds it: with
// the first Sync after Open, every event of the run.
func (w *Writer) Sync(ctx context.Context, src Source) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.f == nil:
		return fmt.Errorf("report %s: sync after close", w.path)
	case w.broken != nil:
		return w.broken
	}
	st := syncState{seq: w.seq, prev: w.prev}
	if !w.checked {
		st = syncState{prev: ZeroHash}
	}
	out := bufio.NewWriterSize(io.NewOffsetWriter(w.f, w.off), 64<<10)
	var written int64
	seen := newAggregate() // merged into w.agg only if the sync succeeds
	err := src.Events(ctx, w.runID, st.seq, func(e *ledger.Event) error {
		if e.Seq&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if e.Seq != st.seq+1 || e.RunID != w.runID {
			return fmt.Errorf("report %s: the ledger gave event %d of run %q after event %d of run %q", w.path, e.Seq, e.RunID, st.seq, w.runID)
		}
		w.fields = w.hasher.fields(w.fields, e, st.prev)
		st.seq, st.prev = e.Seq, w.fields[colHash]
		seen.add(e)
		if st.seq < w.seq {
			return nil // a row already in the file: checked at the file's last row
		}
		if st.seq == w.seq {
			if st.prev != w.prev {
				st.mismatch = true
				return errStop
			}
			return nil
		}
		line, err := w.enc.encode(w.fields)
		if err != nil {
			return fmt.Errorf("encoding report row %d: %w", e.Seq, err)
		}
		if w.tail != nil {
			if !bytes.HasPrefix(line, w.tail) {
				return w.edited(fmt.Errorf("row %d: the incomplete last line is not the start of the ledger's row %d", e.Seq, e.Seq))
			}
			if err := w.f.Truncate(w.off); err != nil {
				return fmt.Errorf("cutting the torn last line of report %s: %w", w.path, err)
			}
			w.dropped += int64(len(w.tail))
			w.tail = nil
		}
		n, err := out.Write(line)
		written += int64(n)
		if err != nil {
			return fmt.Errorf("writing report %s: %w", w.path, err)
		}
		return nil
	})
	if st.mismatch {
		return w.locate(ctx, src)
	}
	if err == nil && st.seq < w.seq {
		err = w.edited(fmt.Errorf("row %d: the file has %d rows but the ledger has only %d events for run %s", st.seq+1, w.seq, st.seq, w.runID))
	}
	if err == nil && w.tail != nil {
		err = w.edited(fmt.Errorf("row %d: the file ends with an incomplete line the ledger has no row for", w.seq+1))
	}
	if err == nil && (written > 0 || !w.checked) {
		// Nothing new (another worker's Sync took it): nothing to flush.
		if err = out.Flush(); err != nil {
			err = fmt.Errorf("writing report %s: %w", w.path, err)
		} else if err = w.f.Sync(); err != nil {
			err = fmt.Errorf("flushing report %s to disk: %w", w.path, err)
		}
	}
	if err != nil {
		if written > 0 {
			// Undo the partial append so the file stays a checked prefix.
			if terr := w.f.Truncate(w.off); terr != nil {
				w.broken = fmt.Errorf("report %s: a write failed (%w) and could not be undone (%w): open it again", w.path, err, terr)
			}
		}
		return err
	}
	w.off += written
	w.seq, w.prev, w.checked = st.seq, st.prev, true
	if w.agg == nil {
		w.agg = seen
	} else {
		w.agg.merge(seen)
	}
	return nil
}

var errStop = errors.New("stop")

// locate finds the first row of the file that differs from the ledger, for
// the error of a Sync whose final hash did not match.
func (w *Writer) locate(ctx context.Context, src Source) error {
	f, err := os.Open(w.path)
	if err != nil {
		return fmt.Errorf("report %s: %w: re-reading it: %w", w.path, ErrEdited, err)
	}
	defer f.Close()
	c := newChecker(io.LimitReader(f, w.off))
	if err := c.header(); err != nil {
		return w.edited(err)
	}
	hasher := newRowHasher()
	var want []string
	var found error
	err = src.Events(ctx, w.runID, 0, func(e *ledger.Event) error {
		if e.Seq > w.seq {
			return errStop
		}
		line := c.line
		got, err := c.next()
		if err != nil {
			found = err
			return errStop
		}
		prev := ZeroHash
		if e.Seq > 1 {
			prev = got[colPrevHash]
		}
		want = hasher.fields(want, e, prev)
		for i := range want[:colPrevHash] {
			if got[i] != want[i] {
				found = &ChainError{Line: line, Row: int(e.Seq), Seq: e.Seq,
					Problem: fmt.Sprintf("%s is %q in the file but %q in the ledger", Columns[i], got[i], want[i])}
				return errStop
			}
		}
		return nil
	})
	if found == nil && err != nil && err != errStop {
		return fmt.Errorf("report %s: %w (and re-reading the ledger failed: %w)", w.path, ErrEdited, err)
	}
	if found == nil {
		found = fmt.Errorf("row %d: the last row's hash differs from the ledger's", w.seq)
	}
	return w.edited(found)
}

// syncDir flushes a directory's entries to disk (a new file's name).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("flushing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("flushing directory %s: %w", dir, err)
	}
	return nil
}

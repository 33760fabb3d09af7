package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

const csvBufferSize = 1 << 20

// MaxRowBytes is the longest CSV row privsync reads, in bytes (a quoted
// line break does not end a row). A longer row stops reading the file
// with its row number: memory stays flat whatever a file holds, such as a
// 100 MB line without a newline.
const MaxRowBytes = 1 << 20

var errRowTooLong = errors.New("row is longer than 1 MiB, the most privsync reads in one row")

// rowLimiter refuses to read further than limit bytes into its input: the
// csvSource sets limit from where each row starts, so encoding/csv never
// buffers much more than MaxRowBytes of one row.
type rowLimiter struct {
	r       io.Reader
	n       int64 // bytes read
	limit   int64
	tripped bool
}

func (l *rowLimiter) Read(p []byte) (int, error) {
	if l.n >= l.limit {
		l.tripped = true
		return 0, errRowTooLong
	}
	if rem := l.limit - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// meter counts (and, for standard input, hashes) the bytes read through it.
type meter struct {
	r        io.Reader
	h        hash.Hash // nil when the file is hashed apart
	n        int64
	progress Counter
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.n += int64(n)
		if m.h != nil {
			m.h.Write(p[:n])
		}
		if m.progress != nil {
			m.progress.Add(int64(n))
		}
	}
	return n, err
}

// csvSource is an opened CSV input whose header has been read.
type csvSource struct {
	path   string
	closer io.Closer // nil for standard input
	m      *meter
	lim    *rowLimiter
	bom    int64 // bytes of the byte order mark skipped before r
	r      *csv.Reader
	index  [numFields]int // record index of each canonical column, -1 if absent
	width  int            // fields in the header
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// openCSV reads the header of a CSV input. A file (closer non-nil) is
// hashed apart when streamed; standard input is hashed as it is read.
func openCSV(path string, in io.Reader, closer io.Closer, s *session) (*csvSource, error) {
	m := &meter{r: in}
	if closer == nil {
		m.h = sha256.New()
	}
	lim := &rowLimiter{r: m, limit: MaxRowBytes + csvBufferSize}
	br := bufio.NewReaderSize(lim, csvBufferSize)
	head, _ := br.Peek(512)
	var bom int64
	switch {
	case bytes.HasPrefix(head, utf8BOM):
		br.Discard(len(utf8BOM))
		bom = int64(len(utf8BOM))
	case bytes.HasPrefix(head, []byte("PAR1")):
		return nil, fileErr(path, 0, "not a CSV file: it is a Parquet file (rename it .parquet)")
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return nil, fileErr(path, 0, "not a CSV file: it is gzip-compressed (decompress it first)")
	case bytes.IndexByte(head, 0) >= 0:
		return nil, fileErr(path, 0, "not a CSV file: it holds binary data")
	}
	r := csv.NewReader(br)
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	src := &csvSource{path: path, closer: closer, m: m, lim: lim, bom: bom, r: r}
	header, err := src.read()
	if err == io.EOF {
		return nil, fileErr(path, 0, "empty file: no header")
	}
	if err != nil {
		return nil, csvSyntaxError(path, 1, err)
	}
	src.width = len(header)
	if err := src.mapHeader(header, &s.names); err != nil {
		return nil, err
	}
	return src, nil
}

// read reads the next record, refusing one longer than MaxRowBytes.
func (c *csvSource) read() ([]string, error) {
	start := c.r.InputOffset()
	c.lim.limit = c.bom + start + MaxRowBytes + csvBufferSize
	rec, err := c.r.Read()
	if c.lim.tripped || err == nil && c.r.InputOffset()-start > MaxRowBytes {
		return nil, errRowTooLong
	}
	return rec, err
}

func (c *csvSource) mapHeader(header []string, names *[numFields]string) error {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		if !utf8.ValidString(h) || strings.ContainsRune(h, 0) {
			return fileErr(c.path, 1, "not a CSV file: the header is not UTF-8 text")
		}
		name := strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))
		if name == "" {
			return fileErr(c.path, 1, "empty column name in the header (column %d)", i+1)
		}
		if j, dup := pos[name]; dup {
			return fileErr(c.path, 1, "duplicate column %q in the header (columns %d and %d)", name, j+1, i+1)
		}
		pos[name] = i
	}
	for f := range numFields {
		i, ok := pos[names[f]]
		if !ok {
			i = -1
			if f == fVendor || f == fSubjectID {
				return fileErr(c.path, 1, "missing required column %s", describeColumn(names, f))
			}
		}
		c.index[f] = i
	}
	return nil
}

func csvSyntaxError(path string, row int64, err error) *FileError {
	if errors.Is(err, errRowTooLong) {
		return &FileError{Path: path, Line: row, Err: err}
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fileErr(path, row, "CSV syntax error at line %d, column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	return &FileError{Path: path, Line: row, Err: fmt.Errorf("reading: %w", err)}
}

func (c *csvSource) close() {
	if c.closer != nil {
		c.closer.Close()
	}
}

// csvBatch is a run of parsed records, handed from the parsing goroutine
// to the validating one.
type csvBatch struct {
	rows   []rawRow
	fields []int // fields in each record, for the field-count check
	err    error // what ended the input after these rows, if not EOF
}

const (
	csvBatchRows = 1024
	csvBatches   = 4
)

// stream parses on one goroutine and validates on the caller's, so a CSV
// takes two cores: encoding/csv costs about as much as validation and the
// handler together.
func (c *csvSource) stream(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	var wait func(*FileInfo) error
	if c.closer != nil {
		wait = hashAsync(c.path)
	}
	if c.m.progress = s.opts.Progress; c.m.progress != nil {
		c.m.progress.Add(c.m.n) // what reading the header buffered
	}
	free, full := make(chan *csvBatch, csvBatches), make(chan *csvBatch, csvBatches)
	for range csvBatches {
		free <- &csvBatch{rows: make([]rawRow, 0, csvBatchRows), fields: make([]int, 0, csvBatchRows)}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.parse(done, free, full) })
	defer wg.Wait()
	defer close(done)

	k := newRowSink(s, h, info)
	line := int64(1) // the header
	for b := range full {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range b.rows {
			line++
			if b.fields[i] != c.width {
				k.rej.Reason = fmt.Sprintf(reasonFieldCountFmt, b.fields[i], c.width)
				if err := k.rejectRow(line); err != nil {
					return err
				}
				continue
			}
			if err := k.put(&b.rows[i], line); err != nil {
				return err
			}
		}
		if b.err != nil {
			return csvSyntaxError(c.path, line+1, b.err)
		}
		free <- b
	}
	if wait != nil {
		return wait(info)
	}
	info.SHA256, info.Size = hex.EncodeToString(c.m.h.Sum(nil)), c.m.n
	return nil
}

// parse reads records into the batches of free and sends them to full,
// which it closes at the end of the input or when done is closed.
func (c *csvSource) parse(done <-chan struct{}, free <-chan *csvBatch, full chan<- *csvBatch) {
	defer close(full)
	for {
		var b *csvBatch
		select {
		case b = <-free:
		case <-done:
			return
		}
		b.rows, b.fields = b.rows[:0], b.fields[:0]
		end := false
		for !end && len(b.rows) < cap(b.rows) {
			rec, err := c.read()
			if err != nil {
				if err != io.EOF {
					b.err = err
				}
				end = true
				break
			}
			b.rows = append(b.rows, rawRow{})
			b.fields = append(b.fields, len(rec))
			if len(rec) == c.width {
				r := &b.rows[len(b.rows)-1]
				for f, i := range c.index {
					if i >= 0 {
						r.vals[f] = rec[i]
					}
				}
			}
		}
		select {
		case full <- b:
		case <-done:
			return
		}
		if end {
			return
		}
	}
}

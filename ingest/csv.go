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
	"unicode/utf8"
)

const csvBufferSize = 1 << 20

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
	br := bufio.NewReaderSize(m, csvBufferSize)
	head, _ := br.Peek(512)
	switch {
	case bytes.HasPrefix(head, utf8BOM):
		br.Discard(len(utf8BOM))
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
	header, err := r.Read()
	if err == io.EOF {
		return nil, fileErr(path, 0, "empty file: no header")
	}
	if err != nil {
		return nil, csvSyntaxError(path, 1, err)
	}
	src := &csvSource{path: path, closer: closer, m: m, r: r, width: len(header)}
	if err := src.mapHeader(header, &s.names); err != nil {
		return nil, err
	}
	return src, nil
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

func (c *csvSource) stream(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	var wait func(*FileInfo) error
	if c.closer != nil {
		wait = hashAsync(c.path)
	}
	if c.m.progress = s.opts.Progress; c.m.progress != nil {
		c.m.progress.Add(c.m.n) // what reading the header buffered
	}
	k := newRowSink(s, h, info)
	var raw rawRow
	for line := int64(2); ; line++ {
		rec, err := c.r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return csvSyntaxError(c.path, line, err)
		}
		if line%checkContextEveryRows == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(rec) != c.width {
			k.rej.Reason = fmt.Sprintf(reasonFieldCountFmt, len(rec), c.width)
			if err := k.rejectRow(line); err != nil {
				return err
			}
			continue
		}
		for f, i := range c.index {
			if i >= 0 {
				raw.vals[f] = rec[i]
			}
		}
		if err := k.put(&raw, line); err != nil {
			return err
		}
	}
	if wait != nil {
		return wait(info)
	}
	info.SHA256, info.Size = hex.EncodeToString(c.m.h.Sum(nil)), c.m.n
	return nil
}

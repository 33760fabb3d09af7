package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ChainError says where and why a report does not verify.
type ChainError struct {
	Line    int   // line of the file where the bad record starts (the header is line 1)
	Row     int   // row of the report, counting from 1 (0 is the header)
	Seq     int64 // the row's seq when it could be read, else 0
	Problem string
	// Torn is set when the problem is an incomplete last line: the file
	// was cut short, or is still being written.
	Torn bool
}

func (e *ChainError) Error() string {
	if e.Row == 0 {
		return fmt.Sprintf("line %d (header): %s", e.Line, e.Problem)
	}
	if e.Seq > 0 {
		return fmt.Sprintf("line %d (row %d, seq %d): %s", e.Line, e.Row, e.Seq, e.Problem)
	}
	return fmt.Sprintf("line %d (row %d): %s", e.Line, e.Row, e.Problem)
}

// Verify reads a report and checks its header, its encoding and its hash
// chain. It returns the number of rows and the last row's hash (ZeroHash
// for a report with no rows); a problem is a *ChainError naming the first
// bad row. A report cut short exactly at a line end still verifies: compare
// the row count and final hash with the run's summary to catch that.
func Verify(r io.Reader) (rows int, finalHash string, err error) {
	c := newChecker(r)
	if err := c.header(); err != nil {
		return 0, "", err
	}
	for {
		_, err := c.next()
		if err == io.EOF {
			return c.rows, c.prev, nil
		}
		if err != nil {
			return c.rows, c.prev, err
		}
	}
}

// checker reads a report record by record, checking each one.
type checker struct {
	br   *bufio.Reader
	raw  []byte // the current record, line end included
	line int    // the line the next record starts on
	off  int64  // bytes of the complete, checked records so far

	rows  int
	seq   int64
	prev  string
	runID string

	fields []string
	enc    *encoder
	hasher *rowHasher
}

func newChecker(r io.Reader) *checker {
	return &checker{br: bufio.NewReaderSize(r, 16<<10), line: 1, prev: ZeroHash,
		enc: newEncoder(), hasher: newRowHasher()}
}

// maxRecord bounds one row: privsync writes nothing near it, and a stray
// quote must not make the reader hold the rest of a large file.
const maxRecord = 64 << 20

// errPartial marks bytes at the end of the file that do not make a
// complete record.
var errPartial = errors.New("partial record")

// record reads the next raw record: up to a line end outside quotes. At the
// end of the file it returns io.EOF, or errPartial with the bytes left over.
func (c *checker) record() error {
	c.raw = c.raw[:0]
	inQuote := false
	for {
		chunk, err := c.br.ReadSlice('\n')
		c.raw = append(c.raw, chunk...)
		if len(c.raw) > maxRecord {
			return &ChainError{Line: c.line, Row: c.rows + 1, Problem: fmt.Sprintf("a row longer than %d MiB: this is not a privsync report (or a quote was added)", maxRecord>>20)}
		}
		if bytes.Count(chunk, []byte{'"'})%2 == 1 {
			inQuote = !inQuote
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(c.raw) == 0 {
				return io.EOF
			}
			return errPartial
		case err != nil:
			return fmt.Errorf("reading the report: %w", err)
		}
		if !inQuote {
			return nil
		}
	}
}

// fail builds the error for the record just read.
func (c *checker) fail(seq int64, format string, args ...any) *ChainError {
	return &ChainError{Line: c.line, Row: c.rows + 1, Seq: seq, Problem: fmt.Sprintf(format, args...)}
}

// advance moves past the record just read.
func (c *checker) advance() {
	c.line += bytes.Count(c.raw, []byte{'\n'})
	c.off += int64(len(c.raw))
}

// header reads and checks the header line.
func (c *checker) header() error {
	err := c.record()
	switch {
	case err == io.EOF:
		return &ChainError{Line: 1, Problem: "missing header: the file is empty", Torn: true}
	case err == errPartial:
		return &ChainError{Line: 1, Problem: "missing header: truncated first line", Torn: bytes.HasPrefix(headerLine, c.raw)}
	case err != nil:
		return err
	}
	if !bytes.Equal(c.raw, headerLine) {
		return &ChainError{Line: 1, Problem: "missing header: the first line must be " + strings.TrimSpace(string(headerLine))}
	}
	c.advance()
	return nil
}

// next reads and checks the next row, returning its fields (valid until
// the next call), io.EOF at the end, or a *ChainError.
func (c *checker) next() ([]string, error) {
	switch err := c.record(); {
	case err == io.EOF:
		return nil, io.EOF
	case err == errPartial:
		e := c.fail(0, "truncated last line (it has no line end): the file was cut short or is still being written")
		e.Torn = true
		return nil, e
	case err != nil:
		return nil, err
	}
	fields, problem := splitRecord(c.raw, c.fields[:0])
	c.fields = fields
	if problem != "" {
		return nil, c.fail(0, "%s", problem)
	}
	if len(fields) != numCols {
		return nil, c.fail(0, "wrong column count: %d columns where the report has %d", len(fields), numCols)
	}
	seq, err := strconv.ParseInt(fields[colSeq], 10, 64)
	if err != nil || strconv.FormatInt(seq, 10) != fields[colSeq] {
		return nil, c.fail(0, "seq %q is not a number", fields[colSeq])
	}
	enc, err := c.enc.encode(fields)
	if err != nil {
		return nil, fmt.Errorf("re-encoding a row: %w", err)
	}
	if !bytes.Equal(enc, c.raw) {
		return nil, c.fail(seq, "the row is not written as privsync writes it (its quoting or line end was changed)")
	}
	if seq != c.seq+1 {
		return nil, c.fail(seq, "seq out of order: %d where %d was expected (a row was deleted, inserted or moved)", seq, c.seq+1)
	}
	if c.rows == 0 {
		c.runID = fields[colRunID]
	} else if fields[colRunID] != c.runID {
		return nil, c.fail(seq, "run_id %q differs from the first row's %q", fields[colRunID], c.runID)
	}
	for i, f := range fields[:colPrevHash] {
		if i != colSeq && formulaStart(f) {
			return nil, c.fail(seq, "%s starts with %q without the leading apostrophe privsync writes", Columns[i], f[:1])
		}
	}
	if fields[colPrevHash] != c.prev {
		if c.rows == 0 {
			return nil, c.fail(seq, "prev_hash of the first row must be 64 zeros")
		}
		return nil, c.fail(seq, "prev_hash does not chain: it is not the hash of the row before")
	}
	if h := c.hasher.hash(fields); fields[colHash] != h {
		return nil, c.fail(seq, "bad hash: the row's fields hash to %s, not %s (the row was edited)", h, fields[colHash])
	}
	c.rows++
	c.seq = seq
	c.prev = fields[colHash]
	c.advance()
	return fields, nil
}

// splitRecord splits one RFC 4180 record (line end included) into fields.
// It is lenient where encoding/csv's writer is strict: the caller compares
// the record with its canonical encoding.
func splitRecord(raw []byte, dst []string) ([]string, string) {
	body := raw[:len(raw)-1]
	for {
		if len(body) > 0 && body[0] == '"' {
			var b []byte
			i := 1
			for {
				j := bytes.IndexByte(body[i:], '"')
				if j < 0 {
					return dst, "a quoted field does not end"
				}
				b = append(b, body[i:i+j]...)
				i += j + 1
				if i < len(body) && body[i] == '"' {
					b = append(b, '"')
					i++
					continue
				}
				break
			}
			dst = append(dst, string(b))
			body = body[i:]
			if len(body) == 0 {
				return dst, ""
			}
			if body[0] != ',' {
				return dst, "a quoted field is followed by something other than a comma"
			}
			body = body[1:]
			continue
		}
		j := bytes.IndexByte(body, ',')
		f := body
		if j >= 0 {
			f = body[:j]
		}
		if bytes.IndexByte(f, '"') >= 0 {
			return dst, "a quote in an unquoted field"
		}
		dst = append(dst, string(f))
		if j < 0 {
			return dst, ""
		}
		body = body[j+1:]
	}
}

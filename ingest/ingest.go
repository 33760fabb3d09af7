// Package ingest streams validated desired-state rows out of the job's
// inputs: CSV files, Parquet files, directories of them (Spark and warehouse
// part files), CSV on standard input, and objects in a store (S3, GCS,
// Azure) through the Objects an Options carries (see objects.go and
// ingest/objstore).
//
// The API is three functions:
//
//   - Expand resolves INPUT arguments into the files to read.
//   - Check opens every input and verifies it can be read (it exists, it is
//     a CSV or Parquet file by extension and by content, its header or schema
//     is sound and holds the required columns) without streaming a row.
//   - Read does what Check does for every input first, then streams every
//     row of every input, in order, to a Handler: valid rows to Handler.Row,
//     invalid ones as a *privsync.RowError to Handler.Reject. It returns per
//     file information: the SHA-256 of its bytes, its size and row counts.
//
// A problem with a whole file is returned as a *FileError (the CLI exits 2
// on it). Read may return one after it has streamed rows of that file (a CSV
// syntax error halfway, a corrupt Parquet page), so a caller must not act on
// the rows before Read has returned nil. A bad row never stops reading.
//
// A CSV row longer than MaxRowBytes is a *FileError at its row: memory
// stays flat whatever a file holds. Every present updated_at, CSV text or
// Parquet TIMESTAMP, goes through CheckUpdatedAt.
//
// Row numbers: CSV counts the header as row 1, so the first data row is
// row 2 as a spreadsheet shows it (a quoted field spanning lines is one row);
// Parquet counts rows from 1.
//
// The CSV hot path is encoding/csv with ReuseRecord and a header mapping,
// parsing on a goroutine of its own while the caller's goroutine validates
// and calls the Handler (the Handler is only ever called from the goroutine
// that called Read); the file's SHA-256 is computed on a third goroutine.
// The strings of a Row (SubjectID, AccessRequest) share the memory of their
// CSV record, so a caller keeping millions of them may want strings.Clone;
// Vendor and IDType are interned and can be kept as they are.
//
// Parquet is read with Apache Arrow's Go implementation (arrow-go's
// parquet/file), from an opened Source (an io.ReaderAt and a size, so an
// object store can feed it ranged reads): the column chunk readers of the
// columns needed, typed (no value is boxed in an interface), read side by
// side in batches of ParquetBatchRows rows on a goroutine of their own
// while the caller's goroutine validates the previous batch. Memory stays
// flat whatever the file size; arrow-go refuses a page claiming more than
// maxUncompressedPageSize before allocating it, so a corrupt file is a
// *FileError, not a blow-up. A hive-style key=value directory in a Parquet
// file's path supplies the column key when the file lacks it.
package ingest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/privsync/privsync"
)

// Formats of input files, as FileInfo.Format names them.
const (
	FormatCSV     = "csv"
	FormatParquet = "parquet"
)

// Stdin is the input argument that reads CSV from standard input.
const Stdin = "-"

// Options say how to read the inputs.
type Options struct {
	// Vendors maps the configured vendor names to their kinds; a row naming
	// another vendor is rejected.
	Vendors map[string]privsync.Kind
	// Columns maps a canonical column name (vendor, subject_id, id_type,
	// restrictions, erasure, access_request, updated_at) to its name in the
	// files; a column absent from the map keeps its canonical name.
	Columns map[string]string
	// Progress, if set, is told the number of input bytes consumed as
	// reading goes on (approximated for Parquet).
	Progress Counter
	// Stdin is read for the "-" input; nil means os.Stdin.
	Stdin io.Reader
	// Objects, if set, reads the inputs it recognises (object storage URLs).
	Objects Objects
}

// Counter counts progress. Add may be called from a goroutine other than
// the one that called Read, though never from two at once.
type Counter interface{ Add(n int64) }

// Handler receives the rows of the inputs.
type Handler interface {
	// Row receives a valid row. r is reused after Row returns: copy what
	// you keep. An error stops Read, which returns it.
	Row(r *privsync.Row) error
	// Reject receives an invalid row. e is reused after Reject returns. An
	// error stops Read, which returns it.
	Reject(e *privsync.RowError) error
}

// FileInfo describes one input file once it has been read.
type FileInfo struct {
	Path     string // as Expand gave it; "-" for standard input; an object's URL
	Format   string // FormatCSV or FormatParquet
	SHA256   string // lowercase hex SHA-256 of the file's bytes
	Size     int64  // bytes
	ETag     string `json:",omitempty"` // an object's version (ETag, or generation); empty for files
	Rows     int64  // valid rows passed to Handler.Row
	Rejected int64  // invalid rows passed to Handler.Reject
}

// FileError is a problem with a whole input file: it cannot be read, or not
// as a CSV or Parquet file of desired states.
type FileError struct {
	Path string
	Line int64 // the row at fault, 0 when the file as a whole is
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: row %d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

func fileErr(path string, line int64, format string, args ...any) *FileError {
	return &FileError{Path: path, Line: line, Err: fmt.Errorf(format, args...)}
}

// formatOf tells the format of a file by its extension, case-insensitively.
func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return FormatCSV
	case ".parquet":
		return FormatParquet
	}
	return ""
}

// skipInDir reports whether a directory entry is not data: hidden files,
// Spark markers and temporaries (_SUCCESS, _temporary) and checksums (.crc).
func skipInDir(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
		strings.HasSuffix(strings.ToLower(name), ".crc")
}

// Expand resolves INPUT arguments into files: a file is taken by its
// extension (.csv or .parquet, case-insensitive), a directory is read
// recursively in lexical order (skipping hidden files, names starting with
// '_' and .crc files), and "-" stands for CSV on standard input (at most
// once). What is not a regular file (a FIFO, a device, a socket, directly
// or through a symbolic link) is refused: reading it could block or never
// end. Every problem is a *FileError.
func Expand(inputs []string) ([]string, error) {
	if len(inputs) == 0 {
		return nil, errors.New("ingest: no inputs")
	}
	var files []string
	stdin := false
	for _, in := range inputs {
		if in == Stdin {
			if stdin {
				return nil, fileErr(in, 0, "standard input given twice")
			}
			stdin = true
			files = append(files, in)
			continue
		}
		st, err := os.Stat(in)
		if err != nil {
			return nil, &FileError{Path: in, Err: unwrapPathError(err)}
		}
		if !st.IsDir() {
			if formatOf(in) == "" {
				return nil, fileErr(in, 0, "unknown input type: expected a .csv or .parquet file")
			}
			if err := regular(in, st); err != nil {
				return nil, err
			}
			files = append(files, in)
			continue
		}
		n := len(files)
		err = filepath.WalkDir(in, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return &FileError{Path: path, Err: unwrapPathError(err)}
			}
			if path != in && skipInDir(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if formatOf(path) == "" {
				return fileErr(path, 0, "unknown input type in directory %s: expected .csv or .parquet files", in)
			}
			if !d.Type().IsRegular() { // a symbolic link, a FIFO, a device, a socket
				st, err := os.Stat(path)
				if err != nil {
					return &FileError{Path: path, Err: unwrapPathError(err)}
				}
				if err := regular(path, st); err != nil {
					return err
				}
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(files) == n {
			return nil, fileErr(in, 0, "no .csv or .parquet files in directory")
		}
	}
	return files, nil
}

// regular refuses a file that is not a regular file: opening a FIFO
// would wait for a writer for ever, a device could be read for ever.
func regular(path string, st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch m := st.Mode(); {
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		what = "a device"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m.IsDir():
		what = "a directory"
	}
	return fileErr(path, 0, "%s: privsync reads only regular files (copy the data to a file first)", what)
}

// unwrapPathError drops the path an *fs.PathError repeats.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// CheckColumns checks a column mapping as Options.Columns takes it: only
// canonical columns, no empty names, no two columns read from one name.
func CheckColumns(m map[string]string) error {
	_, err := columnNames(m)
	return err
}

// columnNames returns the name in the files of each canonical column.
func columnNames(m map[string]string) ([numFields]string, error) {
	names := canonicalNames
	seen := make(map[string]string, len(m))
	for canon, name := range m {
		f := fieldOf(canon)
		if f < 0 {
			return names, fmt.Errorf("unknown canonical column %q in the column mapping", canon)
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return names, fmt.Errorf("empty file column name for %q in the column mapping", canon)
		}
		names[f] = name
	}
	for f, name := range names {
		if other, dup := seen[name]; dup {
			return names, fmt.Errorf("columns %s and %s both read the file column %q", other, canonicalNames[f], name)
		}
		seen[name] = canonicalNames[f]
	}
	return names, nil
}

func fieldOf(canon string) field {
	for f, n := range canonicalNames {
		if n == canon {
			return field(f)
		}
	}
	return -1
}

// describeColumn names a file column for messages: its file name, and the
// canonical name when renamed.
func describeColumn(names *[numFields]string, f field) string {
	if names[f] == canonicalNames[f] {
		return fmt.Sprintf("%q", names[f])
	}
	return fmt.Sprintf("%q (%s)", names[f], canonicalNames[f])
}

// input is one opened input, header or footer read.
type input interface {
	// stream passes every row to h.
	stream(ctx context.Context, s *session, h Handler, info *FileInfo) error
	close()
}

// session holds what is shared by the inputs of one Check or Read.
type session struct {
	opts  Options
	names [numFields]string
	v     *validator
	stdin *csvSource // the opened "-" input, read only once
}

func newSession(opts Options) (*session, error) {
	names, err := columnNames(opts.Columns)
	if err != nil {
		return nil, err
	}
	v, err := newValidator(opts.Vendors)
	if err != nil {
		return nil, err
	}
	return &session{opts: opts, names: names, v: v}, nil
}

// open opens one input and reads its header or footer.
func (s *session) open(ctx context.Context, path string) (input, error) {
	if s.opts.Objects != nil && s.opts.Objects.Is(path) {
		return s.openObject(ctx, path)
	}
	if path == Stdin {
		if s.stdin != nil {
			return s.stdin, nil
		}
		in := s.opts.Stdin
		if in == nil {
			in = os.Stdin
		}
		src, err := openCSV(path, in, nil, s)
		if err != nil {
			return nil, err
		}
		s.stdin = src
		return src, nil
	}
	// Checked again here, not only by Expand: the file may have been
	// replaced since, and a FIFO would block the open itself.
	st, err := os.Stat(path)
	if err != nil {
		return nil, &FileError{Path: path, Err: unwrapPathError(err)}
	}
	if err := regular(path, st); err != nil {
		return nil, err
	}
	switch formatOf(path) {
	case FormatCSV:
		f, err := os.Open(path)
		if err != nil {
			return nil, &FileError{Path: path, Err: unwrapPathError(err)}
		}
		src, err := openCSV(path, f, f, s)
		if err != nil {
			f.Close()
			return nil, err
		}
		return src, nil
	case FormatParquet:
		return openParquetFile(path, s)
	}
	return nil, fileErr(path, 0, "unknown input type: expected a .csv or .parquet file")
}

// hiveNull is how Spark and Hive name the directory of a null partition value.
const hiveNull = "__HIVE_DEFAULT_PARTITION__"

// partitionOf reads the hive-style key=value directories in a file's path
// (vendor=sfmc/part-0.parquet) whose key names a column, URL-decoded as
// Spark and DuckDB encode them. The deepest directory of a key counts.
func (s *session) partitionOf(path string) (partition, error) {
	var pt partition
	for _, dir := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		k, v, ok := strings.Cut(dir, "=")
		if !ok {
			continue
		}
		key, err := url.PathUnescape(k)
		if err != nil {
			continue // not a partition directory
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return pt, fmt.Errorf("partition directory %s: %w", dir, err)
		}
		if val == hiveNull {
			val = ""
		}
		for f, name := range s.names {
			if name == key {
				pt.vals[f], pt.set[f], pt.dirs[f], pt.any = val, true, dir, true
			}
		}
	}
	return pt, nil
}

// check opens and closes every file, keeping standard input open.
func (s *session) check(ctx context.Context, files []string) error {
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := s.open(ctx, path)
		if err != nil {
			return err
		}
		if path != Stdin {
			src.close()
		}
	}
	return nil
}

// Check expands the inputs and verifies that each can be read: it exists,
// it is a CSV or Parquet file, its header or schema is sound and has the
// required columns. It reads headers and footers only: a CSV syntax error
// further down or a corrupt Parquet page is found by Read. For "-" it
// consumes the header from Options.Stdin, so give it a fresh reader for Read.
func Check(ctx context.Context, inputs []string, opts Options) error {
	s, err := newSession(opts)
	if err != nil {
		return err
	}
	files, err := s.expand(ctx, inputs)
	if err != nil {
		return err
	}
	return s.check(ctx, files)
}

// Read expands the inputs, checks every one of them as Check does, then
// streams every row of every input to h, in order. It returns what it read
// of each file; on error, the files read so far.
func Read(ctx context.Context, inputs []string, opts Options, h Handler) ([]FileInfo, error) {
	s, err := newSession(opts)
	if err != nil {
		return nil, err
	}
	files, err := s.expand(ctx, inputs)
	if err != nil {
		return nil, err
	}
	if err := s.check(ctx, files); err != nil {
		return nil, err
	}
	infos := make([]FileInfo, 0, len(files))
	for _, path := range files {
		src, err := s.open(ctx, path)
		if err != nil {
			return infos, err
		}
		info := FileInfo{Path: path, Format: FormatCSV}
		if path != Stdin {
			info.Format = formatOf(path)
		}
		err = src.stream(ctx, s, h, &info)
		src.close()
		if err != nil {
			return infos, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// hashFile computes the SHA-256 and size of a file.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// hashAsync hashes a file on another goroutine (another core) while it is
// parsed; the returned function waits for the result.
func hashAsync(path string) func(info *FileInfo) error {
	return hashInBackground(path, func() (string, int64, error) { return hashFile(path) })
}

// hashInBackground runs hash on another goroutine; the returned function
// waits for it and fills in the file's SHA-256 and size, or names the input
// called name when hashing failed.
func hashInBackground(name string, hash func() (string, int64, error)) func(info *FileInfo) error {
	type result struct {
		sum  string
		size int64
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		sum, size, err := hash()
		ch <- result{sum, size, err}
	}()
	return func(info *FileInfo) error {
		r := <-ch
		if r.err != nil {
			return &FileError{Path: name, Err: fmt.Errorf("hashing: %w", unwrapPathError(r.err))}
		}
		info.SHA256, info.Size = r.sum, r.size
		return nil
	}
}

// rowSink counts and delivers validated rows and rejects of one file.
type rowSink struct {
	h    Handler
	info *FileInfo
	v    *validator
	row  privsync.Row
	rej  privsync.RowError
}

func newRowSink(s *session, h Handler, info *FileInfo) *rowSink {
	k := &rowSink{h: h, info: info, v: s.v}
	k.row.File, k.rej.File = info.Path, info.Path
	return k
}

// put validates raw, the row at line, and hands it to the handler.
func (k *rowSink) put(raw *rawRow, line int64) error {
	if k.v.validate(raw, &k.row, &k.rej) {
		k.row.Line = line
		k.info.Rows++
		return k.h.Row(&k.row)
	}
	// Whom the bad row names, so the report says it and the planner
	// recognises the same bad row on the next night.
	k.rej.Vendor = rawValue(raw.vals[fVendor])
	k.rej.SubjectID = rawValue(raw.vals[fSubjectID])
	return k.rejectRow(line)
}

// rawValue is a raw field as a reject carries it: valid UTF-8, bounded,
// control and bidirectional characters spelled \uXXXX so the report shows
// what the value holds rather than what it makes a reader see.
func rawValue(s string) string {
	if len(s) > maxValueLen {
		s = s[:maxValueLen]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsFunc(s, isDisguising) {
		var b strings.Builder
		for _, r := range s {
			if isDisguising(r) {
				fmt.Fprintf(&b, "\\u%04X", r)
			} else {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	return strings.Clone(s)
}

// rejectRow hands the reject prepared in k.rej to the handler.
func (k *rowSink) rejectRow(line int64) error {
	k.rej.Line = line
	k.info.Rejected++
	err := k.h.Reject(&k.rej)
	k.rej = privsync.RowError{File: k.info.Path}
	return err
}

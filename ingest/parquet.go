package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// ParquetBatchRows is how many rows are read from each Parquet column at once.
const ParquetBatchRows = 8192

// Bounds on what a Parquet file may make the reader allocate: a page whose
// header claims more is refused before anything is allocated for it.
// Writers make pages of 8 KiB to a few MiB; a dictionary page of 10M
// distinct ids of 36 bytes is under 400 MiB, so such a dictionary is
// refused: its writer should have fallen back to plain pages, as they do.
const (
	maxCompressedPageSize   = 64 << 20
	maxUncompressedPageSize = 64 << 20
)

// Source is an opened input file: what the Parquet reader needs is ranged
// reads (io.ReaderAt) and the size, so a local file and an object in a
// store read the same way. Name is the file's name in messages and in
// FileInfo.Path.
type Source struct {
	Name string
	R    io.ReaderAt
	Size int64
}

// parquetSource is an opened Parquet input whose footer has been read and
// whose schema holds the columns needed.
type parquetSource struct {
	src    Source
	closer io.Closer // closed by close, if set
	rd     *file.Reader
	md     *metadata.FileMetaData
	cols   []*pqColumn
	part   partition
	rows   int64
}

// openParquetFile opens a local Parquet file.
func openParquetFile(path string, s *session) (*parquetSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &FileError{Path: path, Err: unwrapPathError(err)}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &FileError{Path: path, Err: unwrapPathError(err)}
	}
	p, err := openParquet(Source{Name: path, R: f, Size: st.Size()}, s)
	if err != nil {
		f.Close()
		return nil, err
	}
	p.closer = f
	return p, nil
}

// openParquet reads the footer of a Parquet source and maps its schema.
func openParquet(src Source, s *session) (*parquetSource, error) {
	if err := checkMagic(src); err != nil {
		return nil, &FileError{Path: src.Name, Err: err}
	}
	props := parquet.NewReaderProperties(nil)
	// Read pages through a buffer rather than whole column chunks: memory
	// stays a few pages per column however large the row groups are.
	props.BufferedStreamEnabled = true
	props.BufferSize = 256 << 10
	props.MaxCompressedPageSize = maxCompressedPageSize
	props.MaxUncompressedPageSize = maxUncompressedPageSize
	rd, err := file.NewParquetReader(io.NewSectionReader(src.R, 0, src.Size), file.WithReadProps(props))
	if err != nil {
		return nil, fileErr(src.Name, 0, "truncated or corrupt parquet file: %w", err)
	}
	p := &parquetSource{src: src, rd: rd, md: rd.MetaData()}
	if p.part, err = s.partitionOf(src.Name); err != nil {
		return nil, &FileError{Path: src.Name, Err: err}
	}
	if err := p.checkFooter(); err != nil {
		return nil, &FileError{Path: src.Name, Err: err}
	}
	if err := p.mapSchema(&s.names); err != nil {
		return nil, &FileError{Path: src.Name, Err: err}
	}
	if err := p.checkCodecs(); err != nil {
		return nil, &FileError{Path: src.Name, Err: err}
	}
	return p, nil
}

// checkMagic verifies the "PAR1" marks at both ends of a Parquet file.
func checkMagic(src Source) error {
	if src.Size < 12 {
		return errors.New("not a parquet file: too short")
	}
	var head, tail [4]byte
	if _, err := src.R.ReadAt(head[:], 0); err != nil {
		return fmt.Errorf("reading: %w", unwrapPathError(err))
	}
	if _, err := src.R.ReadAt(tail[:], src.Size-4); err != nil {
		return fmt.Errorf("reading: %w", unwrapPathError(err))
	}
	if string(head[:]) != "PAR1" {
		return errors.New("not a parquet file: no PAR1 mark at its start")
	}
	if string(tail[:]) != "PAR1" {
		return errors.New("truncated or corrupt parquet file: no PAR1 mark at its end")
	}
	return nil
}

func (p *parquetSource) checkFooter() error {
	var sum int64
	for g := range p.md.NumRowGroups() {
		rg := p.md.RowGroup(g)
		n := rg.NumRows()
		if n < 0 {
			return fmt.Errorf("corrupt parquet file: row group %d has %d rows", g+1, n)
		}
		sum += n
	}
	// A row takes at least a bit in some column: more rows than bits is a
	// corrupt footer, not a big file.
	if p.rows = p.md.NumRows; p.rows != sum || p.rows < 0 || p.rows > 8*p.src.Size {
		return fmt.Errorf("corrupt parquet file: %d rows in its footer, %d in its row groups", p.rows, sum)
	}
	return nil
}

// checkCodecs refuses a file compressed or encoded in a way the reader
// cannot read before a row of it is streamed, as its footer says.
func (p *parquetSource) checkCodecs() error {
	for g := range p.md.NumRowGroups() {
		rg := p.md.RowGroup(g)
		for _, c := range p.cols {
			cc, err := rg.ColumnChunk(c.leaf)
			if err != nil {
				return fmt.Errorf("corrupt parquet file: row group %d, column %q: %w", g+1, c.name, err)
			}
			if cc.FilePath() != "" {
				return fmt.Errorf("row group %d, column %q: column chunks in other files are not supported", g+1, c.name)
			}
			codec := cc.Compression()
			if _, err := compress.GetCodec(codec); err != nil {
				return fmt.Errorf("unsupported compression codec %s in row group %d, column %q", describeCodec(codec), g+1, c.name)
			}
			for _, e := range cc.Encodings() {
				if !canDecode(cc.Type(), e) {
					return fmt.Errorf("unsupported parquet encoding %s for %s values in row group %d, column %q",
						describeEncoding(e), cc.Type(), g+1, c.name)
				}
			}
		}
	}
	return nil
}

// describeCodec names a codec, or gives the number of one Parquet does
// not define.
func describeCodec(c compress.Compression) string {
	if s := c.String(); s != "" && !strings.HasPrefix(s, "<") {
		return s
	}
	return fmt.Sprintf("%d (not a codec Parquet defines)", int(c))
}

// canDecode tells whether arrow-go decodes values of type t in encoding e,
// or e is one a footer lists for the levels (RLE, BIT_PACKED). arrow-go
// panics on a page in an encoding it lacks for its type, so a footer
// listing one is refused here and a page lying about it is caught by
// pqColumn.read.
func canDecode(t parquet.Type, e parquet.Encoding) bool {
	enc := parquet.Encodings
	switch e {
	case enc.Plain, enc.PlainDict, enc.RLEDict, enc.RLE, enc.BitPacked:
		return true
	case enc.DeltaBinaryPacked:
		return t == parquet.Types.Int32 || t == parquet.Types.Int64
	case enc.DeltaLengthByteArray:
		return t == parquet.Types.ByteArray
	case enc.DeltaByteArray:
		return t == parquet.Types.ByteArray || t == parquet.Types.FixedLenByteArray
	case enc.ByteStreamSplit:
		switch t {
		case parquet.Types.Int32, parquet.Types.Int64, parquet.Types.Float, parquet.Types.Double, parquet.Types.FixedLenByteArray:
			return true
		}
	}
	return false
}

// describeEncoding names an encoding, or gives the number of one Parquet
// does not define.
func describeEncoding(e parquet.Encoding) string {
	if s := e.String(); s != "" && !strings.HasPrefix(s, "<") {
		return s
	}
	return fmt.Sprintf("%d (not an encoding Parquet defines)", int(e))
}

// mapSchema finds the leaf column of each canonical column present, and
// how its values become text or times.
func (p *parquetSource) mapSchema(names *[numFields]string) error {
	sc := p.md.Schema
	leaves := map[string][]int{} // top-level name -> leaf column indexes
	for i := range sc.NumColumns() {
		top := sc.Column(i).ColumnPath()[0]
		leaves[top] = append(leaves[top], i)
	}
	seen := map[string]bool{}
	for i := range sc.Root().NumFields() {
		name := sc.Root().Field(i).Name()
		if seen[name] {
			return fmt.Errorf("duplicate column %q in the schema", name)
		}
		seen[name] = true
	}
	for f := range numFields {
		name := names[f]
		idx, ok := leaves[name]
		switch {
		case !ok && p.part.has(f):
			continue // the directory supplies it
		case !ok && (f == fVendor || f == fSubjectID):
			return fmt.Errorf("missing required column %s", describeColumn(names, f))
		case !ok:
			continue
		case len(idx) != 1:
			return fmt.Errorf("column %q is a group of %d columns, expected strings", name, len(idx))
		}
		d := sc.Column(idx[0])
		col, err := newPQColumn(field(f), name, d, idx[0])
		if err != nil && f == fUpdatedAt && p.arrowSeconds(name, d) {
			col, err = &pqColumn{field: fUpdatedAt, name: name, leaf: idx[0], kind: pqTimeSeconds, maxDL: d.MaxDefinitionLevel()}, nil
		}
		if err != nil {
			return fmt.Errorf("column %q: %w", name, err)
		}
		p.cols = append(p.cols, col)
	}
	return nil
}

// arrowSeconds tells whether column name, a bare INT64 in Parquet, is an
// Arrow Timestamp(Second): Parquet has no unit of seconds, so arrow-rs and
// arrow-go write such a column without a logical type and keep its unit
// only in the Arrow schema stored in the footer (key ARROW:schema).
func (p *parquetSource) arrowSeconds(name string, d *schema.Column) bool {
	if d.PhysicalType() != parquet.Types.Int64 || d.MaxRepetitionLevel() != 0 || d.ConvertedType() != schema.ConvertedTypes.None {
		return false
	}
	if _, ok := d.LogicalType().(schema.NoLogicalType); !ok {
		return false
	}
	m, err := pqarrow.NewSchemaManifest(p.md.Schema, p.md.KeyValueMetadata(), nil)
	if err != nil || m.OriginSchema == nil {
		return false
	}
	fs, ok := m.OriginSchema.FieldsByName(name)
	if !ok || len(fs) != 1 {
		return false
	}
	ts, ok := fs[0].Type.(*arrow.TimestampType)
	return ok && ts.Unit == arrow.Second
}

func (p *parquetSource) close() {
	if p.closer != nil {
		p.closer.Close()
	}
}

func (p *parquetSource) stream(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	wait := hashSourceAsync(p.src)
	err := p.streamRows(ctx, s, h, info)
	if herr := wait(info); err == nil {
		err = herr
	}
	return err
}

// hashSourceAsync hashes a source on another goroutine while it is parsed;
// the returned function waits for the result.
func hashSourceAsync(src Source) func(info *FileInfo) error {
	return hashInBackground(src.Name, func() (string, int64, error) {
		h := sha256.New()
		n, err := io.CopyBuffer(h, io.NewSectionReader(src.R, 0, src.Size), make([]byte, 1<<20))
		return hex.EncodeToString(h.Sum(nil)), n, err
	})
}

// pqBatch is the next rows of every column read, as text or times.
type pqBatch struct {
	first int64 // the row number of its first row, from 1
	n     int
	out   []pqOut // by column, as p.cols
	err   error   // what ended reading after these rows
}

// streamRows reads batches of rows on a goroutine of its own (reading the
// columns of a batch side by side) while the caller's goroutine validates
// and hands over the rows of the previous batch.
func (p *parquetSource) streamRows(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	const slots = 2
	free, full := make(chan *pqBatch, slots), make(chan *pqBatch, slots)
	for range slots {
		free <- &pqBatch{out: make([]pqOut, len(p.cols))}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { p.read(done, free, full) })
	defer wg.Wait()
	defer close(done)

	k := newRowSink(s, h, info)
	var raw rawRow
	var reported int64
	for b := range full {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range b.n {
			raw.hasAt = false
			for c, col := range p.cols {
				o := &b.out[c]
				if col.kind.isTime() {
					raw.vals[col.field] = ""
					raw.at, raw.hasAt = o.times[i], o.valid[i]
				} else {
					raw.vals[col.field] = o.strs[i]
				}
			}
			line := b.first + int64(i)
			if err := p.part.apply(&raw, p.cols); err != nil {
				return &FileError{Path: p.src.Name, Line: line, Err: err}
			}
			if err := k.put(&raw, line); err != nil {
				return err
			}
		}
		if b.err != nil {
			return &FileError{Path: p.src.Name, Line: b.first + int64(b.n), Err: b.err}
		}
		if s.opts.Progress != nil && p.rows > 0 {
			pos := p.src.Size * (b.first + int64(b.n) - 1) / p.rows
			s.opts.Progress.Add(pos - reported)
			reported = pos
		}
		free <- b
	}
	if s.opts.Progress != nil && reported < p.src.Size {
		s.opts.Progress.Add(p.src.Size - reported) // a file without rows
	}
	return nil
}

// read reads every row group in batches into the batches of free and sends
// them to full, which it closes at the end or when done is closed.
func (p *parquetSource) read(done <-chan struct{}, free <-chan *pqBatch, full chan<- *pqBatch) {
	defer close(full)
	row := int64(1)
	for g := range p.md.NumRowGroups() {
		rg := p.rd.RowGroup(g)
		left := rg.NumRows()
		err := p.startRowGroup(rg, g)
		for left > 0 || err != nil {
			var b *pqBatch
			select {
			case b = <-free:
			case <-done:
				return
			}
			b.first, b.n, b.err = row, 0, err
			if err == nil {
				n := int(min(left, ParquetBatchRows))
				b.err = p.readBatch(b, n, g)
				if b.err == nil {
					b.n = n
				}
			}
			select {
			case full <- b:
			case <-done:
				return
			}
			if b.err != nil {
				return
			}
			row += int64(b.n)
			left -= int64(b.n)
		}
	}
}

// startRowGroup makes the column chunk readers of a row group.
func (p *parquetSource) startRowGroup(rg *file.RowGroupReader, g int) error {
	for _, c := range p.cols {
		cr, err := rg.Column(c.leaf)
		if err != nil {
			return fmt.Errorf("truncated or corrupt parquet file: row group %d, column %q: %w", g+1, c.name, err)
		}
		c.start(cr)
	}
	return nil
}

// readBatch reads the next n rows of every column, side by side.
func (p *parquetSource) readBatch(b *pqBatch, n, g int) error {
	errs := make([]error, len(p.cols))
	var wg sync.WaitGroup
	for i, c := range p.cols {
		if i == len(p.cols)-1 {
			errs[i] = c.read(&b.out[i], n)
			break
		}
		wg.Go(func() { errs[i] = c.read(&b.out[i], n) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil { // the first column's, as a sequential read would
			return fmt.Errorf("%s: row group %d, column %q: %w", readProblem(err), g+1, p.cols[i].name, err)
		}
	}
	return nil
}

// readProblem says what an error reading pages is about: something the
// reader does not implement, or a file that is not what it says.
func readProblem(err error) string {
	msg := err.Error()
	for _, s := range []string{"unknown encoding", "unimplemented", "not implemented", "not supported", "unsupported", "only boolean supports"} {
		if strings.Contains(msg, s) {
			return "unsupported parquet encoding"
		}
	}
	return "truncated or corrupt parquet file"
}

// partition is the columns a file's hive-style directories (vendor=sfmc/)
// supply.
type partition struct {
	vals [numFields]string
	set  [numFields]bool
	dirs [numFields]string // the directory of each, for messages
	any  bool
}

func (pt *partition) has(f field) bool { return pt.set[f] }

// apply puts the partition values into raw where the file lacks the
// column, and checks them where it has it.
func (pt *partition) apply(raw *rawRow, cols []*pqColumn) error {
	if !pt.any {
		return nil
	}
	for f := range numFields {
		if !pt.set[f] {
			continue
		}
		c := fileColumn(cols, f)
		if c == nil {
			raw.vals[f] = pt.vals[f]
			continue
		}
		if !c.kind.isTime() && raw.vals[f] != pt.vals[f] {
			return fmt.Errorf("column %s is %q in the file but %q in its directory %s",
				canonicalNames[f], rawValue(raw.vals[f]), pt.vals[f], pt.dirs[f])
		}
	}
	return nil
}

// fileColumn returns the file's column of f, or nil.
func fileColumn(cols []*pqColumn, f field) *pqColumn {
	for _, c := range cols {
		if c.field == f {
			return c
		}
	}
	return nil
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xitongsys/parquet-go-source/local"
	"github.com/xitongsys/parquet-go/common"
	"github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/reader"
	"github.com/xitongsys/parquet-go/source"
	"github.com/xitongsys/parquet-go/types"
)

// ParquetBatchRows is how many rows are read from each Parquet column at once.
const ParquetBatchRows = 10_000

// pqValue is how a Parquet leaf column's values become strings or times.
type pqValue int

const (
	pqString pqValue = iota // BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY
	pqInt                   // INT32 or INT64, written in decimal
	pqTimeMillis
	pqTimeMicros
	pqTimeNanos
	pqTimeInt96 // the legacy Spark and Impala timestamp
)

// pqColumn is a canonical column found in a Parquet schema.
type pqColumn struct {
	field field
	path  string // the leaf's internal path, for ReadColumnByPath
	value pqValue
	list  bool  // a list of strings (repetition level 1)
	maxDL int32 // definition level of a present value

	// the current batch
	vals []any
	rls  []int32
	dls  []int32
	pos  int
}

type parquetSource struct {
	path  string
	pf    source.ParquetFile
	pr    *reader.ParquetReader
	cols  []*pqColumn
	rows  int64
	size  int64
	names *[numFields]string
}

// recovered turns a panic of the Parquet library into an error.
func recovered(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("corrupt parquet file: %v", r)
	}
}

func newColumnReader(pf source.ParquetFile) (pr *reader.ParquetReader, err error) {
	defer recovered(&err)
	return reader.NewParquetColumnReader(pf, 1)
}

// checkMagic verifies the "PAR1" marks at both ends of a Parquet file.
func checkMagic(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, unwrapPathError(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, unwrapPathError(err)
	}
	size := st.Size()
	var head, tail [4]byte
	if size < 12 {
		return size, errors.New("not a parquet file: too short")
	}
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return size, fmt.Errorf("reading: %w", err)
	}
	if _, err := f.ReadAt(tail[:], size-4); err != nil {
		return size, fmt.Errorf("reading: %w", err)
	}
	if string(head[:]) != "PAR1" {
		return size, errors.New("not a parquet file: no PAR1 mark at its start")
	}
	if string(tail[:]) != "PAR1" {
		return size, errors.New("truncated or corrupt parquet file: no PAR1 mark at its end")
	}
	return size, nil
}

func openParquet(path string, s *session) (_ *parquetSource, err error) {
	size, err := checkMagic(path)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	pf, err := local.NewLocalFileReader(path)
	if err != nil {
		return nil, &FileError{Path: path, Err: unwrapPathError(err)}
	}
	src := &parquetSource{path: path, pf: pf, size: size, names: &s.names}
	defer func() {
		if err != nil {
			src.close()
		}
	}()
	if src.pr, err = newColumnReader(pf); err != nil {
		return nil, fileErr(path, 0, "truncated or corrupt parquet file: %w", err)
	}
	if err := src.checkFooter(); err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	if err := src.mapSchema(); err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	return src, nil
}

func (p *parquetSource) checkFooter() error {
	ft := p.pr.Footer
	var sum int64
	for _, rg := range ft.GetRowGroups() {
		for _, cc := range rg.GetColumns() {
			if cc.FilePath != nil {
				return errors.New("column chunks in other files are not supported")
			}
			if cc.MetaData == nil {
				return errors.New("corrupt parquet file: a column chunk has no metadata")
			}
		}
		sum += rg.GetNumRows()
	}
	if p.rows = ft.GetNumRows(); p.rows != sum || p.rows < 0 || p.rows > 8*p.size {
		return fmt.Errorf("corrupt parquet file: %d rows in its footer, %d in its row groups", p.rows, sum)
	}
	return nil
}

// mapSchema finds the leaf column of each canonical column present.
func (p *parquetSource) mapSchema() error {
	sh := p.pr.SchemaHandler
	els := sh.SchemaElements
	if len(els) == 0 || len(sh.Infos) != len(els) {
		return errors.New("corrupt parquet schema")
	}
	leaves := map[string][]int{}   // top-level name -> leaf schema indexes
	inNames := map[string]string{} // parquet-go's own name of each -> its name
	for i, k := 1, int32(0); k < els[0].GetNumChildren(); k++ {
		if i >= len(els) {
			return errors.New("corrupt parquet schema")
		}
		name, in := sh.Infos[i].ExName, sh.Infos[i].InName // the reader renamed els[i]
		if other, ok := inNames[in]; ok {
			// parquet-go capitalizes names: it cannot tell these apart.
			return fmt.Errorf("columns %q and %q differ only in case or punctuation, which parquet-go cannot read apart", other, name)
		}
		inNames[in] = name
		end := i + subtreeSize(els, i)
		if end > len(els) {
			return errors.New("corrupt parquet schema")
		}
		for ; i < end; i++ {
			if els[i].GetNumChildren() == 0 {
				leaves[name] = append(leaves[name], i)
			}
		}
	}
	for f := range numFields {
		name := p.names[f]
		idx, ok := leaves[name]
		if !ok {
			if f == fVendor || f == fSubjectID {
				return fmt.Errorf("missing required column %s", describeColumn(p.names, f))
			}
			continue
		}
		if len(idx) != 1 {
			return fmt.Errorf("column %q is a group of %d columns, expected strings", name, len(idx))
		}
		col, err := p.leafColumn(f, idx[0])
		if err != nil {
			return fmt.Errorf("column %q: %w", name, err)
		}
		p.cols = append(p.cols, col)
	}
	return nil
}

// subtreeSize counts the schema elements of the subtree rooted at i.
func subtreeSize(els []*parquet.SchemaElement, i int) int {
	n, j := 1, i+1
	for k := int32(0); k < els[i].GetNumChildren() && j < len(els); k++ {
		size := subtreeSize(els, j)
		n, j = n+size, j+size
	}
	return n
}

func (p *parquetSource) leafColumn(f field, i int) (*pqColumn, error) {
	sh := p.pr.SchemaHandler
	el := sh.SchemaElements[i]
	in := sh.IndexMap[int32(i)]
	path := common.StrToPath(in)
	maxRL, err := sh.MaxRepetitionLevel(path)
	if err != nil {
		return nil, err
	}
	maxDL, err := sh.MaxDefinitionLevel(path)
	if err != nil {
		return nil, err
	}
	col := &pqColumn{field: f, path: in, maxDL: maxDL, list: maxRL == 1}
	switch {
	case maxRL > 1, maxRL == 1 && f != fRestrictions:
		return nil, errors.New("nested lists are supported only for restrictions, as a list of strings")
	}
	switch t := el.GetType(); {
	case t == parquet.Type_BYTE_ARRAY || t == parquet.Type_FIXED_LEN_BYTE_ARRAY:
		col.value = pqString
	case f == fUpdatedAt && t == parquet.Type_INT96:
		col.value = pqTimeInt96
	case f == fUpdatedAt && timestampUnit(el) != pqInt:
		col.value = timestampUnit(el)
	case f == fUpdatedAt:
		return nil, fmt.Errorf("unsupported parquet type %s for updated_at, expected a string or a TIMESTAMP", t)
	case (t == parquet.Type_INT32 || t == parquet.Type_INT64) && (f == fSubjectID || f == fAccessRequest):
		col.value = pqInt
	default:
		return nil, fmt.Errorf("unsupported parquet type %s for %s, expected strings", t, canonicalNames[f])
	}
	return col, nil
}

// timestampUnit tells the unit of an INT64 TIMESTAMP column, or pqInt.
func timestampUnit(el *parquet.SchemaElement) pqValue {
	if el.GetType() != parquet.Type_INT64 {
		return pqInt
	}
	if lt := el.GetLogicalType(); lt != nil && lt.IsSetTIMESTAMP() {
		u := lt.GetTIMESTAMP().GetUnit()
		switch {
		case u.IsSetMILLIS():
			return pqTimeMillis
		case u.IsSetMICROS():
			return pqTimeMicros
		case u.IsSetNANOS():
			return pqTimeNanos
		}
	}
	if el.IsSetConvertedType() {
		switch el.GetConvertedType() {
		case parquet.ConvertedType_TIMESTAMP_MILLIS:
			return pqTimeMillis
		case parquet.ConvertedType_TIMESTAMP_MICROS:
			return pqTimeMicros
		}
	}
	return pqInt
}

func (p *parquetSource) close() {
	if p.pr != nil {
		for _, cb := range p.pr.ColumnBuffers {
			if cb != nil && cb.PFile != nil {
				cb.PFile.Close()
			}
		}
	}
	p.pf.Close()
}

// readBatch reads the next n rows of a column.
func (p *parquetSource) readBatch(c *pqColumn, n int64) (err error) {
	defer recovered(&err)
	c.vals, c.rls, c.dls, err = p.pr.ReadColumnByPath(c.path, n)
	c.pos = 0
	if err != nil {
		return err
	}
	got := int64(len(c.vals))
	if c.list {
		got = 0
		for _, rl := range c.rls {
			if rl == 0 {
				got++
			}
		}
	}
	if got != n || len(c.rls) != len(c.vals) || len(c.dls) != len(c.vals) {
		return fmt.Errorf("truncated or corrupt parquet file: column %q has %d of %d rows", p.names[c.field], got, n)
	}
	return nil
}

// readBatches reads the next n rows of every column, the columns side by
// side: each has its own file handle and buffers in parquet-go.
func (p *parquetSource) readBatches(n int64) error {
	errs := make([]error, len(p.cols))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, c := range p.cols {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = p.readBatch(c, n)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the first column's, as a sequential read would
		}
	}
	return nil
}

func (p *parquetSource) stream(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	wait := hashAsync(p.path)
	err := p.streamRows(ctx, s, h, info)
	if herr := wait(info); err == nil {
		err = herr
	}
	return err
}

// openColumns makes parquet-go's buffer of each column, before the columns
// are read side by side (it would make them lazily, racing on its map).
func (p *parquetSource) openColumns() (err error) {
	defer recovered(&err)
	for _, c := range p.cols {
		if _, ok := p.pr.ColumnBuffers[c.path]; ok {
			continue
		}
		cb, err := reader.NewColumnBuffer(p.pf, p.pr.Footer, p.pr.SchemaHandler, c.path)
		if cb != nil {
			p.pr.ColumnBuffers[c.path] = cb // closed by close, even on error
		}
		if err != nil {
			return fmt.Errorf("truncated or corrupt parquet file: column %q: %w", p.names[c.field], err)
		}
	}
	return nil
}

func (p *parquetSource) streamRows(ctx context.Context, s *session, h Handler, info *FileInfo) error {
	if err := p.scanPages(); err != nil {
		return &FileError{Path: p.path, Err: err}
	}
	if err := p.openColumns(); err != nil {
		return &FileError{Path: p.path, Err: err}
	}
	k := newRowSink(s, h, info)
	var raw rawRow
	var list strings.Builder
	var reported int64
	for done := int64(0); done < p.rows; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(ParquetBatchRows, p.rows-done)
		if err := p.readBatches(n); err != nil {
			return &FileError{Path: p.path, Line: done + 1, Err: err}
		}
		for i := range n {
			raw.hasAt = false
			for _, c := range p.cols {
				if err := c.next(&raw, &list); err != nil {
					return &FileError{Path: p.path, Line: done + i + 1, Err: fmt.Errorf("column %q: %w", p.names[c.field], err)}
				}
			}
			if err := k.put(&raw, done+i+1); err != nil {
				return err
			}
		}
		done += n
		if s.opts.Progress != nil {
			pos := p.size * done / p.rows
			s.opts.Progress.Add(pos - reported)
			reported = pos
		}
	}
	if s.opts.Progress != nil && reported < p.size {
		s.opts.Progress.Add(p.size - reported) // a file without rows
	}
	return nil
}

// next puts the column's value of the next row into raw.
func (c *pqColumn) next(raw *rawRow, list *strings.Builder) error {
	if c.list {
		list.Reset()
		for first := true; c.pos < len(c.vals) && (first || c.rls[c.pos] != 0); first = false {
			if c.dls[c.pos] == c.maxDL {
				s, ok := c.vals[c.pos].(string)
				if !ok {
					return fmt.Errorf("unexpected value %T", c.vals[c.pos])
				}
				if list.Len() > 0 {
					list.WriteByte('|')
				}
				list.WriteString(s)
			}
			c.pos++
		}
		raw.vals[c.field] = list.String()
		return nil
	}
	v := c.vals[c.pos]
	c.pos++
	var s string
	switch x := v.(type) {
	case nil:
	case string:
		if c.value != pqTimeInt96 {
			s = x
		} else if len(x) == 12 {
			raw.at, raw.hasAt = types.INT96ToTime(x).UTC(), true
		} else {
			return fmt.Errorf("corrupt INT96 timestamp of %d bytes", len(x))
		}
	case int64:
		switch c.value {
		case pqTimeMillis:
			raw.at, raw.hasAt = time.UnixMilli(x).UTC(), true
		case pqTimeMicros:
			raw.at, raw.hasAt = time.UnixMicro(x).UTC(), true
		case pqTimeNanos:
			raw.at, raw.hasAt = time.Unix(0, x).UTC(), true
		default:
			s = strconv.FormatInt(x, 10)
		}
	case int32:
		s = strconv.FormatInt(int64(x), 10)
	default:
		return fmt.Errorf("unexpected value %T", v)
	}
	raw.vals[c.field] = s
	return nil
}

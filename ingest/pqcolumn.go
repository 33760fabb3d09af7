package ingest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// pqKind is how the values of a Parquet leaf column become text or times.
type pqKind int

const (
	pqBytes        pqKind = iota // BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY: the bytes as they are
	pqUUID                       // FIXED_LEN_BYTE_ARRAY(16) UUID: canonical 36-character text
	pqInt32                      // INT32 in decimal, with its DECIMAL scale if any
	pqInt64                      // INT64 likewise
	pqUint32                     // INT32 annotated unsigned
	pqUint64                     // INT64 annotated unsigned
	pqDecimalBytes               // DECIMAL as big-endian two's complement bytes
	pqTimeSeconds                // INT64 Arrow Timestamp(Second), see arrowSeconds
	pqTimeMillis                 // INT64 TIMESTAMP(MILLIS)
	pqTimeMicros                 // INT64 TIMESTAMP(MICROS)
	pqTimeNanos                  // INT64 TIMESTAMP(NANOS)
	pqTimeInt96                  // the legacy Spark and Impala timestamp
)

func (k pqKind) isTime() bool { return k >= pqTimeSeconds }

// pqColumn is a canonical column found in a Parquet schema, and the reader
// of its chunk in the current row group.
type pqColumn struct {
	field field
	name  string // in the file, for messages
	leaf  int    // leaf column index in the schema
	kind  pqKind
	scale int   // of a DECIMAL
	list  bool  // a list of strings: restrictions
	maxDL int16 // definition level of a present value

	cr file.ColumnChunkReader

	// the values of the last ReadBatch, typed as the column is
	bytes []parquet.ByteArray
	flba  []parquet.FixedLenByteArray
	i32   []int32
	i64   []int64
	i96   []parquet.Int96
	defs  []int16
	reps  []int16
	strs  []string // the values of a BYTE_ARRAY string column, see readStrings

	// texts copies or interns the values of a BYTE_ARRAY string column
	texts texts

	// a list column's levels and values read but not yet consumed: its
	// rows do not end where batches do
	lvPos, lvLen, valPos, valLen int
	end                          bool
}

// pqOut is one column's values for a batch of rows.
type pqOut struct {
	strs  []string
	times []time.Time
	valid []bool // times[i] is set
}

var errNestedList = errors.New("nested lists are supported only for restrictions, as a list of strings")

func newPQColumn(f field, name string, d *schema.Column, leaf int) (*pqColumn, error) {
	c := &pqColumn{field: f, name: name, leaf: leaf, maxDL: d.MaxDefinitionLevel()}
	switch rl := d.MaxRepetitionLevel(); {
	case rl > 1, rl == 1 && f != fRestrictions:
		return nil, errNestedList
	case rl == 1:
		c.list = true
	}
	pt, lt := d.PhysicalType(), d.LogicalType()
	dec, isDec := lt.(schema.DecimalLogicalType)
	if isDec {
		c.scale = int(dec.Scale())
	}
	switch {
	case f == fUpdatedAt:
		c.kind = timeKind(d)
		if c.kind == pqBytes && pt == parquet.Types.Int64 {
			return nil, fmt.Errorf("unsupported parquet type INT64 without a TIMESTAMP unit for updated_at " +
				"(an Arrow Timestamp(Second) whose ARROW:schema was not stored?): write it as a TIMESTAMP in milliseconds, " +
				"micro- or nanoseconds, or as RFC 3339 text")
		}
		if c.kind == pqBytes && pt != parquet.Types.ByteArray {
			return nil, fmt.Errorf("unsupported parquet type %s for updated_at, expected a string or a TIMESTAMP", describeType(d))
		}
	case pt == parquet.Types.ByteArray && isDec, pt == parquet.Types.FixedLenByteArray && isDec:
		c.kind = pqDecimalBytes
	case pt == parquet.Types.ByteArray:
		c.kind = pqBytes
	case pt == parquet.Types.FixedLenByteArray:
		c.kind = pqBytes
		if _, ok := lt.(schema.UUIDLogicalType); ok {
			if d.TypeLength() != 16 {
				return nil, fmt.Errorf("UUID of %d bytes, expected 16", d.TypeLength())
			}
			c.kind = pqUUID
		}
	case (pt == parquet.Types.Int32 || pt == parquet.Types.Int64) && (f == fSubjectID || f == fAccessRequest):
		c.kind = pqInt32
		if pt == parquet.Types.Int64 {
			c.kind = pqInt64
		}
		if it, ok := lt.(schema.IntLogicalType); ok && !it.IsSigned() {
			c.kind += pqUint32 - pqInt32
		}
	default:
		return nil, fmt.Errorf("unsupported parquet type %s for %s, expected strings", describeType(d), canonicalNames[f])
	}
	if c.list && c.kind != pqBytes {
		return nil, fmt.Errorf("unsupported parquet type %s in a list of restrictions, expected strings", describeType(d))
	}
	return c, nil
}

// describeType names a column's physical type, and its logical type if
// it has one.
func describeType(d *schema.Column) string {
	s := d.PhysicalType().String()
	if d.PhysicalType() == parquet.Types.FixedLenByteArray {
		s += "(" + strconv.Itoa(d.TypeLength()) + ")"
	}
	return s
}

// timeKind tells how an updated_at column holds its times, or pqBytes
// when it is not a timestamp.
func timeKind(d *schema.Column) pqKind {
	switch d.PhysicalType() {
	case parquet.Types.Int96:
		return pqTimeInt96
	case parquet.Types.Int64:
	default:
		return pqBytes
	}
	// Naive timestamps (isAdjustedToUTC false) are taken as UTC.
	if ts, ok := d.LogicalType().(schema.TimestampLogicalType); ok {
		switch ts.TimeUnit() {
		case schema.TimeUnitMillis:
			return pqTimeMillis
		case schema.TimeUnitMicros:
			return pqTimeMicros
		case schema.TimeUnitNanos:
			return pqTimeNanos
		}
	}
	switch d.ConvertedType() {
	case schema.ConvertedTypes.TimestampMillis:
		return pqTimeMillis
	case schema.ConvertedTypes.TimestampMicros:
		return pqTimeMicros
	}
	return pqBytes
}

// start makes the column read a new row group's chunk.
func (c *pqColumn) start(cr file.ColumnChunkReader) {
	c.cr = cr
	c.lvPos, c.lvLen, c.valPos, c.valLen, c.end = 0, 0, 0, 0, false
}

// batchReader is what the typed column chunk readers of arrow-go have in
// common.
type batchReader[T any] interface {
	ReadBatch(batchSize int64, values []T, defLvls, repLvls []int16) (int64, int, error)
}

// readBatch reads up to n levels (and their values) into buf.
func readBatch[T any](cr file.ColumnChunkReader, buf *[]T, defs, reps []int16, n int) (int64, int, error) {
	r, ok := cr.(batchReader[T])
	if !ok {
		return 0, 0, fmt.Errorf("unexpected column reader %T", cr)
	}
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	return r.ReadBatch(int64(n), (*buf)[:n], defs, reps)
}

// readLevels reads up to n levels of the column into its typed buffers.
func (c *pqColumn) readLevels(n int) (int64, int, error) {
	if cap(c.defs) < n {
		c.defs = make([]int16, n)
		if c.list {
			c.reps = make([]int16, n)
		}
	}
	defs, reps := c.defs[:n], []int16(nil)
	if c.maxDL == 0 {
		defs = nil
	}
	if c.list {
		reps = c.reps[:n]
	}
	switch c.cr.Type() {
	case parquet.Types.ByteArray:
		return readBatch(c.cr, &c.bytes, defs, reps, n)
	case parquet.Types.FixedLenByteArray:
		return readBatch(c.cr, &c.flba, defs, reps, n)
	case parquet.Types.Int32:
		return readBatch(c.cr, &c.i32, defs, reps, n)
	case parquet.Types.Int64:
		return readBatch(c.cr, &c.i64, defs, reps, n)
	case parquet.Types.Int96:
		return readBatch(c.cr, &c.i96, defs, reps, n)
	}
	return 0, 0, fmt.Errorf("unexpected parquet type %s", c.cr.Type())
}

// read reads the column's next n rows into o. arrow-go panics on a data
// page in an encoding it does not implement for the column's type (the
// footer said otherwise): that becomes an error too.
func (c *pqColumn) read(o *pqOut, n int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("arrow-go: %v", r)
		}
	}()
	if c.kind.isTime() {
		if cap(o.times) < n {
			o.times, o.valid = make([]time.Time, n), make([]bool, n)
		}
		o.times, o.valid = o.times[:n], o.valid[:n]
	} else {
		if cap(o.strs) < n {
			o.strs = make([]string, n)
		}
		o.strs = o.strs[:n]
	}
	if c.list {
		return c.readList(o, n)
	}
	var total int64
	var nv int
	if c.kind == pqBytes && c.cr.Type() == parquet.Types.ByteArray {
		total, nv, err = c.readStrings(n)
	} else {
		total, nv, err = c.readLevels(n)
	}
	if err != nil {
		return err
	}
	if total < int64(n) {
		if err := c.cr.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%d of %d rows", total, n)
	}
	// The strings of a batch point into memory of their own: ReadBatch
	// copies byte arrays out of its pages, and numbers are written into a
	// new arena per batch.
	var arena []byte
	switch c.kind {
	case pqUUID:
		arena = make([]byte, 0, 36*nv)
	case pqInt32, pqInt64, pqUint32, pqUint64, pqDecimalBytes:
		arena = make([]byte, 0, 12*nv)
	}
	v := 0
	for i := range n {
		if c.maxDL > 0 && c.defs[i] < c.maxDL {
			if c.kind.isTime() {
				o.valid[i] = false
			} else {
				o.strs[i] = ""
			}
			continue
		}
		if v >= nv {
			return fmt.Errorf("%d values for %d rows", nv, n)
		}
		switch c.kind {
		case pqBytes:
			if c.cr.Type() == parquet.Types.ByteArray {
				o.strs[i] = c.strs[v]
			} else {
				o.strs[i] = bytesString(c.flba[v])
			}
		case pqUUID:
			start := len(arena)
			arena = appendUUID(arena, c.flba[v])
			o.strs[i] = bytesString(arena[start:])
		case pqInt32, pqInt64, pqUint32, pqUint64:
			start := len(arena)
			arena = c.appendInt(arena, v)
			o.strs[i] = bytesString(arena[start:])
		case pqDecimalBytes:
			var b []byte
			if c.cr.Type() == parquet.Types.ByteArray {
				b = c.bytes[v]
			} else {
				b = c.flba[v]
			}
			start := len(arena)
			arena = appendScaled(appendBigEndian(arena, b), start, c.scale)
			o.strs[i] = bytesString(arena[start:])
		case pqTimeSeconds:
			o.times[i], o.valid[i] = time.Unix(c.i64[v], 0).UTC(), true
		case pqTimeMillis:
			o.times[i], o.valid[i] = time.UnixMilli(c.i64[v]).UTC(), true
		case pqTimeMicros:
			o.times[i], o.valid[i] = time.UnixMicro(c.i64[v]).UTC(), true
		case pqTimeNanos:
			o.times[i], o.valid[i] = time.Unix(0, c.i64[v]).UTC(), true
		case pqTimeInt96:
			o.times[i], o.valid[i] = c.i96[v].ToTime(), true
		}
		v++
	}
	return nil
}

// readStrings reads up to n levels of a BYTE_ARRAY column and its values
// as strings into c.strs. It reads page by page without arrow-go's copy of
// every value (ReadBatch clones each batch into a new allocation): a
// page's values are copied, or interned, before the next page is read,
// since that may reuse the page's memory.
func (c *pqColumn) readStrings(n int) (int64, int, error) {
	r, ok := c.cr.(*file.ByteArrayColumnChunkReader)
	if !ok {
		return 0, 0, fmt.Errorf("unexpected column reader %T", c.cr)
	}
	if cap(c.defs) < n {
		c.defs = make([]int16, n)
	}
	if cap(c.bytes) < n {
		c.bytes = make([]parquet.ByteArray, n)
	}
	if cap(c.strs) < n {
		c.strs = make([]string, n)
	}
	c.texts.newBatch()
	var total int64
	var nv int
	for total < int64(n) && r.HasNext() {
		var defs []int16
		if c.maxDL > 0 {
			defs = c.defs[total:n]
		}
		lv, k, err := r.ReadBatchInPage(int64(n)-total, c.bytes[:n-nv], defs, nil)
		for j, b := range c.bytes[:k] {
			c.strs[nv+j] = c.texts.text(b)
		}
		total += lv
		nv += k
		if err != nil {
			return total, nv, err
		}
	}
	return total, nv, nil
}

// texts turns the byte strings of one column into strings that outlive
// the page they were read from. A column of few distinct values (vendor,
// id_type, restrictions, erasure) gets one string per value, kept in a
// small map; a column of many (subject ids) is copied into arenas, a few
// allocations per batch, once the map is full.
type texts struct {
	seen   map[string]string
	arena  []byte
	copied int // bytes copied in the current batch
	last   int // and in the batch before, to size the next one's arena
}

// maxInterned is how many distinct values of a column are interned.
const maxInterned = 256

// newBatch starts a batch: the strings of the last one may still be in
// use, so its arena is not reused.
func (t *texts) newBatch() {
	t.arena, t.last, t.copied = nil, t.copied, 0
}

func (t *texts) text(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if t.seen == nil {
		t.seen = make(map[string]string)
	}
	if len(t.seen) <= maxInterned {
		if s, ok := t.seen[string(b)]; ok {
			return s
		}
		if len(t.seen) < maxInterned {
			s := string(b)
			t.seen[s] = s
			return s
		}
		t.seen[""] = "" // full: from now on every value is copied
	}
	if cap(t.arena)-len(t.arena) < len(b) {
		size := 64 << 10
		if t.arena == nil {
			size = max(size, t.last+t.last/16) // a batch is like the one before
		}
		t.arena = make([]byte, 0, max(size, len(b)))
	}
	t.copied += len(b)
	start := len(t.arena)
	t.arena = append(t.arena, b...)
	return bytesString(t.arena[start:])
}

// appendInt appends the integer value v in decimal, with its scale.
func (c *pqColumn) appendInt(dst []byte, v int) []byte {
	start := len(dst)
	switch c.kind {
	case pqInt32:
		dst = strconv.AppendInt(dst, int64(c.i32[v]), 10)
	case pqInt64:
		dst = strconv.AppendInt(dst, c.i64[v], 10)
	case pqUint32:
		dst = strconv.AppendUint(dst, uint64(uint32(c.i32[v])), 10)
	case pqUint64:
		dst = strconv.AppendUint(dst, uint64(c.i64[v]), 10)
	}
	return appendScaled(dst, start, c.scale)
}

// appendBigEndian appends a big-endian two's complement integer in decimal.
func appendBigEndian(dst, b []byte) []byte {
	var x big.Int
	x.SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		x.Sub(&x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return x.Append(dst, 10)
}

// appendScaled puts the decimal point into the integer written in
// dst[start:], scale digits from its end.
func appendScaled(dst []byte, start, scale int) []byte {
	if scale <= 0 {
		return dst
	}
	digits := dst[start:]
	neg := len(digits) > 0 && digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	var b []byte
	if neg {
		b = append(b, '-')
	}
	if len(digits) <= scale {
		b = append(b, '0', '.')
		for range scale - len(digits) {
			b = append(b, '0')
		}
		b = append(b, digits...)
	} else {
		b = append(b, digits[:len(digits)-scale]...)
		b = append(b, '.')
		b = append(b, digits[len(digits)-scale:]...)
	}
	return append(dst[:start], b...)
}

// appendUUID appends the canonical text of a 16-byte UUID.
func appendUUID(dst []byte, u []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:16])
	return append(dst, buf[:]...)
}

// bytesString makes a string of b without copying it: b must not change.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// listChunk is how many levels a list column reads at once.
const listChunk = 4096

// more makes sure a level is there to consume, reading the next levels
// when all are consumed; false at the end of the chunk or on error.
func (c *pqColumn) more() (bool, error) {
	if c.lvPos < c.lvLen {
		return true, nil
	}
	if c.end {
		return false, nil
	}
	total, nv, err := c.readLevels(listChunk)
	if err != nil {
		return false, err
	}
	c.lvPos, c.lvLen, c.valPos, c.valLen = 0, int(total), 0, nv
	if total == 0 {
		c.end = true
		return false, c.cr.Err()
	}
	return true, nil
}

// readList reads the next n rows of a list of strings, each row's
// elements joined with '|' as restrictions are written in a CSV.
func (c *pqColumn) readList(o *pqOut, n int) error {
	arena := make([]byte, 0, 16*n)
	for i := range n {
		ok, err := c.more()
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%d of %d rows", i, n)
		}
		if c.reps[c.lvPos] != 0 {
			return errors.New("a list element before its row")
		}
		start, first := len(arena), true
		for {
			if c.defs[c.lvPos] == c.maxDL {
				if c.valPos >= c.valLen {
					return errors.New("fewer values than levels")
				}
				if !first {
					arena = append(arena, '|')
				}
				arena = append(arena, c.bytes[c.valPos]...)
				c.valPos++
				first = false
			}
			c.lvPos++
			if ok, err := c.more(); err != nil {
				return err
			} else if !ok || c.reps[c.lvPos] == 0 {
				break
			}
		}
		o.strs[i] = bytesString(arena[start:])
	}
	return nil
}

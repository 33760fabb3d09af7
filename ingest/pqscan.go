package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/xitongsys/parquet-go/common"
	"github.com/xitongsys/parquet-go/parquet"
)

// maxPageSize bounds the uncompressed size of one Parquet page. Writers
// make pages of 8 KiB to 1 MiB.
const maxPageSize = 64 << 20

// Before parquet-go decodes a page it trusts every length in it: a page
// corrupted inside could make it allocate gigabytes. scanPages reads every
// page of the columns to be read, with bounded memory, and checks what
// parquet-go would trust: the page sizes and value counts against their
// column chunk, the level and dictionary-index runs, the lengths of plain
// strings. It decompresses every page once more: reading a Parquet file
// costs about a tenth more for it.
func (p *parquetSource) scanPages() error {
	f, err := os.Open(p.path)
	if err != nil {
		return unwrapPathError(err)
	}
	defer f.Close()
	root := p.pr.SchemaHandler.GetRootInName()
	for g, rg := range p.pr.Footer.GetRowGroups() {
		for _, cc := range rg.GetColumns() {
			md := cc.GetMetaData()
			path := common.PathToStr(append([]string{root}, md.GetPathInSchema()...))
			for _, c := range p.cols {
				if c.path != path {
					continue
				}
				if err := p.scanChunk(f, md, c); err != nil {
					return fmt.Errorf("truncated or corrupt parquet file: row group %d, column %q: %w", g+1, p.names[c.field], err)
				}
			}
		}
	}
	return nil
}

// countingTransport is the thrift transport page headers are read from.
type countingTransport struct {
	r    *bufio.Reader
	n    int64 // bytes read
	size int64 // of the column chunk
}

func (t *countingTransport) Read(b []byte) (int, error) {
	if rest := t.size - t.n; int64(len(b)) > rest {
		b = b[:rest]
	}
	if len(b) == 0 {
		return 0, io.EOF
	}
	n, err := t.r.Read(b)
	t.n += int64(n)
	return n, err
}

func (t *countingTransport) ReadByte() (byte, error) {
	if t.n >= t.size {
		return 0, io.EOF
	}
	c, err := t.r.ReadByte()
	if err == nil {
		t.n++
	}
	return c, err
}

var errReadOnly = errors.New("read-only transport")

func (t *countingTransport) Write([]byte) (int, error)       { return 0, errReadOnly }
func (t *countingTransport) WriteByte(byte) error            { return errReadOnly }
func (t *countingTransport) WriteString(string) (int, error) { return 0, errReadOnly }
func (t *countingTransport) Flush(context.Context) error     { return nil }
func (t *countingTransport) RemainingBytes() uint64          { return uint64(t.size - t.n) }
func (t *countingTransport) Open() error                     { return nil }
func (t *countingTransport) IsOpen() bool                    { return true }
func (t *countingTransport) Close() error                    { return nil }

func (p *parquetSource) scanChunk(f *os.File, md *parquet.ColumnMetaData, c *pqColumn) error {
	offset := md.GetDataPageOffset()
	if md.DictionaryPageOffset != nil {
		offset = md.GetDictionaryPageOffset()
	}
	size := md.GetTotalCompressedSize()
	if offset < 4 || size < 0 || offset+size > p.size {
		return fmt.Errorf("column chunk at %d of %d bytes lies outside the file", offset, size)
	}
	if md.GetNumValues() < 0 || md.GetNumValues() > 8*p.size {
		return fmt.Errorf("%d values in a file of %d bytes", md.GetNumValues(), p.size)
	}
	t := &countingTransport{r: bufio.NewReaderSize(io.NewSectionReader(f, offset, size), 64<<10), size: size}
	proto := thrift.NewTCompactProtocolConf(t, &thrift.TConfiguration{MaxMessageSize: maxPageSize})
	maxRL, err := p.pr.SchemaHandler.MaxRepetitionLevel(common.StrToPath(c.path))
	if err != nil {
		return err
	}
	maxValues := uint64(md.GetNumValues())
	var buf, scratch []byte
	for seen := int64(0); seen < md.GetNumValues() && t.n < size; {
		h := parquet.NewPageHeader()
		if err := h.Read(context.Background(), proto); err != nil {
			return fmt.Errorf("page header: %w", err)
		}
		csize, usize := int64(h.GetCompressedPageSize()), int64(h.GetUncompressedPageSize())
		if csize < 0 || csize > size-t.n || usize < 0 || usize > maxPageSize {
			return fmt.Errorf("page of %d bytes (%d uncompressed) in %d left", csize, usize, size-t.n)
		}
		if cap(buf) < int(csize) {
			buf = make([]byte, csize)
		}
		raw := buf[:csize]
		if _, err := io.ReadFull(t, raw); err != nil {
			return fmt.Errorf("page: %w", err)
		}
		switch h.GetType() {
		case parquet.PageType_DICTIONARY_PAGE:
			d := h.GetDictionaryPageHeader()
			if d == nil || d.GetNumValues() < 0 || int64(d.GetNumValues()) > usize/4 { // values take 4 bytes or more
				return errors.New("bad dictionary page header")
			}
			data, err := uncompress(md.GetCodec(), raw, usize, &scratch)
			if err != nil || data == nil {
				return err
			}
			if md.GetType() == parquet.Type_BYTE_ARRAY {
				if err := checkPlainStrings(data); err != nil {
					return err
				}
			}
		case parquet.PageType_DATA_PAGE:
			d := h.GetDataPageHeader()
			if d == nil || d.GetNumValues() < 0 || uint64(d.GetNumValues()) > maxValues {
				return errors.New("bad data page header")
			}
			seen += int64(d.GetNumValues())
			data, err := uncompress(md.GetCodec(), raw, usize, &scratch)
			if err != nil || data == nil {
				return err
			}
			if err := checkDataPage(data, d.GetEncoding(), md.GetType(), maxRL, c.maxDL, uint64(d.GetNumValues())); err != nil {
				return err
			}
		case parquet.PageType_DATA_PAGE_V2:
			d := h.GetDataPageHeaderV2()
			if d == nil || d.GetNumValues() < 0 || uint64(d.GetNumValues()) > maxValues ||
				d.GetDefinitionLevelsByteLength() < 0 || d.GetRepetitionLevelsByteLength() < 0 ||
				int64(d.GetDefinitionLevelsByteLength())+int64(d.GetRepetitionLevelsByteLength()) > csize {
				return errors.New("bad data page header")
			}
			seen += int64(d.GetNumValues())
		default:
			return fmt.Errorf("unsupported page type %s", h.GetType())
		}
	}
	return nil
}

// zstdDecoder decodes pages with no more than maxPageSize of memory.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxPageSize))
})

// uncompress decompresses a page whose declared size is usize, with no more
// memory than that. It returns nil data, and no error, for the codecs it
// does not check (parquet-go decompresses those unchecked).
func uncompress(codec parquet.CompressionCodec, raw []byte, usize int64, scratch *[]byte) ([]byte, error) {
	var data []byte
	var err error
	if int64(cap(*scratch)) < usize {
		*scratch = make([]byte, usize)
	}
	switch codec {
	case parquet.CompressionCodec_UNCOMPRESSED:
		data = raw
	case parquet.CompressionCodec_SNAPPY:
		n, lerr := snappy.DecodedLen(raw)
		if lerr != nil || int64(n) != usize {
			return nil, fmt.Errorf("corrupt snappy page (%d bytes declared, %d in the page header)", n, usize)
		}
		data, err = snappy.Decode((*scratch)[:usize], raw)
	case parquet.CompressionCodec_GZIP:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
			data, err = io.ReadAll(io.LimitReader(zr, usize+1))
		}
	case parquet.CompressionCodec_ZSTD:
		var zr *zstd.Decoder
		if zr, err = zstdDecoder(); err == nil {
			data, err = zr.DecodeAll(raw, (*scratch)[:0])
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing a page: %w", err)
	}
	if int64(len(data)) != usize {
		return nil, fmt.Errorf("page of %d bytes, its header says %d", len(data), usize)
	}
	return data, nil
}

// checkDataPage checks a version 1 data page of maxValues values as
// parquet-go will read it: repetition levels, definition levels (each a
// length and runs), then the values.
func checkDataPage(data []byte, enc parquet.Encoding, typ parquet.Type, maxRL, maxDL int32, maxValues uint64) error {
	for _, max := range []int32{maxRL, maxDL} {
		if max == 0 {
			continue
		}
		if len(data) < 4 {
			return errors.New("levels cut short")
		}
		n := binary.LittleEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return fmt.Errorf("levels of %d bytes in %d", n, len(data)-4)
		}
		if err := checkRuns(data[4:4+n], uint64(bits.Len32(uint32(max))), maxValues); err != nil {
			return fmt.Errorf("levels: %w", err)
		}
		data = data[4+n:]
	}
	switch {
	case enc == parquet.Encoding_PLAIN && typ == parquet.Type_BYTE_ARRAY:
		return checkPlainStrings(data)
	case enc == parquet.Encoding_PLAIN_DICTIONARY || enc == parquet.Encoding_RLE_DICTIONARY:
		if len(data) == 0 {
			return nil
		}
		if data[0] > 32 {
			return fmt.Errorf("dictionary indexes of %d bits", data[0])
		}
		return checkRuns(data[1:], uint64(data[0]), maxValues)
	}
	return nil
}

// checkPlainStrings checks the lengths of plain BYTE_ARRAY values.
func checkPlainStrings(data []byte) error {
	for len(data) >= 4 {
		n := binary.LittleEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return fmt.Errorf("string of %d bytes in %d", n, len(data)-4)
		}
		data = data[4+n:]
	}
	return nil
}

// checkRuns checks runs of the RLE / bit-packing hybrid encoding: they
// hold no more than maxValues values (and a last group's padding).
func checkRuns(data []byte, width, maxValues uint64) error {
	total := uint64(0)
	for len(data) > 0 {
		h, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("bad run header")
		}
		data = data[n:]
		count, need := h>>1, (width+7)/8 // an RLE run: one value repeated
		if h&1 == 1 {                    // bit-packed: groups of 8 values
			count, need = (h>>1)*8, (h>>1)*width
		}
		if total += count; count > maxValues+8 || total > maxValues+8 || need > uint64(len(data)) {
			return fmt.Errorf("run of %d values in %d bytes", count, len(data))
		}
		data = data[need:]
	}
	return nil
}

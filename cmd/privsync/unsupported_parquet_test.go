package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// TestE2EUnsupportedParquetNamesTheCause runs the binary on a committed
// arrow-go file (three row groups, data pages v2) patched as a writer
// using a codec or an encoding the reader lacks would have written it: the
// footer's codec of one column chunk set to LZO or to a number Parquet does
// not define, and the encoding of one data page set to a number the reader
// does not know. Each must end in exit 2 with a message that says what is
// unsupported and names the file, the row group and the column.
func TestE2EUnsupportedParquetNamesTheCause(t *testing.T) {
	bin := binOf(t)
	data, err := os.ReadFile("../../testdata/parquet/arrow-go-v2-uuid.parquet")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		want []string
	}{
		{"codec LZO", patchCodec(t, data, 2, "vendor", 3),
			[]string{"unsupported compression codec LZO", "row group 2", `column "vendor"`}},
		{"codec 40", patchCodec(t, data, 3, "id_type", 40),
			[]string{"unsupported compression codec 40", "row group 3", `column "id_type"`}},
		// The footer lists the encoding too, as a writer's footer would.
		{"BYTE_STREAM_SPLIT strings", patchFooterEncoding(t, patchEncoding(t, data, 1, "vendor", 9), 1, "vendor", 8, 9),
			[]string{"unsupported parquet encoding BYTE_STREAM_SPLIT for BYTE_ARRAY values", "row group 1", `column "vendor"`}},
		{"DELTA_BINARY_PACKED strings", patchFooterEncoding(t, patchEncoding(t, data, 3, "id_type", 5), 3, "id_type", 8, 5),
			[]string{"unsupported parquet encoding DELTA_BINARY_PACKED for BYTE_ARRAY values", "row group 3", `column "id_type"`}},
		{"encoding 42 in the footer", patchFooterEncoding(t, data, 2, "subject_id", 0, 42),
			[]string{"unsupported parquet encoding 42 (not an encoding Parquet defines)", "row group 2", `column "subject_id"`}},
		// Only the page says so (arrow-go panics on some of these): the
		// encoding cannot be named, but what is wrong is said.
		{"page encoding 42", patchEncoding(t, data, 2, "vendor", 42),
			[]string{"unsupported parquet encoding", "row group 2", `column "vendor"`}},
		{"page encoding GROUP_VAR_INT", patchEncoding(t, data, 1, "subject_id", 1),
			[]string{"unsupported parquet encoding", "row group 1", `column "subject_id"`}},
		{"page encoding BYTE_STREAM_SPLIT strings", patchEncoding(t, data, 1, "vendor", 9),
			[]string{"unsupported parquet encoding", "row group 1", `column "vendor"`}},
		{"page encoding DELTA_BINARY_PACKED strings", patchEncoding(t, data, 3, "id_type", 5),
			[]string{"unsupported parquet encoding", "row group 3", `column "id_type"`}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, ps, msg, err := planParquet(t, bin, dir, strings.ReplaceAll(c.name, " ", "-")+".parquet", c.data)
			if code := ps.ExitCode(); code != 2 {
				t.Fatalf("exit %d (%v), want 2:\n%s", code, err, msg)
			}
			if !strings.Contains(msg, p) {
				t.Errorf("message does not name the file:\n%s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(strings.ReplaceAll(msg, p, "FILE"), w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			t.Logf("%s", strings.TrimSpace(msg))
			if strings.Contains(msg, "corrupt") {
				t.Errorf("an unsupported feature is called corruption:\n%s", msg)
			}
		})
	}
}

// patchCodec sets the codec of column's chunk in row group g (from 1) in
// the footer. The footer is thrift compact; a top-level column's
// ColumnMetaData holds path_in_schema (field 3: a list of one string) and
// then codec (field 4, an i32 as a zigzag varint), so the codec is the
// byte after "\x18<len>name\x15". The new codec must fit in one byte.
func patchCodec(t *testing.T, data []byte, g int, column string, codec int) []byte {
	t.Helper()
	at := codecAt(t, data, g, column)
	zz := binary.AppendUvarint(nil, uint64(codec)<<1)
	if len(zz) != 1 || data[at]&0x80 != 0 {
		t.Fatalf("codec %d does not fit in place of %#x", codec, data[at])
	}
	d := bytes.Clone(data)
	d[at] = zz[0]
	return d
}

// codecAt returns the offset of the codec of column's chunk in row group g.
func codecAt(t *testing.T, data []byte, g int, column string) int {
	t.Helper()
	footer := len(data) - 8 - int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	mark := append([]byte{0x18, byte(len(column))}, column+"\x15"...)
	at, seen := footer, 0
	for {
		i := bytes.Index(data[at:], mark)
		if i < 0 {
			t.Fatalf("row group %d, column %s: no codec in the footer", g, column)
		}
		at += i + len(mark)
		if seen++; seen == g {
			return at
		}
	}
}

// patchFooterEncoding replaces encoding from by to in the list of
// encodings (field 2 of ColumnMetaData: a list header, then one zigzag
// varint byte each) just before column's path_in_schema in row group g.
func patchFooterEncoding(t *testing.T, data []byte, g int, column string, from, to int) []byte {
	t.Helper()
	at := codecAt(t, data, g, column)
	d := bytes.Clone(data)
	end := at - 4 - len(column) // the list's end: field 3 ("\x19", "\x18", len, name), "\x15"
	for j := end - 2; j >= 0 && j > end-20; j-- {
		if d[j] == 0x19 && d[j+1]&0x0f == 5 && j+2+int(d[j+1]>>4) == end {
			for k := j + 2; k < end; k++ {
				if int(d[k]) == from<<1 {
					d[k] = byte(to << 1)
					return d
				}
			}
		}
	}
	t.Fatalf("row group %d, column %s: no encoding %d in the footer", g, column, from)
	return nil
}

// patchEncoding sets the encoding of the first data page of column's chunk
// in row group g (from 1). A page header is thrift compact: type, sizes
// (fields 1 to 3), an optional crc (4), then the page's own header, whose
// encoding is field 2 of a v1 data page header (field 5) and field 4 of a
// v2 one (field 8). The new encoding must fit in one byte.
func patchEncoding(t *testing.T, data []byte, g int, column string, enc int) []byte {
	t.Helper()
	rd, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	md := rd.MetaData()
	leaf := md.Schema.ColumnIndexByName(column)
	if leaf < 0 || g > md.NumRowGroups() {
		t.Fatalf("no column %s in row group %d", column, g)
	}
	cc, err := md.RowGroup(g - 1).ColumnChunk(leaf)
	if err != nil {
		t.Fatal(err)
	}
	off := int(cc.DataPageOffset())
	fields := varintFields(data[off:], 3)
	if fields == nil {
		t.Fatalf("no page header at %d", off)
	}
	i := off + fields[2][1]
	id := 3
	if data[i] == 0x15 { // crc
		id++
		i++
		for data[i]&0x80 != 0 {
			i++
		}
		i++
	}
	id += int(data[i] >> 4)
	if data[i]&0x0f != 12 {
		t.Fatalf("field %d at %d is not a struct", id, i)
	}
	var n int
	switch id {
	case 5:
		n = 2
	case 8:
		n = 4
	default:
		t.Fatalf("page at %d is not a data page (field %d)", off, id)
	}
	fields = varintFields(data[i+1:], n)
	if fields == nil {
		t.Fatalf("no data page header at %d", i+1)
	}
	f := fields[n-1]
	zz := binary.AppendUvarint(nil, uint64(enc)<<1)
	if len(zz) != f[1]-f[0] {
		panic(fmt.Sprintf("encoding %d does not fit in %d bytes", enc, f[1]-f[0]))
	}
	d := bytes.Clone(data)
	copy(d[i+1+f[0]:], zz)
	return d
}

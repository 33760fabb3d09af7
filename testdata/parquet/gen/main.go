// Command gen writes the Go-written files of testdata/parquet from the CSV
// rows there: with arrow-go (its Arrow writer, and its column writers for
// the legacy 2-level list layout) and with parquet-go/parquet-go, and an
// Arrow IPC stream of LargeUtf8 columns that gen.mjs hands to arrow-rs.
// It is a module of its own so that parquet-go/parquet-go stays out of
// privsync's go.mod. Run it from this directory: go run .
package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"
	pgo "github.com/parquet-go/parquet-go"
)

const out = ".."

func main() {
	rows := readCSV(filepath.Join(out, "rows.csv"))
	intRows := readCSV(filepath.Join(out, "int-rows.csv"))

	uuidSchema := arrow.NewSchema([]arrow.Field{
		{Name: "vendor", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}},
		{Name: "subject_id", Type: extensions.NewUUIDType()},
		{Name: "id_type", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "restrictions", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
		{Name: "erasure", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "access_request", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	writeArrow("arrow-go-v2-uuid.parquet", uuidSchema, rows, pqarrow.NewArrowWriterProperties(),
		parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithMaxRowGroupLength(5))

	int96Schema := arrow.NewSchema([]arrow.Field{
		{Name: "vendor", Type: arrow.BinaryTypes.String},
		{Name: "subject_id", Type: arrow.BinaryTypes.String},
		{Name: "id_type", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "restrictions", Type: arrow.LargeListOf(arrow.BinaryTypes.LargeString), Nullable: true},
		{Name: "erasure", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "access_request", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}, Nullable: true},
	}, nil)
	writeArrow("arrow-go-int96-brotli.parquet", int96Schema, rows, pqarrow.NewArrowWriterProperties(pqarrow.WithDeprecatedInt96Timestamps(true)),
		parquet.WithCompression(compress.Codecs.Brotli), parquet.WithDictionaryDefault(false))
	writeArrow("arrow-go-millis-lz4-raw.parquet", int96Schema, rows, pqarrow.NewArrowWriterProperties(pqarrow.WithCoerceTimestamps(arrow.Millisecond)),
		parquet.WithCompression(compress.Codecs.Lz4Raw), parquet.WithDictionaryDefault(false),
		parquet.WithEncodingFor("subject_id", parquet.Encodings.DeltaByteArray), parquet.WithEncodingFor("vendor", parquet.Encodings.DeltaLengthByteArray))

	intSchema := func(id arrow.DataType, access arrow.DataType) *arrow.Schema {
		return arrow.NewSchema([]arrow.Field{
			{Name: "vendor", Type: arrow.BinaryTypes.String},
			{Name: "subject_id", Type: id},
			{Name: "id_type", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "restrictions", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
			{Name: "erasure", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "access_request", Type: access, Nullable: true},
			{Name: "updated_at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}, Nullable: true},
		}, nil)
	}
	writeArrow("int-ids/arrow-go-int64.parquet", intSchema(arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Int32), intRows,
		pqarrow.NewArrowWriterProperties(), parquet.WithCompression(compress.Codecs.Zstd))
	writeArrow("int-ids/arrow-go-uint64.parquet", intSchema(arrow.PrimitiveTypes.Uint64, arrow.PrimitiveTypes.Uint32), intRows,
		pqarrow.NewArrowWriterProperties(), parquet.WithCompression(compress.Codecs.Gzip))
	writeArrow("int-ids/arrow-go-decimal128.parquet", intSchema(&arrow.Decimal128Type{Precision: 38, Scale: 0}, &arrow.Decimal128Type{Precision: 9, Scale: 0}), intRows,
		pqarrow.NewArrowWriterProperties(), parquet.WithCompression(compress.Codecs.Snappy))
	writeArrow("int-ids/arrow-go-decimal-as-int.parquet", intSchema(&arrow.Decimal128Type{Precision: 18, Scale: 0}, &arrow.Decimal128Type{Precision: 9, Scale: 0}), intRows,
		pqarrow.NewArrowWriterProperties(), parquet.WithCompression(compress.Codecs.Snappy), parquet.WithStoreDecimalAsInteger(true))

	writeLegacyList("arrow-go-2-level-list.parquet", rows)
	writeParquetGo(rows)
	writeIPC("gen/large-utf8.arrows", rows, arrow.Millisecond)
	// Arrow's Timestamp(Second) has no Parquet unit: arrow-rs writes a bare
	// INT64 and keeps the unit only in the ARROW:schema footer key.
	writeIPC("gen/seconds.arrows", rows, arrow.Second)
}

// row is one CSV row: the seven canonical columns.
type row [7]string

func readCSV(path string) []row {
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		log.Fatal(err)
	}
	var rows []row
	for _, r := range recs[1:] {
		var x row
		copy(x[:], r)
		rows = append(rows, x)
	}
	return rows
}

var names = []string{"vendor", "subject_id", "id_type", "restrictions", "erasure", "access_request", "updated_at"}

// asJSON renders rows as Arrow's JSON reader takes them: empty is null,
// restrictions a list.
func asJSON(rows []row, unit arrow.TimeUnit) []byte {
	var objs []map[string]any
	for _, r := range rows {
		o := map[string]any{}
		for i, v := range r {
			switch {
			case v == "":
				o[names[i]] = nil
			case names[i] == "restrictions":
				o[names[i]] = strings.Split(v, "|")
			case names[i] == "updated_at":
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					log.Fatal(err)
				}
				o[names[i]] = t.UnixNano() / int64(unit.Multiplier())
			default:
				o[names[i]] = v
			}
		}
		objs = append(objs, o)
	}
	b, err := json.Marshal(objs)
	if err != nil {
		log.Fatal(err)
	}
	return b
}

func record(sc *arrow.Schema, rows []row) arrow.RecordBatch {
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, sc, bytes.NewReader(asJSON(rows, sc.Field(6).Type.(*arrow.TimestampType).Unit)))
	if err != nil {
		log.Fatalf("%v: %v", sc, err)
	}
	return rec
}

func create(name string) *os.File {
	p := filepath.Join(out, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		log.Fatal(err)
	}
	return f
}

func writeArrow(name string, sc *arrow.Schema, rows []row, ap pqarrow.ArrowWriterProperties, opts ...parquet.WriterProperty) {
	rec := record(sc, rows)
	defer rec.Release()
	f := create(name)
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(opts...), ap)
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	if err := w.Write(rec); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	if err := w.Close(); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	fmt.Println("wrote", name)
}

// writeLegacyList writes restrictions in the legacy 2-level layout old
// parquet-mr and Hive wrote: optional group (LIST) { repeated binary array }.
func writeLegacyList(name string, rows []row) {
	str := func(n string, rep parquet.Repetition) schema.Node {
		return schema.Must(schema.NewPrimitiveNodeLogical(n, rep, schema.StringLogicalType{}, parquet.Types.ByteArray, 0, -1))
	}
	fields := schema.FieldList{
		str("vendor", parquet.Repetitions.Required),
		str("subject_id", parquet.Repetitions.Required),
		str("id_type", parquet.Repetitions.Optional),
		schema.Must(schema.NewGroupNodeLogical("restrictions", parquet.Repetitions.Optional,
			schema.FieldList{str("array", parquet.Repetitions.Repeated)}, schema.ListLogicalType{}, -1)),
		str("erasure", parquet.Repetitions.Optional),
		str("access_request", parquet.Repetitions.Optional),
		schema.Must(schema.NewPrimitiveNodeLogical("updated_at", parquet.Repetitions.Optional,
			schema.NewTimestampLogicalType(true, schema.TimeUnitMillis), parquet.Types.Int64, 0, -1)),
	}
	root := schema.MustGroup(schema.NewGroupNode("hive_schema", parquet.Repetitions.Required, fields, -1))
	f := create(name)
	w := file.NewParquetWriter(f, root, file.WithWriterProps(parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Gzip))))
	rg := w.AppendRowGroup()
	for c := range 7 {
		cw, err := rg.NextColumn()
		if err != nil {
			log.Fatal(err)
		}
		var vals []parquet.ByteArray
		var ints []int64
		var defs, reps []int16
		for _, r := range rows {
			v := r[c]
			switch {
			case c == 3: // max def 2 (list present, element present), max rep 1
				if v == "" {
					defs, reps = append(defs, 0), append(reps, 0)
					continue
				}
				for i, e := range strings.Split(v, "|") {
					vals = append(vals, parquet.ByteArray(e))
					defs, reps = append(defs, 2), append(reps, int16(min(i, 1)))
				}
			case c == 6:
				if v == "" {
					defs = append(defs, 0)
					continue
				}
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					log.Fatal(err)
				}
				ints, defs = append(ints, t.UnixMilli()), append(defs, 1)
			case c < 2:
				vals = append(vals, parquet.ByteArray(v))
			case v == "":
				defs = append(defs, 0)
			default:
				vals, defs = append(vals, parquet.ByteArray(v)), append(defs, 1)
			}
		}
		if c < 2 {
			defs = nil
		}
		if c != 3 {
			reps = nil
		}
		switch cw := cw.(type) {
		case *file.ByteArrayColumnChunkWriter:
			_, err = cw.WriteBatch(vals, defs, reps)
		case *file.Int64ColumnChunkWriter:
			_, err = cw.WriteBatch(ints, defs, reps)
		}
		if err != nil {
			log.Fatal(err)
		}
		if err := cw.Close(); err != nil {
			log.Fatal(err)
		}
	}
	if err := rg.Close(); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", name)
}

// pgoRow is a row as parquet-go/parquet-go writes it: restrictions as a
// 3-level LIST, the UUID as 16 bytes, a TIMESTAMP in microseconds.
type pgoRow struct {
	Vendor        string     `parquet:"vendor,enum"`
	SubjectID     [16]byte   `parquet:"subject_id,uuid"`
	IDType        *string    `parquet:"id_type,optional"`
	Restrictions  []string   `parquet:"restrictions,list,optional"`
	Erasure       *string    `parquet:"erasure,optional"`
	AccessRequest *string    `parquet:"access_request,optional"`
	UpdatedAt     *time.Time `parquet:"updated_at,optional,timestamp(microsecond)"`
}

// pgoBareRow has restrictions as a bare repeated column.
type pgoBareRow struct {
	Vendor        string     `parquet:"vendor"`
	SubjectID     string     `parquet:"subject_id"`
	IDType        string     `parquet:"id_type"`
	Restrictions  []string   `parquet:"restrictions"`
	Erasure       string     `parquet:"erasure"`
	AccessRequest string     `parquet:"access_request"`
	UpdatedAt     *time.Time `parquet:"updated_at,optional,timestamp(nanosecond)"`
}

func writeParquetGo(rows []row) {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	at := func(s string) *time.Time {
		if s == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			log.Fatal(err)
		}
		return &t
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, "|")
	}
	var list []pgoRow
	var bare []pgoBareRow
	for _, r := range rows {
		var u [16]byte
		h := strings.ReplaceAll(r[1], "-", "")
		if _, err := fmt.Sscanf(h, "%32x", &u); err != nil {
			// Sscanf %x into an array is not supported: decode by hand.
			for i := range 16 {
				fmt.Sscanf(h[2*i:2*i+2], "%02x", &u[i])
			}
		}
		list = append(list, pgoRow{r[0], u, opt(r[2]), split(r[3]), opt(r[4]), opt(r[5]), at(r[6])})
		bare = append(bare, pgoBareRow{r[0], r[1], r[2], split(r[3]), r[4], r[5], at(r[6])})
	}
	f := create("parquet-go-list-uuid.parquet")
	if err := pgo.Write(f, list, pgo.Compression(&pgo.Zstd)); err != nil {
		log.Fatal(err)
	}
	f.Close()
	f = create("parquet-go-bare-repeated.parquet")
	if err := pgo.Write(f, bare, pgo.Compression(&pgo.Snappy), pgo.PageBufferSize(256)); err != nil {
		log.Fatal(err)
	}
	f.Close()
	fmt.Println("wrote parquet-go files")
}

// writeIPC writes an Arrow IPC stream of LargeUtf8 columns for arrow-rs.
func writeIPC(name string, rows []row, unit arrow.TimeUnit) {
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "vendor", Type: arrow.BinaryTypes.LargeString},
		{Name: "subject_id", Type: arrow.BinaryTypes.LargeString},
		{Name: "id_type", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "restrictions", Type: arrow.LargeListOf(arrow.BinaryTypes.LargeString), Nullable: true},
		{Name: "erasure", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "access_request", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "updated_at", Type: &arrow.TimestampType{Unit: unit, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	rec := record(sc, rows)
	defer rec.Release()
	f := create(name)
	w := ipc.NewWriter(f, ipc.WithSchema(sc))
	if err := w.Write(rec); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	f.Close()
	fmt.Println("wrote", name)
}

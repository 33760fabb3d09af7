// Package gendata generates realistic desired-state inputs for privsync and
// converts CSV inputs into Parquet twins. It backs the bench/gen command and
// the ingest tests; its output is deterministic for a given seed.
package gendata

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/privsync/privsync"
	"github.com/xitongsys/parquet-go/parquet"
	"github.com/xitongsys/parquet-go/types"
	"github.com/xitongsys/parquet-go/writer"
)

// Vendor is a configured vendor the generated rows are for.
type Vendor struct {
	Name string
	Kind privsync.Kind
}

// DefaultVendors are the vendors of the demo configuration.
var DefaultVendors = []Vendor{
	{"sfmc", privsync.KindSFMC},
	{"batch-ios", privsync.KindBatch},
	{"bloomreach", privsync.KindBloomreach},
}

// ParseVendors parses "name=kind,name,..."; a name alone takes the kind its
// name starts with (batch-ios is a batch vendor).
func ParseVendors(s string) ([]Vendor, error) {
	var vs []Vendor
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, kind, ok := strings.Cut(item, "=")
		v := Vendor{Name: name, Kind: privsync.Kind(kind)}
		if !ok {
			for _, k := range privsync.Kinds {
				if strings.HasPrefix(name, string(k)) {
					v.Kind = k
				}
			}
		}
		if !v.Kind.Valid() {
			return nil, fmt.Errorf("vendor %q: unknown kind %q (write name=kind)", name, string(v.Kind))
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, errors.New("no vendors")
	}
	return vs, nil
}

// Header is the header of generated CSV files: the canonical columns and an
// extra one that readers must ignore.
var Header = []string{"vendor", "subject_id", "id_type", "restrictions", "erasure", "access_request", "updated_at", "country"}

// RowsOptions say what rows to generate.
type RowsOptions struct {
	N       int
	Vendors []Vendor // default DefaultVendors
	Seed    uint64
	// Backfill makes every row ask for something a new ledger has never
	// sent: SFMC restrictions (a tenth each delete and suppress), Bloomreach
	// anonymizations, Batch.com removals; no access requests.
	Backfill bool
	// RandomIDs makes subject ids sort in no useful order, as UUIDs and
	// hashed e-mails do, where by default an id begins with its row
	// number, so ids sort nearly as the rows come (which flatters a
	// ledger keyed by id).
	RandomIDs bool
}

var (
	baseTime     = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	restrictSets = []string{"", "", "", "", "", "do_not_track", "do_not_profile", "do_not_track|do_not_profile", "do_not_process", "do_not_track|do_not_profile|do_not_process"}
	countries    = []string{"FR", "DE", "US", "GB", "ES", "IT", "NL"}
	batchIDTypes = []string{"custom_id", "custom_id", "custom_id", "advertising_id", "install_id"}
)

// WriteRows writes a header and o.N generated rows as CSV.
func WriteRows(w io.Writer, o RowsOptions) error {
	vendors := o.Vendors
	if len(vendors) == 0 {
		vendors = DefaultVendors
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString(strings.Join(Header, ",") + "\n")
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	var b []byte
	for i := range o.N {
		v := vendors[i%len(vendors)]
		id := i
		if o.RandomIDs {
			id = scramble(i)
		}
		b = appendRow(b[:0], rng, i, id, v, o.Backfill)
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// scramble maps row numbers one to one onto numbers in no order (below
// 2^32, a multiplicative hash with an odd factor is a bijection).
func scramble(i int) int { return int(uint32(i) * 2654435761) }

// appendRow appends the CSV line of row i, subject number id, at vendor v.
func appendRow(b []byte, rng *rand.Rand, i, id int, v Vendor, backfill bool) []byte {
	b = append(b, v.Name...)
	b = append(b, ',')
	switch v.Kind {
	case privsync.KindSFMC:
		b = fmt.Appendf(b, "%08x-%04x-4%03x-8%03x-%012x,", uint32(id), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, uint64(i)*2654435761&0xffffffffffff)
	case privsync.KindBatch:
		t := batchIDTypes[rng.IntN(len(batchIDTypes))]
		switch t {
		case "custom_id":
			b = fmt.Appendf(b, "user-%d,", id)
		case "advertising_id":
			b = fmt.Appendf(b, "%08X-%04X-4%03X-A%03X-%012X,", uint32(id), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff)
		default:
			b = fmt.Appendf(b, "inst%016x,", uint64(i)*0x9e3779b97f4a7c15)
		}
		b = append(b, t...)
	case privsync.KindBloomreach:
		if rng.IntN(4) == 0 {
			b = fmt.Appendf(b, "%08x%016x,internal_id", uint32(id), rng.Uint64())
		} else {
			b = fmt.Appendf(b, "user%d@example.com,registered", id)
		}
	}
	b = append(b, ',')
	if backfill {
		return appendBackfill(b, rng, i, v)
	}
	if v.Kind == privsync.KindSFMC {
		b = append(b, restrictSets[rng.IntN(len(restrictSets))]...)
	}
	b = append(b, ',')
	switch x := rng.IntN(1000); {
	case x < 10:
		b = append(b, "delete"...)
	case x < 15 && v.Kind == privsync.KindSFMC:
		b = append(b, "suppress"...)
	}
	b = append(b, ',')
	if v.Kind == privsync.KindBatch && rng.IntN(200) == 0 {
		b = fmt.Appendf(b, "AR-%d", 100000+i)
	}
	b = append(b, ',')
	b = baseTime.Add(time.Duration(i)*time.Second).AppendFormat(b, time.RFC3339)
	b = append(b, ',')
	b = append(b, countries[rng.IntN(len(countries))]...)
	return append(b, '\n')
}

// appendBackfill appends the fields after id_type of a backfill row.
func appendBackfill(b []byte, rng *rand.Rand, i int, v Vendor) []byte {
	erasure := "delete"
	if v.Kind == privsync.KindSFMC {
		switch x := rng.IntN(10); x {
		case 0:
		case 1:
			erasure = "suppress"
		default:
			erasure = ""
			b = append(b, restrictSets[5+rng.IntN(len(restrictSets)-5)]...)
		}
	}
	b = append(b, ',')
	b = append(b, erasure...)
	b = append(b, ",,"...)
	b = baseTime.Add(time.Duration(i)*time.Second).AppendFormat(b, time.RFC3339)
	b = append(b, ',')
	b = append(b, countries[rng.IntN(len(countries))]...)
	return append(b, '\n')
}

// Change copies the CSV base to w with about pct percent of its rows
// changed: other restrictions (or an erasure) and a later updated_at. It
// returns how many rows it changed.
func Change(w io.Writer, base io.Reader, pct float64, seed uint64) (int, error) {
	r := csv.NewReader(bufio.NewReaderSize(base, 1<<20))
	r.ReuseRecord = true
	cw := csv.NewWriter(bufio.NewWriterSize(w, 1<<20))
	header, err := r.Read()
	if err != nil {
		return 0, fmt.Errorf("reading the base header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimPrefix(h, "\uFEFF")] = i
	}
	ri, ok1 := col["restrictions"]
	ui, ok2 := col["updated_at"]
	ei, ok3 := col["erasure"]
	if !ok1 || !ok2 || !ok3 {
		return 0, errors.New("the base needs restrictions, erasure and updated_at columns")
	}
	if err := cw.Write(header); err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x51ed2701))
	changed := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return changed, err
		}
		if rng.Float64()*100 < pct {
			changed++
			if rng.IntN(20) == 0 {
				rec[ei] = "delete"
			} else {
				old := rec[ri]
				for rec[ri] == old {
					rec[ri] = restrictSets[rng.IntN(len(restrictSets))]
				}
			}
			at, err := time.Parse(time.RFC3339, rec[ui])
			if err != nil {
				at = baseTime
			}
			rec[ui] = at.Add(30 * 24 * time.Hour).Format(time.RFC3339)
		}
		if err := cw.Write(rec); err != nil {
			return changed, err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return changed, err
	}
	return changed, flush(w)
}

func flush(w io.Writer) error {
	if f, ok := w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// ParquetOptions say how to write Parquet files.
type ParquetOptions struct {
	// Compressions is the codec of each output in turn (snappy, gzip,
	// zstd, none); default snappy.
	Compressions []string
	// RowGroupRows, if positive, ends a row group every so many rows.
	RowGroupRows int
	// ListRestrictions writes restrictions as a LIST of strings.
	ListRestrictions bool
	// Timestamp, if set, writes updated_at as a timestamp instead of a
	// string: "micros" or "millis" (INT64 TIMESTAMP) or "int96" (Spark's).
	Timestamp string
	// Plain disables dictionary encoding of the low-cardinality columns.
	Plain bool
	// PageSize is the data page size in bytes; 0 means DefaultPageSize.
	PageSize int
}

// DefaultPageSize is the data page size of arrow, arrow-rs and parquet-mr
// (Spark) writers. parquet-go's own default, 8 KiB, makes pages of a few
// hundred values, a page header each, unlike any warehouse export.
const DefaultPageSize = 1 << 20

// dictColumns are dictionary-encoded unless ParquetOptions.Plain.
var dictColumns = map[string]bool{"vendor": true, "id_type": true, "restrictions": true, "erasure": true, "country": true}

func codec(name string) (parquet.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "", "snappy":
		return parquet.CompressionCodec_SNAPPY, nil
	case "gzip":
		return parquet.CompressionCodec_GZIP, nil
	case "zstd":
		return parquet.CompressionCodec_ZSTD, nil
	case "none", "uncompressed":
		return parquet.CompressionCodec_UNCOMPRESSED, nil
	}
	return 0, fmt.Errorf("unknown compression %q (snappy, gzip, zstd or none)", name)
}

// columnKind is how one CSV column is written.
type columnKind int

const (
	colString columnKind = iota
	colList
	colMicros
	colMillis
	colInt96
)

// rowType builds the Go struct type parquet-go writes for a CSV header:
// every column an OPTIONAL string, but restrictions and updated_at as asked.
func rowType(header []string, o ParquetOptions) (reflect.Type, []columnKind, error) {
	fields := make([]reflect.StructField, len(header))
	kinds := make([]columnKind, len(header))
	for i, h := range header {
		name := strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))
		if name == "" || strings.ContainsAny(name, ",=") {
			return nil, nil, fmt.Errorf("column %d: name %q cannot be written", i+1, name)
		}
		enc := ""
		if dictColumns[name] && !o.Plain {
			enc = ", encoding=PLAIN_DICTIONARY"
		}
		f := reflect.StructField{Name: "F" + strconv.Itoa(i), Type: reflect.TypeFor[*string]()}
		tag := "name=" + name + ", type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL" + enc
		switch {
		case name == "restrictions" && o.ListRestrictions:
			f.Type = reflect.TypeFor[[]string]()
			tag = "name=" + name + ", type=LIST, valuetype=BYTE_ARRAY, valueconvertedtype=UTF8"
			kinds[i] = colList
		case name == "updated_at" && o.Timestamp != "":
			switch o.Timestamp {
			case "micros", "millis":
				f.Type = reflect.TypeFor[*int64]()
				tag = "name=" + name + ", type=INT64, convertedtype=TIMESTAMP_" + strings.ToUpper(o.Timestamp) + ", repetitiontype=OPTIONAL"
				kinds[i] = colMicros
				if o.Timestamp == "millis" {
					kinds[i] = colMillis
				}
			case "int96":
				tag = "name=" + name + ", type=INT96, repetitiontype=OPTIONAL"
				kinds[i] = colInt96
			default:
				return nil, nil, fmt.Errorf("unknown timestamp type %q (micros, millis or int96)", o.Timestamp)
			}
		}
		f.Tag = reflect.StructTag(`parquet:"` + tag + `"`)
		fields[i] = f
	}
	return reflect.StructOf(fields), kinds, nil
}

// ConvertCSV writes the rows of the CSV file at csvPath into the Parquet
// files outs, split evenly in order. Empty cells become nulls.
func ConvertCSV(csvPath string, o ParquetOptions, outs ...string) (err error) {
	if len(outs) == 0 {
		return errors.New("no output")
	}
	total := 0
	if len(outs) > 1 {
		if total, err = countRecords(csvPath); err != nil {
			return err
		}
	}
	f, err := os.Open(csvPath)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1 // missing cells become nulls, extra ones are dropped
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: reading the header: %w", csvPath, err)
	}
	header = append([]string(nil), header...)
	typ, kinds, err := rowType(header, o)
	if err != nil {
		return fmt.Errorf("%s: %w", csvPath, err)
	}
	for k, out := range outs {
		comp := "snappy"
		if len(o.Compressions) > 0 {
			comp = o.Compressions[k%len(o.Compressions)]
		}
		limit := -1
		if len(outs) > 1 {
			limit = total*(k+1)/len(outs) - total*k/len(outs)
		}
		if err := writeParquet(r, out, typ, kinds, comp, o, limit); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
	}
	return nil
}

func countRecords(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	n := -1 // the header
	for {
		if _, err := r.Read(); err == io.EOF {
			return n, nil
		} else if err != nil {
			return 0, err
		}
		n++
	}
}

// WriteFile creates path (and its directory) and writes it through a
// buffered writer.
func WriteFile(path string, write func(w *bufio.Writer) error) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err := write(w); err != nil {
		return err
	}
	return w.Flush()
}

// writeParquet writes limit records of r (all if negative) to out.
func writeParquet(r *csv.Reader, out string, typ reflect.Type, kinds []columnKind, comp string, o ParquetOptions, limit int) error {
	c, err := codec(comp)
	if err != nil {
		return err
	}
	return WriteFile(out, func(w *bufio.Writer) error {
		return writeRows(r, w, typ, kinds, c, o, limit)
	})
}

func writeRows(r *csv.Reader, w io.Writer, typ reflect.Type, kinds []columnKind, c parquet.CompressionCodec, o ParquetOptions, limit int) error {
	groupRows := o.RowGroupRows
	pw, err := writer.NewParquetWriterFromWriter(w, reflect.New(typ).Interface(), 1)
	if err != nil {
		return err
	}
	pw.CompressionType = c
	pw.PageSize = DefaultPageSize
	if o.PageSize > 0 {
		pw.PageSize = int64(o.PageSize)
	}
	for n := 0; limit < 0 || n < limit; n++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		v := reflect.New(typ).Elem()
		for i, s := range rec {
			if i >= len(kinds) || s == "" {
				continue
			}
			switch kinds[i] {
			case colString:
				v.Field(i).Set(reflect.ValueOf(&s))
			case colList:
				var list []string
				for p := range strings.SplitSeq(s, "|") {
					list = append(list, strings.TrimSpace(p))
				}
				v.Field(i).Set(reflect.ValueOf(list))
			default:
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return fmt.Errorf("updated_at %q is not RFC 3339, so it cannot be a timestamp: %w", s, err)
				}
				var x any
				switch kinds[i] {
				case colMicros:
					x = ptr(t.UnixMicro())
				case colMillis:
					x = ptr(t.UnixMilli())
				default:
					x = ptr(types.TimeToINT96(t))
				}
				v.Field(i).Set(reflect.ValueOf(x))
			}
		}
		if err := pw.Write(v.Interface()); err != nil {
			return err
		}
		if groupRows > 0 && (n+1)%groupRows == 0 {
			if err := pw.Flush(true); err != nil {
				return err
			}
		}
	}
	return pw.WriteStop()
}

func ptr[T any](x T) *T { return &x }

// PartPath is the path of part k (from 1) of a part directory, as Spark
// and warehouse exports lay them out.
func PartPath(dir string, k int) string {
	return filepath.Join(dir, fmt.Sprintf("part=%d", k), "data_0.parquet")
}

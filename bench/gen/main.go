// Command gen generates desired-state inputs for privsync benchmarks and
// tests, and converts CSV inputs into Parquet twins. Its output is
// deterministic for a given -seed.
//
//	gen rows -n N -o FILE.csv|FILE.parquet [-vendors sfmc,batch-ios,bloomreach] [-seed S] [-backfill] [-random-ids]
//	gen rows -o FILE.csv -base BASE.csv -changed-pct P [-seed S]   # BASE with P% of rows changed
//	gen convert -in X.csv -out Y.parquet [-compression snappy|gzip|zstd[,...]] [-row-group N] [-page-size BYTES]
//	            [-list-restrictions] [-timestamp micros|millis|int96] [-plain]
//	gen convert -in X.csv -parts K -dir D ...                       # D/part=1/data_0.parquet, ...
//	gen read INPUT...    # read inputs as privsync does (demo vendors), print rows/s and memory
//
// The committed test data was made with (from the module root):
//
//	go run ./bench/gen convert -in testdata/sample.csv -out testdata/sample.parquet -compression snappy -row-group 150 -list-restrictions
//	go run ./bench/gen convert -in testdata/sample.csv -parts 2 -dir testdata/sample-parts -compression zstd,gzip
//	head -c 4000 testdata/sample.parquet > testdata/broken/truncated.parquet
//	(echo vendor,profile_id,id_type,restrictions,erasure,access_request,updated_at;
//	    sed -n 2,4p testdata/sample.csv | cut -d, -f1-7) > testdata/broken/no-subject.csv
//	gzip -9 -n -c testdata/sample.csv > testdata/broken/binary.csv
//
// (sample.csv has 292 rows: -row-group 150 makes two row groups; rerun these
// whenever sample.csv changes, ingest's TestSamples checks they agree.)
// A 10M-row benchmark input:
//
//	go run ./bench/gen rows -n 10000000 -o bench/out/10m.csv
//	go run ./bench/gen rows -o bench/out/10m-changed.csv -base bench/out/10m.csv -changed-pct 1
//	go run ./bench/gen convert -in bench/out/10m.csv -parts 8 -dir bench/out/10m-parts
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/bench/gen/gendata"
	"github.com/privsync/privsync/ingest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: gen rows|convert|read [flags] (see go doc ./bench/gen)")
	}
	switch args[0] {
	case "rows":
		return rows(args[1:])
	case "convert":
		return convert(args[1:])
	case "read":
		return read(args[1:])
	}
	return fmt.Errorf("unknown command %q: expected rows, convert or read", args[0])
}

func rows(args []string) error {
	fs := flag.NewFlagSet("rows", flag.ContinueOnError)
	n := fs.Int("n", 1000, "number of rows")
	out := fs.String("o", "", "output file, .csv or .parquet")
	vendors := fs.String("vendors", "sfmc,batch-ios,bloomreach", "vendors as name[=kind],...")
	seed := fs.Uint64("seed", 1, "random seed")
	base := fs.String("base", "", "copy this CSV with -changed-pct percent of its rows changed")
	pct := fs.Float64("changed-pct", 1, "percentage of rows changed with -base")
	backfill := fs.Bool("backfill", false, "every row asks for an operation (restrictions or erasures; see gendata.RowsOptions)")
	randomIDs := fs.Bool("random-ids", false, "subject ids in no order (as UUIDs and hashed e-mails), not beginning with the row number")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("rows: -o is required")
	}
	vs, err := gendata.ParseVendors(*vendors)
	if err != nil {
		return err
	}
	csvOut := *out
	isParquet := strings.EqualFold(filepath.Ext(*out), ".parquet")
	if isParquet {
		csvOut = *out + ".tmp.csv"
		defer os.Remove(csvOut)
	}
	if err := gendata.WriteFile(csvOut, func(w *bufio.Writer) error {
		if *base != "" {
			b, err := os.Open(*base)
			if err != nil {
				return err
			}
			defer b.Close()
			changed, err := gendata.Change(w, b, *pct, *seed)
			fmt.Fprintf(os.Stderr, "gen: %d rows changed\n", changed)
			return err
		}
		return gendata.WriteRows(w, gendata.RowsOptions{N: *n, Vendors: vs, Seed: *seed, Backfill: *backfill, RandomIDs: *randomIDs})
	}); err != nil {
		return err
	}
	if isParquet {
		return gendata.ConvertCSV(csvOut, gendata.ParquetOptions{}, *out)
	}
	return nil
}

// discard counts rows.
type discard struct{ rows, rejects int64 }

func (d *discard) Row(*privsync.Row) error         { d.rows++; return nil }
func (d *discard) Reject(*privsync.RowError) error { d.rejects++; return nil }

func read(args []string) error {
	vendors := map[string]privsync.Kind{}
	for _, v := range gendata.DefaultVendors {
		vendors[v.Name] = v.Kind
	}
	start := time.Now()
	var d discard
	infos, err := ingest.Read(context.Background(), args, ingest.Options{Vendors: vendors}, &d)
	if err != nil {
		return err
	}
	el := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, f := range infos {
		fmt.Printf("%s\t%s\t%d bytes\t%d rows\t%d rejected\tsha256 %s\n", f.Path, f.Format, f.Size, f.Rows, f.Rejected, f.SHA256)
	}
	fmt.Printf("%d rows, %d rejected in %v: %.0f rows/s; %d MB allocated in all, %d MB from the OS\n",
		d.rows, d.rejects, el.Round(time.Millisecond), float64(d.rows+d.rejects)/el.Seconds(), ms.TotalAlloc>>20, ms.Sys>>20)
	return nil
}

func convert(args []string) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	in := fs.String("in", "", "input CSV")
	out := fs.String("out", "", "output Parquet file")
	parts := fs.Int("parts", 0, "write K part files into -dir instead of -out")
	dir := fs.String("dir", "", "directory of the part files")
	comp := fs.String("compression", "snappy", "snappy, gzip, zstd or none; a comma-separated list is used part by part")
	group := fs.Int("row-group", 0, "rows per row group (0: one row group per 128 MiB)")
	list := fs.Bool("list-restrictions", false, "write restrictions as a LIST of strings")
	ts := fs.String("timestamp", "", "write updated_at as a timestamp: micros, millis or int96")
	plain := fs.Bool("plain", false, "no dictionary encoding")
	page := fs.Int("page-size", gendata.DefaultPageSize, "data page size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := gendata.ParquetOptions{
		Compressions:     strings.Split(*comp, ","),
		RowGroupRows:     *group,
		ListRestrictions: *list,
		Timestamp:        *ts,
		Plain:            *plain,
		PageSize:         *page,
	}
	switch {
	case *in == "":
		return errors.New("convert: -in is required")
	case *parts > 0 && *dir != "":
		outs := make([]string, *parts)
		for k := range outs {
			outs[k] = gendata.PartPath(*dir, k+1)
		}
		return gendata.ConvertCSV(*in, o, outs...)
	case *out != "" && *parts == 0:
		return gendata.ConvertCSV(*in, o, *out)
	}
	return errors.New("convert: give -out FILE, or -parts K and -dir D")
}

package ingest_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ingest"
	"github.com/xitongsys/parquet-go/writer"
)

// writeJSONParquet writes JSON rows into a Parquet file of the given schema.
func writeJSONParquet(t *testing.T, schema string, rows ...string) string {
	t.Helper()
	var buf bytes.Buffer
	pw, err := writer.NewJSONWriterFromWriter(schema, &buf, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := pw.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.WriteStop(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "in.parquet")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParquetShapes reads lists as Spark writes them (an optional list of
// optional strings), legacy repeated strings, and integer ids and
// timestamps, with nulls everywhere they may be.
func TestParquetShapes(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := []privsync.Row{
		{Line: 1, Key: privsync.Key{Vendor: "sfmc", SubjectID: "42"}, Restrictions: privsync.DoNotTrack | privsync.DoNotProcess, UpdatedAt: at},
		{Line: 2, Key: privsync.Key{Vendor: "sfmc", SubjectID: "43"}},
		{Line: 3, Key: privsync.Key{Vendor: "sfmc", SubjectID: "44"}, Restrictions: privsync.DoNotProfile},
		{Line: 4, Key: privsync.Key{Vendor: "sfmc", SubjectID: "45"}},
	}
	rows := []string{
		// (parquet-go's JSON writer cannot write a null list element)
		`{"vendor": "sfmc", "subject_id": 42, "restrictions": ["do_not_track", "do_not_process"], "updated_at": 1767323045000000}`,
		`{"vendor": "sfmc", "subject_id": 43, "restrictions": null, "updated_at": null}`,
		`{"vendor": "sfmc", "subject_id": 44, "restrictions": ["do_not_profile"]}`,
		`{"vendor": "sfmc", "subject_id": 45, "restrictions": []}`,
	}
	cases := map[string]string{
		"spark list": `{"Tag": "name=spark_schema, repetitiontype=REQUIRED", "Fields": [
			{"Tag": "name=vendor, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"},
			{"Tag": "name=subject_id, type=INT64, repetitiontype=OPTIONAL"},
			{"Tag": "name=restrictions, type=LIST, repetitiontype=OPTIONAL", "Fields": [
				{"Tag": "name=element, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"}]},
			{"Tag": "name=updated_at, type=INT64, convertedtype=TIMESTAMP_MICROS, repetitiontype=OPTIONAL"}]}`,
		"repeated strings": `{"Tag": "name=schema, repetitiontype=REQUIRED", "Fields": [
			{"Tag": "name=vendor, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"},
			{"Tag": "name=subject_id, type=INT32, repetitiontype=REQUIRED"},
			{"Tag": "name=restrictions, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REPEATED"},
			{"Tag": "name=updated_at, type=INT64, convertedtype=TIMESTAMP_MICROS, repetitiontype=OPTIONAL"}]}`,
	}
	for name, schema := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeJSONParquet(t, schema, rows...)
			got, _ := mustRead(t, ingest.Options{}, p)
			if len(got.rejects) > 0 {
				t.Fatalf("rejects: %v", got.rejectReasons())
			}
			for i := range want {
				want[i].File = p
			}
			if !slices.Equal(got.rows, want) {
				t.Errorf("rows\n got %+v\nwant %+v", got.rows, want)
			}
		})
	}
}

// TestParquetBareInt64Time: an updated_at of INT64 without a unit, and no
// Arrow schema in the footer to give one (arrow-rs's Timestamp(Second) is
// read from it, see arrow-rs-timestamp-seconds.parquet), is refused with
// what to write instead.
func TestParquetBareInt64Time(t *testing.T) {
	p := writeJSONParquet(t, `{"Tag": "name=schema, repetitiontype=REQUIRED", "Fields": [
		{"Tag": "name=vendor, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"},
		{"Tag": "name=subject_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"},
		{"Tag": "name=updated_at, type=INT64, repetitiontype=OPTIONAL"}]}`,
		`{"vendor": "sfmc", "subject_id": "a", "updated_at": 1767323045}`)
	_, _, err := read(t, ingest.Options{}, p)
	var fe *ingest.FileError
	if !errors.As(err, &fe) || fe.Path != p {
		t.Fatalf("err = %v, want a FileError of %s", err, p)
	}
	for _, w := range []string{"INT64 without a TIMESTAMP unit", "Timestamp(Second)", "ARROW:schema", "write it as a TIMESTAMP"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
}

package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/privsync/privsync/ingest/objstore"
	"github.com/privsync/privsync/ingest/objstore/objstoretest"
)

func formats(key string) string {
	switch {
	case strings.HasSuffix(key, ".csv"):
		return "csv"
	case strings.HasSuffix(key, ".parquet"):
		return "parquet"
	}
	return ""
}

// export is a Spark-like export: part files, a marker, a checksum, a
// hidden file, a temporary directory and a hive partition.
var export = map[string]string{
	"export/part-00001.csv":             "b\n",
	"export/part-00000.csv":             "a\n",
	"export/_SUCCESS":                   "",
	"export/.part-00000.csv.crc":        "crc",
	"export/part-00000.csv.crc":         "crc",
	"export/_temporary/0/part-9.csv":    "tmp\n",
	"export/vendor=sfmc/part-00000.csv": "c\n",
	"exports-old/part-00000.csv":        "old\n",
}

var wantKeys = []string{"export/part-00000.csv", "export/part-00001.csv", "export/vendor=sfmc/part-00000.csv"}

func keysOf(l *objstore.Listing) []string {
	var out []string
	for _, o := range l.Objects {
		out = append(out, o.Key)
	}
	return out
}

func TestS3PrefixReadLikeADirectory(t *testing.T) {
	ctx := context.Background()
	s3 := objstoretest.StartS3(t, "warehouse")
	for k, v := range export {
		s3.Put(t, "warehouse", k, []byte(v))
	}
	st := objstore.NewStore(formats)
	defer st.Close()
	for _, in := range []string{s3.Input("warehouse", "export/"), s3.Input("warehouse", "export")} {
		l, err := st.List(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if got := keysOf(l); !slices.Equal(got, wantKeys) || !l.Prefix || !l.Success || l.Skipped != 4 {
			t.Fatalf("%s: keys %q prefix %v success %v skipped %d; want %q, a prefix with _SUCCESS, 4 skipped", in, got, l.Prefix, l.Success, l.Skipped, wantKeys)
		}
		o := l.Objects[0]
		if o.URL != "s3://warehouse/export/part-00000.csv" || o.Size != 2 || o.ETag == "" {
			t.Fatalf("object %+v: want its URL without the query, its size and ETag", o)
		}
	}
	// Streaming: one GET without a range.
	s3.Requests()
	obj, _ := st.Object("s3://warehouse/export/part-00001.csv")
	r := obj.Open(ctx)
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(data) != "b\n" {
		t.Fatalf("read %q, %v", data, err)
	}
	if gets := objstoretest.Gets(s3.Requests(), "part-00001"); len(gets) != 1 || gets[0].Range != "" {
		t.Fatalf("streaming made %+v, want one plain GET", gets)
	}
	// One object by its URL; listing it again asks nothing.
	l, err := st.List(ctx, s3.Input("warehouse", "exports-old/part-00000.csv"))
	if err != nil || l.Prefix || len(l.Objects) != 1 {
		t.Fatalf("one object: %+v, %v", l, err)
	}
	s3.Requests()
	if _, err := st.List(ctx, s3.Input("warehouse", "export/")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(ctx, "s3://warehouse/export/part-00000.csv"); err != nil {
		t.Fatal(err)
	}
	if reqs := s3.Requests(); len(reqs) != 0 {
		t.Fatalf("listing again asked the store: %+v", reqs)
	}
}

func TestS3RangedReads(t *testing.T) {
	ctx := context.Background()
	s3 := objstoretest.StartS3(t, "b")
	data := bytes.Repeat([]byte("0123456789"), 1000)
	s3.Put(t, "b", "x/data.parquet", data)
	st := objstore.NewStore(formats)
	defer st.Close()
	l, err := st.List(ctx, s3.Input("b", "x/"))
	if err != nil {
		t.Fatal(err)
	}
	s3.Requests()
	r := l.Objects[0].Open(ctx)
	tail := make([]byte, 8)
	if n, err := r.ReadAt(tail, int64(len(data)-8)); n != 8 || err != nil || string(tail) != "23456789" {
		t.Fatalf("ReadAt of the tail: %d %v %q", n, err, tail)
	}
	// A read past the end returns what there is and io.EOF.
	big := make([]byte, 100)
	if n, err := r.ReadAt(big, int64(len(data)-10)); n != 10 || err != io.EOF {
		t.Fatalf("ReadAt across the end: %d %v", n, err)
	}
	gets := objstoretest.Gets(s3.Requests(), "data.parquet")
	if len(gets) != 2 || r.Ranges != 2 {
		t.Fatalf("requests %+v (Ranges %d), want two ranged GETs", gets, r.Ranges)
	}
	for _, g := range gets {
		if !strings.HasPrefix(g.Range, "bytes=") {
			t.Fatalf("a GET without a Range: %+v", g)
		}
	}
}

func TestS3Problems(t *testing.T) {
	ctx := context.Background()
	s3 := objstoretest.StartS3(t, "b")
	s3.Put(t, "b", "export/part-0.csv", []byte("abc\n"))
	s3.Put(t, "b", "mixed/part-0.json", []byte("{}"))

	st := objstore.NewStore(formats)
	defer st.Close()
	if _, err := st.List(ctx, s3.Input("b", "nothing-here/")); err == nil || !strings.Contains(err.Error(), "no .csv or .parquet objects under prefix s3://b/nothing-here/") {
		t.Errorf("a missing prefix: %v", err)
	}
	if _, err := st.List(ctx, s3.Input("b", "mixed/")); err == nil || !strings.Contains(err.Error(), "unknown input type") {
		t.Errorf("an object of an unknown type: %v", err)
	}
	if _, err := st.List(ctx, s3.Input("no-such-bucket", "x/")); err == nil {
		t.Errorf("a missing bucket: no error")
	}

	// The object is rewritten (same size) after it was listed.
	l, err := st.List(ctx, s3.Input("b", "export/"))
	if err != nil {
		t.Fatal(err)
	}
	s3.Put(t, "b", "export/part-0.csv", []byte("xyz\n"))
	if _, err := io.ReadAll(l.Objects[0].Open(ctx)); !errors.Is(err, objstore.ErrChanged) {
		t.Errorf("reading a rewritten object: %v, want ErrChanged", err)
	}
	if _, err := l.Objects[0].Open(ctx).ReadAt(make([]byte, 2), 0); !errors.Is(err, objstore.ErrChanged) {
		t.Errorf("ranged read of a rewritten object: %v, want ErrChanged", err)
	}

	// A refused credential says so.
	t.Setenv("AWS_ACCESS_KEY_ID", "someone-else")
	denied := objstore.NewStore(formats)
	defer denied.Close()
	_, err = denied.List(ctx, s3.Input("b", "export/"))
	if err == nil || !strings.Contains(err.Error(), "access denied to s3://b/export/") {
		t.Errorf("a refused credential: %v", err)
	}
}

// TestS3EndpointFromEnvironment: AWS_ENDPOINT_URL reaches an S3-compatible
// store without an endpoint in the URL.
func TestS3EndpointFromEnvironment(t *testing.T) {
	s3 := objstoretest.StartS3(t, "b")
	s3.Put(t, "b", "export/part-0.csv", []byte("abc\n"))
	t.Setenv("AWS_ENDPOINT_URL", s3.URL)
	st := objstore.NewStore(formats)
	defer st.Close()
	l, err := st.List(context.Background(), "s3://b/export/?use_path_style=true")
	if err != nil || len(l.Objects) != 1 {
		t.Fatalf("listing through AWS_ENDPOINT_URL: %+v, %v", l, err)
	}
}

func TestGCSPrefixAndGenerations(t *testing.T) {
	ctx := context.Background()
	gcs := objstoretest.StartGCS(t, "warehouse")
	for k, v := range export {
		gcs.Put("warehouse", k, []byte(v))
	}
	st := objstore.NewStore(formats)
	defer st.Close()
	l, err := st.List(ctx, "gs://warehouse/export/")
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(l); !slices.Equal(got, wantKeys) || !l.Success {
		t.Fatalf("keys %q success %v, want %q and _SUCCESS", got, l.Success, wantKeys)
	}
	if !strings.Contains(l.Objects[0].ETag, "generation") {
		t.Errorf("a GCS object's version %q names no generation", l.Objects[0].ETag)
	}
	data, err := io.ReadAll(l.Objects[2].Open(ctx))
	if err != nil || string(data) != "c\n" {
		t.Fatalf("read %q, %v", data, err)
	}
	tail := make([]byte, 1)
	if _, err := l.Objects[2].Open(ctx).ReadAt(tail, 1); err != nil || tail[0] != '\n' {
		t.Fatalf("ranged read %q, %v", tail, err)
	}
	gcs.Put("warehouse", "export/part-00000.csv", []byte("z\n"))
	if _, err := io.ReadAll(l.Objects[0].Open(ctx)); !errors.Is(err, objstore.ErrChanged) {
		t.Errorf("reading a rewritten object: %v, want ErrChanged", err)
	}
	if _, err := st.List(ctx, "gs://warehouse/missing/"); err == nil {
		t.Errorf("a missing prefix: no error")
	}
}

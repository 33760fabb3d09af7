package ingest

import (
	"context"
	"os"
	"testing"
)

func BenchmarkLocalFile(b *testing.B) {
	p := os.Getenv("LOCAL_BENCH_FILE")
	if p == "" {
		b.Skip()
	}
	b.ReportAllocs()
	for b.Loop() {
		h := &nopHandler{}
		if _, err := Read(context.Background(), []string{p}, Options{Vendors: benchVendors}, h); err != nil {
			b.Fatal(err)
		}
		if h.rejects != 0 {
			b.Fatalf("%d rows, %d rejects", h.rows, h.rejects)
		}
	}
}

package gendata_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/privsync/privsync/bench/gen/gendata"
)

func rows(t *testing.T, o gendata.RowsOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gendata.WriteRows(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	a, b := rows(t, gendata.RowsOptions{N: 500, Seed: 9}), rows(t, gendata.RowsOptions{N: 500, Seed: 9})
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave other rows")
	}
	if bytes.Equal(a, rows(t, gendata.RowsOptions{N: 500, Seed: 10})) {
		t.Fatal("another seed gave the same rows")
	}
	recs, err := csv.NewReader(bytes.NewReader(a)).ReadAll()
	if err != nil || len(recs) != 501 || strings.Join(recs[0], ",") != strings.Join(gendata.Header, ",") {
		t.Fatalf("%d records, %v", len(recs), err)
	}
}

func TestChange(t *testing.T) {
	base := rows(t, gendata.RowsOptions{N: 10000, Seed: 1})
	var out bytes.Buffer
	n, err := gendata.Change(&out, bytes.NewReader(base), 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := csv.NewReader(bytes.NewReader(base)).ReadAll()
	changed, _ := csv.NewReader(&out).ReadAll()
	if len(changed) != len(old) {
		t.Fatalf("%d records, want %d", len(changed), len(old))
	}
	diff := 0
	for i := range old {
		if strings.Join(old[i], ",") != strings.Join(changed[i], ",") {
			diff++
		}
	}
	if diff != n || n < 400 || n > 600 {
		t.Errorf("%d rows differ, %d said changed; want about 500", diff, n)
	}
}

func TestParseVendors(t *testing.T) {
	vs, err := gendata.ParseVendors("sfmc, batch-android ,shop=bloomreach")
	if err != nil || len(vs) != 3 || vs[1].Kind != "batch" || vs[2].Name != "shop" || vs[2].Kind != "bloomreach" {
		t.Errorf("ParseVendors = %v, %v", vs, err)
	}
	if _, err := gendata.ParseVendors("mailchimp"); err == nil {
		t.Error("unknown kind accepted")
	}
}

// With RandomIDs, each vendor's subject ids are still distinct but no
// longer come in sorted order (by default they nearly do: an id begins
// with its row number).
func TestRandomIDs(t *testing.T) {
	sortedRuns := func(o gendata.RowsOptions) (int, int) {
		recs, err := csv.NewReader(bytes.NewReader(rows(t, o))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		seen, ordered, last := map[string]bool{}, 0, ""
		for _, r := range recs[1:] {
			if r[0] != "sfmc" {
				continue
			}
			if seen[r[1]] {
				t.Fatalf("subject %s generated twice", r[1])
			}
			seen[r[1]] = true
			if r[1] > last {
				ordered++
			}
			last = r[1]
		}
		return ordered, len(seen)
	}
	o := gendata.RowsOptions{N: 3000, Vendors: []gendata.Vendor{gendata.DefaultVendors[0]}, Backfill: true}
	if in, n := sortedRuns(o); in != n {
		t.Fatalf("default ids: %d of %d in order, want all", in, n)
	}
	o.RandomIDs = true
	if in, n := sortedRuns(o); n != 3000 || in > n*3/4 {
		t.Fatalf("random ids: %d distinct, %d in order, want 3000 and about half in order", n, in)
	}
}

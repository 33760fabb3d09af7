package ingest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync"
)

// instant is a point in time kept as whole seconds since 0000-01-01T00:00:00Z
// (proleptic Gregorian) and nanoseconds: an independent reference for what
// an RFC 3339 text means, wide enough for the whole RFC 3339 range.
type instant struct {
	sec  int64
	nsec int64
}

func (a instant) compare(b instant) int {
	return cmp.Or(cmp.Compare(a.sec, b.sec), cmp.Compare(a.nsec, b.nsec))
}

// daysBefore counts the days from 0000-01-01 to year-month-day by counting
// whole years and months, without the time package.
func daysBefore(year, month, day int) int64 {
	leap := func(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }
	var d int64
	for y := 0; y < year; y++ {
		d += 365
		if leap(y) {
			d++
		}
	}
	lengths := []int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m < month; m++ {
		d += int64(lengths[m-1])
		if m == 2 && leap(year) {
			d++
		}
	}
	return d + int64(day-1)
}

// randomRFC3339 draws a valid RFC 3339 text anywhere in 0000..9999 (local
// time), with a random offset and fraction, and the instant it stands for.
func randomRFC3339(r *rand.Rand) (string, instant) {
	year := r.IntN(10000)
	// Near the edges of what privsync accepts half of the time.
	if r.IntN(2) == 0 {
		year = []int{0, 1, 1677, 1678, 1969, 1970, 2261, 2262, 9999}[r.IntN(9)]
	}
	month := 1 + r.IntN(12)
	day := 1 + r.IntN(28)
	if r.IntN(4) == 0 { // the month's last day
		day = time.Date(2001, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
		if month == 2 && (year%4 == 0 && (year%100 != 0 || year%400 == 0)) {
			day = 29
		}
	}
	h, mi, s := r.IntN(24), r.IntN(60), r.IntN(60)
	digits := r.IntN(10) // 0 = no fraction
	frac, nsec := "", int64(0)
	if digits > 0 {
		f := r.Int64N(pow10(digits))
		frac = fmt.Sprintf(".%0*d", digits, f)
		nsec = f * pow10(9-digits)
	}
	zone, off := "Z", 0
	switch r.IntN(3) {
	case 1:
		oh, om := r.IntN(24), r.IntN(60)
		sign := "+"
		off = oh*3600 + om*60
		if r.IntN(2) == 0 {
			sign, off = "-", -off
		}
		zone = fmt.Sprintf("%s%02d:%02d", sign, oh, om)
	case 2:
		zone = "+00:00"
	}
	text := fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d%s%s", year, month, day, h, mi, s, frac, zone)
	sec := daysBefore(year, month, day)*86400 + int64(h*3600+mi*60+s) - int64(off)
	return text, instant{sec, nsec}
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// The accepted range as instants of the reference.
var (
	minInstant = instant{daysBefore(1678, 1, 1) * 86400, 0}
	maxInstant = instant{daysBefore(2261, 12, 31)*86400 + 86399, 999_999_999}
)

// TestDatesOrderOrAreRejected is the property of the date rule across the
// whole RFC 3339 range: an updated_at is accepted exactly when it lies in
// 1678..2261 (UTC), and then the representation the planner and the ledger
// keep (int64 nanoseconds) orders any two rows as their instants order;
// every other row is rejected in column updated_at. The same holds for
// the time.Time a Parquet TIMESTAMP becomes.
func TestDatesOrderOrAreRejected(t *testing.T) {
	v, err := newValidator(map[string]privsync.Kind{"sfmc": privsync.KindSFMC})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	type accepted struct {
		text string
		ref  instant
		ns   int64
	}
	var got []accepted
	check := func(text string, ref instant, raw *rawRow) {
		var row privsync.Row
		var rej privsync.RowError
		ok := v.validate(raw, &row, &rej)
		inRange := ref.compare(minInstant) >= 0 && ref.compare(maxInstant) <= 0
		switch {
		case ok != inRange:
			t.Fatalf("%s: accepted %v, want %v (reject: %v)", text, ok, inRange, rej.Reason)
		case !ok && (rej.Column != "updated_at" || !strings.Contains(rej.Reason, "between 1678-01-01 and 2261-12-31")):
			t.Fatalf("%s: rejected in column %q for %q, want updated_at and the range", text, rej.Column, rej.Reason)
		case ok && row.UpdatedAt.IsZero():
			t.Fatalf("%s: accepted as no timestamp at all", text)
		case ok:
			ns := row.UpdatedAt.UnixNano()
			if !time.Unix(0, ns).Equal(row.UpdatedAt) {
				t.Fatalf("%s: %v does not survive int64 nanoseconds", text, row.UpdatedAt)
			}
			got = append(got, accepted{text, ref, ns})
		}
	}
	for range 20000 {
		text, ref := randomRFC3339(r)
		raw := rawRow{}
		raw.vals[fVendor], raw.vals[fSubjectID], raw.vals[fUpdatedAt] = "sfmc", "p1", text
		check(text, ref, &raw)

		// The Parquet path: the same instant as a time.Time.
		pt := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(ref.sec%86400)*time.Second).AddDate(0, 0, int(ref.sec/86400)).Add(time.Duration(ref.nsec))
		if ref.sec < 0 {
			continue // before 0000-01-01 UTC: no TIMESTAMP of Parquet's
		}
		raw = rawRow{at: pt, hasAt: true}
		raw.vals[fVendor], raw.vals[fSubjectID] = "sfmc", "p1"
		check("parquet "+pt.Format(time.RFC3339Nano), ref, &raw)
	}
	if len(got) < 2000 {
		t.Fatalf("only %d accepted dates: the test says little about ordering", len(got))
	}
	for i := 1; i < len(got); i++ {
		for _, j := range []int{i - 1, r.IntN(i)} {
			a, b := got[i], got[j]
			if want, have := a.ref.compare(b.ref), cmp.Compare(a.ns, b.ns); want != have {
				t.Fatalf("%s vs %s: ordered %d, want %d", a.text, b.text, have, want)
			}
		}
	}
}

package ingest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/privsync/privsync/ingest"
)

// TestParquetTimestampsOutOfRange: a Parquet TIMESTAMP beyond what privsync
// orders is rejected in its row and column, as the same date written as
// text is; one just inside the range is read as it is.
func TestParquetTimestampsOutOfRange(t *testing.T) {
	for _, unit := range []struct {
		name string
		per  int64 // units per second
	}{{"MILLIS", 1000}, {"MICROS", 1_000_000}} {
		t.Run(unit.name, func(t *testing.T) {
			schema := `{"Tag": "name=schema, repetitiontype=REQUIRED", "Fields": [
				{"Tag": "name=vendor, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"},
				{"Tag": "name=subject_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"},
				{"Tag": "name=updated_at, type=INT64, convertedtype=TIMESTAMP_` + unit.name + `, repetitiontype=OPTIONAL"}]}`
			dates := []time.Time{
				time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), // rejected
				time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),         // rejected
				time.Date(1677, 12, 31, 23, 59, 59, 0, time.UTC), // rejected
				ingest.MinUpdatedAt,
				time.Date(2261, 12, 31, 23, 59, 59, 0, time.UTC),
			}
			var rows []string
			for i, d := range dates {
				rows = append(rows, fmt.Sprintf(`{"vendor": "sfmc", "subject_id": "p%d", "updated_at": %d}`, i, d.Unix()*unit.per))
			}
			p := writeJSONParquet(t, schema, rows...)
			got, _ := mustRead(t, ingest.Options{}, p)
			if len(got.rejects) != 3 || len(got.rows) != 2 {
				t.Fatalf("%d rows, rejects %v; want 2 rows and 3 rejects", len(got.rows), got.rejectReasons())
			}
			for i, r := range got.rejects {
				if r.Line != int64(i+1) || r.Column != "updated_at" || !strings.Contains(r.Reason, "between 1678-01-01 and 2261-12-31") {
					t.Errorf("reject %d: %v", i, r.Error())
				}
			}
			for i, r := range got.rows {
				if !r.UpdatedAt.Equal(dates[3+i]) {
					t.Errorf("row %d: updated_at %v, want %v", r.Line, r.UpdatedAt, dates[3+i])
				}
			}
		})
	}
}

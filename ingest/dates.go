package ingest

import (
	"time"
)

// The updated_at instants privsync accepts, both ends included: whole years
// within what the ledger and the planner hold exactly (int64 nanoseconds
// since 1970, 1677-09-21 to 2262-04-11). An instant outside them cannot be
// ordered against the others, so its row is rejected rather than read as
// something else: placeholders such as 0001-01-01 or 9999-12-31 are not
// dates. A row without updated_at (an empty cell, a Parquet null) is "as of
// the run's start"; a present updated_at is never the zero time.Time, so a
// zero Row.UpdatedAt always means absent.
var (
	MinUpdatedAt = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxUpdatedAt = time.Date(2261, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
)

// ReasonUpdatedAtRange is the reject reason of an updated_at outside
// MinUpdatedAt..MaxUpdatedAt.
const ReasonUpdatedAtRange = "updated_at must be between 1678-01-01 and 2261-12-31 (a placeholder date such as 0001-01-01 or 9999-12-31 is not a timestamp: leave the cell empty for none)"

// CheckUpdatedAt is the one date rule, applied to every present updated_at
// whatever it was read from (CSV text, a Parquet string or TIMESTAMP). It
// returns the instant in UTC, or the reason the row is rejected.
func CheckUpdatedAt(t time.Time) (time.Time, string) {
	t = t.UTC()
	if t.Before(MinUpdatedAt) || t.After(MaxUpdatedAt) {
		return time.Time{}, ReasonUpdatedAtRange
	}
	return t, ""
}

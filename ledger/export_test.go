package ledger

// SetSetMin sets the shortest run of like outcomes Resolve records
// set-based, for tests that compare it with the item-by-item path; it
// returns a func that restores the default.
func SetSetMin(n int) (restore func()) {
	old := setMin
	setMin = n
	return func() { setMin = old }
}

// SetPlanRows sets how many rows one INSERT of a plan writes; it returns a
// func that restores the default.
func SetPlanRows(n int) (restore func()) {
	old := planRows
	planRows = n
	return func() { planRows = old }
}

// CacheSize returns the connection's PRAGMA cache_size.
func CacheSize(d *DB) (n int64, err error) {
	err = d.db.QueryRow(`PRAGMA cache_size`).Scan(&n)
	return n, err
}

// SetSettledChunkBytes sets the size of the buffers the settled set is
// handed over in while it loads; it returns a func that restores it.
func SetSettledChunkBytes(n int) (restore func()) {
	old := settledChunkBytes
	settledChunkBytes = n
	return func() { settledChunkBytes = old }
}

//go:build !race

package sim

// Race reports whether the race detector is on: it makes SQLite (C
// translated to Go) about nine times slower, so the tests play fewer
// seeds under it.
const Race = false

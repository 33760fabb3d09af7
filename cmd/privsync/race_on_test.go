//go:build race

package main

// raceEnabled builds the end-to-end binaries with -race when the tests run
// with it, so data races in the executor surface there too.
const raceEnabled = true

//go:build !unix

package ledger

import (
	"fmt"
	"os"
)

// acquireLock creates the lock file exclusively; a stale one left by a
// crash must be removed by hand on these systems.
func acquireLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w (lock file %s exists): wait for it to finish, or remove the file if no privsync runs", ErrLocked, path)
	}
	return f, nil
}

func releaseLock(f *os.File) {
	name := f.Name()
	f.Close()
	os.Remove(name)
}

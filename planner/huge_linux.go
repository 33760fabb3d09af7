package planner

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks Linux to back the pages of a large array with huge pages
// (transparent huge pages in "madvise" mode, as many distributions ship
// them): one fault and one TLB entry per 2 MiB instead of per 4 KiB. Best
// effort: an error leaves ordinary pages.
func adviseHuge(s []uint64) {
	if cap(s) < hugeMin {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:1]))), 8*cap(s))
	start := (uintptr(unsafe.Pointer(&b[0])) + pageSize - 1) &^ (pageSize - 1)
	off := int(start - uintptr(unsafe.Pointer(&b[0])))
	if end := (len(b) - off) &^ (pageSize - 1); end > 0 {
		unix.Madvise(b[off:off+end], unix.MADV_HUGEPAGE)
	}
}

const pageSize = 4096

package tokens

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fixedTable lists the element types of the tables an encoding builds once
// and then only reads. None holds a pointer: memory outside the Go heap is
// not scanned by the collector, so a pointer kept there would not keep its
// target alive. A type is added here only if that stays true.
type fixedTable interface {
	uint8 | int32 | uint32 | uint64 | shortEntry | midEntry
}

// offHeap moves a finished table out of the Go heap into read-only
// anonymous memory and returns the copy; the original becomes garbage.
//
// Why: the collector paces itself by the live heap (the next collection
// comes when the heap has grown by GOGC percent of it), and the two
// encodings' tables are about 34 MB that never change. Counted as live,
// they raise every heap goal by GOGC percent of their size: at the
// gateway's GOGC=200 a fresh process allocates some 60 MB of new pages
// before its first reuse, page-faulting on each, and holds that much more
// RSS for good, for garbage the tables never make. Off the heap, the
// pacing follows the memory requests really churn. Read-only, a stray
// write into a shared table faults instead of corrupting every count.
//
// Where the mapping fails (a memory limit on mappings), the table stays
// on the heap: counts are the same, only the pacing differs.
func offHeap[T fixedTable](s []T) []T {
	if len(s) == 0 {
		return s
	}
	size := len(s) * int(unsafe.Sizeof(s[0]))
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return s
	}
	out := unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), len(s))
	copy(out, s)
	if err := unix.Mprotect(mem, unix.PROT_READ); err != nil {
		// Still correct, only writable: keep the copy.
		return out
	}
	return out
}

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
// hugePage is the x86-64 and arm64 transparent huge page size. The
// tables are looked up at random, a few per token: on small pages the
// lookups of a 4 KB prompt miss the TLB far more than on 2 MB ones, and a
// table of that size or more is mapped on a huge-page boundary and
// advised (MADV_HUGEPAGE) so the kernel backs it with huge pages where
// transparent huge pages are enabled in madvise or always mode. The
// skipped head of the mapping is never touched, so it costs address
// space, not memory.
const hugePage = 2 << 20

func offHeap[T fixedTable](s []T) []T {
	if len(s) == 0 {
		return s
	}
	size := len(s) * int(unsafe.Sizeof(s[0]))
	mapped := size
	if size >= hugePage {
		mapped += hugePage // room to start the table on a huge-page boundary
	}
	mem, err := unix.Mmap(-1, 0, mapped, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return s
	}
	if size >= hugePage {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
		skip := int((hugePage - start%hugePage) % hugePage)
		mem = mem[skip : skip+size]
		// Before the copy faults the pages in, and only over the whole
		// huge pages the table fills (a huge page for its tail would be
		// mostly memory it never uses). Refused (THP off), the table is
		// on small pages only.
		_ = unix.Madvise(mem[:size&^(hugePage-1)], unix.MADV_HUGEPAGE)
	}
	out := unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), len(s))
	copy(out, s)
	if err := unix.Mprotect(mem, unix.PROT_READ); err != nil {
		// Still correct, only writable: keep the copy.
		return out
	}
	return out
}

//! Allocations per operation: a counting global allocator for the bench binaries, like the
//! `-benchmem` of the guide's `go test -bench=. -benchmem`.
//!
//! Each bench binary installs [`CountingAlloc`]. It counts only while a counting sample runs
//! (one extra sample per contender, after the timed ones), so the timed samples pay one relaxed
//! load of a flag per allocation and nothing else. The counts are process-wide: a contender's
//! own threads (a runtime's workers, a pool's) are counted with it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The system allocator, counting allocations and their bytes while asked to.
#[derive(Debug)]
pub struct CountingAlloc;

static ON: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

#[inline]
fn note(size: usize) {
    if ON.load(Relaxed) {
        COUNT.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the same arguments, which upholds the
// `GlobalAlloc` contract; the counting touches only atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A reallocation is an allocation of the new size, as Go's -benchmem counts a grow.
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` counting allocations: `(allocations, bytes)`, or `None` when the binary's global
/// allocator is not a [`CountingAlloc`].
pub(crate) fn count(f: impl FnOnce()) -> Option<(u64, u64)> {
    COUNT.store(0, Relaxed);
    BYTES.store(0, Relaxed);
    ON.store(true, Relaxed);
    // A probe: one allocation that must be seen.
    drop(std::hint::black_box(Box::new(0u64)));
    let installed = COUNT.load(Relaxed) >= 1;
    COUNT.store(0, Relaxed);
    BYTES.store(0, Relaxed);
    if installed {
        f();
    }
    ON.store(false, Relaxed);
    installed.then(|| (COUNT.load(Relaxed), BYTES.load(Relaxed)))
}

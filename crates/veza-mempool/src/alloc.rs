//! [`CountingAllocator`]: a global allocator wrapper that counts heap bytes in use, exactly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Wraps an allocator (the system's by default) and counts the bytes it has handed out and
/// not yet taken back. Install it as the global allocator to measure the heap exactly:
///
/// ```
/// use veza_mempool::CountingAllocator;
///
/// #[global_allocator]
/// static ALLOC: CountingAllocator = CountingAllocator::system();
///
/// let before = ALLOC.allocated();
/// let block = vec![0u8; 1 << 20];
/// assert!(ALLOC.allocated() >= before + (1 << 20));
/// drop(block);
/// ```
///
/// The count costs one relaxed atomic add per allocation and per free, on one shared counter.
#[derive(Debug)]
pub struct CountingAllocator<A = System> {
    inner: A,
    allocated: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingAllocator<System> {
    /// Counts the system allocator.
    pub const fn system() -> Self {
        CountingAllocator::new(System)
    }
}

impl<A> CountingAllocator<A> {
    /// Counts `inner`.
    pub const fn new(inner: A) -> Self {
        CountingAllocator {
            inner,
            allocated: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Bytes allocated and not yet freed.
    pub fn allocated(&self) -> usize {
        self.allocated.load(Relaxed)
    }

    /// The highest `allocated` seen (updated on growth, so it may lag a concurrent peak
    /// by an allocation or two).
    pub fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }

    fn grew(&self, size: usize) {
        let now = self.allocated.fetch_add(size, Relaxed) + size;
        if now > self.peak.load(Relaxed) {
            self.peak.fetch_max(now, Relaxed);
        }
    }

    fn shrank(&self, size: usize) {
        self.allocated.fetch_sub(size, Relaxed);
    }
}

// SAFETY: every method forwards to `inner`, which upholds the `GlobalAlloc` contract, with the
// same arguments; the counting touches only atomics and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `inner` (through us) with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `inner` with `layout`; the caller guarantees the
        // `realloc` contract for `new_size`.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                self.grew(new_size - layout.size());
            } else {
                self.shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exercises every method of the shim on a local instance (also under miri:
    /// `cargo +nightly miri test -p veza-mempool --lib alloc`).
    #[test]
    fn counts_alloc_realloc_zeroed_and_free() {
        let a = CountingAllocator::system();
        let small = Layout::from_size_align(100, 8).unwrap();
        let large = Layout::from_size_align(300, 8).unwrap();
        // SAFETY: every pointer comes from `a` with the layout it is freed or resized with;
        // reads stay within the initialised bytes.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            assert_eq!(a.allocated(), 100);
            p.write_bytes(7, 100);
            let q = a.realloc(p, small, 300);
            assert_eq!((a.allocated(), *q.add(99)), (300, 7));
            let r = a.realloc(q, large, 50);
            assert_eq!((a.allocated(), *r), (50, 7));
            a.dealloc(r, Layout::from_size_align(50, 8).unwrap());
            assert_eq!(a.allocated(), 0);
            let z = a.alloc_zeroed(small);
            assert_eq!(*z.add(50), 0);
            a.dealloc(z, small);
        }
        assert_eq!(a.allocated(), 0);
        assert_eq!(a.peak(), 300);
    }
}

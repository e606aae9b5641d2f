//! Buffers come from the smallest class that fits, empty with their capacity; oversized
//! buffers and bytes beyond the cap are not kept.

use veza_core::Observe;
use veza_mempool::BufferPool;

#[test]
fn buffers_are_handed_out_empty_from_the_right_class() {
    let pool = BufferPool::<Vec<u8>>::with_classes("t", &[1024, 4096, 16384], 1 << 20).unwrap();
    {
        let mut b = pool.get(3000);
        assert_eq!(b.capacity(), 4096);
        b.extend_from_slice(&[1; 3000]);
    }
    let b = pool.get(4000);
    assert!(b.is_empty());
    assert_eq!(b.capacity(), 4096, "the returned buffer is reused");
    assert_eq!(pool.class(4096).unwrap().snapshot().hits, 1);
}

#[test]
fn oversized_buffers_are_not_retained() {
    let pool = BufferPool::<Vec<u8>>::with_classes("t", &[1024, 4096], 1 << 20).unwrap();
    drop(pool.get(100_000)); // larger than every class: fresh, then dropped
    {
        let mut grown = pool.get(1024);
        grown.reserve(1 << 20); // grew far past the largest class
    }
    let stats = pool.snapshot();
    assert_eq!(stats.idle, 0);
    assert_eq!(stats.discards, 2);
    assert_eq!(stats.retained_bytes, 0);
}

#[test]
fn retained_bytes_stay_under_the_cap() {
    // 2 classes share 64 KiB: 32 KiB each, so at most 8 buffers of 4 KiB.
    let pool = BufferPool::<Vec<u8>>::with_classes("t", &[1024, 4096], 64 * 1024).unwrap();
    let held: Vec<_> = (0..20).map(|_| pool.get(4096)).collect();
    drop(held);
    let stats = pool.snapshot();
    assert_eq!(stats.retained_bytes, 8 * 4096);
    assert_eq!(stats.discards, 12);
}

#[test]
fn bad_classes_are_refused() {
    for sizes in [&[][..], &[0, 10][..], &[4096, 1024][..], &[10, 10][..]] {
        let err = BufferPool::<Vec<u8>>::with_classes("t", sizes, 1024).unwrap_err();
        assert!(err.to_string().contains("strictly increasing"), "{err}");
    }
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_mut_buffers_are_pooled() {
    let pool = BufferPool::<bytes::BytesMut>::new();
    {
        let mut b = pool.get(10_000);
        b.extend_from_slice(b"hello");
    }
    let b = pool.get(10_000);
    assert!(b.is_empty() && b.capacity() >= 10_000);
    assert_eq!(pool.snapshot().hits, 1);
}

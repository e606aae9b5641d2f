//! Several threads hammer one pool; at the end every count is exact and the cap holds.

use std::sync::Arc;

use veza_core::Observe;
use veza_mempool::{BufferPool, Pool};

#[test]
fn four_threads_a_million_cycles_each() {
    const THREADS: u64 = 4;
    const CYCLES: u64 = 1_000_000;
    const CAP: usize = 16;
    let pool = Arc::new(Pool::recycling(|| Vec::<u64>::with_capacity(4), CAP));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..CYCLES {
                    let mut v = pool.get();
                    assert!(v.is_empty(), "a used object leaked through");
                    v.push(t * CYCLES + i);
                    if i % 1000 == 0 {
                        let _second = pool.get(); // two at once now and then
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.snapshot();
    let gets = THREADS * CYCLES + THREADS * (CYCLES / 1000);
    assert_eq!(stats.acquired, gets);
    assert_eq!(stats.hits + stats.misses, gets);
    assert_eq!(
        stats.returns + stats.discards,
        gets,
        "every get came back once"
    );
    assert_eq!(stats.in_use, 0);
    assert!(stats.idle <= CAP as u64);
    assert!(stats.misses <= stats.discards + stats.idle, "{stats:?}");
}

#[test]
fn buffers_from_two_threads() {
    let pool = Arc::new(BufferPool::<Vec<u8>>::new());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..200_000usize {
                    let mut b = pool.get(64 * 1024);
                    assert!(b.is_empty());
                    b.extend_from_slice(&i.to_le_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.snapshot();
    assert_eq!(stats.acquired, 400_000);
    assert_eq!(stats.returns + stats.discards, 400_000);
    assert!(
        stats.misses <= 2 + stats.discards,
        "buffers were not reused: {stats:?}"
    );
}

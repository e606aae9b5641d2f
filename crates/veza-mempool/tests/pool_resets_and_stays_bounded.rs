//! Objects come back clean, the pool never holds more than its cap, and the statistics count
//! every hit, miss, return and discard.

use std::sync::Arc;

use veza_core::Observe;
use veza_mempool::{Pool, Trim};

#[test]
fn a_dirty_object_comes_back_clean() {
    let pool = Pool::recycling(|| String::with_capacity(64), 4);
    {
        let mut s = pool.get();
        s.push_str("secret from the last request");
    }
    let s = pool.get();
    assert!(s.is_empty(), "got {s:?}");
    assert!(s.capacity() >= 64, "the allocation is kept");
    let stats = pool.snapshot();
    assert_eq!((stats.hits, stats.misses, stats.returns), (1, 1, 1));
}

#[test]
fn a_closure_reset_runs_on_every_return() {
    let pool = Pool::builder(|| vec![0u32; 8])
        .reset(|v: &mut Vec<u32>| v.iter_mut().for_each(|x| *x = 0))
        .max_idle(2)
        .build();
    {
        let mut v = pool.get();
        v[3] = 99;
    }
    assert_eq!(*pool.get(), vec![0; 8]);
}

#[test]
fn returning_ten_times_the_cap_keeps_the_cap_and_counts_discards() {
    const CAP: usize = 8;
    let pool = Pool::new(Vec::<u8>::new, CAP);
    let held: Vec<_> = (0..CAP * 10).map(|_| pool.get()).collect();
    assert_eq!(pool.idle(), 0);
    drop(held);
    assert_eq!(pool.idle(), CAP);
    let stats = pool.snapshot();
    assert_eq!(stats.misses, (CAP * 10) as u64);
    assert_eq!(stats.returns, CAP as u64);
    assert_eq!(stats.discards, (CAP * 9) as u64);
    assert_eq!(
        (stats.idle, stats.in_use, stats.max_size),
        (CAP as u64, 0, CAP as u64)
    );
}

#[test]
fn prefill_detach_and_owned_guards() {
    let pool = Arc::new(
        Pool::builder(|| vec![7u8; 4])
            .max_idle(4)
            .prefill(10)
            .build(),
    );
    assert_eq!(pool.idle(), 4, "prefill stops at the cap");
    let kept = pool.get().detach();
    assert_eq!(kept, vec![7; 4]);
    assert_eq!(pool.idle(), 3);
    let owned = pool.get_owned();
    let in_thread = std::thread::spawn(move || owned.len()).join().unwrap();
    assert_eq!(in_thread, 4);
    assert_eq!(
        pool.idle(),
        3,
        "the owned guard came back from the other thread"
    );
    let stats = pool.snapshot();
    assert_eq!((stats.hits, stats.misses, stats.in_use), (2, 0, 0));
}

#[test]
fn a_weigher_caps_the_total_weight() {
    let pool = Pool::builder(|| Vec::<u8>::with_capacity(100))
        .weigh(|v| v.capacity() as u64)
        .max_weight(250)
        .recycle()
        .build();
    let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
    drop(held);
    let stats = pool.snapshot();
    assert!(stats.retained_bytes <= 250, "{}", stats.retained_bytes);
    assert_eq!(stats.idle, 2);
}

#[test]
fn objects_rejected_by_keep_if_are_dropped() {
    let pool = Pool::builder(Vec::<u8>::new)
        .keep_if(|v| v.capacity() <= 1024)
        .max_idle(4)
        .build();
    {
        let mut big = pool.get();
        big.reserve(1 << 20);
    }
    assert_eq!(pool.idle(), 0);
    assert_eq!(pool.snapshot().discards, 1);
}

#[test]
fn pressure_trims_and_then_lifts() {
    let pool = Pool::builder(Vec::<u8>::new)
        .max_idle(16)
        .prefill(16)
        .build();
    pool.on_pressure(veza_mempool::Pressure::High);
    assert_eq!(pool.idle(), 8);
    pool.on_pressure(veza_mempool::Pressure::Critical);
    assert_eq!(pool.idle(), 0);
    drop(pool.get());
    assert_eq!(pool.idle(), 0, "nothing is kept under critical pressure");
    pool.on_pressure(veza_mempool::Pressure::Normal);
    drop(pool.get());
    assert_eq!(pool.idle(), 1);
    pool.trim_to(0);
    assert_eq!(pool.idle(), 0);
}

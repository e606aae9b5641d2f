//! The per-thread private slots (a thread's get after its own return takes no lock) keep the
//! pool's promises: the cap counts what the slots hold, the statistics count what they do, a
//! thread that ends gives its slot's object back, and trims and pressure reach the slots.

use std::sync::mpsc;

use veza_core::Observe;
use veza_mempool::{Pool, Pressure, Trim};

#[test]
fn the_cap_counts_the_private_slot() {
    for cap in [0usize, 1, 2, 5] {
        let pool = Pool::new(Vec::<u8>::new, cap);
        let held: Vec<_> = (0..cap + 3).map(|_| pool.get()).collect();
        drop(held);
        assert_eq!(pool.idle(), cap, "cap {cap}");
        let stats = pool.snapshot();
        assert_eq!(stats.returns, cap as u64, "cap {cap}");
        assert_eq!(stats.discards, 3, "cap {cap}");
        // Taking them all again: hits for what was kept (the private slot first), misses after.
        let again: Vec<_> = (0..cap + 3).map(|_| pool.get()).collect();
        let stats = pool.snapshot();
        assert_eq!((stats.hits, stats.misses), (cap as u64, cap as u64 + 6));
        assert_eq!(pool.idle(), 0);
        drop(again);
    }
}

#[test]
fn the_same_object_comes_back_to_the_same_thread_and_is_counted() {
    let pool = Pool::recycling(|| String::with_capacity(32), 4);
    let first = pool.get().as_ptr();
    for _ in 0..1000 {
        let mut s = pool.get();
        assert_eq!(s.as_ptr(), first, "the private slot's object");
        assert!(s.is_empty(), "reset on return");
        s.push_str("dirty");
    }
    let stats = pool.snapshot();
    assert_eq!((stats.hits, stats.misses, stats.returns), (1000, 1, 1001));
    assert_eq!((stats.idle, stats.in_use), (1, 0));
}

#[test]
fn a_thread_that_ends_gives_its_object_back() {
    let pool = Pool::new(Vec::<u8>::new, 4);
    let worker = pool.clone();
    std::thread::spawn(move || {
        drop(worker.get());
        drop(worker.get());
    })
    .join()
    .unwrap();
    assert_eq!(pool.idle(), 1, "in a shard now");
    let stats = pool.snapshot();
    assert_eq!((stats.hits, stats.misses, stats.returns), (1, 1, 2));
    // And it is handed out again, from the shard.
    drop(pool.get());
    assert_eq!(pool.snapshot().hits, 2);
}

#[test]
fn pressure_empties_this_threads_slot_now_and_anothers_on_its_next_use() {
    let pool = Pool::new(Vec::<u8>::new, 8);
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<usize>();
    let worker = pool.clone();
    let thread = std::thread::spawn(move || {
        drop(worker.get()); // into this thread's slot
        done.send(worker.idle()).unwrap();
        wait.recv().unwrap();
        // Its next use sees the pressure: the slot's object is given up, not kept.
        drop(worker.get());
        done.send(worker.idle()).unwrap();
    });
    assert_eq!(finished.recv().unwrap(), 1);
    drop(pool.get()); // the main thread's slot too
    assert_eq!(pool.idle(), 2);
    pool.on_pressure(Pressure::Critical);
    assert_eq!(
        pool.idle(),
        1,
        "the main thread's slot at once, the worker's later"
    );
    go.send(()).unwrap();
    assert_eq!(
        finished.recv().unwrap(),
        0,
        "nothing kept under critical pressure"
    );
    thread.join().unwrap();
    assert_eq!(pool.idle(), 0);
    pool.on_pressure(Pressure::Normal);
    drop(pool.get());
    assert_eq!(pool.idle(), 1, "kept again once the pressure is gone");
}

#[test]
fn a_reset_that_uses_a_pool_does_not_trip_over_the_slots() {
    let inner = Pool::new(Vec::<u8>::new, 4);
    let for_reset = inner.clone();
    let outer = Pool::builder(String::new)
        .reset(move |s: &mut String| {
            // Another pool's get and return while this pool's return is under way.
            let mut scratch = for_reset.get();
            scratch.extend_from_slice(s.as_bytes());
            s.clear();
        })
        .max_idle(4)
        .build();
    for _ in 0..10 {
        let mut s = outer.get();
        s.push('x');
    }
    assert_eq!(outer.snapshot().returns, 10);
    assert_eq!(inner.snapshot().returns, 10);
}

#[test]
fn a_thread_using_many_pools_keeps_one_slot_per_pool() {
    // More pools than the thread's recent list has entries, so some share one and are found
    // by the search: each must still get its own object back and count it.
    let pools: Vec<_> = (0..21)
        .map(|_| Pool::recycling(|| Vec::<u8>::with_capacity(8), 2))
        .collect();
    let firsts: Vec<_> = pools.iter().map(|p| p.get().as_ptr()).collect();
    for round in 0..50 {
        for (pool, first) in pools.iter().zip(&firsts) {
            let mut v = pool.get();
            assert_eq!(v.as_ptr(), *first, "round {round}: this pool's own object");
            v.push(1);
        }
    }
    for pool in &pools {
        let stats = pool.snapshot();
        assert_eq!((stats.hits, stats.misses, stats.returns), (50, 1, 51));
        assert_eq!(stats.idle, 1);
    }
}

/// Gets and returns an object of `pool` when dropped (a drop that re-enters a pool).
struct UsesPoolOnDrop {
    pool: Pool<Vec<u8>>,
}

impl Drop for UsesPoolOnDrop {
    fn drop(&mut self) {
        self.pool.get().push(7);
    }
}

#[test]
fn a_drop_that_uses_a_pool_while_slots_are_swept_or_the_thread_ends() {
    let other = Pool::new(Vec::<u8>::new, 4);
    let worker = other.clone();
    std::thread::spawn(move || {
        drop(worker.get()); // the other pool's slot, reachable from the drops below
        // A pool whose slot holds an object that uses the other pool when dropped; the pool
        // goes away, so the slot is swept when this thread next makes one.
        let gone = Pool::new(
            {
                let pool = worker.clone();
                move || UsesPoolOnDrop { pool: pool.clone() }
            },
            1,
        );
        drop(gone.get());
        drop(gone);
        let fresh = Pool::new(Vec::<u8>::new, 1);
        drop(fresh.get()); // makes a slot: sweeps the gone pool's, whose object uses `worker`
        // A live pool's slot holding such an object when the thread ends.
        let live = Pool::new(
            {
                let pool = worker.clone();
                move || UsesPoolOnDrop { pool: pool.clone() }
            },
            1,
        );
        drop(live.get());
        std::mem::forget(live); // its slot's object goes back to it at thread end, unused
        // A pool gone with its slot still full when the thread ends: the object is dropped
        // then, after the other pool's slot, and uses the other pool through its shards.
        let gone_at_end = Pool::new(
            {
                let pool = worker.clone();
                move || UsesPoolOnDrop { pool: pool.clone() }
            },
            1,
        );
        drop(gone_at_end.get());
    })
    .join()
    .unwrap();
    let stats = other.snapshot();
    // Its own get, then one from the swept object's drop and one from the object dropped at
    // thread end; the live pool's object went back to its pool (not dropped): no use.
    assert_eq!(stats.misses, 1, "one object, always reused");
    assert_eq!(stats.hits, 2);
    assert_eq!(stats.returns, 3);
    assert_eq!((stats.in_use, stats.idle), (0, 1));
}

#[test]
fn a_slot_that_fails_to_grow_its_room_keeps_no_stale_reservation() {
    // Each shard's share of the cap is 50 bytes; objects weigh their capacity.
    let shards = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .next_power_of_two() as u64;
    let cap = 50 * shards;
    let pool = Pool::builder(|| Vec::<u8>::with_capacity(48))
        .weigh(|v: &Vec<u8>| v.capacity() as u64)
        .max_weight(cap)
        .build();
    // The slot reserves room for a 48-byte object, which is then taken out again.
    drop(pool.get());
    let a = pool.get();
    // A 60-byte object fits no shard: the slot gives its 48 bytes of room back and gets none.
    let mut b = pool.get();
    *b = Vec::with_capacity(60);
    drop(b);
    // More 48-byte objects come back than the cap holds: the slot must reserve again before
    // it keeps one (with the old room still counted as its own, it kept one over the cap).
    let many: Vec<_> = (0..=shards).map(|_| pool.get()).collect();
    drop(many);
    drop(a);
    let stats = pool.snapshot();
    assert!(
        stats.retained_bytes <= cap,
        "{} bytes kept, cap {cap}",
        stats.retained_bytes
    );
}

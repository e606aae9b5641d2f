//! `Pool`, `BufferPool` and `MemoryBudget` are cheap handles: clones in several threads share
//! one set of idle objects, one set of counts and one pressure level; an attached pool stays
//! attached while a clone of it lives, and is detached by dropping the last one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use veza_core::Observe;
use veza_mempool::{BufferPool, MemoryBudget, Pool, Pressure, UsageSource};

#[test]
fn pool_clones_in_threads_share_idle_objects_and_counts() {
    let pool = Pool::builder(|| Vec::<u8>::with_capacity(64))
        .max_idle(64)
        .name("shared")
        .build();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..1_000 {
                    let mut v = pool.get();
                    v.push(1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = pool.snapshot();
    assert_eq!(stats.acquired, 4_000, "every clone counted into one pool");
    assert_eq!(stats.hits + stats.misses, 4_000);
    assert!(
        stats.misses <= 64,
        "objects were reused across clones: {stats:?}"
    );
    assert_eq!(stats.in_use, 0);
    // An owned guard holds a clone of the pool: it moves into a thread and goes back to the
    // pool it came from.
    let owned = pool.get_owned();
    let idle_before = pool.idle();
    let moved = std::thread::spawn(move || {
        let mut owned = owned;
        owned.push(2);
        owned
    })
    .join()
    .unwrap();
    drop(moved);
    assert_eq!(pool.idle(), idle_before + 1);

    // And it keeps the pool alive past every other handle; the pool goes with the last one.
    let alive = Arc::new(());
    let a = alive.clone();
    let lone = Pool::builder(move || {
        let _keep = &a;
        Vec::<u8>::new()
    })
    .build();
    let guard = lone.get_owned();
    drop(lone);
    assert_eq!(Arc::strong_count(&alive), 2, "the guard keeps the pool");
    drop(guard);
    assert_eq!(
        Arc::strong_count(&alive),
        1,
        "the pool went with its last guard"
    );
}

#[test]
fn buffer_pool_clones_share_buffers() {
    let buffers: BufferPool = BufferPool::new();
    let other = buffers.clone();
    drop(buffers.get(60_000)); // a 64 KiB buffer made, then kept
    let stats = other.snapshot();
    assert_eq!((stats.misses, stats.returns), (1, 1));
    let b = other.get_owned(60_000);
    assert!(b.capacity() >= 60_000);
    drop(b);
    assert_eq!(
        buffers.snapshot().hits,
        1,
        "the clone reused the buffer the first one kept"
    );
}

#[test]
fn budget_clones_share_the_level_and_attached_pools_follow_it() {
    let used = Arc::new(AtomicU64::new(0));
    let u = used.clone();
    let budget = MemoryBudget::with_source(
        1_000,
        UsageSource::Custom(Arc::new(move || Some(u.load(SeqCst)))),
    )
    .unwrap();
    let pool = Pool::builder(|| vec![0u8; 8])
        .max_idle(8)
        .prefill(8)
        .build();
    // Attached through a clone of the pool: no Arc around it.
    budget.attach(&pool.clone());
    let sampler = budget.clone();
    used.store(2_000, SeqCst);
    assert_eq!(sampler.sample().unwrap(), Pressure::Critical);
    assert_eq!(
        budget.pressure(),
        Pressure::Critical,
        "the clones share the level"
    );
    assert_eq!(pool.idle(), 0, "the pool was told, through its clone");
    used.store(0, SeqCst);
    assert_eq!(budget.sample().unwrap(), Pressure::Normal);
    drop(pool.get());
    assert_eq!(pool.idle(), 1);

    // Dropping every clone of a pool detaches it: the budget holds it weakly.
    let held = Arc::new(());
    let h = held.clone();
    let gone = Pool::builder(move || h.clone())
        .max_idle(4)
        .prefill(4)
        .build();
    budget.attach(&gone);
    drop(gone);
    assert_eq!(
        Arc::strong_count(&held),
        1,
        "the pool and its objects are gone"
    );
    used.store(2_000, SeqCst);
    assert_eq!(budget.sample().unwrap(), Pressure::Critical);
}

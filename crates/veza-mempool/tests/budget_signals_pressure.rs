//! Allocating past 80% and 100% of a small budget raises high then critical pressure, an
//! attached pool trims itself, and freeing the memory brings the level back to normal. The
//! heap is measured exactly by the crate's counting allocator.

use std::sync::Arc;
use std::time::Duration;

use veza_mempool::{CountingAllocator, MemoryBudget, Pool, Pressure, UsageSource};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::system();

#[test]
fn high_then_critical_then_normal_with_a_trimming_pool() {
    let baseline = ALLOC.allocated() as u64;
    let limit = baseline + (16 << 20);
    let budget = MemoryBudget::with_source(limit, UsageSource::Heap(&ALLOC)).unwrap();
    let changes = budget.subscribe_channel();
    let pool = Arc::new(
        Pool::builder(|| vec![0u8; 1024])
            .max_idle(32)
            .prefill(32)
            .build(),
    );
    budget.attach(&pool);
    assert_eq!(budget.sample().unwrap(), Pressure::Normal);
    assert_eq!(pool.idle(), 32);

    let grow_to = |fraction: f64| {
        let now = ALLOC.allocated() as u64;
        let target = (limit as f64 * fraction) as u64;
        vec![1u8; target.saturating_sub(now) as usize]
    };
    let first = grow_to(0.9);
    assert_eq!(budget.sample().unwrap(), Pressure::High);
    assert_eq!(pool.idle(), 16, "high pressure halves the pool");
    let second = grow_to(1.1);
    assert_eq!(budget.sample().unwrap(), Pressure::Critical);
    assert_eq!(pool.idle(), 0, "critical pressure empties the pool");
    drop((first, second));
    assert_eq!(budget.sample().unwrap(), Pressure::Normal);
    drop(pool.get());
    assert_eq!(pool.idle(), 1, "back to normal, returns are kept again");

    let seen: Vec<_> = changes.try_iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(
        seen,
        [
            (Pressure::Normal, Pressure::High),
            (Pressure::High, Pressure::Critical),
            (Pressure::Critical, Pressure::Normal),
        ]
    );
    assert!(budget.last_used() < limit);
}

#[test]
fn the_background_sampler_notices_and_stops() {
    let used = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let u = used.clone();
    let source = UsageSource::Custom(Arc::new(move || {
        Some(u.load(std::sync::atomic::Ordering::SeqCst))
    }));
    let budget = Arc::new(MemoryBudget::with_source(1000, source).unwrap());
    let changes = budget.subscribe_channel();
    let monitor = budget.start(Duration::from_millis(5));
    used.store(950, std::sync::atomic::Ordering::SeqCst);
    let change = changes.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(change.to, Pressure::High);
    assert_eq!((change.used, change.limit), (950, 1000));
    drop(monitor); // joins the thread
    used.store(0, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        budget.pressure(),
        Pressure::High,
        "a stopped monitor samples no more"
    );
}

//! A high-priority job starts before every queued lower-priority job, and the starvation
//! guard still lets lower priorities through.

mod common;

use std::sync::{Arc, Mutex};

use veza_workers::{Priority, WorkerPool};

fn blocked_pool(capacity: usize, limit: Option<u32>) -> (WorkerPool, common::Gate) {
    let pool = WorkerPool::builder()
        .workers(1)
        .capacity(capacity)
        .starvation_limit(limit)
        .build()
        .unwrap();
    let gate = common::block_worker(&pool);
    (pool, gate)
}

#[test]
fn high_starts_before_ten_thousand_queued_low_jobs() {
    let (pool, gate) = blocked_pool(20_000, Some(32));
    let order = Arc::new(Mutex::new(Vec::with_capacity(10_001)));
    for i in 0..10_000u32 {
        let order = order.clone();
        pool.priority(Priority::Low)
            .execute(move || order.lock().unwrap().push(i))
            .unwrap();
    }
    let o = order.clone();
    pool.priority(Priority::High)
        .execute(move || o.lock().unwrap().push(u32::MAX))
        .unwrap();
    gate.open();
    pool.shutdown();
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 10_001);
    assert_eq!(order[0], u32::MAX, "the high-priority job did not go first");
    assert!(
        order[1..].windows(2).all(|w| w[0] < w[1]),
        "low jobs ran out of order"
    );
}

#[test]
fn the_guard_lets_low_and_normal_through_a_flood_of_high() {
    let (pool, gate) = blocked_pool(1000, Some(8));
    let order = Arc::new(Mutex::new(Vec::new()));
    let push = |tag: &'static str| {
        let order = order.clone();
        move || order.lock().unwrap().push(tag)
    };
    pool.priority(Priority::Low).execute(push("low")).unwrap();
    pool.priority(Priority::Normal)
        .execute(push("normal"))
        .unwrap();
    for _ in 0..100 {
        pool.priority(Priority::High).execute(push("high")).unwrap();
    }
    gate.open();
    pool.shutdown();
    let order = order.lock().unwrap();
    let low = order.iter().position(|t| *t == "low").unwrap();
    let normal = order.iter().position(|t| *t == "normal").unwrap();
    // 8 high jobs pass both over, then low (lowest first), then normal.
    assert_eq!((low, normal), (8, 9), "{order:?}");
}

#[test]
fn strict_priority_runs_all_high_first() {
    let (pool, gate) = blocked_pool(1000, None);
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    pool.priority(Priority::Low)
        .execute(move || o.lock().unwrap().push("low"))
        .unwrap();
    for _ in 0..100 {
        let o = order.clone();
        pool.priority(Priority::High)
            .execute(move || o.lock().unwrap().push("high"))
            .unwrap();
    }
    gate.open();
    pool.shutdown();
    assert_eq!(order.lock().unwrap().last(), Some(&"low"));
}

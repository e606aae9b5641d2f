//! When the queue is full, a refused job comes back untouched: nothing lost, nothing run twice.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use veza_core::{Classify, ErrorKind, Observe};
use veza_workers::{SubmitError, WorkerPool};

#[test]
fn try_submit_on_a_full_queue_hands_back_the_same_job() {
    let pool = WorkerPool::builder()
        .workers(1)
        .capacity(4)
        .build()
        .unwrap();
    let gate = common::block_worker(&pool);

    let ran = Arc::new(AtomicUsize::new(0));
    let job = |tag: usize| {
        let ran = ran.clone();
        move || {
            ran.fetch_add(tag, SeqCst);
            tag
        }
    };
    let accepted: Vec<_> = (1..=4).map(|t| pool.try_submit(job(t)).unwrap()).collect();

    let refused = pool.try_submit(job(100)).unwrap_err();
    assert!(matches!(refused, SubmitError::Full(_)));
    assert_eq!(refused.kind(), ErrorKind::Overloaded);
    let refused_exec = pool.try_execute(move || {}).unwrap_err();
    assert_eq!(refused_exec.reason(), "full");

    // submit_timeout waits, then gives the job back too.
    let start = Instant::now();
    let timed_out = pool
        .submit_timeout(job(1000), Duration::from_millis(50))
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(matches!(timed_out, SubmitError::Timeout(_)));
    assert_eq!(timed_out.kind(), ErrorKind::Timeout);

    gate.open();
    let sum: usize = accepted.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 10);
    // The refused jobs did not run; they are ours to run, exactly once.
    assert_eq!(ran.load(SeqCst), 10);
    assert_eq!(refused.into_inner()(), 100);
    assert_eq!(timed_out.into_inner()(), 1000);
    assert_eq!(ran.load(SeqCst), 1110);
    let stats = pool.snapshot();
    assert_eq!((stats.submitted, stats.rejected), (5, 3));
}

#[test]
fn a_blocking_submit_waits_for_room_then_succeeds() {
    let pool = Arc::new(
        WorkerPool::builder()
            .workers(1)
            .capacity(1)
            .build()
            .unwrap(),
    );
    let gate = common::block_worker(&pool);
    pool.execute(|| {}).unwrap(); // fills the queue
    let p = pool.clone();
    let blocked = std::thread::spawn(move || p.submit(|| 9).unwrap().join().unwrap());
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        !blocked.is_finished(),
        "submit should wait while the queue is full"
    );
    gate.open();
    assert_eq!(common::within(10, move || blocked.join().unwrap()), 9);
}

#[test]
fn timeouts_of_duration_max_wait_and_never_panic() {
    // `Duration::MAX` reads as "no limit"; added to the clock it used to panic.
    let pool = WorkerPool::builder()
        .workers(1)
        .capacity(4)
        .build()
        .unwrap();
    let handle = pool
        .submit_timeout(|| 7, Duration::MAX)
        .unwrap_or_else(|_| panic!("room in the queue"));
    assert_eq!(handle.join().unwrap(), 7);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let ran = ran.clone();
        pool.execute(move || {
            ran.fetch_add(1, SeqCst);
        })
        .unwrap_or_else(|_| panic!("room"));
    }
    let left = pool.shutdown_timeout(Duration::MAX);
    assert!(left.is_empty(), "every accepted job ran");
    assert_eq!(ran.load(SeqCst), 4);
}

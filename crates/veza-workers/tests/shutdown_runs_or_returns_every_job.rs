//! Graceful shutdown runs every accepted job; immediate shutdown hands back exactly the jobs
//! that never started; a closed pool hands back new jobs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use veza_core::{Classify, ErrorKind, Observe};
use veza_workers::{JobError, Priority, SubmitError, WorkerPool};

fn counting_job(counter: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let counter = counter.clone();
    move || {
        std::thread::sleep(Duration::from_micros(20));
        counter.fetch_add(1, SeqCst);
    }
}

#[test]
fn graceful_shutdown_runs_every_accepted_job() {
    let pool = WorkerPool::builder()
        .workers(2)
        .capacity(10_000)
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..5_000 {
        pool.execute(counting_job(&ran)).unwrap();
    }
    common::within(60, move || {
        pool.shutdown();
        assert_eq!(ran.load(SeqCst), 5_000);
        assert!(pool.is_closed());
    });
}

#[test]
fn immediate_shutdown_returns_exactly_the_unstarted_jobs() {
    let pool = WorkerPool::builder()
        .workers(1)
        .capacity(1000)
        .build()
        .unwrap();
    let gate = common::block_worker(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..300usize {
        let priority = [Priority::High, Priority::Normal, Priority::Low][i % 3];
        let r = ran.clone();
        handles.push(
            pool.priority(priority)
                .submit(move || r.fetch_add(1, SeqCst))
                .unwrap(),
        );
    }
    let unstarted = pool.shutdown_now();
    gate.open();
    drop(pool); // waits for the running (gate) job
    assert_eq!(unstarted.len(), 300);
    assert_eq!(
        ran.load(SeqCst),
        0,
        "no queued job may run after shutdown_now"
    );
    let highs = unstarted
        .iter()
        .filter(|j| j.priority() == Priority::High)
        .count();
    assert_eq!(highs, 100);

    // Run half of them by hand; the rest are dropped and their handles say so.
    let mut unstarted = unstarted;
    let dropped = unstarted.split_off(150);
    unstarted
        .into_iter()
        .for_each(veza_workers::UnstartedJob::run);
    drop(dropped);
    assert_eq!(ran.load(SeqCst), 150);
    let (mut ok, mut cancelled) = (0, 0);
    for h in handles {
        match h.join() {
            Ok(_) => ok += 1,
            Err(JobError::Cancelled) => cancelled += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, cancelled), (150, 150));
}

#[test]
fn shutdown_timeout_hands_back_what_did_not_start_in_time() {
    let pool = WorkerPool::builder()
        .workers(1)
        .capacity(1000)
        .build()
        .unwrap();
    let gate = common::block_worker(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        pool.execute(counting_job(&ran)).unwrap();
    }
    let unstarted = pool.shutdown_timeout(Duration::from_millis(50));
    assert_eq!(unstarted.len(), 10);
    gate.open();
    drop(pool);
    assert_eq!(ran.load(SeqCst), 0);

    // With time enough, nothing comes back.
    let pool = WorkerPool::builder().workers(2).build().unwrap();
    for _ in 0..100 {
        pool.execute(counting_job(&ran)).unwrap();
    }
    assert!(pool.shutdown_timeout(Duration::from_secs(30)).is_empty());
    assert_eq!(ran.load(SeqCst), 100);
}

#[test]
fn submitting_after_shutdown_returns_the_job_as_closed() {
    let pool = WorkerPool::builder().workers(1).build().unwrap();
    pool.shutdown();
    let err = pool.submit(|| 41 + 1).unwrap_err();
    assert!(matches!(err, SubmitError::Closed(_)));
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(err.into_inner()(), 42);
    assert!(matches!(
        pool.try_execute(|| {}),
        Err(SubmitError::Closed(_))
    ));
    assert_eq!(pool.snapshot().rejected, 2);
}

#[test]
fn a_submitter_blocked_on_a_full_queue_is_released_by_shutdown() {
    let pool = Arc::new(
        WorkerPool::builder()
            .workers(1)
            .capacity(1)
            .build()
            .unwrap(),
    );
    let gate = common::block_worker(&pool);
    pool.execute(|| {}).unwrap();
    let p = pool.clone();
    let blocked = std::thread::spawn(move || p.submit(|| 1).map(|_| ()).map_err(|e| e.reason()));
    std::thread::sleep(Duration::from_millis(30));
    let unstarted = pool.shutdown_now();
    assert_eq!(unstarted.len(), 1);
    let outcome = common::within(10, move || blocked.join().unwrap());
    assert_eq!(outcome, Err("closed"));
    gate.open();
}

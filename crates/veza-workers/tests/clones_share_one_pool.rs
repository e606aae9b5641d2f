//! `WorkerPool` is a cheap handle: clones in several threads feed one queue and one set of
//! workers, a shutdown through any clone is seen by all, and dropping the last clone runs
//! every accepted job.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use veza_core::Observe;
use veza_workers::{SubmitError, WorkerPool};

#[test]
fn clones_in_threads_share_the_queue_and_the_counters() {
    let pool = WorkerPool::builder()
        .name("shared")
        .workers(2)
        .capacity(1_000)
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let ran = ran.clone();
            std::thread::spawn(move || {
                let handles: Vec<_> = (0..250)
                    .map(|i| {
                        let ran = ran.clone();
                        pool.submit(move || {
                            ran.fetch_add(1, SeqCst);
                            i
                        })
                        .unwrap()
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
            })
        })
        .collect();
    common::within(60, move || {
        let sums: Vec<i32> = submitters.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(sums, vec![(0..250).sum::<i32>(); 4]);
        assert_eq!(ran.load(SeqCst), 1_000);
        // The clones counted into the one pool.
        assert_eq!(pool.snapshot().submitted, 1_000);
        assert_eq!(pool.config().name, "shared");
    });
}

#[test]
fn a_shutdown_through_one_clone_closes_them_all() {
    let pool = WorkerPool::builder().workers(1).build().unwrap();
    let other = pool.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let ran = ran.clone();
        other
            .execute(move || {
                std::thread::sleep(Duration::from_micros(50));
                ran.fetch_add(1, SeqCst);
            })
            .unwrap();
    }
    common::within(60, move || {
        pool.shutdown();
        // Every accepted job ran before shutdown returned, whichever clone submitted it.
        assert_eq!(ran.load(SeqCst), 100);
        assert!(other.is_closed());
        assert!(matches!(other.execute(|| ()), Err(SubmitError::Closed(_))));
    });
}

#[test]
fn dropping_the_last_clone_runs_every_accepted_job() {
    let pool = WorkerPool::builder().workers(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let clones: Vec<WorkerPool> = (0..3).map(|_| pool.clone()).collect();
    for clone in &clones {
        for _ in 0..100 {
            let ran = ran.clone();
            clone
                .execute(move || {
                    std::thread::sleep(Duration::from_micros(20));
                    ran.fetch_add(1, SeqCst);
                })
                .unwrap();
        }
    }
    let watch = clones[0].clone();
    drop(pool);
    drop(clones);
    // One clone is left: the pool is still open and still running.
    assert!(!watch.is_closed());
    watch.execute(|| ()).unwrap();
    common::within(60, move || {
        drop(watch); // the last one: a graceful shutdown that waits for the queue
        assert_eq!(ran.load(SeqCst), 300);
    });
}

#[test]
fn statistics_include_a_job_when_its_handle_resolves() {
    let pool = WorkerPool::builder().workers(2).build().unwrap();
    common::within(60, move || {
        for i in 1..=2_000u64 {
            let value = pool.submit(move || i).unwrap().join().unwrap();
            assert_eq!(value, i);
            let stats = pool.snapshot();
            // Counted before the value was handed over, not after: never one short.
            assert_eq!(stats.completed, i, "after job {i}");
            assert_eq!(stats.busy, 0, "after job {i}");
        }
    });
}

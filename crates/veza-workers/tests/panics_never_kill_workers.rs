//! Panicking jobs are caught: workers survive, panics are counted exactly, and every other
//! result is intact.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use veza_core::{Classify, ErrorKind, Observe};
use veza_workers::{JobError, WorkerPool};

#[test]
fn ten_thousand_panics_among_normal_jobs() {
    common::quiet_deliberate_panics();
    common::within(120, || {
        const WORKERS: usize = 3;
        let pool = WorkerPool::builder()
            .workers(WORKERS)
            .capacity(64)
            .build()
            .unwrap();
        let mut handles = Vec::new();
        for i in 0..30_000u64 {
            let handle = pool
                .submit(move || {
                    if i % 3 == 0 {
                        panic!("deliberate panic in job {i}");
                    }
                    i * 2
                })
                .unwrap();
            handles.push((i, handle));
        }
        for (i, handle) in handles {
            match handle.join() {
                Ok(v) => assert_eq!(v, i * 2),
                Err(JobError::Panicked(msg)) => {
                    assert_eq!(i % 3, 0, "job {i} should not have panicked");
                    assert_eq!(msg, format!("deliberate panic in job {i}"));
                }
                Err(other) => panic!("job {i}: unexpected {other}"),
            }
        }

        // Every worker is still alive: WORKERS jobs that wait for each other all start.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(WORKERS));
        let (started, rx) = mpsc::channel();
        for _ in 0..WORKERS {
            let (barrier, started) = (barrier.clone(), started.clone());
            pool.execute(move || {
                started.send(()).unwrap();
                barrier.wait();
            })
            .unwrap();
        }
        for n in 0..WORKERS {
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("only {n} of {WORKERS} workers are alive"));
        }

        pool.shutdown();
        let stats = pool.snapshot();
        assert_eq!(stats.panicked, 10_000);
        assert_eq!(stats.completed, 30_000 + WORKERS as u64);
    });
}

#[test]
fn a_panic_is_an_internal_error_with_its_message() {
    common::quiet_deliberate_panics();
    let pool = WorkerPool::builder().workers(1).build().unwrap();
    let err = pool
        .submit(|| -> u8 { panic!("deliberate: {}", 7) })
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err, JobError::Panicked("deliberate: 7".into()));
    assert_eq!(err.kind(), ErrorKind::Internal);
    // The same worker goes on serving.
    assert_eq!(pool.submit(|| 5).unwrap().join().unwrap(), 5);
}

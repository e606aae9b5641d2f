//! Shutdown and drop never deadlock: from inside a job, with handles dropped, with work queued.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use veza_workers::WorkerPool;

#[test]
fn shutdown_from_inside_a_job_returns_and_the_queue_still_drains() {
    common::within(30, || {
        let pool = Arc::new(
            WorkerPool::builder()
                .workers(2)
                .capacity(1000)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let r = ran.clone();
            pool.execute(move || {
                std::thread::sleep(Duration::from_micros(100));
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        }
        let p = pool.clone();
        let inside = pool.submit(move || p.shutdown()).unwrap();
        inside.join().unwrap();
        pool.shutdown(); // from outside: waits for the rest
        assert_eq!(ran.load(SeqCst), 100);
    });
}

#[test]
fn dropping_handles_does_not_block_anything() {
    common::within(30, || {
        let pool = WorkerPool::builder().workers(2).build().unwrap();
        for i in 0..10_000u64 {
            drop(pool.submit(move || i * i).unwrap());
        }
        let last = pool.submit(|| "done").unwrap();
        assert_eq!(last.join().unwrap(), "done");
    });
}

#[test]
fn dropping_the_pool_with_work_queued_runs_it_all() {
    common::within(30, || {
        let ran = Arc::new(AtomicUsize::new(0));
        let pool = WorkerPool::builder()
            .workers(2)
            .capacity(5000)
            .build()
            .unwrap();
        for _ in 0..5000 {
            let r = ran.clone();
            pool.execute(move || {
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        }
        drop(pool);
        assert_eq!(ran.load(SeqCst), 5000);
    });
}

#[test]
fn the_last_reference_dropped_inside_a_job_does_not_hang() {
    common::within(30, || {
        let pool = Arc::new(WorkerPool::builder().workers(2).build().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pool.clone();
        pool.execute(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(p); // by now the test dropped its own reference: this is the last one
            tx.send(()).unwrap();
        })
        .unwrap();
        drop(pool);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    });
}

#[test]
fn concurrent_shutdowns_all_wait_for_the_work() {
    common::within(30, || {
        let pool = Arc::new(
            WorkerPool::builder()
                .workers(2)
                .capacity(1000)
                .build()
                .unwrap(),
        );
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..500 {
            let r = ran.clone();
            pool.execute(move || {
                std::thread::sleep(Duration::from_micros(200));
                r.fetch_add(1, SeqCst);
            })
            .unwrap();
        }
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (p, r) = (pool.clone(), ran.clone());
                std::thread::spawn(move || {
                    p.shutdown();
                    r.load(SeqCst)
                })
            })
            .collect();
        for c in callers {
            assert_eq!(
                c.join().unwrap(),
                500,
                "a shutdown returned before the work ran"
            );
        }
    });
}

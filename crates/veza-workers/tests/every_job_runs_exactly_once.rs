//! A million jobs from four submitting threads: each runs exactly once, and the statistics
//! agree.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use veza_core::Observe;
use veza_workers::WorkerPool;

#[test]
fn a_million_jobs_from_four_threads_each_run_once() {
    const PER_THREAD: u64 = 250_000;
    const THREADS: u64 = 4;
    const N: u64 = PER_THREAD * THREADS;
    common::within(120, || {
        let pool = Arc::new(
            WorkerPool::builder()
                .workers(2)
                .capacity(1000)
                .build()
                .unwrap(),
        );
        let count = Arc::new(AtomicU64::new(0));
        let sum = Arc::new(AtomicU64::new(0));
        let sum_sq = Arc::new(AtomicU64::new(0));
        let submitters: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, count, sum, sum_sq) =
                    (pool.clone(), count.clone(), sum.clone(), sum_sq.clone());
                std::thread::spawn(move || {
                    for i in t * PER_THREAD..(t + 1) * PER_THREAD {
                        let (count, sum, sum_sq) = (count.clone(), sum.clone(), sum_sq.clone());
                        pool.execute(move || {
                            count.fetch_add(1, Relaxed);
                            sum.fetch_add(i, Relaxed);
                            sum_sq.fetch_add(i.wrapping_mul(i), Relaxed);
                        })
                        .unwrap_or_else(|e| panic!("job {i} refused: {e}"));
                    }
                })
            })
            .collect();
        for s in submitters {
            s.join().unwrap();
        }
        pool.shutdown();
        // A lost job lowers the count; a duplicated one raises it; either changes the sums.
        assert_eq!(count.load(Relaxed), N);
        assert_eq!(sum.load(Relaxed), N * (N - 1) / 2);
        let expected_sq = (0..N).fold(0u64, |acc, i| acc.wrapping_add(i.wrapping_mul(i)));
        assert_eq!(sum_sq.load(Relaxed), expected_sq);
        let stats = pool.snapshot();
        assert_eq!((stats.submitted, stats.completed), (N, N));
        assert_eq!((stats.rejected, stats.panicked, stats.depth), (0, 0, 0));
    });
}

//! `submit_async` waits for room without blocking the runtime's thread, and handles can be
//! awaited.

mod common;

use std::time::Duration;

use veza_workers::{JobError, SubmitError, WorkerPool};

#[test]
fn a_full_queue_parks_the_task_not_the_thread() {
    common::within(30, || {
        // One runtime thread: if submit_async blocked it, the task that frees the worker could
        // never run, and this test would time out.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = std::sync::Arc::new(
                WorkerPool::builder()
                    .workers(1)
                    .capacity(1)
                    .build()
                    .unwrap(),
            );
            let (release, blocked) = std::sync::mpsc::channel::<()>();
            let first = pool
                .submit_async(move || blocked.recv().unwrap())
                .await
                .unwrap();
            let _filler = pool.submit_async(|| 1).await.unwrap(); // fills the queue
            let p = pool.clone();
            let waiting = tokio::spawn(async move { p.submit_async(|| 2).await.unwrap().await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished());
            release.send(()).unwrap(); // this runs on the same thread as the waiting submit
            assert_eq!(waiting.await.unwrap(), Ok(2));
            first.await.unwrap();
        });
    });
}

#[test]
fn awaiting_a_handle_gives_the_value_or_the_panic() {
    common::quiet_deliberate_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = WorkerPool::builder().workers(2).build().unwrap();
        let value = pool.submit_async(|| "ok").await.unwrap().await;
        assert_eq!(value, Ok("ok"));
        let panicked = pool
            .submit_async(|| -> u8 { panic!("deliberate async") })
            .await
            .unwrap()
            .await;
        assert_eq!(panicked, Err(JobError::Panicked("deliberate async".into())));
        pool.shutdown();
        assert!(matches!(
            pool.submit_async(|| 3).await,
            Err(SubmitError::Closed(_))
        ));
    });
}

#[test]
fn a_dropped_submit_future_loses_nothing_in_the_pool() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = WorkerPool::builder()
            .workers(1)
            .capacity(1)
            .build()
            .unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        pool.execute(move || blocked.recv().unwrap()).unwrap();
        pool.execute(|| {}).unwrap();
        // Times out while the queue is full: the future and its job are dropped unsubmitted.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), pool.submit_async(|| 5)).await;
        assert!(gave_up.is_err());
        release.send(()).unwrap();
        // The pool is unaffected: room frees up and a new submission goes through.
        assert_eq!(pool.submit_async(|| 6).await.unwrap().await, Ok(6));
    });
}

//! Waiters are served in arrival order, and dropping checkouts or queries midway leaks no
//! connection.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use veza_dbpool::Pool;

#[test]
fn waiters_are_served_in_arrival_order() {
    common::runtime().block_on(async {
        let pool = Arc::new(Pool::new(common::config("fair", 1)).unwrap());
        let held = pool.get().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (pool, order) = (pool.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let conn = pool.get().await.unwrap();
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(conn);
            }));
            // Let each waiter queue up before the next arrives.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The ten queued checkouts show as waiting; the held one does not.
        let stats = pool.stats();
        assert_eq!((stats.in_use, stats.waiting), (1, 10));
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn dropped_checkouts_and_queries_leak_nothing() {
    common::runtime().block_on(async {
        let pool = Pool::new(common::config("cancel", 3)).unwrap();
        for round in 0..30 {
            // Drop a checkout after its first poll, at varying points.
            let fut = pool.get();
            let _ = tokio::time::timeout(Duration::from_micros(50 * round), fut).await;
            // Drop a query midway.
            let conn = pool.get().await.unwrap();
            let _ = tokio::time::timeout(
                Duration::from_millis(round % 5),
                conn.query("SELECT pg_sleep(0.01)", &[]),
            )
            .await;
            drop(conn);
        }
        // The pool is whole: all three connections can be held at once, quickly.
        let mut all = Vec::new();
        for _ in 0..3 {
            all.push(
                tokio::time::timeout(Duration::from_secs(2), pool.get())
                    .await
                    .expect("a connection leaked")
                    .unwrap(),
            );
        }
        for conn in &all {
            let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
            assert_eq!(one, 1);
        }
        drop(all);
        let stats = pool.stats();
        assert_eq!((stats.in_use, stats.waiting), (0, 0));
    });
}

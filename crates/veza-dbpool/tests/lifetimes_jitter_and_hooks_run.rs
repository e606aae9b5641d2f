//! Connections opened together do not expire together (lifetime jitter), and the
//! after-connect and before-checkout hooks run where they say.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veza_core::Observe;
use veza_dbpool::{Error, Hook, Pool};

/// Checks out `n` connections at once and returns their backend pids.
async fn pids(pool: &Pool, n: usize) -> Vec<i32> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(pool.get().await.unwrap());
    }
    let mut out = Vec::new();
    for c in &conns {
        out.push(
            c.query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0),
        );
    }
    out
}

#[test]
fn connections_opened_together_expire_apart() {
    common::runtime().block_on(async {
        let mut c = common::config("jitter", 8);
        c.max_lifetime = Some(Duration::from_millis(2500));
        c.max_lifetime_jitter = Duration::from_millis(1500);
        c.idle_timeout = None;
        let pool = Pool::new(c).unwrap();
        let start = Instant::now();
        let first = pids(&pool, 8).await;
        // When each first-generation backend was last seen.
        let mut last_seen: HashMap<i32, Duration> =
            first.iter().map(|p| (*p, Duration::ZERO)).collect();
        while start.elapsed() < Duration::from_millis(3500) {
            let now = pids(&pool, 8).await;
            for p in now {
                if let Some(seen) = last_seen.get_mut(&p) {
                    *seen = start.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut ends: Vec<Duration> = last_seen.values().copied().collect();
        ends.sort();
        assert!(
            ends[0] >= Duration::from_millis(900),
            "none expires before max_lifetime less its jitter: {ends:?}"
        );
        assert!(
            ends[7] - ends[0] >= Duration::from_millis(200),
            "the eight expired within {:?} of each other: {ends:?}",
            ends[7] - ends[0]
        );
        assert!(pool.snapshot().misses > 8, "replacements were opened");
    });
}

#[test]
fn after_connect_sets_every_new_connection_up_and_its_failure_is_a_connect_error() {
    common::runtime().block_on(async {
        let mut c = common::config("after-connect", 2);
        c.after_connect = Some(Hook::new(|client| {
            Box::pin(async move {
                client
                    .batch_execute("SET TIME ZONE 'Pacific/Chatham'")
                    .await
            })
        }));
        let pool = Pool::new(c).unwrap();
        let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
        for conn in [&a, &b] {
            let tz: String = conn.query_one("SHOW timezone", &[]).await.unwrap().get(0);
            assert_eq!(tz, "Pacific/Chatham");
        }
        drop((a, b));

        let mut c = common::config("after-connect-fails", 2);
        c.after_connect = Some(Hook::new(|client| {
            Box::pin(async move { client.batch_execute("SELECT 1/0").await })
        }));
        let pool = Pool::new(c).unwrap();
        let e = pool.get().await.unwrap_err();
        assert!(matches!(e, Error::Connect(_)), "{e:?}");
        assert_eq!(e.sqlstate(), Some("22012"), "the hook's own error: {e}");
    });
}

#[test]
fn before_checkout_runs_each_time_and_a_refusal_takes_another_connection() {
    common::runtime().block_on(async {
        let calls = Arc::new(AtomicU64::new(0));
        let refuse = Arc::new(AtomicBool::new(false));
        let mut c = common::config("before-checkout", 1);
        let (n, no) = (Arc::clone(&calls), Arc::clone(&refuse));
        c.before_checkout = Some(Hook::new(move |client| {
            n.fetch_add(1, Ordering::SeqCst);
            // Refuses once when asked: the next connection is accepted.
            let refuse_now = no.swap(false, Ordering::SeqCst);
            Box::pin(async move {
                if refuse_now {
                    client.batch_execute("SELECT 1/0").await
                } else {
                    Ok(())
                }
            })
        }));
        let pool = Pool::new(c).unwrap();
        let first: i32 = {
            let conn = pool.get().await.unwrap();
            conn.query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0)
        };
        for _ in 0..4 {
            drop(pool.get().await.unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        refuse.store(true, Ordering::SeqCst);
        let conn = pool.get().await.unwrap();
        let now: i32 = conn
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_ne!(
            now, first,
            "the refused connection was closed, a new one opened"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        drop(conn);
        assert_eq!(pool.snapshot().misses, 2);
    });
}

#[test]
fn a_before_checkout_hook_that_hangs_costs_the_checkout_timeout_and_its_connection() {
    common::runtime().block_on(async {
        let hang = Arc::new(AtomicBool::new(false));
        let mut c = common::config("hook-hangs", 1);
        let app = c.pg.get_application_name().unwrap().to_owned();
        c.checkout_timeout = Duration::from_millis(300);
        let h = Arc::clone(&hang);
        c.before_checkout = Some(Hook::new(move |client| {
            let hang_now = h.load(Ordering::SeqCst);
            Box::pin(async move {
                if hang_now {
                    client.batch_execute("SELECT pg_sleep(5)").await
                } else {
                    Ok(())
                }
            })
        }));
        let pool = Pool::new(c).unwrap();
        drop(pool.get().await.unwrap());
        hang.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(4), pool.get())
            .await
            .expect("the hook runs within the checkout timeout")
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // The hook's statement was cancelled on the server, not left to sleep its 5 s out.
        let mut active = -1;
        for _ in 0..50 {
            active = common::backends_in_state(&app, "active").await;
            if active == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(active, 0, "the hung statement still runs on the server");
        hang.store(false, Ordering::SeqCst);
        // The connection still busy with the hook's statement was closed, not pooled.
        let conn = pool.get().await.unwrap();
        let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
        drop(conn);
        assert_eq!(pool.snapshot().misses, 2, "a second connection was opened");
    });
}

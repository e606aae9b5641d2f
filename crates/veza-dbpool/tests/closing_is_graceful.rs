//! `Pool::close`: waiting and later checkouts fail with `Closed`, connections in use close when
//! they come back, idle ones at once, and nothing reopens (not even for `min_idle`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use veza_core::{Classify, ErrorKind, Health, HealthCheck};
use veza_dbpool::{Error, Pool};

/// How many server backends carry `app` as their application name.
async fn backends(admin: &Pool, app: &str) -> i64 {
    admin
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls until the server shows `want` backends for `app` (a backend exits shortly after its
/// socket closes), or panics after 5 s.
async fn wait_for_backends(admin: &Pool, app: &str, want: i64) {
    let started = Instant::now();
    loop {
        let n = backends(admin, app).await;
        if n == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{n} backends of {app}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn close_fails_waiters_and_closes_connections_as_they_come_back() {
    common::runtime().block_on(async {
        let config = common::config("close", 2);
        let app = config.pg.get_application_name().unwrap().to_owned();
        let pool = Arc::new(Pool::new(config).unwrap());
        let admin = Pool::new(common::config("close-admin", 1)).unwrap();

        // Both connections in use.
        let first = pool.get().await.unwrap();
        let second = pool.get().await.unwrap();
        wait_for_backends(&admin, &app, 2).await;

        // A checkout waiting for a connection when the pool closes.
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.stats().waiting, 1);

        let closing = tokio::spawn({
            let pool = pool.clone();
            async move { pool.close().await }
        });
        let started = Instant::now();
        let err = waiter.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
        assert_eq!(err.kind(), ErrorKind::Closed);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the waiter failed after {:?}, not at once",
            started.elapsed()
        );
        assert!(pool.is_closed());
        assert!(matches!(pool.get().await, Err(Error::Closed)));
        assert!(matches!(pool.check().await, Health::Unhealthy(_)));

        // Connections in use keep working; one given back is closed, not kept idle.
        let one: i32 = first.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
        drop(first);
        wait_for_backends(&admin, &app, 1).await;
        assert_eq!(pool.stats().idle, 0);
        assert!(
            !closing.is_finished(),
            "close returned with a connection in use"
        );

        // Giving back the last one closes it, and close returns.
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("close did not return after the last connection came back")
            .unwrap();
        wait_for_backends(&admin, &app, 0).await;
        let stats = pool.stats();
        assert_eq!((stats.size, stats.idle, stats.in_use), (0, 0, 0));
        // A second close has nothing to wait for.
        tokio::time::timeout(Duration::from_secs(1), pool.close())
            .await
            .expect("a second close waited");
    });
}

#[test]
fn a_closed_pool_opens_nothing_even_for_min_idle() {
    common::runtime().block_on(async {
        let mut config = common::config("close-min-idle", 3);
        config.min_idle = Some(3);
        config.idle_timeout = Some(Duration::from_secs(1)); // the reaper runs every second
        let app = config.pg.get_application_name().unwrap().to_owned();
        let pool = Pool::new(config).unwrap();
        let admin = Pool::new(common::config("close-min-idle-admin", 1)).unwrap();
        wait_for_backends(&admin, &app, 3).await;

        tokio::time::timeout(Duration::from_secs(5), pool.close())
            .await
            .expect("close of an idle pool took longer than 5 s");
        wait_for_backends(&admin, &app, 0).await;
        // bb8 would replenish min_idle after connections are dropped and on each reaper run.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            backends(&admin, &app).await,
            0,
            "the closed pool reconnected"
        );
        assert_eq!(pool.stats().size, 0);
    });
}

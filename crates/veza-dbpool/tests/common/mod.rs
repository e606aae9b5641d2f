//! Helpers shared by the integration tests: the database URL and pool configurations.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::time::Duration;

use veza_dbpool::Config;

/// `DATABASE_URL`, or the local server of the project's machines.
pub(crate) fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A config for the test database with a unique application name, so a test can find (and
/// terminate) its own backends.
pub(crate) fn config(tag: &str, max_size: u32) -> Config {
    let mut c = Config::from_url(&url()).unwrap();
    c.pg.application_name(format!("veza-test-{tag}-{}", std::process::id()));
    c.max_size = max_size;
    c.checkout_timeout = Duration::from_secs(5);
    c
}

/// A multi-threaded runtime for one test.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A pool whose connections work in a fresh schema of their own (dropped by [`Schema`]'s
/// `drop`), so tests run in parallel and leave nothing behind.
pub(crate) struct Schema {
    pub(crate) name: String,
}

impl Schema {
    pub(crate) async fn create(tag: &str) -> Schema {
        let name = format!("veza_test_{tag}_{}", std::process::id());
        let admin = veza_dbpool::Pool::new(config(&format!("{tag}-admin"), 1)).unwrap();
        let conn = admin.get().await.unwrap();
        conn.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name};"
        ))
        .await
        .unwrap();
        Schema { name }
    }

    /// A pool of `max_size` whose search path is this schema.
    pub(crate) fn pool(&self, max_size: u32) -> veza_dbpool::Pool {
        let mut c = config(&self.name, max_size);
        c.pg.options(format!("-c search_path={}", self.name));
        veza_dbpool::Pool::new(c).unwrap()
    }

    pub(crate) async fn drop_now(self) {
        let admin = veza_dbpool::Pool::new(config("drop", 1)).unwrap();
        let conn = admin.get().await.unwrap();
        conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await
            .unwrap();
    }
}

/// Whether this process runs as root (the effective uid, from /proc): PostgreSQL and
/// PgBouncer refuse to run as root, so tests start them as `postgres` then.
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Terminates this test's own backends (found by application name); how many.
pub(crate) async fn terminate_backends(app: &str) -> i64 {
    let admin = veza_dbpool::Pool::new(config("terminate-admin", 1)).unwrap();
    admin
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

/// This test's backends (by application name) in `state`, as the server sees them.
pub(crate) async fn backends_in_state(app: &str, state: &str) -> i64 {
    let admin = veza_dbpool::Pool::new(config("state-admin", 1)).unwrap();
    admin
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = $2",
            &[&app, &state],
        )
        .await
        .unwrap()
        .get(0)
}

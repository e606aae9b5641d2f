//! A connection goes back to the pool only in a known-clean state: abandoned queries are
//! cancelled and their connection closed, abandoned transactions never sit idle in the pool,
//! a failed COPY does not poison the next caller, and complete statements cost nothing.

mod common;

use std::time::{Duration, Instant};

use tokio_postgres::types::Type;
use veza_core::Observe;

fn app_name(pool: &veza_dbpool::Pool) -> String {
    pool.config().pg.get_application_name().unwrap().to_owned()
}

#[test]
fn an_abandoned_query_is_cancelled_and_delays_nobody() {
    common::runtime().block_on(async {
        let pool = veza_dbpool::Pool::new(common::config("abandoned-query", 1)).unwrap();
        let app = app_name(&pool);
        {
            let conn = pool.get().await.unwrap();
            let slow = conn.simple_query("SELECT pg_sleep(3)");
            assert!(
                tokio::time::timeout(Duration::from_millis(200), slow)
                    .await
                    .is_err(),
                "the sleep is abandoned mid-flight"
            );
        }
        // The next caller of this pool of one is not queued behind the sleep.
        let started = Instant::now();
        let conn = pool.get().await.unwrap();
        conn.simple_query("SELECT 1").await.unwrap();
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
        drop(conn);
        // And the server stopped the sleep: no backend of the pool is still running it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while common::backends_in_state(&app, "active").await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            common::backends_in_state(&app, "active").await,
            0,
            "the abandoned sleep was cancelled"
        );
        assert_eq!(pool.snapshot().discards, 1, "{:?}", pool.snapshot());
    });
}

#[test]
fn an_abandoned_transaction_never_waits_idle_in_the_pool() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("abandoned_tx").await;
        let pool = schema.pool(4);
        let app = app_name(&pool);
        pool.get()
            .await
            .unwrap()
            .batch_execute("CREATE TABLE t (v int)")
            .await
            .unwrap();
        // A raw BEGIN, an insert, and the connection given back without COMMIT.
        for v in 0..3 {
            let conn = pool.get().await.unwrap();
            conn.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({v})"))
                .await
                .unwrap();
        }
        // tokio-postgres' own transaction, dropped on an error path.
        {
            let mut conn = pool.get().await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.execute("INSERT INTO t VALUES (99)", &[]).await.unwrap();
        }
        // A failed transaction (status E) given back.
        {
            let conn = pool.get().await.unwrap();
            conn.batch_execute("BEGIN").await.unwrap();
            assert!(
                conn.batch_execute("SELECT no_such_column FROM t")
                    .await
                    .is_err()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            common::backends_in_state(&app, "idle in transaction").await,
            0
        );
        assert_eq!(
            common::backends_in_state(&app, "idle in transaction (aborted)").await,
            0
        );
        // Nothing of them was committed, and every later statement autocommits as it should.
        for _ in 0..8 {
            let conn = pool.get().await.unwrap();
            conn.execute("INSERT INTO t VALUES (1000)", &[])
                .await
                .unwrap();
        }
        let conn = pool.get().await.unwrap();
        let rows: Vec<i32> = conn
            .query("SELECT v FROM t ORDER BY v", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows, vec![1000; 8]);
        drop(conn);
        schema.drop_now().await;
    });
}

#[test]
fn complete_statements_keep_their_connection() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("clean_reuse").await;
        let pool = schema.pool(1);
        for i in 0..50 {
            let mut conn = pool.get().await.unwrap();
            // Prepared on the fly (tokio-postgres closes the statement after), cached,
            // simple, and a committed transaction.
            conn.query("SELECT $1::int", &[&i]).await.unwrap();
            let st = conn.prepare_cached("SELECT 2").await.unwrap();
            conn.query(&st, &[]).await.unwrap();
            conn.simple_query("SELECT 3").await.unwrap();
            let tx = conn.transaction().await.unwrap();
            tx.execute("SELECT 4", &[]).await.unwrap();
            tx.commit().await.unwrap();
        }
        let stats = pool.snapshot();
        assert_eq!(
            stats.misses, 1,
            "one connection opened for all of them: {stats:?}"
        );
        assert_eq!(stats.discards, 0, "{stats:?}");
        schema.drop_now().await;
    });
}

#[test]
fn a_rejected_copy_leaves_a_pool_of_one_working() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("copy_poison").await;
        let pool = schema.pool(1);
        pool.get()
            .await
            .unwrap()
            .batch_execute("CREATE TABLE people (name text, age int)")
            .await
            .unwrap();
        let rows: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 2]> = vec![[&"ada", &36]];
        for (table, columns) in [
            ("no_such_table", ["name", "age"]),
            ("people", ["name", "no_such_column"]),
        ] {
            let mut conn = pool.get().await.unwrap();
            let e = conn
                .copy_rows(table, &columns, &[Type::TEXT, Type::INT4], &rows)
                .await
                .unwrap_err();
            assert_eq!(e.sqlstate().map(|s| &s[..2]), Some("42"), "{e}");
            drop(conn);
            // The next caller gets a working connection.
            let conn = pool.get().await.unwrap();
            let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
            assert_eq!(one, 1);
        }
        // A row with the wrong number of values is the caller's input, not the config.
        let mut conn = pool.get().await.unwrap();
        let short: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> = vec![[&"ada"]];
        let e = conn
            .copy_rows(
                "people",
                &["name", "age"],
                &[Type::TEXT, Type::INT4],
                &short,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, veza_dbpool::Error::InvalidInput(_)), "{e:?}");
        drop(conn);
        let conn = pool.get().await.unwrap();
        let n: i64 = conn
            .query_one("SELECT count(*) FROM people", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "nothing of the refused batches was inserted");
        drop(conn);
        schema.drop_now().await;
    });
}

#[test]
fn cancellation_under_saturation_leaves_nothing_running_on_the_server() {
    common::runtime().block_on(async {
        let pool =
            std::sync::Arc::new(veza_dbpool::Pool::new(common::config("saturated", 4)).unwrap());
        let app = app_name(&pool);
        // 32 callers on 4 connections, each giving up after 100 ms: some while waiting for a
        // connection, some in the middle of a two-second query.
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let pool = std::sync::Arc::clone(&pool);
                tokio::spawn(async move {
                    let work = async {
                        let conn = pool.get().await?;
                        conn.simple_query("SELECT pg_sleep(2)").await?;
                        Ok::<_, veza_dbpool::Error>(())
                    };
                    tokio::time::timeout(Duration::from_millis(100), work)
                        .await
                        .is_err()
                })
            })
            .collect();
        let mut gave_up = 0;
        for t in tasks {
            gave_up += usize::from(t.await.unwrap());
        }
        assert_eq!(gave_up, 32);
        let deadline = Instant::now() + Duration::from_secs(2);
        while common::backends_in_state(&app, "active").await > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            common::backends_in_state(&app, "active").await,
            0,
            "every abandoned sleep was cancelled"
        );
        assert_eq!(
            common::backends_in_state(&app, "idle in transaction").await,
            0
        );
        // And the pool serves at once.
        let started = Instant::now();
        let conn = pool.get().await.unwrap();
        conn.simple_query("SELECT 1").await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn with_the_statement_cache_off_a_copy_inside_the_callers_transaction_stays_in_it() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("copy_in_tx").await;
        let mut c = common::config(&schema.name, 1);
        c.pg.options(format!("-c search_path={}", schema.name));
        c.statement_cache = false;
        let pool = veza_dbpool::Pool::new(c).unwrap();
        let mut conn = pool.get().await.unwrap();
        conn.batch_execute("CREATE TABLE t (v int)").await.unwrap();
        let rows: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> = vec![[&1i32], [&2i32]];
        // Alone: the COPY runs in a transaction of its own and is committed.
        assert_eq!(
            conn.copy_rows("t", &["v"], &[Type::INT4], &rows)
                .await
                .unwrap(),
            2
        );
        // Inside the caller's transaction: rolled back with it, not committed by the COPY.
        conn.batch_execute("BEGIN").await.unwrap();
        assert_eq!(
            conn.copy_rows("t", &["v"], &[Type::INT4], &rows)
                .await
                .unwrap(),
            2
        );
        conn.batch_execute("ROLLBACK").await.unwrap();
        let n: i64 = conn
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "only the first COPY was committed");
        drop(conn);
        schema.drop_now().await;
    });
}

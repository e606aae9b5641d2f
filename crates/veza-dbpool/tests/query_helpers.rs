//! The query helpers on the guide's `users` table: COPY, keyset pages, parameters, retried
//! transactions and cache-aside.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, UNIX_EPOCH};

use veza_core::{Classify, ErrorKind};
use veza_dbpool::users::{NewUser, User, Users};
use veza_dbpool::{Cursor, Error, RetryPolicy};

async fn count_users(pool: &veza_dbpool::Pool) -> i64 {
    let conn = pool.get().await.unwrap();
    conn.query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0)
}

fn people(n: usize, tag: &str) -> Vec<NewUser> {
    (0..n)
        .map(|i| NewUser {
            email: format!("{tag}{i}@example.com"),
            name: format!("User {i}"),
            // Distinct, and some equal, creation times: the id breaks the ties.
            created_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + (i / 3) as u64),
        })
        .collect()
}

#[test]
fn copy_inserts_exactly_the_rows_or_none() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("copy").await;
        let pool = schema.pool(2);
        let users = Users::new(&pool);
        users.migrate().await.unwrap();
        assert_eq!(users.batch_insert(&people(1000, "a")).await.unwrap(), 1000);
        let count = count_users(&pool).await;
        assert_eq!(count, 1000);
        let found = users.by_email("a999@example.com").await.unwrap().unwrap();
        assert_eq!(found.name, "User 999");

        // A duplicate email in the middle of a batch aborts all of it.
        let mut batch = people(500, "b");
        batch[250].email = "a1@example.com".into();
        let err = users.batch_insert(&batch).await.unwrap_err();
        assert_eq!(err.sqlstate(), Some("23505"), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let count = count_users(&pool).await;
        assert_eq!(count, 1000, "a failed COPY inserts nothing");
        drop(pool);
        schema.drop_now().await;
    });
}

#[test]
fn keyset_pages_equal_offset_pages_and_bad_cursors_are_refused() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("keyset").await;
        let pool = schema.pool(2);
        let users = Users::new(&pool);
        users.migrate().await.unwrap();
        users.batch_insert(&people(95, "k")).await.unwrap();

        let mut cursor: Option<Cursor> = None;
        let mut offset = 0;
        let mut seen = 0;
        loop {
            let (page, next) = users.page_after(cursor.as_ref(), 10).await.unwrap();
            let by_offset = users.page_offset(offset, 10).await.unwrap();
            assert_eq!(page, by_offset, "page at offset {offset}");
            seen += page.len();
            offset += 10;
            // Clients get the cursor as text and send it back.
            match next {
                Some(c) => cursor = Some(Cursor::decode(&c.encode(), 2).unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, 95);
        let err = Cursor::decode("v1.garbage", 2).unwrap_err();
        assert!(matches!(err, Error::InvalidCursor(_)));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        drop(pool);
        schema.drop_now().await;
    });
}

#[test]
fn an_injection_attempt_is_just_data() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("inject").await;
        let pool = schema.pool(1);
        let users = Users::new(&pool);
        users.migrate().await.unwrap();
        users.insert("ada@example.com", "Ada").await.unwrap();
        let evil = "x' OR 1=1 --";
        assert_eq!(users.by_email(evil).await.unwrap(), None);
        let stored = users.insert(evil, "Mallory").await.unwrap();
        assert_eq!(users.by_email(evil).await.unwrap(), Some(stored));
        let count = count_users(&pool).await;
        assert_eq!(count, 2, "the table is intact");
        drop(pool);
        schema.drop_now().await;
    });
}

#[test]
fn serialization_failures_are_retried_to_the_right_total() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("retry").await;
        let pool = Arc::new(schema.pool(8));
        pool.get()
            .await
            .unwrap()
            .batch_execute(
                "CREATE TABLE counter (n BIGINT NOT NULL); INSERT INTO counter VALUES (0);",
            )
            .await
            .unwrap();
        let attempts = Arc::new(AtomicUsize::new(0));
        let mut policy = RetryPolicy::default();
        policy.max_attempts = 50;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, attempts) = (pool.clone(), attempts.clone());
                tokio::spawn(async move {
                    for _ in 0..10 {
                        pool.transaction(policy, |tx| {
                            let attempts = attempts.clone();
                            Box::pin(async move {
                                attempts.fetch_add(1, SeqCst);
                                let n: i64 =
                                    tx.query_one("SELECT n FROM counter", &[]).await?.get(0);
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                tx.execute("UPDATE counter SET n = $1", &[&(n + 1)]).await?;
                                Ok(())
                            })
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let n: i64 = pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT n FROM counter", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 80, "every increment committed exactly once");
        assert!(
            attempts.load(SeqCst) > 80,
            "no conflict was retried: {}",
            attempts.load(SeqCst)
        );
        drop(pool);
        schema.drop_now().await;
    });
}

/// A minimal `AsyncCache` for the cache-aside test (veza-dbpool depends on no cache crate).
#[derive(Default)]
struct MapCache(
    std::sync::Mutex<std::collections::HashMap<i64, User>>,
    AtomicUsize,
);

impl veza_core::AsyncCache<i64, User> for MapCache {
    fn get<'a>(&'a self, key: &'a i64) -> veza_core::BoxFuture<'a, Option<User>> {
        Box::pin(std::future::ready(self.0.lock().unwrap().get(key).cloned()))
    }
    fn insert(&self, key: i64, value: User) -> veza_core::BoxFuture<'_, ()> {
        self.0.lock().unwrap().insert(key, value);
        Box::pin(std::future::ready(()))
    }
    fn get_or_load<'a>(
        &'a self,
        key: i64,
        loader: veza_core::BoxFuture<'a, Result<User, veza_core::BoxError>>,
    ) -> veza_core::BoxFuture<'a, Result<User, veza_core::SharedError>> {
        Box::pin(async move {
            if let Some(u) = self.0.lock().unwrap().get(&key).cloned() {
                return Ok(u);
            }
            self.1.fetch_add(1, SeqCst);
            let user = loader.await.map_err(veza_core::SharedError::from)?;
            self.0.lock().unwrap().insert(key, user.clone());
            Ok(user)
        })
    }
    fn invalidate<'a>(&'a self, key: &'a i64) -> veza_core::BoxFuture<'a, ()> {
        self.0.lock().unwrap().remove(key);
        Box::pin(std::future::ready(()))
    }
    fn invalidate_all(&self) -> veza_core::BoxFuture<'_, ()> {
        self.0.lock().unwrap().clear();
        Box::pin(std::future::ready(()))
    }
}

#[test]
fn cache_aside_by_id_loads_once_and_knows_absent_ids() {
    common::runtime().block_on(async {
        let schema = common::Schema::create("aside").await;
        let pool = schema.pool(1);
        let users = Users::new(&pool);
        users.migrate().await.unwrap();
        let ada = users.insert("ada@example.com", "Ada").await.unwrap();
        let cache = MapCache::default();
        for _ in 0..3 {
            assert_eq!(
                users.by_id_cached(&cache, ada.id).await.unwrap(),
                Some(ada.clone())
            );
        }
        assert_eq!(cache.1.load(SeqCst), 1, "loaded from the database once");
        assert_eq!(
            users.by_id_cached(&cache, ada.id + 1000).await.unwrap(),
            None
        );
        drop(pool);
        schema.drop_now().await;
    });
}

#[test]
fn query_durations_are_recorded_by_statement_name() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        common::runtime().block_on(async {
            let schema = common::Schema::create("timed").await;
            let pool = schema.pool(1);
            let users = Users::new(&pool);
            users.migrate().await.unwrap();
            users.insert("ada@example.com", "Ada").await.unwrap();
            for _ in 0..3 {
                users.by_email("ada@example.com").await.unwrap();
            }
            drop(pool);
            schema.drop_now().await;
        });
    });
    let samples = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, _, _, _)| {
            k.key().name() == "db_query_duration_seconds"
                && k.key()
                    .labels()
                    .any(|l| l.key() == "statement" && l.value() == "users.by_email")
        })
        .map(|(_, _, _, v)| v)
        .expect("a histogram for users.by_email");
    match samples {
        metrics_util::debugging::DebugValue::Histogram(v) => assert_eq!(v.len(), 3),
        other => panic!("{other:?}"),
    }
}

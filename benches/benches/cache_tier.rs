//! `cache/l2_hit`: a lookup the first tier misses and Redis answers, through veza-cache's
//! `TieredCache` (GET and PTTL in one round trip, decoding, filling the first tier), against a
//! raw `GET` with the same Redis client and against the same value by primary key through the
//! PostgreSQL pool: what a second tier saves over going to the database.
//!
//! 16 tasks on a 2-thread Tokio runtime, each looking up its own 62 of 1,000 keys holding
//! 100-byte strings in turn; the tiered cache drops the key from its first tier before each
//! lookup so every one is a Redis hit. `REDIS_URL` and `DATABASE_URL` come from `cargo xtask bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use veza_benches::{Bench, Case, Contender, Metric};
use veza_cache::{Cache, TierConfig, TieredCache};

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

const TASKS: usize = 16;
const KEYS: u64 = 1_000;

fn main() {
    let bench = Bench::from_args("cache_tier");
    let case = Case::new(
        "cache/l2_hit",
        "first tier empty, value in Redis: 16 tasks x lookups of 100-byte values over 1,000 keys, 2 runtime threads; vs a raw GET with the same client and vs the row by primary key through veza-dbpool",
        Metric::Throughput,
        "lookups/s",
        "veza-cache",
    );
    if !bench.wants(case.id()) {
        return;
    }
    let redis_url = match bench.redis_url() {
        Ok(url) => url,
        Err(reason) => return bench.skip(&case, &reason),
    };
    let db_url = match bench.database_url() {
        Ok(url) => url,
        Err(reason) => return bench.skip(&case, &reason),
    };
    let per_task = if bench.quick() { 500 } else { 2_000 };
    let case = case.ops(TASKS * per_task);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let value = |k: u64| format!("{k:0>100}");

    let (tiered, raw, pool) = rt.block_on(async {
        let first = Cache::builder()
            .max_entries(KEYS * 2)
            .build()
            .expect("cache");
        let config = TierConfig::new(&redis_url)
            .namespace("veza-bench-l2")
            .op_timeout(Duration::from_secs(1));
        let tiered = TieredCache::new(first, config).await.expect("tiered cache");
        for k in 0..KEYS {
            tiered.insert(k, value(k)).await;
        }
        let raw = redis::Client::open(redis_url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let mut config = veza_dbpool::Config::from_url(&db_url).expect("url");
        config.max_size = 16;
        config.checkout_timeout = Duration::from_secs(30);
        let pool = veza_dbpool::Pool::new(config).expect("pool");
        pool.get()
            .await
            .expect("conn")
            .batch_execute(
                "DROP TABLE IF EXISTS veza_bench_l2; \
                 CREATE TABLE veza_bench_l2 (id bigint PRIMARY KEY, value text NOT NULL); \
                 INSERT INTO veza_bench_l2 SELECT i, lpad(i::text, 100, '0') FROM generate_series(0, 999) i",
            )
            .await
            .expect("table");
        (Arc::new(tiered), raw, Arc::new(pool))
    });
    // The raw GET reads the bytes the tiered cache wrote, under the same keys.
    let raw_key = |k: u64| {
        let mut key = b"veza-bench-l2:v1:".to_vec();
        key.extend(postcard::to_allocvec(&k).expect("key"));
        key
    };

    let contenders = vec![
        Contender::new("veza-cache", || {
            let before = tiered.stats().redis_hits;
            let handle = tiered.clone();
            let rate = rt.block_on(drive(per_task, move |k| {
                let tiered = handle.clone();
                async move {
                    tiered.first_tier().invalidate(&k);
                    tiered.get(&k).await.expect("a Redis hit").len()
                }
            }));
            let hits = tiered.stats().redis_hits - before;
            assert_eq!(
                hits,
                (TASKS * per_task) as u64,
                "every lookup is a Redis hit"
            );
            rate
        }),
        Contender::new("redis-get", || {
            let raw = raw.clone();
            rt.block_on(drive(per_task, move |k| {
                let (mut conn, key) = (raw.clone(), raw_key(k));
                async move {
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    bytes.len()
                }
            }))
        }),
        Contender::new("postgres", || {
            let pool = pool.clone();
            rt.block_on(drive(per_task, move |k| {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.get().await.expect("conn");
                    let statement = conn
                        .prepare_cached("SELECT value FROM veza_bench_l2 WHERE id = $1")
                        .await
                        .expect("prepare");
                    let id = i64::try_from(k).expect("small");
                    let row = conn.query_one(&statement, &[&id]).await.expect("row");
                    row.get::<_, String>(0).len()
                }
            }))
        }),
    ];
    bench.run(&case, contenders);
}

/// `TASKS` tasks each doing `per_task` lookups of successive keys; lookups per second.
async fn drive<F, Fut>(per_task: usize, lookup: F) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let lookup = lookup.clone();
            tokio::spawn(async move {
                let mut bytes = 0;
                for i in 0..per_task {
                    // Each task looks up keys of its own (no task finds a key in the first
                    // tier that another just filled).
                    let own = KEYS / TASKS as u64;
                    let key = t as u64 * own + i as u64 % own;
                    bytes += lookup(key).await;
                }
                bytes
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.expect("task") >= per_task * 100);
    }
    (TASKS * per_task) as f64 / started.elapsed().as_secs_f64()
}

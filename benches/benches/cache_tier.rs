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
    l2_hit(&bench);
    invalidation::delay(&bench);
    invalidation::writes(&bench);
}

/// The Redis URL for `case` when this run wants the case; `None` when it is filtered out or
/// there is no Redis (recorded as skipped).
fn wanted_redis(bench: &Bench, case: &Case) -> Option<String> {
    if !bench.wants(case.id()) {
        return None;
    }
    match bench.redis_url() {
        Ok(url) => Some(url),
        Err(reason) => {
            bench.skip(case, &reason);
            None
        }
    }
}

/// The 2-thread runtime every case of this suite runs on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn l2_hit(bench: &Bench) {
    let case = Case::new(
        "cache/l2_hit",
        "first tier empty, value in Redis: 16 tasks x lookups of 100-byte values over 1,000 keys, 2 runtime threads; vs a raw GET with the same client and vs the row by primary key through veza-dbpool",
        Metric::Throughput,
        "lookups/s",
        "veza-cache",
    );
    let Some(redis_url) = wanted_redis(bench, &case) else {
        return;
    };
    let db_url = match bench.database_url() {
        Ok(url) => url,
        Err(reason) => return bench.skip(&case, &reason),
    };
    let per_task = if bench.quick() { 500 } else { 2_000 };
    let case = case.ops(TASKS * per_task);
    let rt = runtime();
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

/// How one instance hears of another's writes: Redis pub/sub (what `TieredCache` uses) against
/// RESP3 client tracking in broadcast mode (`CLIENT TRACKING ON BCAST PREFIX … NOLOOP`, the
/// server pushing the names of modified keys under the prefix). Both writers run the tiered
/// cache's write pipeline (SET with a time to live, the per-key version bump); pub/sub adds the
/// `PUBLISH`, tracking keeps the version keys outside the tracked prefix so only value writes
/// are pushed. Each listener is another connection, as another instance would hold.
mod invalidation {
    use std::time::{Duration, Instant};

    use futures_util::StreamExt;
    use redis::aio::MultiplexedConnection;
    use redis::{AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
    use tokio::sync::mpsc;
    use veza_benches::{Bench, Case, Contender, Metric};

    /// The tracked prefix: value keys only.
    const VALUES: &str = "veza-bench-inv:v1:";
    const VERSIONS: &str = "veza-bench-inv:ver:";
    const CHANNEL: &str = "veza-bench-inv:invalidations";

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Way {
        PubSub,
        Tracking,
    }

    /// Another instance listening: the arrival time of every invalidation it hears.
    struct Listener {
        heard: mpsc::UnboundedReceiver<Instant>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Listener {
        async fn start(url: &str, way: Way) -> Listener {
            let (tx, heard) = mpsc::unbounded_channel();
            let task = match way {
                Way::PubSub => {
                    let client = redis::Client::open(url).expect("url");
                    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
                    pubsub.subscribe(CHANNEL).await.expect("subscribe");
                    tokio::spawn(async move {
                        let mut messages = pubsub.into_on_message();
                        while messages.next().await.is_some() {
                            let _ = tx.send(Instant::now());
                        }
                    })
                }
                Way::Tracking => {
                    let mut info = url.into_connection_info().expect("url");
                    info.redis.protocol = ProtocolVersion::RESP3;
                    let client = redis::Client::open(info).expect("url");
                    let (push_tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
                    let config = AsyncConnectionConfig::new().set_push_sender(push_tx);
                    let mut conn = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .expect("RESP3 connection");
                    redis::cmd("CLIENT")
                        .arg(&["TRACKING", "ON", "BCAST", "PREFIX", VALUES, "NOLOOP"])
                        .query_async::<()>(&mut conn)
                        .await
                        .expect("CLIENT TRACKING");
                    tokio::spawn(async move {
                        let _conn = conn; // tracking lives as long as this connection
                        while let Some(push) = pushes.recv().await {
                            if push.kind != PushKind::Invalidate {
                                continue;
                            }
                            let now = Instant::now();
                            // One push names one or more keys (or none: a flush).
                            if let Some(redis::Value::Array(keys)) = push.data.first() {
                                for _ in keys {
                                    let _ = tx.send(now);
                                }
                            }
                        }
                    })
                }
            };
            Listener { heard, task }
        }

        /// The next arrival; panics past a second (a lost invalidation fails the bench).
        async fn next(&mut self) -> Instant {
            tokio::time::timeout(Duration::from_secs(1), self.heard.recv())
                .await
                .expect("an invalidation within a second")
                .expect("listener running")
        }
    }

    /// One write as the tiered cache does it.
    async fn write(conn: &mut MultiplexedConnection, way: Way, key: u64) {
        let key = key.to_string();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{VALUES}{key}"))
            .arg([b'x'; 100].as_slice())
            .arg("PX")
            .arg(60_000)
            .ignore();
        pipe.incr(format!("{VERSIONS}{key}"), 1).ignore();
        pipe.cmd("PEXPIRE")
            .arg(format!("{VERSIONS}{key}"))
            .arg(120_000)
            .ignore();
        if way == Way::PubSub {
            pipe.publish(CHANNEL, &key).ignore();
        }
        pipe.query_async::<()>(conn).await.expect("write");
    }

    /// Runs `case` with pub/sub (ours) against tracking, each sampled by `sample(way)`.
    fn both<'a, S: FnMut() -> f64 + 'a>(bench: &Bench, case: &Case, sample: impl Fn(Way) -> S) {
        bench.run(
            case,
            vec![
                Contender::new("pub/sub", sample(Way::PubSub)),
                Contender::new("resp3-tracking", sample(Way::Tracking)),
            ],
        );
    }

    async fn writer(url: &str) -> MultiplexedConnection {
        redis::Client::open(url)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }

    /// `cache/invalidation_delay`: one write at a time; the time from sending it to another
    /// instance hearing of it, 99th percentile of a sample.
    pub(crate) fn delay(bench: &Bench) {
        let case = Case::new(
            "cache/invalidation_delay",
            "p99 time from a write's send to another instance hearing of it, one write at a time: pub/sub (PUBLISH in the write's pipeline) vs RESP3 client tracking (BCAST, pushed by the server)",
            Metric::Latency,
            "µs",
            "pub/sub",
        );
        let Some(url) = super::wanted_redis(bench, &case) else {
            return;
        };
        let writes = if bench.quick() { 400 } else { 2_000 };
        let case = case.ops(writes);
        let rt = super::runtime();
        let sample = |way: Way| {
            let url = url.clone();
            let rt = &rt;
            move || {
                rt.block_on(async {
                    let mut listener = Listener::start(&url, way).await;
                    let mut conn = writer(&url).await;
                    let mut delays = Vec::with_capacity(writes);
                    for i in 0..writes {
                        let sent = Instant::now();
                        write(&mut conn, way, i as u64 % 1_000).await;
                        let heard = listener.next().await;
                        delays.push(heard.saturating_duration_since(sent));
                    }
                    delays.sort_unstable();
                    let p99 = delays[(delays.len() * 99 / 100).min(delays.len() - 1)];
                    p99.as_secs_f64() * 1e6
                })
            }
        };
        both(bench, &case, sample);
    }

    /// `cache/invalidating_write`: 16 tasks writing through one connection while two other
    /// instances listen; writes per second (acknowledged), every listener hearing every write.
    pub(crate) fn writes(bench: &Bench) {
        const TASKS: usize = 16;
        let case = Case::new(
            "cache/invalidating_write",
            "writes/s of 16 tasks on one connection while two other instances listen (each must hear every write): pub/sub (SET, version bump, PUBLISH) vs RESP3 client tracking (SET, version bump; the server pushes)",
            Metric::Throughput,
            "writes/s",
            "pub/sub",
        );
        let Some(url) = super::wanted_redis(bench, &case) else {
            return;
        };
        let per_task = if bench.quick() { 300 } else { 1_500 };
        let case = case.ops(TASKS * per_task);
        let rt = super::runtime();
        let sample = |way: Way| {
            let url = url.clone();
            let rt = &rt;
            move || {
                rt.block_on(async {
                    let mut listeners = vec![
                        Listener::start(&url, way).await,
                        Listener::start(&url, way).await,
                    ];
                    let conn = writer(&url).await;
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|t| {
                            let mut conn = conn.clone();
                            tokio::spawn(async move {
                                for i in 0..per_task {
                                    write(&mut conn, way, (t * per_task + i) as u64).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("writer");
                    }
                    let rate = (TASKS * per_task) as f64 / started.elapsed().as_secs_f64();
                    for listener in &mut listeners {
                        for _ in 0..TASKS * per_task {
                            listener.next().await;
                        }
                    }
                    rate
                })
            }
        };
        both(bench, &case, sample);
    }
}

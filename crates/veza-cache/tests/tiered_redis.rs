//! The tiered cache against a real Redis: two instances (two caches with their own
//! connections) see each other's updates; a first-tier entry never outlives its Redis entry;
//! foreign bytes are a miss; with Redis killed, reads and loads still succeed within the
//! timeout and health says degraded, and after a restart nothing stale is served.
//!
//! Uses `REDIS_URL` (default `redis://127.0.0.1:6379`; `cargo xtask test` starts a throwaway
//! server when none answers). The kill-and-restart test starts its own `redis-server` on a
//! free loopback port (`REDIS_SERVER` names the binary) and never touches the shared one.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veza_cache::{Cache, TierConfig, TieredCache};
use veza_core::HealthCheck;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A namespace no other test (or run) uses.
fn namespace() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "veza-test-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn tiered(config: TierConfig) -> TieredCache<u64, String> {
    let first = Cache::builder()
        .max_entries(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build()
        .unwrap();
    TieredCache::new(first, config).await.unwrap()
}

/// Polls `check` every 2 ms until it holds or `within` passes; whether it held.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_through_one_instance_reaches_the_other_within_50ms() {
    let config = TierConfig::new(redis_url()).namespace(namespace());
    let (a, b) = (tiered(config.clone()).await, tiered(config).await);
    assert!(
        a.stats().channel_up && b.stats().channel_up,
        "both subscribed"
    );
    a.insert(1, "v1".to_owned()).await;
    // b first hears of the write: an invalidation arriving while b's read is in flight
    // rightly keeps that read out of b's first tier (the race guard), which "keeps it" below
    // would take for a failure.
    assert!(
        eventually(Duration::from_millis(50), || async {
            b.stats().invalidations_received >= 1
        })
        .await,
        "b heard the first write"
    );
    assert_eq!(
        b.get(&1).await.as_deref(),
        Some("v1"),
        "b reads it from Redis"
    );
    assert_eq!(
        b.first_tier().get(&1).as_deref(),
        Some("v1"),
        "and keeps it"
    );

    a.insert(1, "v2".to_owned()).await;
    let started = Instant::now();
    let seen = eventually(Duration::from_millis(50), || async {
        b.get(&1).await.as_deref() == Some("v2")
    })
    .await;
    assert!(seen, "b still serves v1 after {:?}", started.elapsed());
    assert!(b.stats().invalidations_received >= 1);
    assert_eq!(
        a.stats().invalidations_received,
        0,
        "a ignores its own echo"
    );
    assert_eq!(
        a.first_tier().get(&1).as_deref(),
        Some("v2"),
        "a kept its own write"
    );

    a.invalidate(&1).await;
    assert!(
        eventually(Duration::from_millis(50), || async {
            b.get(&1).await.is_none()
        })
        .await,
        "an invalidation reaches b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_updates_and_reads_across_two_instances_are_never_older_than_the_bound() {
    const BOUND: Duration = Duration::from_millis(50);
    let config = TierConfig::new(redis_url()).namespace(namespace());
    let caches = [tiered(config.clone()).await, tiered(config).await];
    // For each key, when each version was written.
    let mut written: HashMap<u64, Vec<Instant>> = HashMap::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut stale = Vec::new();
    for _ in 0..10_000 {
        let r = next();
        let cache = &caches[(r & 1) as usize];
        let key = (r >> 8) % 50;
        if (r >> 1) % 4 == 0 {
            let versions = written.entry(key).or_default();
            versions.push(Instant::now());
            cache.insert(key, format!("{key}:{}", versions.len())).await;
        } else if let Some(value) = cache.get(&key).await {
            let version: usize = value.split(':').nth(1).unwrap().parse().unwrap();
            let versions = &written[&key];
            // A newer version written more than BOUND ago must have been seen.
            if let Some(newer) = versions.get(version) {
                if newer.elapsed() > BOUND {
                    stale.push((key, version, versions.len(), newer.elapsed()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{} stale reads: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_tier_entry_never_outlives_the_redis_entry_it_came_from() {
    let config = TierConfig::new(redis_url())
        .namespace(namespace())
        .redis_ttl(Duration::from_millis(300));
    let (a, b) = (tiered(config.clone()).await, tiered(config).await);
    a.insert(7, "short".to_owned()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // b fills its first tier (whose own time to live is an hour) from Redis.
    assert_eq!(b.get(&7).await.as_deref(), Some("short"));
    assert_eq!(b.first_tier().get(&7).as_deref(), Some("short"));
    tokio::time::sleep(Duration::from_millis(260)).await;
    assert_eq!(
        b.first_tier().get(&7),
        None,
        "expired with the Redis entry, not an hour later"
    );
    assert_eq!(b.get(&7).await, None);
    assert_eq!(a.first_tier().get(&7), None, "the writer's copy too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_bytes_under_a_key_are_a_miss_and_are_reloaded() {
    let ns = namespace();
    let config = TierConfig::new(redis_url()).namespace(ns.clone());
    let cache = tiered(config.clone()).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    // The key of 5 as the cache writes it: namespace, version, postcard bytes of the key.
    let mut key = format!("{ns}:v1:").into_bytes();
    key.extend(postcard::to_allocvec(&5u64).unwrap());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(&b"\xff\xfe\x00\x13"[..])
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(cache.get(&5).await, None, "garbage is a miss");
    assert_eq!(cache.stats().foreign_values, 1);
    let loads = AtomicU64::new(0);
    let value = cache
        .get_or_load(&5, async {
            loads.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>("fresh".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(
        (value.as_str(), loads.load(Ordering::Relaxed)),
        ("fresh", 1)
    );
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        postcard::from_bytes::<String>(&stored).unwrap(),
        "fresh",
        "overwritten"
    );

    // A version bump reads nothing of version 1.
    let bumped = tiered(config.version(2)).await;
    assert_eq!(bumped.get(&5).await, None);
}

/// A `redis-server` this test owns, on a free loopback port.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (install Debian's redis-server): {e}")
            });
        let server = OwnRedis { port, child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_requests_still_succeed_and_after_a_restart_nothing_stale_is_served() {
    let mut server = OwnRedis::start(free_port());
    let config = TierConfig::new(server.url())
        .namespace(namespace())
        .op_timeout(Duration::from_millis(50))
        .breaker(3, Duration::from_millis(200))
        .max_stale(Duration::from_millis(300));
    let (a, b) = (tiered(config.clone()).await, tiered(config).await);
    a.insert(1, "before".to_owned()).await;
    assert_eq!(b.get(&1).await.as_deref(), Some("before"));
    assert!(b.check().await.is_healthy());

    server.kill();
    // Every load still succeeds, each bounded by the timeout (two Redis calls at most).
    let mut slowest = Duration::ZERO;
    for i in 0..50u64 {
        let started = Instant::now();
        let value = b
            .get_or_load(&(100 + i), async move {
                Ok::<_, Infallible>(format!("loaded {i}"))
            })
            .await
            .unwrap();
        assert_eq!(value, format!("loaded {i}"));
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(250),
        "slowest load {slowest:?}"
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            !b.check().await.is_healthy()
        })
        .await,
        "health says degraded while Redis is down"
    );
    let skipped = b.stats().redis_skipped;
    assert!(skipped > 0, "the breaker spared calls to a dead Redis");

    // The staleness bound: past it, the old value is no longer served.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(b.get(&1).await, None, "served past the staleness bound");

    let server = OwnRedis::start(server.port);
    assert!(
        eventually(Duration::from_secs(5), || async {
            a.stats().channel_up && b.stats().channel_up
        })
        .await,
        "both caches subscribe again"
    );
    // Wait for a's breaker to close, then update through it.
    assert!(
        eventually(Duration::from_secs(3), || async {
            a.insert(1, "after".to_owned()).await;
            b.get(&1).await.as_deref() == Some("after")
        })
        .await,
        "b sees the update made after the restart"
    );
    assert!(b.check().await.is_healthy());
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_in_one_instance_load_once() {
    let cache = Arc::new(tiered(TierConfig::new(redis_url()).namespace(namespace())).await);
    let loads = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&42, async {
                        loads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Ok::<_, Infallible>("once".to_owned())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "once");
    }
    assert_eq!(loads.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stampede_lock_concurrent_misses_on_two_instances_load_once() {
    let config = TierConfig::new(redis_url())
        .namespace(namespace())
        .stampede_lock(Duration::from_millis(1_000));
    let caches = [
        Arc::new(tiered(config.clone()).await),
        Arc::new(tiered(config).await),
    ];
    let loads = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (cache, loads) = (caches[i % 2].clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&77, async {
                        loads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Infallible>("loaded once".to_owned())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "loaded once");
    }
    assert_eq!(
        loads.load(Ordering::Relaxed),
        1,
        "one load across both instances"
    );
    let (a, b) = (caches[0].stats(), caches[1].stats());
    assert_eq!(a.locks_won + b.locks_won, 1);
    assert_eq!(
        a.locks_waited + b.locks_waited,
        1,
        "the other instance waited"
    );
    assert_eq!(a.lock_timeouts + b.lock_timeouts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_that_does_not_answer_in_time_is_not_waited_for_longer() {
    let ns = namespace();
    let config = TierConfig::new(redis_url())
        .namespace(ns.clone())
        .stampede_lock(Duration::from_millis(100));
    let cache = tiered(config).await;
    // Another "instance" took the lock and died.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let mut lock = format!("{ns}:v1:lock:").into_bytes();
    lock.extend(postcard::to_allocvec(&5u64).unwrap());
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("dead")
        .arg("PX")
        .arg(5_000)
        .query_async(&mut raw)
        .await
        .unwrap();
    let started = Instant::now();
    let value = cache
        .get_or_load(&5, async { Ok::<_, Infallible>("local".to_owned()) })
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(value, "local");
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(500),
        "{waited:?}"
    );
    assert_eq!(cache.stats().lock_timeouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_raced_with_an_update_leaves_neither_tier_stale() {
    let config = TierConfig::new(redis_url()).namespace(namespace());
    let (a, b) = (tiered(config.clone()).await, Arc::new(tiered(config).await));
    // b misses and reads the database ("old") slowly...
    let loading = {
        let b = b.clone();
        tokio::spawn(async move {
            b.get_or_load(&3, async {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok::<_, Infallible>("old".to_owned())
            })
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...while a writes the new value (Redis, and an invalidation b receives mid-load).
    a.insert(3, "new".to_owned()).await;
    assert_eq!(
        loading.await.unwrap(),
        "old",
        "the load answers with what it read"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_ne!(
        b.first_tier().get(&3).as_deref(),
        Some("old"),
        "the old value must not land in b's first tier after the invalidation"
    );
    assert_eq!(
        b.get(&3).await.as_deref(),
        Some("new"),
        "nor overwrite the new value in Redis"
    );
    assert_eq!(a.get(&3).await.as_deref(), Some("new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_past_the_hard_timeout_still_fills_both_tiers() {
    let config = TierConfig::new(redis_url()).namespace(namespace());
    let first = Cache::<u64, String>::builder()
        .max_entries(100)
        .time_to_live(Duration::from_secs(3600))
        .hard_timeout(Duration::from_millis(40))
        .build()
        .unwrap();
    let a = TieredCache::new(first, config.clone()).await.unwrap();
    let b = tiered(config).await;
    let started = Instant::now();
    let err = a
        .get_or_refresh(&11, || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, Infallible>("late".to_owned())
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        a.first_tier().get(&11).as_deref(),
        Some("late"),
        "a's first tier"
    );
    assert_eq!(
        b.get(&11).await.as_deref(),
        Some("late"),
        "Redis, read by b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_future_stays_small_and_a_hit_counts_once() {
    // The miss path (Redis, the stampede lock, the load, the write-back) is boxed: a caller's
    // future is moved whole on every await of its parents, hits included (it was 9 KiB).
    let cache = tiered(TierConfig::new(redis_url()).namespace(namespace())).await;
    let lookup = cache.get_or_load_opt_served(&1, async { Ok::<_, std::io::Error>(None) });
    assert!(
        std::mem::size_of_val(&lookup) <= 256,
        "{} bytes",
        std::mem::size_of_val(&lookup)
    );
    drop(lookup);
    let get = cache.get(&1);
    assert!(
        std::mem::size_of_val(&get) <= 256,
        "{} bytes",
        std::mem::size_of_val(&get)
    );
    drop(get);

    let (v, served) = cache
        .get_or_load_opt_served(&7, async {
            Ok::<_, std::io::Error>(Some("seven".to_owned()))
        })
        .await
        .unwrap();
    assert_eq!(
        (v.as_deref(), served),
        (Some("seven"), veza_cache::Served::Loaded)
    );
    let (v, served) = cache
        .get_or_load_opt_served(&7, async { Ok::<_, std::io::Error>(None) })
        .await
        .unwrap();
    assert_eq!(
        (v.as_deref(), served),
        (Some("seven"), veza_cache::Served::FirstTier)
    );
    let stats = cache.first_tier().stats();
    assert_eq!((stats.hits, stats.misses), (1, 1), "one miss, then one hit");
}

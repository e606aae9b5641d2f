//! `get_or_refresh` (feature `tokio`): refresh-ahead replaces a value before it expires
//! without making a hit wait; a soft timeout answers with the stale value while the load goes
//! on; a hard timeout answers with an error, and the load still stores its value.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use veza_cache::Cache;

type Loads = Arc<AtomicU64>;

/// A loader that counts its runs, sleeps `delay`, then gives `value`.
fn slow(
    loads: &Loads,
    delay: Duration,
    value: &str,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, std::io::Error>> + Send>,
> + Send
+ 'static {
    let (loads, value) = (loads.clone(), value.to_owned());
    move || {
        Box::pin(async move {
            loads.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            Ok(value)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_replaces_a_value_before_it_expires_and_hits_never_wait() {
    let cache = Cache::<u64, String>::builder()
        .max_entries(100)
        .time_to_live(Duration::from_millis(1_000))
        .refresh_ahead(Duration::from_millis(800))
        .build()
        .unwrap();
    let loads = Loads::default();
    let v = cache
        .get_or_refresh(&1, slow(&loads, Duration::ZERO, "v1"))
        .await
        .unwrap();
    assert_eq!(v, "v1");
    tokio::time::sleep(Duration::from_millis(300)).await; // 700 ms left: due for refresh
    let started = Instant::now();
    let v = cache
        .get_or_refresh(&1, slow(&loads, Duration::from_millis(300), "v2"))
        .await
        .unwrap();
    assert_eq!(v, "v1", "the hit answers with the current value");
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    // A second hit while the refresh runs starts no second load.
    let _ = cache
        .get_or_refresh(&1, slow(&loads, Duration::ZERO, "v3"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await; // v1 would expire in 250 ms
    assert_eq!(
        cache.get(&1).as_deref(),
        Some("v2"),
        "refreshed before it expired"
    );
    assert_eq!(loads.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_timeout_answers_with_the_stale_value_and_the_load_goes_on() {
    let cache = Cache::<u64, String>::builder()
        .max_entries(100)
        .time_to_live(Duration::from_secs(10))
        .fail_safe(Duration::from_secs(10))
        .soft_timeout(Duration::from_millis(30))
        .build()
        .unwrap();
    let loads = Loads::default();
    cache.insert_with_ttl(1, "old".to_owned(), Duration::from_millis(20));
    tokio::time::sleep(Duration::from_millis(40)).await;
    let started = Instant::now();
    let v = cache
        .get_or_refresh(&1, slow(&loads, Duration::from_millis(500), "new"))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(v, "old");
    assert!(
        waited >= Duration::from_millis(25) && waited < Duration::from_millis(300),
        "{waited:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        cache.get(&1).as_deref(),
        Some("new"),
        "the load finished in the background"
    );
    assert_eq!(loads.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_timeout_gives_an_error_and_the_load_still_stores_its_value() {
    let cache = Cache::<u64, String>::builder()
        .max_entries(100)
        .hard_timeout(Duration::from_millis(40))
        .build()
        .unwrap();
    let loads = Loads::default();
    let started = Instant::now();
    let err = cache
        .get_or_refresh(&9, slow(&loads, Duration::from_millis(500), "late"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    // Callers meanwhile join the same load instead of starting another.
    let again = cache
        .get_or_refresh(&9, slow(&loads, Duration::ZERO, "other"))
        .await;
    assert!(again.is_err(), "still loading: the same timeout");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cache.get(&9).as_deref(), Some("late"));
    assert_eq!(loads.load(Ordering::Relaxed), 1);
}

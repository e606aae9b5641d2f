//! Fail-safe: past its time to live a value is a miss, but when the load that replaces it
//! fails, callers get the old value (for a bounded grace) instead of the error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use veza_cache::{Cache, Source};
use veza_core::Observe;

fn failing() -> Result<String, std::io::Error> {
    Err(std::io::Error::other("database down"))
}

#[test]
fn a_failed_load_serves_the_stale_value_within_the_grace_and_the_error_after() {
    let cache = Cache::<u64, String>::builder()
        .max_entries(100)
        .time_to_live(Duration::from_millis(30))
        .fail_safe(Duration::from_millis(300))
        .build()
        .unwrap();
    cache.get_or_load(&1, || "v1".to_owned());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cache.get(&1), None, "past its time to live, a read misses");
    let served = cache.try_get_or_load(&1, failing).unwrap();
    assert_eq!(
        served, "v1",
        "the load failed: the stale value instead of the error"
    );
    let entry = cache.entry_or_load(&2, || "other".to_owned());
    assert_eq!(entry.source(), Source::Loaded);
    // The next call loads again, and a success replaces the stale value.
    let loads = AtomicU64::new(0);
    let fresh = cache
        .try_get_or_load(&1, || {
            loads.fetch_add(1, Ordering::Relaxed);
            Ok::<_, std::io::Error>("v2".to_owned())
        })
        .unwrap();
    assert_eq!((fresh.as_str(), loads.load(Ordering::Relaxed)), ("v2", 1));
    assert_eq!(cache.get(&1).as_deref(), Some("v2"));

    // Past the grace, the error comes through.
    std::thread::sleep(Duration::from_millis(360));
    let err = cache.try_get_or_load(&1, failing).unwrap_err();
    assert!(err.to_string().contains("database down"), "{err}");
    let stats = cache.snapshot();
    assert_eq!(stats.load_failures, 2, "both failures counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_waiting_on_a_failed_load_gets_the_stale_value() {
    let cache = Arc::new(
        Cache::<u64, String>::builder()
            .max_entries(100)
            .time_to_live(Duration::from_millis(20))
            .fail_safe(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    cache.insert(7, "old".to_owned());
    tokio::time::sleep(Duration::from_millis(40)).await;
    let loads = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                cache
                    .try_get_or_load_async(&7, async {
                        loads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        failing()
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "old");
    }
    assert_eq!(loads.load(Ordering::Relaxed), 1, "one load for all of them");
}

#[test]
fn without_fail_safe_a_failed_load_is_an_error() {
    let cache = Cache::<u64, String>::builder()
        .max_entries(100)
        .time_to_live(Duration::from_millis(10))
        .build()
        .unwrap();
    cache.insert(1, "v1".to_owned());
    std::thread::sleep(Duration::from_millis(20));
    assert!(cache.try_get_or_load(&1, failing).is_err());
}

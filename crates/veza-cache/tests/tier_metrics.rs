//! The tiered cache's counts reach the `metrics` recorder under the `cache_tier_*` catalog
//! names, labelled with the first tier's name, at each publication (each scrape).
#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use veza_cache::{Cache, TierConfig, TieredCache};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_counts_are_published_with_the_cache_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let namespace = format!("veza-test-metrics-{}", std::process::id());
    let config = TierConfig::new(redis_url()).namespace(namespace);
    let first = |name: &str| {
        Cache::<u64, String>::builder()
            .name(name)
            .max_entries(100)
            .build()
            .unwrap()
    };
    let a = TieredCache::new(first("tier-a"), config.clone())
        .await
        .unwrap();
    let b = TieredCache::new(first("tier-b"), config).await.unwrap();
    a.insert(1, "one".to_owned()).await; // sent (b has nothing to drop yet: still counted)
    assert_eq!(b.get(&1).await.as_deref(), Some("one")); // b: a Redis hit
    assert_eq!(b.get(&2).await, None); // b: a Redis miss
    a.insert(1, "uno".to_owned()).await; // sent again; b drops its copy
    let deadline = Instant::now() + Duration::from_secs(1);
    while b.stats().invalidations_received < 2 {
        assert!(Instant::now() < deadline, "no invalidation reached b");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    veza_core::publish::publish_all();

    let values = snapshotter.snapshot().into_vec();
    let find = |name: &str, cache: &str, label: Option<(&str, &str)>| {
        values
            .iter()
            .find(|(k, _, _, _)| {
                let key = k.key();
                key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "cache" && l.value() == cache)
                    && label.is_none_or(|(lk, lv)| {
                        key.labels().any(|l| l.key() == lk && l.value() == lv)
                    })
            })
            .map(|(_, _, _, v)| v)
            .unwrap_or_else(|| panic!("{name} {cache} {label:?} missing"))
    };
    let lookups = |cache, outcome| {
        find(
            "cache_tier_lookups_total",
            cache,
            Some(("outcome", outcome)),
        )
    };
    assert_eq!(lookups("tier-b", "hit"), &DebugValue::Counter(1));
    assert_eq!(lookups("tier-b", "miss"), &DebugValue::Counter(1));
    assert_eq!(lookups("tier-b", "error"), &DebugValue::Counter(0));
    let sent = find(
        "cache_tier_invalidations_total",
        "tier-a",
        Some(("direction", "sent")),
    );
    assert_eq!(sent, &DebugValue::Counter(2));
    let received = find(
        "cache_tier_invalidations_total",
        "tier-b",
        Some(("direction", "received")),
    );
    assert_eq!(received, &DebugValue::Counter(2));
    assert_eq!(
        find("cache_tier_channel_up", "tier-b", None),
        &DebugValue::Gauge(1.0.into())
    );
    assert_eq!(
        find("cache_tier_breaker_open", "tier-b", None),
        &DebugValue::Gauge(0.0.into())
    );
    assert_eq!(
        find("cache_tier_errors_total", "tier-a", None),
        &DebugValue::Counter(0)
    );
}

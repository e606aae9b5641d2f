//! Cache statistics reach the `metrics` recorder under the catalog names, labelled by cache.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use veza_cache::Cache;
use veza_core::Observe;

#[test]
fn stats_are_published_with_the_cache_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = metrics::with_local_recorder(&recorder, || {
        Cache::<u32, u32>::builder()
            .name("users")
            .max_entries(10)
            .build()
            .unwrap()
    });
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get(&3), None);
    let _ = cache.snapshot();

    let values: Vec<_> = snapshotter.snapshot().into_vec();
    let find = |name: &str| {
        values
            .iter()
            .find(|(k, _, _, _)| {
                k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "cache" && l.value() == "users")
            })
            .map(|(_, _, _, v)| v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(find("cache_hits_total"), &DebugValue::Counter(1));
    assert_eq!(find("cache_misses_total"), &DebugValue::Counter(2));
    assert_eq!(find("cache_inserts_total"), &DebugValue::Counter(1));
    assert_eq!(find("cache_entries"), &DebugValue::Gauge(1.0.into()));
    match find("cache_hit_ratio") {
        DebugValue::Gauge(v) => assert!((v.into_inner() - 1.0 / 3.0).abs() < 1e-9),
        other => panic!("{other:?}"),
    }
}

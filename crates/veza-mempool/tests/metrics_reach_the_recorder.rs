//! Pool and budget figures reach the `metrics` recorder under the catalog names.

use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use veza_core::Observe;
use veza_mempool::{MemoryBudget, Pool, UsageSource};

/// A metric's name, labels and value.
type Metric = (String, Vec<(String, String)>, DebugValue);

#[test]
fn pool_and_budget_metrics_are_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (pool, budget) = metrics::with_local_recorder(&recorder, || {
        let pool = Pool::builder(Vec::<u8>::new)
            .name("rows")
            .max_idle(2)
            .build();
        let budget =
            MemoryBudget::with_source(1000, UsageSource::Custom(Arc::new(|| Some(900)))).unwrap();
        (pool, budget)
    });
    let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
    drop(held);
    drop(pool.get());
    let _ = pool.snapshot(); // publishes
    budget.sample().unwrap();

    let values: Vec<Metric> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| {
            let labels = k
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (k.key().name().to_owned(), labels, v)
        })
        .collect();
    let get = |name: &str, label: Option<(&str, &str)>| {
        values
            .iter()
            .find(|(n, labels, _)| {
                n == name
                    && label.is_none_or(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(
        get("mempool_misses_total", Some(("pool", "rows"))),
        &DebugValue::Counter(5)
    );
    assert_eq!(
        get("mempool_hits_total", Some(("pool", "rows"))),
        &DebugValue::Counter(1)
    );
    assert_eq!(
        get("mempool_returns_total", Some(("pool", "rows"))),
        &DebugValue::Counter(3)
    );
    assert_eq!(
        get("mempool_discards_total", Some(("reason", "full"))),
        &DebugValue::Counter(3)
    );
    assert_eq!(
        get("mempool_idle_objects", Some(("pool", "rows"))),
        &DebugValue::Gauge(2.0.into())
    );
    assert_eq!(
        get("memory_budget_bytes", None),
        &DebugValue::Gauge(1000.0.into())
    );
    assert_eq!(
        get("memory_budget_used_bytes", None),
        &DebugValue::Gauge(900.0.into())
    );
    assert_eq!(
        get("memory_pressure_level", None),
        &DebugValue::Gauge(1.0.into())
    );
    assert_eq!(
        get("memory_pressure_changes_total", Some(("level", "high"))),
        &DebugValue::Counter(1)
    );
}

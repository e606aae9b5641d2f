//! The performance monitor gives a typed snapshot that refreshes and serialises to JSON.

use veza_core::Observe;
use veza_metrics::PerformanceMonitor;

#[cfg(target_os = "linux")]
#[test]
fn the_snapshot_refreshes_and_serialises() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let monitor = PerformanceMonitor::new(Some(rt.handle().clone()));
    let first = monitor.snapshot();
    assert!(first.resident_bytes > 0 && first.threads >= 1);
    assert_eq!(first.runtime_workers, Some(2));
    // Burn some CPU, then refresh: the process used a measurable share of a core.
    let end = std::time::Instant::now() + std::time::Duration::from_millis(200);
    let mut x = 0u64;
    while std::time::Instant::now() < end {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let second = monitor.refresh();
    assert!(second.process_cpu_ratio > 0.3, "{second:?}");
    assert!(second.taken_at_seconds >= first.taken_at_seconds);
    assert_eq!(monitor.snapshot(), second);
    let json = serde_json::to_value(&second).unwrap();
    assert_eq!(json["threads"], second.threads);
    assert!(json["uptime_seconds"].as_f64().unwrap() >= 0.0);
}

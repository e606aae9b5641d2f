//! The pool reports exact statistics through `Observe`, its health through `HealthCheck`, and
//! the catalog metrics through the `metrics` recorder.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use veza_core::{Health, HealthCheck, Observe};
use veza_workers::{Priority, WorkerPool};

fn ready<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the health check should be ready at once"),
    }
}

#[test]
fn stats_and_health_follow_the_queue() {
    let pool = WorkerPool::builder()
        .name("stats")
        .workers(1)
        .capacity(10)
        .build()
        .unwrap();
    assert_eq!(ready(pool.check()), Health::Healthy);
    assert_eq!(pool.name(), "stats");
    let gate = common::block_worker(&pool);
    for p in [Priority::High, Priority::High, Priority::Normal] {
        pool.priority(p).execute(|| {}).unwrap();
    }
    for _ in 0..6 {
        pool.priority(Priority::Low).execute(|| {}).unwrap();
    }
    let stats = pool.snapshot();
    assert_eq!(stats.depth, 9);
    assert_eq!(stats.depth_by_priority, [2, 1, 6]);
    assert_eq!((stats.busy, stats.workers, stats.capacity), (1, 1, 10));
    assert_eq!(stats.submitted, 10);
    assert!(
        matches!(ready(pool.check()), Health::Degraded(_)),
        "9/10 full"
    );

    gate.open();
    pool.shutdown();
    let stats = pool.snapshot();
    assert_eq!((stats.depth, stats.busy, stats.completed), (0, 0, 10));
    assert!(!ready(pool.check()).is_ready());
}

#[test]
fn catalog_metrics_reach_the_recorder() {
    common::quiet_deliberate_panics();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Handles are registered when the pool is built, so only the build needs the recorder.
    let pool = metrics::with_local_recorder(&recorder, || {
        WorkerPool::builder()
            .name("metered")
            .workers(2)
            .capacity(100)
            .build()
            .unwrap()
    });
    for i in 0..2000u32 {
        pool.execute(move || {
            if i % 200 == 0 {
                panic!("deliberate metric panic");
            }
        })
        .unwrap();
    }
    pool.shutdown();
    assert!(pool.try_execute(|| {}).is_err());
    let _ = pool.snapshot(); // publishes the rejection

    let metrics: Vec<(CompositeKey, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    let find = |kind: MetricKind, name: &str, label: Option<(&str, &str)>| {
        metrics
            .iter()
            .find(|(k, _)| {
                k.kind() == kind
                    && k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "pool" && l.value() == "metered")
                    && label.is_none_or(|(lk, lv)| {
                        k.key().labels().any(|l| l.key() == lk && l.value() == lv)
                    })
            })
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} {label:?}"))
    };
    let counter = |name, label| match find(MetricKind::Counter, name, label) {
        DebugValue::Counter(v) => *v,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(counter("workers_jobs_submitted_total", None), 2000);
    assert_eq!(counter("workers_jobs_completed_total", None), 2000);
    assert_eq!(counter("workers_jobs_panicked_total", None), 10);
    assert_eq!(
        counter("workers_jobs_rejected_total", Some(("reason", "closed"))),
        1
    );
    match find(
        MetricKind::Gauge,
        "workers_queue_depth",
        Some(("priority", "normal")),
    ) {
        DebugValue::Gauge(v) => assert_eq!(v.into_inner(), 0.0),
        other => panic!("{other:?}"),
    }
    match find(MetricKind::Histogram, "workers_job_duration_seconds", None) {
        // 1 job in 64 is timed when jobs are fast: 2000 jobs on 2 workers give ~31 samples.
        DebugValue::Histogram(samples) => assert!(samples.len() >= 20, "{}", samples.len()),
        other => panic!("{other:?}"),
    }
    match find(MetricKind::Histogram, "workers_queue_wait_seconds", None) {
        DebugValue::Histogram(samples) => assert!(samples.len() >= 20, "{}", samples.len()),
        other => panic!("{other:?}"),
    }
}

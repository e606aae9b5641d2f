//! The guide's "monitor slow queries": a timed query past the pool's threshold counts once in
//! `db_slow_queries_total` (and, with the `tracing` feature, logs exactly one event and runs
//! in a `db.query` span); faster ones and a pool without a threshold count nothing.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing::span;

/// What the test subscriber saw: slow-query events (their `statement`) and span names.
#[derive(Default)]
struct Seen {
    slow: Vec<String>,
    spans: Vec<String>,
}

struct Recording(Arc<Mutex<Seen>>);

struct Statement(Option<String>);

impl Visit for Statement {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "statement" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "statement" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Recording {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut seen = self.0.lock().unwrap();
        seen.spans.push(span.metadata().name().to_owned());
        span::Id::from_u64(seen.spans.len() as u64)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "veza_dbpool::slow_query" {
            let mut statement = Statement(None);
            event.record(&mut statement);
            let name = statement.0.unwrap_or_default();
            self.0.lock().unwrap().slow.push(name);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// `db_slow_queries_total` for `statement` in `pool`, if the recorder has it.
fn slow_count(
    snapshot: &[(
        metrics_util::CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )],
    pool: &str,
    statement: &str,
) -> Option<u64> {
    snapshot.iter().find_map(|(k, _, _, v)| {
        let key = k.key();
        let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
        let ours = key.name() == "db_slow_queries_total"
            && labels.contains(&("pool", pool))
            && labels.contains(&("statement", statement));
        match v {
            DebugValue::Counter(n) if ours => Some(*n),
            _ => None,
        }
    })
}

#[test]
fn a_slow_query_counts_once_and_logs_one_event() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let subscriber = Recording(seen.clone());
    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            common::runtime().block_on(async {
                let mut config = common::config("slow", 1);
                config.name = "slowpool".to_owned();
                config.slow_query_threshold = Some(Duration::from_millis(200));
                let pool = veza_dbpool::Pool::new(config).unwrap();
                let conn = pool.get().await.unwrap();
                conn.timed("fast", conn.query_one("SELECT 1", &[]))
                    .await
                    .unwrap();
                conn.timed("sleepy", conn.query_one("SELECT pg_sleep(0.3)", &[]))
                    .await
                    .unwrap();
                drop(conn);

                // The same slow query on a pool without a threshold counts nothing.
                let mut config = common::config("unwatched", 1);
                config.name = "unwatched".to_owned();
                config.slow_query_threshold = None;
                let pool = veza_dbpool::Pool::new(config).unwrap();
                let conn = pool.get().await.unwrap();
                conn.timed("sleepy", conn.query_one("SELECT pg_sleep(0.3)", &[]))
                    .await
                    .unwrap();
            });
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(slow_count(&snapshot, "slowpool", "sleepy"), Some(1));
    assert_eq!(slow_count(&snapshot, "slowpool", "fast"), None);
    assert_eq!(slow_count(&snapshot, "unwatched", "sleepy"), None);

    let seen = seen.lock().unwrap();
    if cfg!(feature = "tracing") {
        assert_eq!(seen.slow, ["sleepy"], "exactly one slow-query event");
        let query_spans = seen.spans.iter().filter(|s| *s == "db.query").count();
        assert_eq!(query_spans, 3, "one span per timed query");
    } else {
        assert!(
            seen.slow.is_empty() && seen.spans.is_empty(),
            "no tracing without the feature"
        );
    }
}

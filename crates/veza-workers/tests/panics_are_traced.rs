//! With the `tracing` feature, each panicking job logs exactly one `ERROR` event (target
//! `veza_workers::panic`) with its message, and each job runs in a `workers.job` span;
//! without the feature nothing reaches the subscriber.

mod common;

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span;
use veza_workers::{JobError, WorkerPool};

#[derive(Default)]
struct Seen {
    panics: Vec<String>,
    job_spans: usize,
}

struct Recording(Arc<Mutex<Seen>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "panic" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Recording {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut seen = self.0.lock().unwrap();
        if span.metadata().name() == "workers.job" {
            seen.job_spans += 1;
        }
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "veza_workers::panic" {
            assert_eq!(*event.metadata().level(), tracing::Level::ERROR);
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().panics.push(message.0);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn each_panicking_job_logs_one_error_event() {
    common::quiet_deliberate_panics();
    let seen = Arc::new(Mutex::new(Seen::default()));
    // The workers are threads of their own: the subscriber is the global one (this binary
    // holds this one test).
    tracing::subscriber::set_global_default(Recording(seen.clone())).unwrap();
    let pool = WorkerPool::builder().workers(2).build().unwrap();
    let handle = pool
        .submit(|| -> u32 { panic!("deliberate: with a handle") })
        .unwrap();
    assert!(matches!(handle.join(), Err(JobError::Panicked(_))));
    pool.execute(|| panic!("deliberate: fire and forget"))
        .unwrap();
    for i in 0..8 {
        assert_eq!(pool.submit(move || i).unwrap().join().unwrap(), i);
    }
    pool.shutdown();
    let seen = seen.lock().unwrap();
    if cfg!(feature = "tracing") {
        let mut panics = seen.panics.clone();
        panics.sort();
        assert_eq!(panics.len(), 2, "{panics:?}");
        assert!(
            panics[0].contains("deliberate: fire and forget"),
            "{panics:?}"
        );
        assert!(
            panics[1].contains("deliberate: with a handle"),
            "{panics:?}"
        );
        assert_eq!(seen.job_spans, 10, "one span per job run");
    } else {
        assert!(seen.panics.is_empty() && seen.job_spans == 0);
    }
}

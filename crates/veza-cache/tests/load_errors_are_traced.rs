//! With the `tracing` feature, a failed load logs one `WARN` event (target `veza_cache::load`)
//! carrying the cache's name and the error, however many callers waited on it; successful
//! loads log nothing.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span;
use veza_cache::Cache;

struct Recording(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() != "message" {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }
}

impl tracing::Subscriber for Recording {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "veza_cache::load" {
            assert_eq!(*event.metadata().level(), tracing::Level::WARN);
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn a_failed_load_logs_one_warning() {
    let events = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::with_default(Recording(events.clone()), || {
        let cache: Cache<u32, u32> = Cache::builder().name("profiles").build().unwrap();
        let err = cache
            .try_get_or_load(&1, || Err::<u32, _>("upstream down"))
            .unwrap_err();
        assert!(err.to_string().contains("upstream down"));
        assert_eq!(cache.get_or_load(&2, || 2), 2);
    });
    let events = events.lock().unwrap();
    if cfg!(feature = "tracing") {
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].contains("cache=profiles"), "{events:?}");
        assert!(events[0].contains("upstream down"), "{events:?}");
    } else {
        assert!(events.is_empty());
    }
}

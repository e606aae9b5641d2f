//! With the `tracing` feature, each request (and each redirect hop) runs in an
//! `http.request` span carrying method, host, path (never the query), status and duration;
//! without the feature nothing reaches the subscriber.

mod common;

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span;
use veza_httpopt::Client;

#[derive(Default)]
struct Seen {
    /// (path, status) per `http.request` span, by span id.
    spans: Vec<(String, String)>,
    other: usize,
}

struct Recording(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut (String, String));

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "path" {
            self.0.0 = value.to_owned();
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "status" {
            self.0.1 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "path" => self.0.0 = format!("{value:?}"),
            "status" => self.0.1 = format!("{value:?}"),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Recording {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &span::Attributes<'_>) -> span::Id {
        let mut seen = self.0.lock().unwrap();
        if attrs.metadata().name() != "http.request" {
            seen.other += 1;
            return span::Id::from_u64(u64::MAX - seen.other as u64);
        }
        let mut entry = (String::new(), String::new());
        attrs.record(&mut Fields(&mut entry));
        seen.spans.push(entry);
        span::Id::from_u64(seen.spans.len() as u64)
    }
    fn record(&self, id: &span::Id, values: &span::Record<'_>) {
        let mut seen = self.0.lock().unwrap();
        let i = id.into_u64() as usize;
        if let Some(entry) = i.checked_sub(1).and_then(|i| seen.spans.get_mut(i)) {
            values.record(&mut Fields(entry));
        }
    }
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[tokio::test]
async fn each_request_and_hop_has_a_span() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    tracing::subscriber::set_global_default(Recording(seen.clone())).unwrap();
    let s = common::serve(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/a" {
            common::response(302, &[("location", "/b?token=secret".to_owned())], "")
        } else {
            common::response(200, &[], "ok")
        }
    })
    .await;
    let c = Client::builder().max_redirects(1).build().unwrap();
    let r = c.get(s.url("/a?token=secret")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let spans = seen.lock().unwrap().spans.clone();
    if cfg!(feature = "tracing") {
        assert_eq!(
            spans,
            [
                ("/a".to_owned(), "302".to_owned()),
                ("/b".to_owned(), "200".to_owned())
            ]
        );
        assert!(spans.iter().all(|(p, _)| !p.contains("secret")));
    } else {
        assert!(spans.is_empty());
    }
}

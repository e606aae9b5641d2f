//! The client's metrics under the catalog's names, read from a debugging recorder.

mod common;

use std::time::Duration;

use common::{response, serve};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use veza_core::catalog::http_client as cat;
use veza_httpopt::Client;

type Entries = Vec<(
    CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// Sums the counters named `name` with these labels. (A debugging snapshot drains the
/// counters, so the test takes one snapshot and reads everything from it.)
fn counter(all: &Entries, name: &str, labels: &[(&str, &str)]) -> u64 {
    all.iter()
        .filter(|(k, ..)| {
            k.key().name() == name
                && labels
                    .iter()
                    .all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
        })
        .map(|(.., v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn requests_cache_and_connections_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    recorder.install().unwrap();

    let s = serve(|req| async move {
        match req.uri().path() {
            "/missing" => response(404, &[], ""),
            _ => response(200, &[("cache-control", "max-age=60".into())], "x"),
        }
    })
    .await;
    let c = Client::builder().build().unwrap();
    for _ in 0..3 {
        c.get(s.url("/a")).send().await.unwrap();
    }
    c.get(s.url("/missing")).send().await.unwrap();
    let _ = Client::builder()
        .max_retries(0)
        .build()
        .unwrap()
        .get("http://127.0.0.1:1/")
        .send()
        .await;

    let host = "127.0.0.1";
    let all: Entries = snap.snapshot().into_vec();
    let snap = &all;
    assert_eq!(
        counter(
            snap,
            cat::REQUESTS.name,
            &[("host", host), ("status_class", "2xx"), ("method", "GET")]
        ),
        3
    );
    assert_eq!(
        counter(snap, cat::REQUESTS.name, &[("status_class", "4xx")]),
        1
    );
    assert_eq!(
        counter(snap, cat::REQUESTS.name, &[("status_class", "error")]),
        1
    );
    assert_eq!(counter(snap, cat::CACHE_HITS.name, &[("host", host)]), 2);
    // /a once, /missing, and the refused request (same host label).
    assert_eq!(counter(snap, cat::CACHE_MISSES.name, &[("host", host)]), 3);
    assert_eq!(
        counter(snap, cat::CONNECTIONS_OPENED.name, &[("host", host)]),
        1
    );
    let gauges: Vec<f64> = snap
        .iter()
        .filter(|(k, ..)| k.key().name() == cat::CONNECTIONS_OPEN.name)
        .filter_map(|(.., v)| match v {
            DebugValue::Gauge(g) => Some(g.into_inner()),
            _ => None,
        })
        .collect();
    assert_eq!(gauges, vec![1.0]);
    let stored = snap.iter().any(|(k, .., v)| {
        k.key().name() == cat::CACHE_STORED.name
            && matches!(v, DebugValue::Gauge(g) if g.into_inner() > 0.0)
    });
    assert!(stored, "stored bytes are reported");
    let durations = snap
        .iter()
        .filter(|(k, ..)| k.key().name() == cat::REQUEST_DURATION.name)
        .map(|(.., v)| match v {
            DebugValue::Histogram(h) => h.len(),
            _ => 0,
        })
        .sum::<usize>();
    assert_eq!(durations, 5);
    drop(c);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

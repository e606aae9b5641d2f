//! The per-host circuit breaker: failures in a row open it (requests fail at once, the origin
//! is spared), one probe after `open_for` closes or reopens it, other hosts are not affected,
//! and a fresh stored response is still served while it is open.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use veza_core::{Classify, ErrorKind};
use veza_httpopt::{BreakerConfig, Client, Error};

#[tokio::test]
async fn failures_open_the_circuit_and_a_probe_closes_it() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let s = common::serve(move |req: http::Request<hyper::body::Incoming>| {
        let up = h.load(Ordering::SeqCst);
        async move {
            if req.uri().path() == "/cached" {
                common::response(200, &[("cache-control", "max-age=3600".to_owned())], "kept")
            } else if up {
                common::response(200, &[], "ok")
            } else {
                common::response(503, &[], "")
            }
        }
    })
    .await;
    let other = common::serve(|_req: http::Request<hyper::body::Incoming>| async move {
        common::response(200, &[], "other")
    })
    .await;
    let mut breaker = BreakerConfig::default();
    breaker.failures = 3;
    breaker.open_for = Duration::from_millis(300);
    let c = Client::builder()
        .max_retries(0)
        .circuit_breaker(breaker)
        .build()
        .unwrap();
    assert_eq!(c.get(s.url("/cached")).send().await.unwrap().body(), "kept");
    for _ in 0..3 {
        assert_eq!(c.get(s.url("/x")).send().await.unwrap().status(), 503);
    }
    let seen = s.requests();
    // Open: fails at once, nothing sent.
    let start = Instant::now();
    let err = c.get(s.url("/x")).send().await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(s.requests(), seen, "an open circuit sends nothing");
    // The cache still answers; another host is not affected.
    assert_eq!(c.get(s.url("/cached")).send().await.unwrap().body(), "kept");
    assert_eq!(c.get(other.url("/y")).send().await.unwrap().body(), "other");
    // After open_for, a failing probe opens it again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.get(s.url("/x")).send().await.unwrap().status(), 503);
    assert!(matches!(
        c.get(s.url("/x")).send().await.unwrap_err(),
        Error::CircuitOpen { .. }
    ));
    // The origin recovers: the next probe closes the circuit.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(c.get(s.url("/x")).send().await.unwrap().body(), "ok");
    for _ in 0..5 {
        assert_eq!(c.get(s.url("/x")).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn only_one_probe_goes_out_while_half_open() {
    let s = common::serve(|_req: http::Request<hyper::body::Incoming>| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        common::response(503, &[], "")
    })
    .await;
    let mut breaker = BreakerConfig::default();
    breaker.failures = 1;
    breaker.open_for = Duration::from_millis(100);
    let c = Client::builder()
        .max_retries(0)
        .circuit_breaker(breaker)
        .build()
        .unwrap();
    c.get(s.url("/x")).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = s.requests();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (c, url) = (c.clone(), s.url("/x"));
            tokio::spawn(async move { c.get(url).send().await })
        })
        .collect();
    let mut open = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Err(Error::CircuitOpen { .. })) {
            open += 1;
        }
    }
    assert_eq!(s.requests() - before, 1, "one probe");
    assert_eq!(open, 4);
}

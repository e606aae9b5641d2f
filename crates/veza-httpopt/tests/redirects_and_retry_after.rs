//! Redirects (off by default; followed up to `max_redirects`, with the method rules of RFC
//! 9110 §15.4 and credentials kept to their origin) and `Retry-After` on 429 and 503 (RFC 9110
//! §10.2.3), against real origins on loopback.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use veza_core::{Classify, ErrorKind};
use veza_httpopt::{Client, Error};

/// What an origin saw: method, path, `Authorization`, body.
type Log = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// An origin answering `answer(path, n)` (n: requests so far) and logging each request.
async fn origin(
    answer: impl Fn(&str, usize) -> (u16, Vec<(&'static str, String)>) + Send + Sync + 'static,
) -> (common::Server, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let answer = Arc::new(answer);
    let server = common::serve(move |req: http::Request<hyper::body::Incoming>| {
        let (seen, answer) = (seen.clone(), answer.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            let auth = parts
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let n = {
                let mut log = seen.lock().unwrap();
                log.push((
                    parts.method.to_string(),
                    parts.uri.path().to_owned(),
                    auth,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                log.len() - 1
            };
            let (status, fields) = answer(parts.uri.path(), n);
            common::response(status, &fields, format!("at {}", parts.uri.path()))
        }
    })
    .await;
    (server, log)
}

fn to(location: &str) -> Vec<(&'static str, String)> {
    vec![("location", location.to_owned())]
}

#[tokio::test]
async fn redirects_are_returned_as_is_by_default_and_followed_when_asked() {
    let (s, log) = origin(|path, _| match path {
        "/a" => (301, to("/b")),
        "/b" => (302, to("c")), // relative to /b's directory
        _ => (200, vec![]),
    })
    .await;
    let plain = Client::builder().build().unwrap();
    let r = plain.get(s.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    let follows = Client::builder().max_redirects(5).build().unwrap();
    let r = follows.get(s.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "at /c");
    let paths: Vec<String> = log.lock().unwrap().iter().map(|l| l.1.clone()).collect();
    assert_eq!(paths, ["/a", "/a", "/b", "/c"]);
}

#[tokio::test]
async fn see_other_turns_a_post_into_a_get_and_307_keeps_it() {
    let (s, log) = origin(|path, _| match path {
        "/form" => (303, to("/done")),
        "/upload" => (307, to("/stored")),
        _ => (200, vec![]),
    })
    .await;
    let c = Client::builder().max_redirects(3).build().unwrap();
    c.post(s.url("/form")).body("a=1").send().await.unwrap();
    c.post(s.url("/upload")).body("bytes").send().await.unwrap();
    let log = log.lock().unwrap().clone();
    let calls: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|(m, p, _, b)| (m.as_str(), p.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/form", "a=1"),
            ("GET", "/done", ""),
            ("POST", "/upload", "bytes"),
            ("POST", "/stored", "bytes"),
        ]
    );
}

#[tokio::test]
async fn credentials_stay_on_their_origin() {
    let (other, other_log) = origin(|_, _| (200, vec![])).await;
    let elsewhere = other.url("/landing");
    let (s, log) = origin(move |path, _| match path {
        "/same" => (302, to("/there")),
        "/away" => (302, to(&elsewhere)),
        _ => (200, vec![]),
    })
    .await;
    let c = Client::builder().max_redirects(3).build().unwrap();
    c.get(s.url("/same"))
        .bearer_auth("secret")
        .send()
        .await
        .unwrap();
    c.get(s.url("/away"))
        .bearer_auth("secret")
        .send()
        .await
        .unwrap();
    let auth_at = |log: &Log, path: &str| {
        log.lock()
            .unwrap()
            .iter()
            .find(|l| l.1 == path)
            .map(|l| l.2.clone())
    };
    assert_eq!(auth_at(&log, "/there").as_deref(), Some("Bearer secret"));
    assert_eq!(
        auth_at(&other_log, "/landing").as_deref(),
        Some(""),
        "sent to another origin"
    );
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_limit() {
    let (s, log) = origin(|path, _| {
        if path == "/ping" {
            (302, to("/pong"))
        } else {
            (302, to("/ping"))
        }
    })
    .await;
    let c = Client::builder().max_redirects(4).build().unwrap();
    let err = c.get(s.url("/ping")).send().await.unwrap_err();
    assert!(matches!(err, Error::TooManyRedirects { limit: 4 }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(
        log.lock().unwrap().len(),
        5,
        "the first request and four redirects"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_on_503_and_429() {
    let (s, log) = origin(|path, n| match (path, n) {
        ("/busy", 0) => (503, vec![("retry-after", "1".to_owned())]),
        ("/busy", _) => (200, vec![]),
        ("/later", _) => (429, vec![("retry-after", "3600".to_owned())]),
        _ => (503, vec![]),
    })
    .await;
    let c = Client::builder().build().unwrap();
    let start = Instant::now();
    let r = c.get(s.url("/busy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    // Past max_retry_after (10 s by default): handed back at once.
    let start = Instant::now();
    let r = c.get(s.url("/later")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(r.error_for_status().unwrap_err().is_retryable());
    // Not idempotent: not retried.
    let r = c.post(s.url("/post")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Without Retry-After: the usual backoff, up to max_retries (2).
    let r = c.get(s.url("/down")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let count = |p: &str| log.lock().unwrap().iter().filter(|l| l.1 == p).count();
    assert_eq!(
        (
            count("/busy"),
            count("/later"),
            count("/post"),
            count("/down")
        ),
        (2, 1, 1, 3)
    );
}

#[tokio::test]
async fn a_streamed_request_follows_redirects_too() {
    let (s, _) = origin(|path, _| match path {
        "/old" => (308, to("/new")),
        _ => (200, vec![]),
    })
    .await;
    let c = Client::builder().max_redirects(2).build().unwrap();
    let mut r = c.get(s.url("/old")).send_streaming().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"at /new");
}

//! An upstream that sends legal-looking numbers no clock can hold, over-long heads, cookies and
//! per-user answers: the client neither panics nor leaks one requester's response to another.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{raw, read_head, response, serve};
use tokio::io::AsyncWriteExt;
use veza_core::{Classify, ErrorKind};
use veza_httpopt::{CacheStatus, Client, Error};

const HUGE: &str = "18446744073709551615";

/// A server whose n-th response (from 0) is `answer(n)`: status and headers; the body of a 200
/// is "body".
async fn scripted(
    answer: impl Fn(usize) -> (u16, Vec<(&'static str, String)>) + Send + Sync + 'static,
) -> common::Server {
    let n = Arc::new(AtomicUsize::new(0));
    serve(move |_req| {
        let (status, headers) = answer(n.fetch_add(1, Ordering::SeqCst));
        async move {
            let body = if status == 200 { "body" } else { "" };
            response(status, &headers, body)
        }
    })
    .await
}

fn cc(v: &str) -> Vec<(&'static str, String)> {
    vec![("cache-control", v.to_owned())]
}

#[tokio::test]
async fn a_max_age_past_u64_arithmetic_is_68_years_not_a_panic() {
    for value in [HUGE, "9999999999999999999", "99999999999999999999999999"] {
        let s = scripted(move |_| (200, cc(&format!("max-age={value}")))).await;
        let c = Client::builder().build().unwrap();
        for i in 0..3 {
            let r = c.get(s.url("/a")).send().await.unwrap();
            assert_eq!(r.body(), "body");
            let expected = if i == 0 {
                CacheStatus::Miss
            } else {
                CacheStatus::Hit
            };
            assert_eq!(r.cache_status(), expected, "max-age={value}, request {i}");
        }
        assert_eq!(s.requests(), 1);
    }
}

#[tokio::test]
async fn an_age_past_u64_arithmetic_makes_the_response_stale_not_a_panic() {
    let s = scripted(|_| {
        let mut h = cc("max-age=60");
        h.push(("age", HUGE.to_owned()));
        (200, h)
    })
    .await;
    let c = Client::builder().build().unwrap();
    for _ in 0..3 {
        let r = c.get(s.url("/a")).send().await.unwrap();
        assert_eq!(r.body(), "body");
        assert_ne!(r.cache_status(), CacheStatus::Hit, "older than its max-age");
    }
    assert_eq!(s.requests(), 3);
}

#[tokio::test]
async fn a_huge_stale_while_revalidate_serves_stale_without_a_panic() {
    let s = scripted(|_| {
        (
            200,
            cc(&format!("max-age=0, stale-while-revalidate={HUGE}")),
        )
    })
    .await;
    let c = Client::builder().build().unwrap();
    assert_eq!(c.get(s.url("/a")).send().await.unwrap().body(), "body");
    let r = c.get(s.url("/a")).send().await.unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Stale);
    assert_eq!(r.body(), "body");
    // The background refresh ran, without a panic, and the entry is still usable.
    assert!(common::eventually(Duration::from_secs(5), || s.requests() == 2).await);
    assert_eq!(c.get(s.url("/a")).send().await.unwrap().body(), "body");
}

#[tokio::test]
async fn a_huge_stale_if_error_serves_stale_on_a_500_without_a_panic() {
    let s = scripted(|n| {
        if n == 0 {
            (200, cc(&format!("max-age=0, stale-if-error={HUGE}")))
        } else {
            (500, cc(&format!("stale-if-error={HUGE}, max-age={HUGE}")))
        }
    })
    .await;
    let c = Client::builder().build().unwrap();
    assert_eq!(c.get(s.url("/a")).send().await.unwrap().body(), "body");
    for _ in 0..2 {
        let r = c.get(s.url("/a")).send().await.unwrap();
        assert_eq!(r.cache_status(), CacheStatus::Stale);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), "body");
    }
}

#[tokio::test]
async fn a_304_with_huge_numbers_is_merged_without_a_panic() {
    let s = scripted(|n| {
        let mut h = vec![("etag", "\"v1\"".to_owned())];
        if n == 0 {
            h.push(("cache-control", "max-age=0".to_owned()));
            (200, h)
        } else {
            h.push(("cache-control", format!("MAX-AGE={HUGE}")));
            h.push(("age", HUGE.to_owned()));
            (304, h)
        }
    })
    .await;
    let c = Client::builder().build().unwrap();
    c.get(s.url("/a")).send().await.unwrap();
    let r = c.get(s.url("/a")).send().await.unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Revalidated);
    assert_eq!(r.body(), "body");
    // RFC 9111 §3.2: the 304's fields replace and add to the stored ones, its Age included.
    // Saturated, Age (2^31) is not below max-age (2^31): the merged response is stale at once
    // (§4.2), so the next request revalidates again, without a panic.
    let r = c.get(s.url("/a")).send().await.unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Revalidated);
    assert_eq!(r.body(), "body");
    assert_eq!(s.requests(), 3);
}

#[tokio::test]
async fn directive_names_are_case_insensitive() {
    let s = scripted(|_| (200, cc("MAX-AGE=600"))).await;
    let c = Client::builder().build().unwrap();
    c.get(s.url("/a")).send().await.unwrap();
    assert_eq!(
        c.get(s.url("/a")).send().await.unwrap().cache_status(),
        CacheStatus::Hit
    );

    let s = scripted(|_| (200, cc("max-age=10000, No-CaChE"))).await;
    c.get(s.url("/b")).send().await.unwrap();
    let r = c.get(s.url("/b")).send().await.unwrap();
    assert_ne!(
        r.cache_status(),
        CacheStatus::Hit,
        "no-cache in any case revalidates"
    );
    assert_eq!(s.requests(), 2);
}

#[tokio::test]
async fn set_cookie_is_never_replayed_from_the_cache() {
    let s = scripted(|n| {
        let mut h = cc("max-age=600");
        h.push(("set-cookie", format!("sid=secret-{n}; HttpOnly")));
        (200, h)
    })
    .await;
    let c = Client::builder().build().unwrap();
    let first = c.get(s.url("/p")).send().await.unwrap();
    assert_eq!(first.headers()["set-cookie"], "sid=secret-0; HttpOnly");
    let again = c.get(s.url("/p")).send().await.unwrap();
    assert_eq!(again.cache_status(), CacheStatus::Hit);
    assert!(
        again.headers().get("set-cookie").is_none(),
        "{:?}",
        again.headers()
    );
    assert_eq!(again.body(), "body");
}

#[tokio::test]
async fn each_credential_keeps_its_own_entry() {
    // The body names the credentials it was made for.
    let s = serve(|req| {
        let who = req
            .headers()
            .get("authorization")
            .or_else(|| req.headers().get("cookie"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        async move { response(200, &cc("max-age=600"), format!("for {who}")) }
    })
    .await;
    let c = Client::builder().build().unwrap();
    let get = |name: &'static str, value: &'static str| {
        let c = c.clone();
        let url = s.url("/me");
        async move { c.get(url).header(name, value).send().await.unwrap() }
    };
    for round in 0..3 {
        for (name, value) in [
            ("authorization", "Bearer alice"),
            ("authorization", "Bearer bob"),
            ("cookie", "sid=carol"),
            ("cookie", "sid=dave"),
        ] {
            let r = get(name, value).await;
            assert_eq!(r.body(), format!("for {value}").as_bytes());
            let expected = if round == 0 {
                CacheStatus::Miss
            } else {
                CacheStatus::Hit
            };
            assert_eq!(r.cache_status(), expected, "{value}, round {round}");
        }
    }
    assert_eq!(s.requests(), 4, "one upstream request per requester");
    // Nobody else sees any of them.
    let anonymous = c.get(s.url("/me")).send().await.unwrap();
    assert_eq!(anonymous.body(), "for ");
}

#[tokio::test]
async fn an_over_long_response_head_is_a_protocol_error_and_not_retried() {
    let s = raw(|_, mut stream| async move {
        if read_head(&mut stream).await.is_none() {
            return;
        }
        let mut head = b"HTTP/1.1 200 OK\r\nx-long: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', 1 << 20));
        let _ = stream.write_all(&head).await;
        let _ = stream.write_all(b"\r\ncontent-length: 0\r\n\r\n").await;
    })
    .await;
    let c = Client::builder().build().unwrap();
    let e = c.get(s.url("/")).send().await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(!e.is_retryable());
    assert_eq!(s.connections(), 1, "a protocol error is not retried");

    // A status line that is not HTTP at all.
    let s = raw(|_, mut stream| async move {
        if read_head(&mut stream).await.is_some() {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        }
    })
    .await;
    let e = c.get(s.url("/")).send().await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
}

#[tokio::test]
async fn an_unknown_host_is_not_retried() {
    // What this machine's resolver says of a name that cannot exist (RFC 6761 `.invalid`):
    // NXDOMAIN where a DNS server answers, a time-out or failure where none does.
    let name = "veza-no-such-host.invalid";
    let says = tokio::net::lookup_host((name, 80))
        .await
        .map(|_| ())
        .unwrap_err();
    let nxdomain = says.to_string().contains("Name or service not known")
        || says.to_string().contains("No address associated");
    let c = Client::builder().max_retries(3).build().unwrap();
    let e = c.get(format!("http://{name}/")).send().await.unwrap_err();
    if nxdomain {
        assert!(matches!(e, Error::UnknownHost(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_retryable() && !e.is_connection_error());
    } else {
        // No answer from any DNS server: that may pass, so it stays retryable.
        assert!(e.is_retryable(), "{e:?}");
    }
}

//! RFC 9111 / RFC 5861 rules, each against a real hyper server on 127.0.0.1 that counts what
//! reaches it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{eventually, http_date, response, serve};
use http::Method;
use veza_core::Observe;
use veza_httpopt::{CacheMode, CacheStatus, Client};

fn client() -> Client {
    Client::builder().build().unwrap()
}

/// A server answering every request with the same headers and a body naming the request count.
async fn fixed(headers: &'static [(&'static str, &'static str)]) -> common::Server {
    let n = Arc::new(AtomicUsize::new(0));
    serve(move |_req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        async move {
            let h: Vec<(&str, String)> =
                headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
            response(200, &h, format!("body {i}"))
        }
    })
    .await
}

#[tokio::test]
async fn max_age_is_served_fresh_with_an_age() {
    let s = fixed(&[("cache-control", "max-age=60")]).await;
    let c = client();
    let a = c.get(s.url("/a")).send().await.unwrap();
    let b = c.get(s.url("/a")).send().await.unwrap();
    assert_eq!(a.cache_status(), CacheStatus::Miss);
    assert_eq!(b.cache_status(), CacheStatus::Hit);
    assert_eq!(b.body(), a.body());
    assert!(
        b.headers().get("age").is_some(),
        "a cached response carries Age"
    );
    assert_eq!(s.requests(), 1);
    let stats = c.cache().unwrap().snapshot();
    assert_eq!((stats.hits, stats.inserts), (1, 1));
    // Another URI is another resource.
    c.get(s.url("/b")).send().await.unwrap();
    assert_eq!(s.requests(), 2);
}

#[tokio::test]
async fn no_store_is_never_stored() {
    let s = fixed(&[("cache-control", "no-store, max-age=60")]).await;
    let c = client();
    for i in 0..3 {
        let r = c.get(s.url("/x")).send().await.unwrap();
        assert_eq!(r.body(), format!("body {i}").as_bytes());
        assert_ne!(r.cache_status(), CacheStatus::Hit);
    }
    assert_eq!(s.requests(), 3);
    assert_eq!(c.cache().unwrap().snapshot().inserts, 0);
}

#[tokio::test]
async fn a_request_with_no_store_bypasses_the_cache() {
    let s = fixed(&[("cache-control", "max-age=60")]).await;
    let c = client();
    let r = c
        .get(s.url("/x"))
        .header("cache-control", "no-store")
        .send()
        .await
        .unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Bypass);
    let r = c.get(s.url("/x")).send().await.unwrap();
    assert_eq!(
        r.cache_status(),
        CacheStatus::Miss,
        "nothing was stored by the no-store request"
    );
}

#[tokio::test]
async fn expires_in_the_future_is_fresh_and_an_invalid_expires_is_stale() {
    let future: &'static str = Box::leak(http_date(3600).into_boxed_str());
    let s = serve(move |req| {
        let expires = if req.uri().path() == "/good" {
            future.to_owned()
        } else {
            "0".to_owned()
        };
        async move { response(200, &[("expires", expires), ("date", http_date(0))], "x") }
    })
    .await;
    let c = client();
    for _ in 0..2 {
        c.get(s.url("/good")).send().await.unwrap();
    }
    assert_eq!(s.requests(), 1, "Expires an hour ahead: fresh");
    for _ in 0..2 {
        c.get(s.url("/bad")).send().await.unwrap();
    }
    assert_eq!(
        s.requests(),
        3,
        "Expires: 0 means already expired (RFC 9111 §5.3)"
    );
}

#[tokio::test]
async fn last_modified_gives_heuristic_freshness() {
    let s = serve(|_req| async {
        response(
            200,
            &[
                ("last-modified", http_date(-10 * 86_400)),
                ("date", http_date(0)),
            ],
            "x",
        )
    })
    .await;
    let c = client();
    c.get(s.url("/h")).send().await.unwrap();
    let r = c.get(s.url("/h")).send().await.unwrap();
    assert_eq!(
        r.cache_status(),
        CacheStatus::Hit,
        "10% of 10 days is fresh for a day"
    );
    assert_eq!(s.requests(), 1);

    // With the heuristic turned off, it is stale at once.
    let c = Client::builder()
        .config(|c| c.cache.heuristic_fraction = 0.0)
        .build()
        .unwrap();
    c.get(s.url("/h")).send().await.unwrap();
    c.get(s.url("/h")).send().await.unwrap();
    assert_eq!(s.requests(), 3);
}

#[tokio::test]
async fn a_304_keeps_the_stored_body_and_updates_headers() {
    let seen_inm = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&seen_inm);
    let n = Arc::new(AtomicUsize::new(0));
    let s = serve(move |req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let conditional = req
            .headers()
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"");
        if conditional {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        async move {
            let cc = ("cache-control", "max-age=0".to_owned());
            let etag = ("etag", "\"v1\"".to_owned());
            if conditional {
                response(304, &[cc, etag, ("x-version", format!("{i}"))], "")
            } else {
                response(
                    200,
                    &[cc, etag, ("x-version", format!("{i}"))],
                    "the stored body",
                )
            }
        }
    })
    .await;
    let c = client();
    let first = c.get(s.url("/r")).send().await.unwrap();
    assert_eq!(first.headers()["x-version"], "0");
    let second = c.get(s.url("/r")).send().await.unwrap();
    assert_eq!(
        seen_inm.load(Ordering::SeqCst),
        1,
        "the revalidation sent If-None-Match"
    );
    assert_eq!(second.cache_status(), CacheStatus::Revalidated);
    assert_eq!(second.status(), 200);
    assert_eq!(second.body(), "the stored body");
    assert_eq!(
        second.headers()["x-version"],
        "1",
        "headers from the 304 replace the stored ones"
    );
    let third = c.get(s.url("/r")).send().await.unwrap();
    assert_eq!(third.body(), "the stored body");
    assert_eq!(third.headers()["x-version"], "2");
}

#[tokio::test]
async fn last_modified_is_revalidated_with_if_modified_since() {
    let lm: &'static str = Box::leak(http_date(-3600).into_boxed_str());
    let s = serve(move |req| {
        let since = req
            .headers()
            .get("if-modified-since")
            .map(|v| v.to_str().unwrap().to_owned());
        async move {
            let h = [
                ("cache-control", "no-cache".to_owned()),
                ("last-modified", lm.to_owned()),
            ];
            match since {
                Some(v) if v == lm => response(304, &h, ""),
                _ => response(200, &h, "full"),
            }
        }
    })
    .await;
    let c = client();
    assert_eq!(c.get(s.url("/lm")).send().await.unwrap().body(), "full");
    let r = c.get(s.url("/lm")).send().await.unwrap();
    assert_eq!(
        r.cache_status(),
        CacheStatus::Revalidated,
        "no-cache: always revalidated"
    );
    assert_eq!(r.body(), "full");
    assert_eq!(s.requests(), 2);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let s = serve(|req| {
        let lang = req
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        async move {
            response(
                200,
                &[
                    ("cache-control", "max-age=60".into()),
                    ("vary", "Accept-Language".into()),
                ],
                format!("hello in {lang}"),
            )
        }
    })
    .await;
    let c = client();
    for _ in 0..3 {
        for lang in ["en", "fr"] {
            let r = c
                .get(s.url("/v"))
                .header("accept-language", lang)
                .send()
                .await
                .unwrap();
            assert_eq!(r.body(), format!("hello in {lang}").as_bytes());
        }
    }
    assert_eq!(s.requests(), 2, "one upstream request per variant");
}

#[tokio::test]
async fn vary_star_is_never_reused() {
    let s = fixed(&[("cache-control", "max-age=60"), ("vary", "*")]).await;
    let c = client();
    c.get(s.url("/v")).send().await.unwrap();
    c.get(s.url("/v")).send().await.unwrap();
    assert_eq!(s.requests(), 2);
}

/// A server that answers with the caller's credentials in the body.
async fn whoami(cache_control: &'static str) -> common::Server {
    serve(move |req| {
        let who = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        async move { response(200, &[("cache-control", cache_control.into())], who) }
    })
    .await
}

#[tokio::test]
async fn an_authenticated_response_is_not_reused_for_another_user() {
    let s = whoami("max-age=60").await;
    let c = client();
    let alice = c
        .get(s.url("/me"))
        .header("authorization", "Bearer alice")
        .send()
        .await
        .unwrap();
    assert_eq!(alice.body(), "Bearer alice");
    let bob = c
        .get(s.url("/me"))
        .header("authorization", "Bearer bob")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bob.body(),
        "Bearer bob",
        "bob must never see alice's response"
    );
    // The same user gets their own cached response.
    let bob2 = c
        .get(s.url("/me"))
        .header("authorization", "Bearer bob")
        .send()
        .await
        .unwrap();
    assert_eq!(bob2.cache_status(), CacheStatus::Hit);
    assert_eq!(bob2.body(), "Bearer bob");
    let anon = c.get(s.url("/me")).send().await.unwrap();
    assert_eq!(anon.body(), "", "nor does someone without credentials");
    let bob3 = c
        .get(s.url("/me"))
        .header("authorization", "Bearer bob")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bob3.body(),
        "Bearer bob",
        "nor is the anonymous response served to bob"
    );
    // Each requester's entry stands on its own: the anonymous one did not replace bob's.
    assert_eq!(bob3.cache_status(), CacheStatus::Hit);
    assert_eq!(s.requests(), 3);
}

#[tokio::test]
async fn a_public_authenticated_response_may_be_shared() {
    let s = whoami("public, max-age=60").await;
    let c = client();
    c.get(s.url("/doc"))
        .header("authorization", "Bearer alice")
        .send()
        .await
        .unwrap();
    let bob = c
        .get(s.url("/doc"))
        .header("authorization", "Bearer bob")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bob.cache_status(),
        CacheStatus::Hit,
        "public allows reuse (RFC 9111 §3.5)"
    );
    assert_eq!(s.requests(), 1);
}

#[tokio::test]
async fn a_shared_cache_skips_private_and_prefers_s_maxage() {
    let s = serve(|req| async move {
        let cc = match req.uri().path() {
            "/private" => "private, max-age=60",
            _ => "max-age=60, s-maxage=0",
        };
        response(200, &[("cache-control", cc.into())], "x")
    })
    .await;
    let shared = Client::builder().cache(CacheMode::Shared).build().unwrap();
    let private = client();
    for c in [&shared, &private] {
        c.get(s.url("/private")).send().await.unwrap();
        c.get(s.url("/private")).send().await.unwrap();
    }
    assert_eq!(
        s.requests(),
        3,
        "the shared cache stored nothing, the private one did"
    );
    let before = s.requests();
    shared.get(s.url("/s")).send().await.unwrap();
    shared.get(s.url("/s")).send().await.unwrap();
    private.get(s.url("/s")).send().await.unwrap();
    private.get(s.url("/s")).send().await.unwrap();
    assert_eq!(
        s.requests() - before,
        3,
        "s-maxage=0 binds the shared cache only"
    );
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_uri_and_its_location() {
    let s = serve(|req| async move {
        if req.method() == Method::POST {
            response(201, &[("location", "/items/2".into())], "")
        } else if req.method() == Method::PUT {
            response(200, &[("content-location", "/items/3".into())], "")
        } else {
            response(200, &[("cache-control", "max-age=60".into())], "item")
        }
    })
    .await;
    let c = client();
    for path in ["/items", "/items/2", "/items/3"] {
        c.get(s.url(path)).send().await.unwrap();
        assert_eq!(
            c.get(s.url(path)).send().await.unwrap().cache_status(),
            CacheStatus::Hit
        );
    }
    let r = c
        .request(Method::POST, s.url("/items"))
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        c.get(s.url("/items")).send().await.unwrap().cache_status(),
        CacheStatus::Miss
    );
    assert_eq!(
        c.get(s.url("/items/2"))
            .send()
            .await
            .unwrap()
            .cache_status(),
        CacheStatus::Miss
    );
    assert_eq!(
        c.get(s.url("/items/3"))
            .send()
            .await
            .unwrap()
            .cache_status(),
        CacheStatus::Hit
    );
    // Content-Location names another stored resource: it goes too.
    let r = c
        .request(Method::PUT, s.url("/other"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-location"], "/items/3");
    let after = c.get(s.url("/items/3")).send().await.unwrap();
    assert_eq!(after.cache_status(), CacheStatus::Miss);
}

#[tokio::test]
async fn a_failed_unsafe_request_does_not_invalidate() {
    let s = serve(|req| async move {
        if req.method() == Method::DELETE {
            response(500, &[], "")
        } else {
            response(200, &[("cache-control", "max-age=60".into())], "item")
        }
    })
    .await;
    let c = client();
    c.get(s.url("/i")).send().await.unwrap();
    c.request(Method::DELETE, s.url("/i")).send().await.unwrap();
    assert_eq!(
        c.get(s.url("/i")).send().await.unwrap().cache_status(),
        CacheStatus::Hit
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_at_once_and_refreshes_in_the_background() {
    let n = Arc::new(AtomicUsize::new(0));
    let s = serve(move |_req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        async move {
            response(
                200,
                &[(
                    "cache-control",
                    "max-age=1, stale-while-revalidate=30".into(),
                )],
                format!("v{i}"),
            )
        }
    })
    .await;
    let c = client();
    assert_eq!(c.get(s.url("/s")).send().await.unwrap().body(), "v0");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = c.get(s.url("/s")).send().await.unwrap();
    assert_eq!(stale.cache_status(), CacheStatus::Stale);
    assert_eq!(stale.body(), "v0");
    assert!(
        eventually(Duration::from_secs(5), || s.requests() == 2).await,
        "refreshed upstream"
    );
    // Once the refresh is stored, the new body is served fresh.
    let mut fresh = None;
    for _ in 0..100 {
        let r = c.get(s.url("/s")).send().await.unwrap();
        if r.cache_status() == CacheStatus::Hit && r.body() == "v1" {
            fresh = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fresh.is_some(), "the background refresh was stored");
    assert_eq!(s.requests(), 2);
}

#[tokio::test]
async fn stale_if_error_serves_the_stored_response_when_upstream_fails() {
    let fail = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&fail);
    let s = serve(move |req| {
        let failing = f.load(Ordering::SeqCst) == 1;
        let path = req.uri().path().to_owned();
        async move {
            let cc = if path == "/strict" {
                "max-age=1, stale-if-error=60, must-revalidate"
            } else {
                "max-age=1, stale-if-error=60"
            };
            if failing {
                response(503, &[], "down")
            } else {
                response(200, &[("cache-control", cc.into())], "good")
            }
        }
    })
    .await;
    let c = client();
    c.get(s.url("/sie")).send().await.unwrap();
    c.get(s.url("/strict")).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    fail.store(1, Ordering::SeqCst);
    let r = c.get(s.url("/sie")).send().await.unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Stale);
    assert_eq!(
        (r.status().as_u16(), r.body().as_ref()),
        (200, b"good".as_ref())
    );
    let strict = c.get(s.url("/strict")).send().await.unwrap();
    assert_eq!(
        strict.status(),
        503,
        "must-revalidate forbids serving stale"
    );

    // Upstream gone entirely: still served.
    let url = s.url("/sie");
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Stale);
    assert_eq!(r.body(), "good");
}

#[tokio::test]
async fn malformed_freshness_headers_are_tolerated_as_stale() {
    let s = serve(|req| async move {
        let h: Vec<(&str, String)> = match req.uri().path() {
            "/cc" => vec![("cache-control", "max-age=abc, ,,=, max-age".into())],
            "/expires" => vec![("expires", "not a date".into())],
            "/age" => vec![
                ("cache-control", "max-age=60".into()),
                ("age", "soon".into()),
            ],
            _ => vec![
                ("cache-control", "max-age=60".into()),
                ("age", "5, 500".into()),
            ],
        };
        response(200, &h, "x")
    })
    .await;
    let c = client();
    for path in ["/cc", "/expires"] {
        c.get(s.url(path)).send().await.unwrap();
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_ne!(
            r.cache_status(),
            CacheStatus::Hit,
            "{path}: invalid freshness means stale"
        );
    }
    c.get(s.url("/age")).send().await.unwrap();
    let r = c.get(s.url("/age")).send().await.unwrap();
    assert_eq!(
        r.cache_status(),
        CacheStatus::Hit,
        "an invalid Age is ignored"
    );
    c.get(s.url("/list")).send().await.unwrap();
    let r = c.get(s.url("/list")).send().await.unwrap();
    assert_eq!(
        r.cache_status(),
        CacheStatus::Hit,
        "a list Age uses its first member (5 < 60)"
    );
    let age: u64 = r.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!((5..60).contains(&age), "age {age}");
}

#[tokio::test]
async fn only_if_cached_answers_504_when_nothing_is_stored() {
    let s = fixed(&[("cache-control", "max-age=60")]).await;
    let c = client();
    let r = c
        .get(s.url("/o"))
        .header("cache-control", "only-if-cached")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(s.requests(), 0);
}

#[tokio::test]
async fn identical_concurrent_gets_reach_the_server_once() {
    let s = serve(|_req| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        response(200, &[("cache-control", "max-age=60".into())], "shared")
    })
    .await;
    let c = client();
    let url = s.url("/slow");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get(url).send().await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().body(), "shared");
    }
    assert_eq!(s.requests(), 1);
}

#[tokio::test]
async fn uncacheable_resources_are_not_coalesced_once_known() {
    let s = serve(|_req| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        response(
            200,
            &[("cache-control", "no-store".into())],
            "fresh every time",
        )
    })
    .await;
    let c = client();
    c.get(s.url("/ns")).send().await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (c, url) = (c.clone(), s.url("/ns"));
            tokio::spawn(async move { c.get(url).send().await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.requests(),
        11,
        "each caller of a no-store resource gets its own response"
    );
}

#[tokio::test]
async fn storage_stays_within_its_byte_bound() {
    let s = serve(|_req| async {
        response(
            200,
            &[("cache-control", "max-age=60".into())],
            vec![b'x'; 10_000],
        )
    })
    .await;
    let c = Client::builder().cache_max_bytes(200_000).build().unwrap();
    for i in 0..100 {
        c.get(s.url(&format!("/big/{i}"))).send().await.unwrap();
    }
    let cache = c.cache().unwrap();
    assert!(
        cache.stored_bytes() <= 200_000,
        "{} bytes",
        cache.stored_bytes()
    );
    assert!(cache.snapshot().entries < 100);
    // The most recent ones are still there.
    let r = c.get(s.url("/big/99")).send().await.unwrap();
    assert_eq!(r.cache_status(), CacheStatus::Hit);
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let s = fixed(&[("cache-control", "max-age=60")]).await;
    let c = Client::builder().cache(CacheMode::Off).build().unwrap();
    assert!(c.cache().is_none());
    for _ in 0..2 {
        let r = c.get(s.url("/x")).send().await.unwrap();
        assert_eq!(r.cache_status(), CacheStatus::Bypass);
    }
    assert_eq!(s.requests(), 2);
}

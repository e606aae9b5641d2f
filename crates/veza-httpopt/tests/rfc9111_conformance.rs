//! RFC 9111 conformance of the client's private cache, case by case against a real origin on
//! loopback, grouped by the section each case checks. Every case runs; the pass table is
//! printed (`cargo test -p veza-httpopt --test rfc9111_conformance -- --nocapture`), copied in
//! the crate's README, and the test fails if any case fails.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use veza_httpopt::{CacheStatus, Client, RequestCache, Response};

/// What the origin saw: each request's method and fields.
type Seen = Arc<Mutex<Vec<(http::Method, HeaderMap)>>>;

/// An origin whose n-th answer (from 0) is `answer(n, request fields)`: status, fields, body.
struct Origin {
    server: common::Server,
    seen: Seen,
}

type Answer = (u16, Vec<(&'static str, String)>, &'static str);

impl Origin {
    async fn new(answer: impl Fn(usize, &HeaderMap) -> Answer + Send + Sync + 'static) -> Origin {
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let answer = Arc::new(answer);
        let server = common::serve(move |req: http::Request<hyper::body::Incoming>| {
            let n = {
                let mut log = log.lock().unwrap();
                log.push((req.method().clone(), req.headers().clone()));
                log.len() - 1
            };
            let (status, fields, body) = answer(n, req.headers());
            async move { common::response(status, &fields, body) }
        })
        .await;
        Origin { server, seen }
    }

    fn url(&self) -> String {
        self.server.url("/r")
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The fields of request `n`.
    fn request(&self, n: usize) -> HeaderMap {
        self.seen.lock().unwrap()[n].1.clone()
    }
}

fn client() -> Client {
    Client::builder().build().unwrap()
}

async fn get(c: &Client, url: &str) -> Response {
    c.get(url).send().await.unwrap()
}

fn fields(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Fails a case with a message.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

type Outcome = Result<(), String>;
type Case = (
    &'static str,
    &'static str,
    fn() -> Pin<Box<dyn Future<Output = Outcome> + Send>>,
);

macro_rules! case {
    ($section:expr, $name:expr, $body:expr) => {
        ($section, $name, || {
            Box::pin($body) as Pin<Box<dyn Future<Output = Outcome> + Send>>
        })
    };
}

/// Two GETs; the second's cache status and the origin's request count.
async fn twice(
    answer: impl Fn(usize, &HeaderMap) -> Answer + Send + Sync + 'static,
) -> (CacheStatus, usize, Response) {
    let o = Origin::new(answer).await;
    let c = client();
    get(&c, &o.url()).await;
    let r = get(&c, &o.url()).await;
    (r.cache_status(), o.requests(), r)
}

async fn reused(cc: &[(&'static str, &str)]) -> Outcome {
    let f = fields(cc);
    let (status, n, _) = twice(move |_, _| (200, f.clone(), "body")).await;
    check!(
        status == CacheStatus::Hit && n == 1,
        "not reused: {status:?}, {n} requests"
    );
    Ok(())
}

async fn not_reused(cc: &[(&'static str, &str)]) -> Outcome {
    let f = fields(cc);
    let (status, n, _) = twice(move |_, _| (200, f.clone(), "body")).await;
    check!(
        status != CacheStatus::Hit && n == 2,
        "reused: {status:?}, {n} requests"
    );
    Ok(())
}

fn cases() -> Vec<Case> {
    vec![
        // §4.2 freshness
        case!(
            "4.2.1",
            "max-age is reused while fresh",
            reused(&[("cache-control", "max-age=3600")])
        ),
        case!(
            "4.2.1",
            "max-age=0 is not reused unvalidated",
            not_reused(&[("cache-control", "max-age=0")])
        ),
        case!("4.2.1", "Expires in the future is reused", async {
            reused(&[
                ("expires", &common::http_date(3600)),
                ("date", &common::http_date(0)),
            ])
            .await
        }),
        case!("4.2.1", "Expires in the past is not reused", async {
            not_reused(&[
                ("expires", &common::http_date(-3600)),
                ("date", &common::http_date(0)),
            ])
            .await
        }),
        case!("4.2.1", "max-age wins over a past Expires", async {
            reused(&[
                ("cache-control", "max-age=3600"),
                ("expires", &common::http_date(-3600)),
            ])
            .await
        }),
        case!(
            "4.2.1",
            "s-maxage does not bind a private cache",
            reused(&[("cache-control", "max-age=3600, s-maxage=0")])
        ),
        case!("4.2.2", "a heuristic lifetime from Last-Modified", async {
            reused(&[
                ("last-modified", &common::http_date(-10 * 86_400)),
                ("date", &common::http_date(0)),
            ])
            .await
        }),
        case!(
            "4.2.2",
            "no heuristic without Last-Modified",
            not_reused(&[])
        ),
        case!(
            "4.2.3",
            "Age at max-age makes it stale",
            not_reused(&[("cache-control", "max-age=60"), ("age", "60")])
        ),
        case!(
            "5.1",
            "a list-valued Age uses its first member",
            reused(&[("cache-control", "max-age=3600"), ("age", "10, 4000")])
        ),
        // §5.2 directive names
        case!(
            "5.2",
            "directive names are case-insensitive (No-CaChE)",
            not_reused(&[("cache-control", "max-age=10000, No-CaChE")])
        ),
        case!(
            "5.2",
            "directive names are case-insensitive (MAX-AGE)",
            reused(&[("cache-control", "MAX-AGE=3600")])
        ),
        // §5.3 Expires formats
        case!("5.3", "Expires in RFC 850 form is accepted", async {
            let when = httpdate::HttpDate::from(
                std::time::SystemTime::now() + Duration::from_secs(86_400 * 400),
            );
            let imf = when.to_string();
            // "Sun, 06 Nov 1994 08:49:37 GMT" -> "Sunday, 06-Nov-94 08:49:37 GMT"
            let rfc850 = rfc850_of(&imf);
            reused(&[("expires", &rfc850), ("date", &common::http_date(0))]).await
        }),
        case!("5.3", "Expires in asctime form is accepted", async {
            let when = httpdate::HttpDate::from(
                std::time::SystemTime::now() + Duration::from_secs(86_400 * 400),
            );
            let asctime = asctime_of(&when.to_string());
            reused(&[("expires", &asctime), ("date", &common::http_date(0))]).await
        }),
        case!(
            "5.3",
            "an invalid Expires means expired",
            not_reused(&[("expires", "Thu, 18  Aug  2050 02:01:18 GMT")])
        ),
        case!(
            "5.3",
            "Expires: 0 means expired",
            not_reused(&[("expires", "0")])
        ),
        // RFC 9110 §6.6.1, §5.6.7: Date
        case!(
            "9110 6.6.1",
            "a hit keeps the origin's Date, as IMF-fixdate",
            async {
                let date = common::http_date(-5);
                let d = date.clone();
                let (status, _, r) = twice(move |_, _| {
                    (
                        200,
                        fields(&[("cache-control", "max-age=3600"), ("date", &d)]),
                        "body",
                    )
                })
                .await;
                check!(status == CacheStatus::Hit, "{status:?}");
                let got = r
                    .headers()
                    .get("date")
                    .map(|v| v.to_str().unwrap().to_owned());
                check!(
                    got.as_deref() == Some(date.as_str()),
                    "Date {got:?}, origin sent {date}"
                );
                Ok(())
            }
        ),
        case!("5.1", "a hit carries an Age", async {
            let (_, _, r) = twice(|_, _| {
                (
                    200,
                    fields(&[("cache-control", "max-age=3600"), ("age", "30")]),
                    "body",
                )
            })
            .await;
            let age: u64 = r
                .headers()
                .get("age")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            check!(age >= 30, "Age {age}");
            Ok(())
        }),
        // §4.3 validation
        case!(
            "4.3.1",
            "a stale response with an ETag is revalidated with If-None-Match",
            async {
                let o = Origin::new(|n, _| {
                    if n == 0 {
                        (
                            200,
                            fields(&[("cache-control", "max-age=0"), ("etag", "\"v1\"")]),
                            "body",
                        )
                    } else {
                        (304, fields(&[("etag", "\"v1\"")]), "")
                    }
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = get(&c, &o.url()).await;
                check!(
                    r.cache_status() == CacheStatus::Revalidated && r.body() == "body",
                    "{:?}",
                    r.cache_status()
                );
                check!(
                    o.request(1)
                        .get("if-none-match")
                        .is_some_and(|v| v == "\"v1\""),
                    "no If-None-Match"
                );
                Ok(())
            }
        ),
        case!(
            "4.3.1",
            "a stale response with Last-Modified is revalidated with If-Modified-Since",
            async {
                let lm = common::http_date(-86_400);
                let l = lm.clone();
                let o = Origin::new(move |n, _| {
                    if n == 0 {
                        (
                            200,
                            fields(&[("cache-control", "max-age=0"), ("last-modified", &l)]),
                            "body",
                        )
                    } else {
                        (304, vec![], "")
                    }
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = get(&c, &o.url()).await;
                check!(
                    r.cache_status() == CacheStatus::Revalidated,
                    "{:?}",
                    r.cache_status()
                );
                check!(
                    o.request(1)
                        .get("if-modified-since")
                        .is_some_and(|v| *v == *lm),
                    "no If-Modified-Since"
                );
                Ok(())
            }
        ),
        case!(
            "4.3.4",
            "a 304 without validators updates and reuses the stored response",
            async {
                let o = Origin::new(|n, _| {
                    if n == 0 {
                        (
                            200,
                            fields(&[("cache-control", "max-age=0"), ("etag", "\"v1\"")]),
                            "body",
                        )
                    } else {
                        (304, fields(&[("cache-control", "max-age=3600")]), "")
                    }
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = get(&c, &o.url()).await;
                check!(
                    r.cache_status() == CacheStatus::Revalidated && r.body() == "body",
                    "{:?}",
                    r.cache_status()
                );
                let r = get(&c, &o.url()).await;
                check!(
                    r.cache_status() == CacheStatus::Hit,
                    "not fresh after the 304: {:?}",
                    r.cache_status()
                );
                check!(
                    o.requests() == 2,
                    "{} requests: the 304 was not used",
                    o.requests()
                );
                Ok(())
            }
        ),
        case!(
            "3.2",
            "a 304's fields replace and add to the stored ones",
            async {
                let o = Origin::new(|n, _| {
                    if n == 0 {
                        (
                            200,
                            fields(&[
                                ("cache-control", "max-age=0"),
                                ("etag", "\"v1\""),
                                ("x-version", "1"),
                            ]),
                            "body",
                        )
                    } else {
                        (
                            304,
                            fields(&[
                                ("etag", "\"v1\""),
                                ("x-version", "2"),
                                ("x-added", "yes"),
                                ("cache-control", "max-age=3600"),
                            ]),
                            "",
                        )
                    }
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = get(&c, &o.url()).await;
                check!(
                    r.headers().get("x-version").is_some_and(|v| v == "2"),
                    "x-version not replaced"
                );
                check!(
                    r.headers().get("x-added").is_some_and(|v| v == "yes"),
                    "x-added not added"
                );
                let r = get(&c, &o.url()).await;
                check!(
                    r.headers().get("x-added").is_some_and(|v| v == "yes"),
                    "x-added not stored"
                );
                Ok(())
            }
        ),
        case!(
            "4.3.4",
            "a 304 with another strong ETag does not select the stored response",
            async {
                let o = Origin::new(|n, _| match n {
                    0 => (
                        200,
                        fields(&[("cache-control", "max-age=0"), ("etag", "\"v1\"")]),
                        "old",
                    ),
                    1 => (304, fields(&[("etag", "\"v2\"")]), ""),
                    _ => (
                        200,
                        fields(&[("cache-control", "max-age=0"), ("etag", "\"v2\"")]),
                        "new",
                    ),
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = get(&c, &o.url()).await;
                check!(r.body() == "new", "served {:?}", r.body());
                Ok(())
            }
        ),
        case!(
            "5.2.2.4",
            "a no-cache response is revalidated every time",
            async {
                let o = Origin::new(|n, _| {
                    if n == 0 {
                        (
                            200,
                            fields(&[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
                            "body",
                        )
                    } else {
                        (304, fields(&[("etag", "\"v1\"")]), "")
                    }
                })
                .await;
                let c = client();
                for _ in 0..3 {
                    get(&c, &o.url()).await;
                }
                check!(o.requests() == 3, "{} requests", o.requests());
                check!(
                    o.request(2).contains_key("if-none-match"),
                    "not conditional"
                );
                Ok(())
            }
        ),
        // §5.2.2 response directives
        case!(
            "5.2.2.5",
            "no-store is not stored",
            not_reused(&[("cache-control", "no-store, max-age=3600")])
        ),
        case!(
            "5.2.2.7",
            "private is stored by a private cache",
            reused(&[("cache-control", "private, max-age=3600")])
        ),
        case!("5.2.2.2", "must-revalidate: no stale on error", async {
            let o = Origin::new(|n, _| {
                if n == 0 {
                    (
                        200,
                        fields(&[(
                            "cache-control",
                            "max-age=0, must-revalidate, stale-if-error=600",
                        )]),
                        "body",
                    )
                } else {
                    (500, vec![], "")
                }
            })
            .await;
            let c = client();
            get(&c, &o.url()).await;
            let r = get(&c, &o.url()).await;
            check!(
                r.status() == 500,
                "served {} instead of the error",
                r.status()
            );
            Ok(())
        }),
        // §5.2.1 request directives
        case!(
            "5.2.1.4",
            "request no-cache revalidates a fresh response",
            async {
                let o =
                    Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=3600")]), "body"))
                        .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = c
                    .get(o.url())
                    .header("cache-control", "no-cache")
                    .send()
                    .await
                    .unwrap();
                check!(
                    o.requests() == 2 && r.cache_status() != CacheStatus::Hit,
                    "{:?}",
                    r.cache_status()
                );
                Ok(())
            }
        ),
        case!("5.2.1.1", "request max-age=0 revalidates", async {
            let o = Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=3600")]), "body"))
                .await;
            let c = client();
            get(&c, &o.url()).await;
            c.get(o.url())
                .header("cache-control", "MAX-AGE=0")
                .send()
                .await
                .unwrap();
            check!(o.requests() == 2, "{} requests", o.requests());
            Ok(())
        }),
        case!(
            "5.2.1.2",
            "request max-stale takes a stale response",
            async {
                let o = Origin::new(|_, _| {
                    (
                        200,
                        fields(&[("cache-control", "max-age=1"), ("age", "100")]),
                        "body",
                    )
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = c
                    .get(o.url())
                    .header("cache-control", "max-stale")
                    .send()
                    .await
                    .unwrap();
                check!(
                    o.requests() == 1 && r.body() == "body",
                    "{} requests",
                    o.requests()
                );
                Ok(())
            }
        ),
        case!(
            "5.2.1.3",
            "request min-fresh past the remaining lifetime revalidates",
            async {
                let o =
                    Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=60")]), "body"))
                        .await;
                let c = client();
                get(&c, &o.url()).await;
                c.get(o.url())
                    .header("cache-control", "min-fresh=600")
                    .send()
                    .await
                    .unwrap();
                check!(o.requests() == 2, "{} requests", o.requests());
                Ok(())
            }
        ),
        case!(
            "5.2.1.7",
            "only-if-cached with nothing stored is 504",
            async {
                let o = Origin::new(|_, _| (200, vec![], "body")).await;
                let r = client()
                    .get(o.url())
                    .header("cache-control", "only-if-cached")
                    .send()
                    .await
                    .unwrap();
                check!(
                    r.status() == 504 && o.requests() == 0,
                    "{} / {} requests",
                    r.status(),
                    o.requests()
                );
                Ok(())
            }
        ),
        case!(
            "5.2.1.7",
            "only-if-cached with a fresh response is a hit",
            async {
                let o =
                    Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=3600")]), "body"))
                        .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = c
                    .get(o.url())
                    .header("cache-control", "only-if-cached")
                    .send()
                    .await
                    .unwrap();
                check!(r.status() == 200 && o.requests() == 1, "{}", r.status());
                Ok(())
            }
        ),
        case!("5.2.1.5", "request no-store bypasses the cache", async {
            let o = Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=3600")]), "body"))
                .await;
            let c = client();
            c.get(o.url())
                .header("cache-control", "no-store")
                .send()
                .await
                .unwrap();
            let r = get(&c, &o.url()).await;
            check!(
                r.cache_status() == CacheStatus::Miss && o.requests() == 2,
                "{:?}",
                r.cache_status()
            );
            Ok(())
        }),
        // §4.4 invalidation, §4.1 Vary
        case!("4.4", "a successful POST invalidates the URI", async {
            let o = Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=3600")]), "body"))
                .await;
            let c = client();
            get(&c, &o.url()).await;
            c.post(o.url()).body("x").send().await.unwrap();
            let r = get(&c, &o.url()).await;
            check!(
                r.cache_status() == CacheStatus::Miss && o.requests() == 3,
                "{:?}",
                r.cache_status()
            );
            Ok(())
        }),
        case!("4.1", "Vary keeps one response per header value", async {
            let o = Origin::new(|_, h| {
                let lang = h
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body = if lang == "fr" { "bonjour" } else { "hello" };
                (
                    200,
                    fields(&[
                        ("cache-control", "max-age=3600"),
                        ("vary", "Accept-Language"),
                    ]),
                    body,
                )
            })
            .await;
            let c = client();
            let ask = |lang: &'static str| c.get(o.url()).header("accept-language", lang).send();
            ask("fr").await.unwrap();
            ask("en").await.unwrap();
            let fr = ask("fr").await.unwrap();
            let en = ask("en").await.unwrap();
            check!(
                fr.body() == "bonjour" && en.body() == "hello",
                "bodies mixed"
            );
            check!(o.requests() == 2, "{} requests", o.requests());
            Ok(())
        }),
        case!(
            "4.1",
            "Vary: * is never reused",
            not_reused(&[("cache-control", "max-age=3600"), ("vary", "*")])
        ),
        // RFC 5861
        case!(
            "5861 3",
            "stale-while-revalidate serves stale and refreshes",
            async {
                let o = Origin::new(|_, _| {
                    (
                        200,
                        fields(&[
                            ("cache-control", "max-age=1, stale-while-revalidate=600"),
                            ("age", "5"),
                        ]),
                        "body",
                    )
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = get(&c, &o.url()).await;
                check!(
                    r.cache_status() == CacheStatus::Stale,
                    "{:?}",
                    r.cache_status()
                );
                let refreshed =
                    common::eventually(Duration::from_secs(5), || o.requests() == 2).await;
                check!(refreshed, "no background refresh");
                Ok(())
            }
        ),
        case!("5861 4", "stale-if-error serves stale on a 500", async {
            let o = Origin::new(|n, _| {
                if n == 0 {
                    (
                        200,
                        fields(&[("cache-control", "max-age=0, stale-if-error=600")]),
                        "body",
                    )
                } else {
                    (500, vec![], "")
                }
            })
            .await;
            let c = client();
            get(&c, &o.url()).await;
            let r = get(&c, &o.url()).await;
            check!(
                r.status() == 200 && r.cache_status() == CacheStatus::Stale,
                "{} {:?}",
                r.status(),
                r.cache_status()
            );
            Ok(())
        }),
        // §3.4 with RFC 9110 §14: ranges from a stored full response
        case!(
            "3.4",
            "a Range request is answered 206 from a stored 200",
            async {
                let o = Origin::new(|_, _| {
                    (
                        200,
                        fields(&[("cache-control", "max-age=3600"), ("etag", "\"v1\"")]),
                        "0123456789",
                    )
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = c
                    .get(o.url())
                    .header("range", "bytes=2-5")
                    .send()
                    .await
                    .unwrap();
                check!(
                    r.status() == 206 && r.body() == "2345",
                    "{} {:?}",
                    r.status(),
                    r.body()
                );
                check!(
                    r.headers()
                        .get("content-range")
                        .is_some_and(|v| v == "bytes 2-5/10"),
                    "Content-Range"
                );
                check!(
                    r.headers().get("content-length").is_some_and(|v| v == "4"),
                    "Content-Length"
                );
                let r = c
                    .get(o.url())
                    .header("range", "bytes=-3")
                    .header("if-range", "\"v1\"")
                    .send()
                    .await
                    .unwrap();
                check!(
                    r.status() == 206 && r.body() == "789",
                    "suffix: {} {:?}",
                    r.status(),
                    r.body()
                );
                check!(o.requests() == 1, "{} requests", o.requests());
                Ok(())
            }
        ),
        case!(
            "3.4",
            "an unsatisfiable Range is 416 with the length",
            async {
                let o = Origin::new(|_, _| {
                    (
                        200,
                        fields(&[("cache-control", "max-age=3600")]),
                        "0123456789",
                    )
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = c
                    .get(o.url())
                    .header("range", "bytes=50-")
                    .send()
                    .await
                    .unwrap();
                check!(r.status() == 416, "{}", r.status());
                check!(
                    r.headers()
                        .get("content-range")
                        .is_some_and(|v| v == "bytes */10"),
                    "Content-Range"
                );
                Ok(())
            }
        ),
        case!(
            "3.4",
            "an If-Range that does not match gets the full response",
            async {
                let o = Origin::new(|_, _| {
                    (
                        200,
                        fields(&[("cache-control", "max-age=3600"), ("etag", "\"v1\"")]),
                        "0123456789",
                    )
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let r = c
                    .get(o.url())
                    .header("range", "bytes=0-1")
                    .header("if-range", "\"v0\"")
                    .send()
                    .await
                    .unwrap();
                check!(r.status() == 200 && r.body().len() == 10, "{}", r.status());
                Ok(())
            }
        ),
        // RFC 9110 §7.6.1: hop-by-hop fields
        case!(
            "9110 7.6.1",
            "hop-by-hop fields are gone from misses and hits alike",
            async {
                let o = Origin::new(|_, _| {
                    (
                        200,
                        fields(&[
                            ("cache-control", "max-age=3600"),
                            ("connection", "keep-alive, x-hop"),
                            ("keep-alive", "timeout=5"),
                            ("x-hop", "1"),
                        ]),
                        "body",
                    )
                })
                .await;
                let c = client();
                let miss = get(&c, &o.url()).await;
                let hit = get(&c, &o.url()).await;
                for (which, r) in [("miss", &miss), ("hit", &hit)] {
                    for name in ["connection", "keep-alive", "x-hop", "transfer-encoding"] {
                        check!(!r.headers().contains_key(name), "{which} keeps {name}");
                    }
                    check!(
                        r.headers().get("content-length").is_some_and(|v| v == "4"),
                        "{which}: Content-Length"
                    );
                }
                Ok(())
            }
        ),
        // Coalescing and the typed per-request override
        case!("client", "coalesced requests say so", async {
            let o = Origin::new(|_, _| {
                std::thread::sleep(Duration::from_millis(100));
                (200, fields(&[("cache-control", "no-store")]), "body")
            })
            .await;
            let c = client();
            let url = o.url();
            let all = futures_join(&c, &url, 4).await;
            let coalesced = all.iter().filter(|s| **s == CacheStatus::Coalesced).count();
            check!(
                o.requests() == 1 && coalesced == 3,
                "{} requests, {all:?}",
                o.requests()
            );
            Ok(())
        }),
        case!(
            "client",
            "x-cache diagnostics when asked, and only then",
            async {
                let o =
                    Origin::new(|_, _| (200, fields(&[("cache-control", "max-age=3600")]), "body"))
                        .await;
                let c = Client::builder()
                    .config(|c| c.cache.diagnostics = true)
                    .build()
                    .unwrap();
                let first = get(&c, &o.url()).await;
                let second = get(&c, &o.url()).await;
                let x = |r: &Response| {
                    r.headers()
                        .get("x-cache")
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                check!(
                    x(&first).as_deref() == Some("MISS") && x(&second).as_deref() == Some("HIT"),
                    "{:?} {:?}",
                    x(&first),
                    x(&second)
                );
                let plain = get(&client(), &o.url()).await;
                check!(x(&plain).is_none(), "x-cache without asking");
                Ok(())
            }
        ),
        case!(
            "client",
            "RequestCache overrides leave the origin's request as built",
            async {
                let o = Origin::new(|_, h| {
                    if h.contains_key("if-none-match") {
                        (304, fields(&[("etag", "\"v1\"")]), "")
                    } else {
                        (
                            200,
                            fields(&[("cache-control", "max-age=3600"), ("etag", "\"v1\"")]),
                            "body",
                        )
                    }
                })
                .await;
                let c = client();
                get(&c, &o.url()).await;
                let with = |mode| c.get(o.url()).cache(mode).send();
                let r = with(RequestCache::NoCache).await.unwrap();
                check!(
                    r.cache_status() == CacheStatus::Revalidated && o.requests() == 2,
                    "NoCache: {:?}",
                    r.cache_status()
                );
                check!(
                    !o.request(1).contains_key("cache-control"),
                    "NoCache sent Cache-Control"
                );
                let r = with(RequestCache::Reload).await.unwrap();
                check!(
                    o.requests() == 3 && !o.request(2).contains_key("if-none-match"),
                    "Reload: {:?}",
                    r.cache_status()
                );
                let r = with(RequestCache::NoStore).await.unwrap();
                check!(
                    r.cache_status() == CacheStatus::Bypass && o.requests() == 4,
                    "NoStore: {:?}",
                    r.cache_status()
                );
                let r = with(RequestCache::ForceCache).await.unwrap();
                check!(
                    r.cache_status().from_cache() && o.requests() == 4,
                    "ForceCache: {:?}",
                    r.cache_status()
                );
                let o2 = Origin::new(|_, _| (200, vec![], "body")).await;
                let r = c
                    .get(o2.url())
                    .cache(RequestCache::OnlyIfCached)
                    .send()
                    .await
                    .unwrap();
                check!(
                    r.status() == 504 && o2.requests() == 0,
                    "OnlyIfCached: {}",
                    r.status()
                );
                Ok(())
            }
        ),
    ]
}

/// `n` identical GETs at once; their cache statuses.
async fn futures_join(c: &Client, url: &str, n: usize) -> Vec<CacheStatus> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (c, url) = (c.clone(), url.to_owned());
            tokio::spawn(async move { c.get(url).send().await.unwrap().cache_status() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as `Sunday, 06-Nov-94 08:49:37 GMT`.
fn rfc850_of(imf: &str) -> String {
    let days = [
        ("Mon", "Monday"),
        ("Tue", "Tuesday"),
        ("Wed", "Wednesday"),
        ("Thu", "Thursday"),
        ("Fri", "Friday"),
        ("Sat", "Saturday"),
        ("Sun", "Sunday"),
    ];
    let p: Vec<&str> = imf.split_whitespace().collect();
    let day = days.iter().find(|(s, _)| p[0].starts_with(s)).unwrap().1;
    format!("{day}, {}-{}-{} {} GMT", p[1], p[2], &p[3][2..], p[4])
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as `Sun Nov  6 08:49:37 1994`.
fn asctime_of(imf: &str) -> String {
    let p: Vec<&str> = imf.split_whitespace().collect();
    let day: u32 = p[1].parse().unwrap();
    format!(
        "{} {} {day:>2} {} {}",
        p[0].trim_end_matches(','),
        p[2],
        p[4],
        p[3]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_conformance() {
    let mut failed = Vec::new();
    let mut table = String::from("| section | case | result |\n|---|---|---|\n");
    let all = cases();
    for (section, name, run) in &all {
        let outcome = tokio::time::timeout(Duration::from_secs(20), run())
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()));
        let mark = match &outcome {
            Ok(()) => "pass".to_owned(),
            Err(why) => {
                failed.push(format!("§{section} {name}: {why}"));
                format!("FAIL: {why}")
            }
        };
        table.push_str(&format!("| {section} | {name} | {mark} |\n"));
    }
    println!("{table}");
    println!("{} of {} cases pass", all.len() - failed.len(), all.len());
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}

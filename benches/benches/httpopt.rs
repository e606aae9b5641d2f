//! `httpopt/*`: veza-httpopt against reqwest and hyper-util's pooled client, on loopback.
//!
//! The server is a hyper HTTP/1.1 server on 127.0.0.1 in its own single-thread runtime (on its
//! own OS thread); the clients run in another single-thread runtime, so client and server have
//! a core each. Every response is 1 KiB with `Cache-Control: no-store`: every request reaches
//! the server, while our cache stays on and is consulted (and must not coalesce). The server
//! counts requests, and each sample checks that it saw exactly the requests the client sent.
//!
//! - `get_seq`: one request in flight, requests per second.
//! - `get_16`: 16 tasks, one request in flight each.
//! - `cache_hit`: GET of a response stored fresh (`max-age=3600`), one in flight, against the
//!   same client with its cache off (every request goes to the origin).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use veza_benches::{Bench, Case, Contender, Metric};

const BODY: usize = 1024;
const IN_FLIGHT: usize = 16;

type Get = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send>> + Send + Sync>;

/// Counts allocations per operation (`Case::ops`).
#[global_allocator]
static ALLOC: veza_benches::CountingAlloc = veza_benches::CountingAlloc;

fn main() {
    let bench = Bench::from_args("httpopt");
    let seq = Case::new(
        "httpopt/get_seq",
        "keep-alive GET of 1 KiB on loopback, 1 in flight (responses no-store; our cache on)",
        Metric::Throughput,
        "req/s",
        "veza-httpopt",
    );
    let par = Case::new(
        "httpopt/get_16",
        "the same with 16 in flight",
        Metric::Throughput,
        "req/s",
        "veza-httpopt",
    );
    let hit = Case::new(
        "httpopt/cache_hit",
        "GET of a fresh cached 1 KiB response vs the same client with its cache off",
        Metric::Throughput,
        "req/s",
        "veza-httpopt",
    );
    if !(bench.wants(seq.id()) || bench.wants(par.id()) || bench.wants(hit.id())) {
        return;
    }
    let served = Arc::new(AtomicU64::new(0));
    let addr = server(Arc::clone(&served));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let no_store = format!("http://{addr}/no-store");
    let cached = format!("http://{addr}/cached");

    let n = if bench.quick() { 2_000 } else { 5_000 };
    let contenders: Vec<(&str, Get)> = rt.block_on(async {
        let all: Vec<(&str, Get)> = vec![
            (
                "veza-httpopt",
                veza(&no_store, veza_httpopt::CacheMode::Private),
            ),
            ("reqwest", reqwest_get(&no_store)),
            ("hyper-util", hyper_util_get(&no_store)),
        ];
        // One request each before measuring: every client opens its first connection, and
        // ours learns that the URI is uncacheable (before that, a first burst of identical
        // requests would be coalesced, and `drive` would fail its count).
        for (_, get) in &all {
            assert_eq!(get().await, BODY);
        }
        all
    });
    for (case, tasks) in [(&seq, 1), (&par, IN_FLIGHT)] {
        let runs: Vec<Contender<'_>> = contenders
            .iter()
            .map(|(name, get)| {
                let (get, rt, served) = (get.clone(), &rt, Arc::clone(&served));
                Contender::new(name, move || {
                    rt.block_on(drive(get.clone(), tasks, n, &served))
                })
            })
            .collect();
        bench.run(&case.clone().ops(n), runs);
    }

    let hits: Vec<(&str, Get)> = vec![
        (
            "veza-httpopt",
            veza(&cached, veza_httpopt::CacheMode::Private),
        ),
        ("origin", veza(&cached, veza_httpopt::CacheMode::Off)),
    ];
    let runs: Vec<Contender<'_>> = hits
        .iter()
        .map(|(name, get)| {
            let (get, rt) = (get.clone(), &rt);
            Contender::new(name, move || {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..n {
                        assert_eq!(get().await, BODY);
                    }
                    n as f64 / start.elapsed().as_secs_f64()
                })
            })
        })
        .collect();
    bench.run(&hit.ops(n), runs);
}

/// `n` GETs from `tasks` tasks; requests per second. Checks that the server saw each one.
async fn drive(get: Get, tasks: usize, n: usize, served: &AtomicU64) -> f64 {
    let before = served.load(Ordering::SeqCst);
    let per_task = n / tasks;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let get = get.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    assert_eq!(get().await, BODY);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    let rate = (per_task * tasks) as f64 / start.elapsed().as_secs_f64();
    let seen = served.load(Ordering::SeqCst) - before;
    assert_eq!(
        seen,
        (per_task * tasks) as u64,
        "every request must reach the server"
    );
    rate
}

/// The server, on its own thread and runtime; lives until the process ends.
fn server(served: Arc<AtomicU64>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let body = Bytes::from(vec![b'v'; BODY]);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let (body, served) = (body.clone(), Arc::clone(&served));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        served.fetch_add(1, Ordering::Relaxed);
                        let cc = if req.uri().path() == "/cached" {
                            "max-age=3600"
                        } else {
                            "no-store"
                        };
                        let resp = hyper::Response::builder()
                            .header("cache-control", cc)
                            .body(Full::new(body.clone()))
                            .expect("response");
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().expect("server address")
}

fn veza(url: &str, mode: veza_httpopt::CacheMode) -> Get {
    let client = veza_httpopt::Client::builder()
        .cache(mode)
        .build()
        .expect("client");
    let url: http::Uri = url.parse().expect("uri");
    Arc::new(move || {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move { client.get(url).send().await.expect("get").body().len() })
    })
}

fn reqwest_get(url: &str) -> Get {
    let client = reqwest::Client::new();
    let url = reqwest::Url::parse(url).expect("url");
    Arc::new(move || {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            let r = client.get(url).send().await.expect("get");
            r.bytes().await.expect("body").len()
        })
    })
}

fn hyper_util_get(url: &str) -> Get {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let url: http::Uri = url.parse().expect("uri");
    Arc::new(move || {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            let req = hyper::Request::get(url)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let r = client.request(req).await.expect("get");
            r.into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len()
        })
    })
}

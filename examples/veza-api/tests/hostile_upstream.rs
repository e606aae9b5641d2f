//! An avatar upstream that sends numbers no clock can hold: the service answers every request,
//! and its connection gauge comes back to zero.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use veza_api::Mode;

/// An upstream answering every request with an SVG and the given headers.
async fn upstream(headers: &'static [(&'static str, &'static str)]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    let mut r = hyper::Response::builder().header("content-type", "image/svg+xml");
                    for (k, v) in headers {
                        r = r.header(*k, *v);
                    }
                    Ok::<_, Infallible>(r.body(Full::new(Bytes::from_static(b"<svg/>"))).unwrap())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// The `concurrent_connections` gauge as the service exports it.
async fn connections_gauge(base: &str) -> f64 {
    let c = common::client();
    let text = c.get(format!("{base}/metrics")).send().await.unwrap();
    text.text()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("concurrent_connections "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_survive_an_upstream_with_overflowing_numbers() {
    const HUGE: &[(&str, &str)] = &[
        (
            "cache-control",
            "max-age=18446744073709551615, stale-while-revalidate=18446744073709551615",
        ),
        ("age", "18446744073709551615"),
    ];
    let up = upstream(HUGE).await;
    let (app, schema) = common::start_with(Mode::Veza, |c| c.upstream_url = Some(up)).await;
    let base = format!("http://{}", app.addr);
    for i in 0..5 {
        // A connection of its own each time, closed after the answer.
        let c = veza_httpopt::Client::builder()
            .cache(veza_httpopt::CacheMode::Off)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = c
            .get(format!("{base}/users/1/avatar"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.body(), "<svg/>");
    }
    // Only the scrape's own connection is counted once the others are gone.
    let mut gauge = f64::NAN;
    for _ in 0..50 {
        gauge = connections_gauge(&base).await;
        if gauge <= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gauge, 1.0, "the connection gauge leaked");
    common::stop(app, &schema).await;
}

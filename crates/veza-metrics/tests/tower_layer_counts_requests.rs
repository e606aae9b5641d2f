//! The tower layer counts the requests of a real hyper server by method, route template and
//! status, and 10,000 distinct paths still produce a bounded set of route labels.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use veza_metrics::{HttpMetricsLayer, Routes};

async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = if req.uri().path().starts_with("/users/") {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
    *response.status_mut() = status;
    Ok(response)
}

/// Serves `app` behind the layer on a loopback port, on its own runtime thread.
fn start_server() -> SocketAddr {
    let layer = HttpMetricsLayer::new(Routes::new(["/users/{id}", "/health"]));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = ServiceBuilder::new()
                    .layer(layer.clone())
                    .service(tower::service_fn(app));
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
    });
    addr
}

fn value_of(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn requests_are_counted_by_route_and_status_with_bounded_labels() {
    let metrics = common::metrics();
    let addr = start_server();
    for id in ["1", "2", "3"] {
        assert_eq!(common::get(addr, &format!("/users/{id}"), &[]).0, 200);
    }
    assert_eq!(common::get(addr, "/nowhere", &[]).0, 404);
    let text = metrics.render();
    assert_eq!(
        value_of(
            &text,
            "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &text,
            "http_request_duration_seconds_count{method=\"GET\",route=\"/users/{id}\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        value_of(
            &text,
            "http_response_size_bytes_sum{method=\"GET\",route=\"/users/{id}\"}"
        ),
        Some(15.0)
    );
    assert_eq!(value_of(&text, "http_requests_in_flight"), Some(0.0));

    // 10,000 distinct raw paths: the route label takes at most the templates plus "unmatched".
    for i in 0..10_000 {
        let path = if i % 2 == 0 {
            format!("/users/{i}")
        } else {
            format!("/random/{i}/x")
        };
        common::get(addr, &path, &[]);
    }
    let text = metrics.render();
    let mut routes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    routes.sort_unstable();
    routes.dedup();
    assert_eq!(routes, ["/users/{id}", "unmatched"]);

    // A traced request leaves its trace id on its duration bucket (OpenMetrics).
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace}-b7ad6b7169203331-01");
    assert_eq!(
        common::get(addr, "/users/7", &[("traceparent", &traceparent)]).0,
        200
    );
    let open = metrics.render_as(veza_metrics::Format::OpenMetrics);
    let with_exemplar: Vec<&str> = open
        .lines()
        .filter(|l| {
            l.starts_with(
                "http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/{id}\"",
            )
        })
        .filter(|l| l.contains(&format!("# {{trace_id=\"{trace}\"}}")))
        .collect();
    assert_eq!(
        with_exemplar.len(),
        1,
        "one bucket holds the exemplar:\n{open}"
    );
    // A malformed traceparent leaves none.
    assert_eq!(
        common::get(addr, "/users/8", &[("traceparent", "00-nothex-01")]).0,
        200
    );
    let open = metrics.render_as(veza_metrics::Format::OpenMetrics);
    assert!(!open.contains("nothex"));
}

//! An `HttpMetricsLayer` built, and even used, before the recorder is installed counts the
//! requests after the install, and its in-flight gauge ends at zero.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use veza_metrics::{HttpMetricsLayer, Metrics, Routes};

async fn call(layer: &HttpMetricsLayer, path: &str) {
    let service = layer.layer(tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }));
    let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
    let resp = service.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, v) = l.rsplit_once(' ')?;
        (name == series).then(|| v.parse().ok()).flatten()
    })
}

#[tokio::test]
async fn a_layer_built_before_the_install_counts_after_it() {
    let layer = HttpMetricsLayer::new(Routes::new(["/users/{id}"]));
    call(&layer, "/users/1").await; // before any recorder: counted nowhere
    let metrics = Metrics::builder().system_metrics(false).install().unwrap();
    for id in 2..5 {
        call(&layer, &format!("/users/{id}")).await;
    }
    let text = metrics.render();
    assert_eq!(
        value(
            &text,
            r#"http_requests_total{method="GET",route="/users/{id}",status="200"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(value(&text, "http_requests_in_flight"), Some(0.0), "{text}");
}

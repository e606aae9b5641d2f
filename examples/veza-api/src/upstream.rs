//! A second local service the API calls through veza-httpopt: avatars as small SVGs, with the
//! cache headers a real image service sends (`max-age`, an `ETag`, 304 on `If-None-Match`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running avatar service; stops when dropped.
#[derive(Debug)]
pub struct Avatars {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests it answered (to show what the client's cache saves).
    pub served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Avatars {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn avatar(id: &str) -> Response<Full<Bytes>> {
    let hue = id
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\">\
         <rect width=\"64\" height=\"64\" fill=\"hsl({hue},60%,55%)\"/></svg>"
    );
    Response::builder()
        .header("content-type", "image/svg+xml")
        .header(
            "cache-control",
            "public, max-age=60, stale-while-revalidate=30",
        )
        .header("etag", format!("\"{id}-{hue}\""))
        .body(Full::new(Bytes::from(svg)))
        .expect("response")
}

/// Starts the avatar service on `addr` (port 0 for any).
pub async fn start(addr: SocketAddr) -> anyhow::Result<Avatars> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let served = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&served);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    count.fetch_add(1, Ordering::Relaxed);
                    let id = req.uri().path().trim_start_matches("/avatars/").to_owned();
                    let resp = avatar(&id);
                    let not_modified = req
                        .headers()
                        .get("if-none-match")
                        .zip(resp.headers().get("etag"))
                        .is_some_and(|(a, b)| a == b);
                    let resp = if not_modified {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = http::StatusCode::NOT_MODIFIED;
                        for h in ["cache-control", "etag"] {
                            r.headers_mut().insert(h, resp.headers()[h].clone());
                        }
                        r
                    } else {
                        resp
                    };
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(Avatars { addr, served, task })
}

//! Real servers on 127.0.0.1 for the tests: a hyper server with a handler, and raw TCP servers
//! for the misbehaving cases (never answering, dripping bytes, closing connections).

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A server on loopback; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Connections that ended.
    pub closed: Arc<AtomicUsize>,
    /// Requests handled.
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A hyper server (HTTP/1.1 and h2c) answering with `handler`.
pub async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (c, d, r) = (
        Arc::clone(&connections),
        Arc::clone(&closed),
        Arc::clone(&requests),
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (handler, d, r) = (Arc::clone(&handler), Arc::clone(&d), Arc::clone(&r));
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    r.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Server {
        addr,
        connections,
        closed,
        requests,
        task,
    }
}

/// A raw TCP server: `on_conn(n, stream)` runs for the n-th connection (from 0).
pub async fn raw<F, Fut>(on_conn: F) -> Server
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let on_conn = Arc::new(on_conn);
    let (c, d) = (Arc::clone(&connections), Arc::clone(&closed));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let (on_conn, d) = (Arc::clone(&on_conn), Arc::clone(&d));
            tokio::spawn(async move {
                on_conn(n, stream).await;
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Server {
        addr,
        connections,
        closed,
        requests,
        task,
    }
}

/// Reads one request head (up to the blank line); `None` when the peer closed first.
pub async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Writes a complete `200 OK` with `body`.
pub async fn write_ok(stream: &mut TcpStream, body: &[u8]) {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

/// A response with `body` and headers.
pub fn response(
    status: u16,
    headers: &[(&str, String)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(body.into())).unwrap()
}

/// An HTTP date (IMF-fixdate) `secs` from now (negative for the past).
pub fn http_date(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now();
    let delta = std::time::Duration::from_secs(offset_secs.unsigned_abs());
    let at = if offset_secs < 0 {
        now - delta
    } else {
        now + delta
    };
    httpdate::fmt_http_date(at)
}

/// Waits until `cond` holds, for at most `limit`.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

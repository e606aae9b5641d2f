//! The `/metrics` endpoint: a small hyper server on loopback by default, with optional gzip.

use std::convert::Infallible;
use std::fmt;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::error::Error;
use crate::recorder::Format;
use crate::server::ServerLimits;
use crate::setup::Metrics;

/// Where the endpoint listens unless told otherwise: loopback only.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9000);

/// A running `/metrics` endpoint; stops when dropped.
pub struct Exporter {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// The address it listens on (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Metrics {
    /// Serves `GET /metrics` on `addr` (use [`DEFAULT_ADDR`], 127.0.0.1:9000, unless you need
    /// another). Binds before returning, so a taken port is an error here. Runs on the current
    /// tokio runtime if there is one, else on a thread of its own. Answers gzip-compressed when
    /// the scraper accepts it.
    ///
    /// Runs under [`ServerLimits::exporter`]: a 10 s header read timeout (slow or idle clients
    /// are closed) and at most 64 connections at once. [`Metrics::serve_with`] takes others.
    pub fn serve(&self, addr: SocketAddr) -> Result<Exporter, Error> {
        self.serve_with(addr, ServerLimits::exporter())
    }

    /// [`Metrics::serve`] under `limits`, checked first.
    pub fn serve_with(&self, addr: SocketAddr, limits: ServerLimits) -> Result<Exporter, Error> {
        limits.validate()?;
        let listener = StdListener::bind(addr).map_err(|e| Error::Bind(addr, e))?;
        let local = listener.local_addr().map_err(|e| Error::Bind(addr, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Bind(addr, e))?;
        let (stop, stopped) = watch::channel(false);
        let metrics = self.clone();
        let thread = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| Error::Bind(addr, e))?;
                runtime.spawn(accept_loop(listener, metrics, limits, stopped));
                None
            }
            Err(_) => Some(
                std::thread::Builder::new()
                    .name("veza-metrics-exporter".to_owned())
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_io()
                            .enable_time()
                            .build()
                            .expect("a current-thread runtime");
                        runtime.block_on(async move {
                            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                                accept_loop(listener, metrics, limits, stopped).await;
                            }
                        });
                    })
                    .map_err(|e| Error::Bind(addr, e))?,
            ),
        };
        Ok(Exporter {
            addr: local,
            stop,
            thread,
        })
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    limits: ServerLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = limits.connection_slots();
    loop {
        // A slot first: at the cap, new connections wait in the listen backlog.
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            _ = stopped.changed() => return,
        };
        let conn = tokio::select! {
            conn = listener.accept() => conn,
            _ = stopped.changed() => return,
        };
        let (stream, _) = match conn {
            Ok(accepted) => accepted,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "veza_metrics::exporter", error = %_e, "accept failed");
                // Out of descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let mut stop = stopped.clone();
        let http1 = limits.http1();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(route(&metrics, &req).await) }
            });
            let conn = http1.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _result = conn => {
                    #[cfg(feature = "tracing")]
                    if let Err(e) = _result {
                        // Timed-out heads, resets, malformed requests: the client's doing,
                        // logged for whoever runs the exporter.
                        tracing::warn!(target: "veza_metrics::exporter", error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}

/// `/metrics`, with the `pprof` feature `/debug/pprof/profile` and `/debug/pprof/flamegraph`,
/// and with `heap-profile` `/debug/pprof/heap`.
async fn route(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    #[cfg(feature = "heap-profile")]
    if req.uri().path() == "/debug/pprof/heap" {
        return crate::heap::profile().await;
    }
    #[cfg(feature = "pprof")]
    {
        use crate::profile::{Kind, profile, seconds};
        let kind = match req.uri().path() {
            "/debug/pprof/profile" => Some(Kind::Pprof),
            "/debug/pprof/flamegraph" => Some(Kind::Flamegraph),
            _ => None,
        };
        if let Some(kind) = kind {
            return match seconds(req.uri().query()) {
                Ok(secs) => profile(kind, secs).await,
                Err(why) => plain(StatusCode::BAD_REQUEST, why),
            };
        }
    }
    respond(metrics, req)
}

fn respond(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; try /metrics\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n");
    }
    let format = negotiate(req.headers());
    let body = metrics.render_as(format);
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::VARY, "accept, accept-encoding");
    let response = if accepts_gzip(req.headers()) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let compressed = gz.write_all(body.as_bytes()).and_then(|()| gz.finish());
        match compressed {
            Ok(bytes) => builder
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Full::new(Bytes::from(bytes))),
            Err(_) => builder.body(Full::new(Bytes::from(body))),
        }
    } else {
        builder.body(Full::new(Bytes::from(body)))
    };
    response.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"))
}

/// A plain-text answer (the endpoint's errors, and the profiles' own).
pub(crate) fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(text.into()));
    *response.status_mut() = status;
    response
}

/// OpenMetrics when `Accept` names `application/openmetrics-text` (without `q=0`), as
/// Prometheus asks by default; the Prometheus text format otherwise.
fn negotiate(headers: &http::HeaderMap) -> Format {
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !parts.any(zero_q)
        });
    if open {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// `q=0`, `q=0.0`, `q = 0.000`: not acceptable.
fn zero_q(param: &str) -> bool {
    let param = param.replace(' ', "");
    param
        .strip_prefix("q=")
        .or_else(|| param.strip_prefix("Q="))
        .and_then(|q| q.parse::<f32>().ok())
        .is_some_and(|q| q == 0.0)
}

/// Whether `Accept-Encoding` allows gzip (present, and not with `q=0`).
fn accepts_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !parts.any(zero_q)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        h
    }

    #[test]
    fn gzip_is_negotiated() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("deflate, gzip;q=0.5")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&http::HeaderMap::new()));
        assert!(!accepts_gzip(&headers("gzip; q=0.000")));
    }

    #[test]
    fn openmetrics_is_negotiated() {
        let accept = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().unwrap());
            negotiate(&h)
        };
        // What Prometheus 2.x and 3.x send.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(accept(prometheus), Format::OpenMetrics);
        assert_eq!(accept("text/plain"), Format::Prometheus);
        assert_eq!(
            accept("application/openmetrics-text; q=0"),
            Format::Prometheus
        );
        assert_eq!(negotiate(&http::HeaderMap::new()), Format::Prometheus);
    }
}

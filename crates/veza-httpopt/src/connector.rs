//! The connector: hyper-util's `HttpConnector` (optionally wrapped in rustls), with every
//! connection counted while it lives, for the `http_client_connections_*` metrics and
//! [`crate::Client::open_connections`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};

use crate::metrics::Metrics;

/// `Read` and `Write` for a wrapper whose `io` field does the work.
macro_rules! forward_io {
    (impl $(<$t:ident>)? for $ty:ty) => {
        impl$(<$t: Read + Unpin>)? Read for $ty {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: ReadBufCursor<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.io).poll_read(cx, buf)
            }
        }

        impl$(<$t: Write + Unpin>)? Write for $ty {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.io).poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.io).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.io).poll_shutdown(cx)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
            }
        }
    };
}

#[cfg(not(feature = "rustls"))]
pub(crate) type Inner = Proxied;
#[cfg(feature = "rustls")]
pub(crate) type Inner = hyper_rustls::HttpsConnector<Proxied>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TCP connections, through a proxy when the matcher says so: an `http` destination is
/// reached by connecting to the proxy (requests then go in absolute form), an `https` one
/// through a `CONNECT` tunnel (TLS to the destination runs inside it).
#[derive(Clone)]
pub(crate) struct Proxied {
    http: HttpConnector,
    matcher: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
}

impl std::fmt::Debug for Proxied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxied")
            .field("proxy", &self.matcher.is_some())
            .finish_non_exhaustive()
    }
}

impl Proxied {
    pub(crate) fn new(
        http: HttpConnector,
        matcher: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
    ) -> Proxied {
        Proxied { http, matcher }
    }
}

type Tcp = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

impl tower_service::Service<Uri> for Proxied {
    type Response = ProxyIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let intercept = self.matcher.as_ref().and_then(|m| m.intercept(&dst));
        let mut http = self.http.clone();
        Box::pin(async move {
            let Some(via) = intercept else {
                let io: Tcp = http.call(dst).await?;
                return Ok(ProxyIo { io, proxied: false });
            };
            if dst.scheme() == Some(&http::uri::Scheme::HTTPS) {
                let mut tunnel = hyper_util::client::legacy::connect::proxy::Tunnel::new(
                    via.uri().clone(),
                    http,
                );
                if let Some(auth) = via.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                std::future::poll_fn(|cx| tunnel.poll_ready(cx)).await?;
                let io: Tcp = tunnel.call(dst).await?;
                return Ok(ProxyIo { io, proxied: false });
            }
            let io: Tcp = http.call(via.uri().clone()).await?;
            Ok(ProxyIo { io, proxied: true })
        })
    }
}

/// A TCP stream that says whether it goes to a forward proxy (then hyper writes requests in
/// absolute form).
#[derive(Debug)]
pub(crate) struct ProxyIo {
    io: Tcp,
    proxied: bool,
}

impl Connection for ProxyIo {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

forward_io!(impl for ProxyIo);

/// A connector that counts the connections it opens and those still open.
///
/// One `Arc` inside: hyper-util clones the connector for every request (its lazy connect
/// future holds a clone even when a pooled connection answers), so a clone is one count,
/// not one per part.
#[derive(Clone, Debug)]
pub(crate) struct Counting {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inner: Inner,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Counting {
    pub(crate) fn new(inner: Inner, open: Arc<AtomicUsize>, metrics: Arc<Metrics>) -> Self {
        Counting {
            shared: Arc::new(Shared {
                inner,
                open,
                metrics,
            }),
        }
    }
}

impl tower_service::Service<Uri> for Counting {
    type Response = Counted<<Inner as tower_service::Service<Uri>>::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The connector that does the work is a clone made per connection, and asked there.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri.host().unwrap_or("").to_owned();
        let shared = Arc::clone(&self.shared);
        let mut inner = shared.inner.clone();
        Box::pin(async move {
            // `Into` is needed for hyper-util's `ConnectError`; rustls' connector already boxes.
            #[allow(clippy::useless_conversion)]
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::<BoxError>::into)?;
            #[allow(clippy::useless_conversion)]
            let io = inner.call(uri).await.map_err(Into::<BoxError>::into)?;
            shared.open.fetch_add(1, Ordering::Relaxed);
            shared.metrics.connection_opened(&host);
            Ok(Counted {
                io,
                open: Arc::clone(&shared.open),
                metrics: Arc::clone(&shared.metrics),
            })
        })
    }
}

/// A connection that decrements the open count when it is dropped (closed).
#[derive(Debug)]
pub(crate) struct Counted<T> {
    io: T,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.metrics.connection_closed();
    }
}

impl<T: Connection> Connection for Counted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

forward_io!(impl<T> for Counted<T>);

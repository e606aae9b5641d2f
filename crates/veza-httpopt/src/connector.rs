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

#[cfg(not(feature = "rustls"))]
pub(crate) type Inner = HttpConnector;
#[cfg(feature = "rustls")]
pub(crate) type Inner = hyper_rustls::HttpsConnector<HttpConnector>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector that counts the connections it opens and those still open.
#[derive(Clone, Debug)]
pub(crate) struct Counting {
    inner: Inner,
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Counting {
    pub(crate) fn new(inner: Inner, open: Arc<AtomicUsize>, metrics: Arc<Metrics>) -> Self {
        Counting {
            inner,
            open,
            metrics,
        }
    }
}

impl tower_service::Service<Uri> for Counting {
    type Response = Counted<<Inner as tower_service::Service<Uri>>::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri.host().unwrap_or("").to_owned();
        let fut = self.inner.call(uri);
        let open = Arc::clone(&self.open);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            // Needed for hyper-util's `ConnectError`; rustls' connector already boxes.
            #[allow(clippy::useless_conversion)]
            let io = fut.await.map_err(Into::<BoxError>::into)?;
            open.fetch_add(1, Ordering::Relaxed);
            metrics.connection_opened(&host);
            Ok(Counted { io, open, metrics })
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

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

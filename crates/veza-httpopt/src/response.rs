//! [`Response`]: a response read whole (within the client's limits), and where it came from.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};

/// Where a response came from, as far as the cache is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheStatus {
    /// The cache was not consulted: it is off, the method is not GET, or the request said
    /// `no-store`.
    Bypass,
    /// Not in the cache (or not usable): fetched from upstream.
    Miss,
    /// Served fresh from the cache; upstream was not contacted.
    Hit,
    /// Stored but stale: upstream confirmed it with `304 Not Modified` and the stored body was
    /// served with the updated headers.
    Revalidated,
    /// Served stale, under `stale-while-revalidate` (a refresh runs in the background) or
    /// `stale-if-error` (upstream failed).
    Stale,
}

impl CacheStatus {
    /// Whether upstream was not asked for this response (a fresh or stale hit).
    pub fn from_cache(self) -> bool {
        matches!(self, CacheStatus::Hit | CacheStatus::Stale)
    }
}

/// A complete HTTP response: head and body, decoded.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) cache: CacheStatus,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version it was received with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers. When the body was decompressed, `Content-Encoding` and `Content-Length`
    /// are gone (they described the bytes as sent). A cached response carries an `Age`.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body, decoded.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// Where the response came from.
    pub fn cache_status(&self) -> CacheStatus {
        self.cache
    }

    /// Converts into an `http::Response`, for handing on to a server framework.
    pub fn into_http(self) -> http::Response<Bytes> {
        let mut r = http::Response::new(self.body);
        *r.status_mut() = self.status;
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers;
        r
    }
}

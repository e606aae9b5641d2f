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
    /// An identical request was already in flight: this call shared its response (a miss or
    /// a revalidation for that request), and upstream was asked once for all of them.
    Coalesced,
}

/// How one request uses the cache, whatever its own headers say, without changing what the
/// origin sees (the names of the Fetch standard's `RequestCache`). Set it with
/// [`RequestBuilder::cache`](crate::RequestBuilder::cache), or put it in the extensions of an
/// `http::Request` given to [`Client::execute`](crate::Client::execute).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestCache {
    /// The HTTP rules, with the request's own `Cache-Control` honoured.
    #[default]
    Default,
    /// Neither look in the cache nor store the response.
    NoStore,
    /// Fetch from the origin without looking, and store the response.
    Reload,
    /// Look, but revalidate a stored response with the origin even if it is fresh.
    NoCache,
    /// Serve a stored response, fresh or stale, without asking the origin; fetch only when
    /// nothing is stored.
    ForceCache,
    /// Serve a stored response, fresh or stale, and never ask the origin: `504 Gateway
    /// Timeout` when nothing is stored.
    OnlyIfCached,
}

impl CacheStatus {
    /// The `x-cache` value of this status (upper case: `HIT`, `MISS`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Miss => "MISS",
            CacheStatus::Hit => "HIT",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Stale => "STALE",
            CacheStatus::Coalesced => "COALESCED",
        }
    }

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

    /// The headers, end to end: hop-by-hop fields are gone, and `Content-Length` is the length
    /// of [`body`](Response::body) (decoded: when the body was decompressed,
    /// `Content-Encoding` is gone too). A cached response carries its origin's `Date` and an
    /// up-to-date `Age`.
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

    /// The response itself when its status is not a client or server error (4xx, 5xx);
    /// otherwise [`Error::Status`](crate::Error::Status), which classifies 429, 502, 503 and
    /// 504 as retryable (reqwest's `error_for_status`).
    pub fn error_for_status(self) -> Result<Response, crate::Error> {
        self.error_for_status_ref()?;
        Ok(self)
    }

    /// Like [`error_for_status`](Response::error_for_status), by reference.
    pub fn error_for_status_ref(&self) -> Result<&Response, crate::Error> {
        status_error(self.status).map(|()| self)
    }

    /// The body parsed as JSON (feature `json`).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_slice(&self.body).map_err(|e| crate::Error::Json(std::sync::Arc::new(e)))
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

/// A response whose body is read as it arrives: from
/// [`RequestBuilder::send_streaming`](crate::RequestBuilder::send_streaming).
#[derive(Debug)]
pub struct StreamingResponse {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: crate::BodyStream,
}

impl StreamingResponse {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version it was received with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The headers, without hop-by-hop fields; without `Content-Encoding` and
    /// `Content-Length` when the body is decoded on the way.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next piece of the body, decoded; `None` at its end (reqwest's `chunk`).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, crate::Error> {
        self.body.chunk().await
    }

    /// The body stream, to read elsewhere.
    pub fn into_body(self) -> crate::BodyStream {
        self.body
    }

    /// Itself when the status is not a client or server error, else
    /// [`Error::Status`](crate::Error::Status) (the body is dropped unread).
    pub fn error_for_status(self) -> Result<StreamingResponse, crate::Error> {
        status_error(self.status).map(|()| self)
    }
}

/// [`Error::Status`](crate::Error::Status) for a client or server error status.
fn status_error(status: StatusCode) -> Result<(), crate::Error> {
    if status.is_client_error() || status.is_server_error() {
        Err(crate::Error::Status(status))
    } else {
        Ok(())
    }
}

//! [`Client`]: the pooled client, the request pipeline (cache, coalescing, retries, limits)
//! and [`RequestBuilder`].

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_LOCATION, CONTENT_TYPE, HeaderName,
    HeaderValue, LOCATION, USER_AGENT,
};
use http::{Method, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{self, Limits};
use crate::budget::RetryBudget;
use crate::cache::{HttpCache, Lookup, Stored, has_directive};
use crate::coalesce::Coalescer;
use crate::config::{CacheMode, Config};
use crate::connector::{self, Counting};
use crate::error::TimeoutKind;
use crate::metrics::{HostMetrics, Metrics, Revalidation, StaleReason};
use crate::{CacheStatus, Error, RequestCache, Response};

type Hyper = hyper_util::client::legacy::Client<Counting, Full<Bytes>>;

/// A pooled HTTP client with an RFC 9111 cache. Cheap to clone: clones share the pool, the
/// cache and the retry budget. Needs a tokio runtime (with the time driver) to send requests.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hyper: Hyper,
    config: Config,
    limits: Limits,
    user_agent: Option<HeaderValue>,
    /// The fields `with_defaults` gives a request that has none (`User-Agent`,
    /// `Accept-Encoding`), made once: a copy costs less than inserting them one by one.
    default_headers: http::HeaderMap,
    /// The same with a `Host` field last, for the plain-http requests that go out on
    /// HTTP/1, whose `Host` is set here (replacing this one, so the copy does not grow)
    /// rather than formatted by hyper-util for every request. `None` with prior-knowledge
    /// HTTP/2, where no `Host` field is sent.
    host_headers: Option<http::HeaderMap>,
    cache: Option<HttpCache>,
    coalescer: Coalescer,
    budget: RetryBudget,
    metrics: Arc<Metrics>,
    open: Arc<AtomicUsize>,
    breakers: Option<crate::breaker::Breakers>,
    proxies: Option<Arc<hyper_util::client::proxy::matcher::Matcher>>,
}

impl Client {
    /// A client with `config`, checked first.
    pub fn new(config: Config) -> Result<Client, Error> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let open = Arc::new(AtomicUsize::new(0));
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let proxies = config.proxy.matcher()?.map(Arc::new);
        let proxied = connector::Proxied::new(http, proxies.clone());
        let connector = Counting::new(
            tls(proxied, &config)?,
            Arc::clone(&open),
            Arc::clone(&metrics),
        );

        let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            // Without a pool timer hyper-util only drops expired idle connections when it next
            // looks at them; with one, a task closes them on time.
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        #[cfg(feature = "http2")]
        builder.http2_only(config.http2_prior_knowledge);
        #[cfg(not(feature = "http2"))]
        if config.http2_prior_knowledge {
            return Err(Error::InvalidConfig(
                "http2_prior_knowledge needs the http2 feature".into(),
            ));
        }
        let hyper = builder.build(connector);

        let r = &config.retry;
        let budget = RetryBudget::new(
            Duration::from_secs(10),
            r.min_per_sec,
            r.budget_ratio,
            Instant::now(),
        );
        let cache = match config.cache.mode {
            CacheMode::Off => None,
            _ => Some(HttpCache::new(&config.cache)),
        };
        let limits = Limits {
            max_body: config.max_body_size,
            max_decoded: config.max_decoded_size,
            read_timeout: config.read_timeout,
            decompress: config.decompress,
        };
        let user_agent = match &config.user_agent {
            Some(ua) => Some(
                HeaderValue::from_str(ua)
                    .map_err(|_| Error::InvalidConfig("user_agent is not a header value".into()))?,
            ),
            None => None,
        };
        let config_breaker = config.circuit_breaker.clone();
        let mut default_headers = http::HeaderMap::new();
        if let Some(ua) = &user_agent {
            default_headers.insert(USER_AGENT, ua.clone());
        }
        if limits.decompress {
            default_headers.insert(
                ACCEPT_ENCODING,
                HeaderValue::from_static(body::ACCEPT_ENCODING),
            );
        }
        let host_headers = (!config.http2_prior_knowledge).then(|| {
            let mut h = default_headers.clone();
            h.insert(http::header::HOST, HeaderValue::from_static(""));
            h
        });
        Ok(Client {
            inner: Arc::new(Inner {
                hyper,
                config,
                limits,
                user_agent,
                default_headers,
                host_headers,
                cache,
                coalescer: Coalescer::default(),
                budget,
                metrics,
                open,
                breakers: config_breaker.map(crate::breaker::Breakers::new),
                proxies,
            }),
        })
    }

    /// A builder over [`Config::default`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            config: Config::default(),
        }
    }

    /// Starts a GET request.
    pub fn get<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        self.request(Method::GET, uri)
    }

    /// Starts a POST request.
    pub fn post<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        self.request(Method::POST, uri)
    }

    /// Starts a PUT request.
    pub fn put<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        self.request(Method::PUT, uri)
    }

    /// Starts a PATCH request.
    pub fn patch<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        self.request(Method::PATCH, uri)
    }

    /// Starts a DELETE request.
    pub fn delete<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        self.request(Method::DELETE, uri)
    }

    /// Starts a HEAD request.
    pub fn head<U>(&self, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        self.request(Method::HEAD, uri)
    }

    /// Starts a request.
    pub fn request<U>(&self, method: Method, uri: U) -> RequestBuilder
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        let req = Uri::try_from(uri)
            .map_err(|e| Error::InvalidRequest(format!("invalid uri: {e}")))
            .map(|uri| {
                let mut r = http::Request::new(Bytes::new());
                *r.method_mut() = method;
                *r.uri_mut() = uri;
                r
            });
        RequestBuilder {
            client: self.clone(),
            req,
            timeout: None,
        }
    }

    /// Sends a request built with `http::Request`, under the client's total timeout.
    pub fn execute(
        &self,
        req: http::Request<Bytes>,
    ) -> impl Future<Output = Result<Response, Error>> + Send + '_ {
        // The request is split before the future is made, and the future works on it where
        // it lies: an `async fn` would keep its argument and the moved-out copy both (the
        // compiler does not overlap them), and every exchange would carry the extra bytes.
        let (mut parts, mut body) = req.into_parts();
        let timeout = self.inner.config.timeout;
        async move { self.execute_with(&mut parts, &mut body, timeout).await }
    }

    async fn execute_with(
        &self,
        parts: &mut http::request::Parts,
        body: &mut Bytes,
        timeout: Duration,
    ) -> Result<Response, Error> {
        self.prepare(parts)?;
        // One clock read for the first hop's start and the deadline; the deadline on tokio's
        // clock (which a test may pause).
        let now = tokio::time::Instant::now();
        let deadline = deadline_after(now, timeout);
        let first = now.into_std();
        let limit = self.inner.config.max_redirects;
        let mut hops = 0u32;
        loop {
            let host = Hop {
                metrics: self.inner.metrics.host_of(&parts.uri),
                start: if hops == 0 { first } else { Instant::now() },
            };
            #[cfg(feature = "tracing")]
            let span = tracing::debug_span!(
                "http.request",
                method = %parts.method,
                host = parts.uri.host().unwrap_or(""),
                path = parts.uri.path(),
                status = tracing::field::Empty,
                cache = tracing::field::Empty,
                duration_ms = tracing::field::Empty,
            );
            // The request stays here, lent to the exchange: the futures below hold a reference,
            // not a copy (a request head is over 200 bytes, and every layer of the exchange's
            // future would carry and move it). Without redirects to follow (the default), the
            // body is not needed again.
            let sent_body = if limit == 0 {
                std::mem::take(body)
            } else {
                body.clone()
            };
            let sent = self.dispatch(parts, sent_body, &host);
            #[cfg(feature = "tracing")]
            let sent = tracing::Instrument::instrument(sent, span.clone());
            let result = match tokio::time::timeout_at(deadline, sent).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout {
                    kind: TimeoutKind::Total,
                    after: timeout,
                }),
            };
            #[cfg(feature = "tracing")]
            {
                span.record("duration_ms", host.start.elapsed().as_secs_f64() * 1e3);
                match &result {
                    Ok(r) => {
                        span.record("status", r.status.as_u16());
                        span.record("cache", tracing::field::debug(r.cache));
                    }
                    Err(e) => {
                        span.record("status", tracing::field::display(e));
                    }
                }
            }
            host.request(
                &parts.method,
                result.as_ref().ok().map(Response::status),
                host.start.elapsed(),
            );
            let mut resp = result?;
            if self.inner.config.cache.diagnostics {
                resp.headers.insert(
                    HeaderName::from_static("x-cache"),
                    HeaderValue::from_static(resp.cache.as_str()),
                );
            }
            if limit == 0 {
                return Ok(resp);
            }
            if !self.next_hop(parts, body, resp.status, &resp.headers, &mut hops)? {
                return Ok(resp);
            }
        }
    }

    /// When redirects are on and `status` is a redirect with a usable `Location`, turns
    /// `parts` and `body` into the next hop's request and returns `true`; `false` when the
    /// response is the answer (a 3xx without a usable `Location` included). Past
    /// `max_redirects`, [`Error::TooManyRedirects`].
    fn next_hop(
        &self,
        parts: &mut http::request::Parts,
        body: &mut Bytes,
        status: StatusCode,
        headers: &http::HeaderMap,
        hops: &mut u32,
    ) -> Result<bool, Error> {
        let limit = self.inner.config.max_redirects;
        if limit == 0 || !is_redirect(status) {
            return Ok(false);
        }
        let Some(next) = location(&parts.uri, headers.get(LOCATION)) else {
            return Ok(false);
        };
        if *hops == limit {
            return Err(Error::TooManyRedirects { limit });
        }
        *hops += 1;
        redirect(parts, body, status, next);
        self.prepare(parts)?;
        Ok(true)
    }

    /// Sends a request built with `http::Request` and returns as soon as the response head
    /// is in: the body is read as it arrives
    /// ([`StreamingResponse::chunk`](crate::StreamingResponse::chunk)), under the same
    /// limits as a body read whole. The client's total timeout bounds the wait for the head;
    /// `read_timeout` bounds each wait for the body. The cache is not used (a streamed body
    /// is not stored), though a successful unsafe request still invalidates.
    pub async fn execute_streaming(
        &self,
        req: http::Request<Bytes>,
    ) -> Result<crate::StreamingResponse, Error> {
        self.streaming_with(req, self.inner.config.timeout).await
    }

    async fn streaming_with(
        &self,
        req: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<crate::StreamingResponse, Error> {
        let (mut parts, mut body) = req.into_parts();
        self.prepare(&mut parts)?;
        let deadline = deadline_after(tokio::time::Instant::now(), timeout);
        let mut hops = 0u32;
        loop {
            let host = Hop::now(self.inner.metrics.host_of(&parts.uri));
            let sent = self.retrying(
                &parts,
                body.clone(),
                &host,
                |b| self.send_head(&parts, b),
                |r: &http::Response<hyper::body::Incoming>| (r.status(), r.headers()),
            );
            let head = match tokio::time::timeout_at(deadline, sent).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout {
                    kind: TimeoutKind::Total,
                    after: timeout,
                }),
            };
            host.request(
                &parts.method,
                head.as_ref().ok().map(http::Response::status),
                host.start.elapsed(),
            );
            let (mut head, incoming) = head?.into_parts();
            crate::wire::hop_by_hop(&mut head.headers);
            let success = head.status.is_success() || head.status.is_redirection();
            if let (Some(cache), false, true) = (&self.inner.cache, parts.method.is_safe(), success)
            {
                cache.invalidate(&parts.uri);
            }
            if self.next_hop(&mut parts, &mut body, head.status, &head.headers, &mut hops)? {
                continue; // the redirect's own body is dropped unread
            }
            let body =
                crate::body::BodyStream::new(incoming, &mut head.headers, self.inner.limits)?;
            return Ok(crate::StreamingResponse {
                status: head.status,
                version: head.version,
                headers: head.headers,
                body,
            });
        }
    }

    /// The cache, when it is on.
    pub fn cache(&self) -> Option<&HttpCache> {
        self.inner.cache.as_ref()
    }

    /// Connections open now (idle in the pool or in use).
    pub fn open_connections(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A readiness check of an upstream: `GET uri`, bypassing the cache, within `timeout`.
    /// Healthy on 2xx/3xx, degraded when slower than half the timeout, unhealthy otherwise.
    pub fn health_check<U>(
        &self,
        name: impl Into<String>,
        uri: U,
        timeout: Duration,
    ) -> Result<crate::UpstreamHealth, Error>
    where
        Uri: TryFrom<U>,
        <Uri as TryFrom<U>>::Error: std::fmt::Display,
    {
        let uri =
            Uri::try_from(uri).map_err(|e| Error::InvalidRequest(format!("invalid uri: {e}")))?;
        Ok(crate::UpstreamHealth::new(
            name.into(),
            self.clone(),
            uri,
            timeout,
        ))
    }

    /// One GET straight upstream (no cache, no coalescing), for health checks.
    pub(crate) async fn probe(&self, uri: Uri, timeout: Duration) -> Result<Response, Error> {
        let mut parts = http::Request::new(()).into_parts().0;
        parts.uri = uri;
        self.prepare(&mut parts)?;
        let host = Hop::now(self.inner.metrics.host_of(&parts.uri));
        match tokio::time::timeout(timeout, self.fetch(&parts, Bytes::new(), &host)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                kind: TimeoutKind::Total,
                after: timeout,
            }),
        }
    }

    /// Checks the URI, and adds a forward proxy's credentials to a plain http request.
    fn prepare(&self, parts: &mut http::request::Parts) -> Result<(), Error> {
        match parts.uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "rustls") => {}
            Some("https") => {
                return Err(Error::InvalidRequest(
                    "https needs the `rustls` feature of veza-httpopt".into(),
                ));
            }
            Some(other) => {
                return Err(Error::InvalidRequest(format!("unsupported scheme {other}")));
            }
            None => {
                return Err(Error::InvalidRequest(format!(
                    "uri {} is not absolute",
                    parts.uri
                )));
            }
        }
        if !crate::wire::has_host(&parts.uri) {
            return Err(Error::InvalidRequest(format!(
                "uri {} has no host",
                parts.uri
            )));
        }
        // A forward proxy of plain http requests reads its credentials from each request
        // (an https destination gets them once, on the CONNECT).
        if parts.uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            let auth = self.inner.proxies.as_ref().and_then(|m| {
                m.intercept(&parts.uri)
                    .and_then(|via| via.basic_auth().cloned())
            });
            if let Some(mut auth) = auth {
                auth.set_sensitive(true);
                parts
                    .headers
                    .insert(http::header::PROXY_AUTHORIZATION, auth);
            }
        }
        Ok(())
    }

    async fn dispatch(
        &self,
        parts: &mut http::request::Parts,
        body: Bytes,
        host: &Hop,
    ) -> Result<Response, Error> {
        let Some(cache) = &self.inner.cache else {
            return self
                .fetch(parts, body, host)
                .await
                .map(|r| with_status(r, CacheStatus::Bypass));
        };
        let mode = parts
            .extensions
            .get::<RequestCache>()
            .copied()
            .unwrap_or_default();
        // Most requests say nothing about caching: one lookup answers the questions the
        // request's own `Cache-Control` would raise below.
        let directives = parts.headers.contains_key(CACHE_CONTROL);
        if parts.method == Method::GET
            && mode != RequestCache::NoStore
            && !(directives && has_directive(&parts.headers, "no-store"))
        {
            return self
                .cached_get(cache, parts, body, host, mode, directives)
                .await;
        }
        let invalidates = !parts.method.is_safe();
        let resp = Box::pin(self.fetch(parts, body, host)).await?;
        let resp = with_status(resp, CacheStatus::Bypass);
        if invalidates && (resp.status.is_success() || resp.status.is_redirection()) {
            // RFC 9111 §4.4: the target URI, and Location / Content-Location on the same origin.
            cache.invalidate(&parts.uri);
            for name in [LOCATION, CONTENT_LOCATION] {
                if let Some(uri) = same_origin(&parts.uri, resp.headers.get(&name)) {
                    cache.invalidate(&uri);
                }
            }
        }
        Ok(resp)
    }

    async fn cached_get(
        &self,
        cache: &HttpCache,
        parts: &mut http::request::Parts,
        body: Bytes,
        host: &Hop,
        mode: RequestCache,
        directives: bool,
    ) -> Result<Response, Error> {
        // RFC 9111 §5.2: request directive names are case-insensitive too.
        if directives {
            crate::wire::normalize_request(&mut parts.headers);
        }
        if mode == RequestCache::Reload {
            host.miss();
            let r = self.fetch(parts, body, host).await?;
            self.store(cache, parts, &r, SystemTime::now());
            return Ok(with_status(r, CacheStatus::Miss));
        }
        // The lookup is settled before anything is awaited: what it found (a stored response,
        // a conditional request) is not kept in this future while the network answers.
        let next = match cache.lookup(parts, mode, host.start) {
            Lookup::Fresh(r) => {
                host.hit();
                return Ok(ranged(&parts.headers, r));
            }
            Lookup::Pass { .. } if only_if_cached(parts, mode, directives) => {
                return Ok(gateway_timeout());
            }
            Lookup::Pass { renew } => Next::Pass(self.fetch(parts, body, host), renew),
            // The miss and stale paths are boxed: their futures (coalescing, revalidation) are
            // several times the size of the common paths', and every request would otherwise
            // carry, move and allocate that size.
            Lookup::Miss => Next::Slow(Box::pin(self.miss(cache, parts, body, host, mode))),
            Lookup::Stale(stored, conditional, now) => Next::Slow(Box::pin(self.stale(
                cache,
                stored,
                parts,
                conditional,
                host,
                now,
            ))),
        };
        match next {
            Next::Pass(fetch, renew) => {
                let r = fetch.await?;
                if cache.after_pass(parts, &r, renew) {
                    self.inner.metrics.stored_bytes(cache.stored_bytes());
                }
                Ok(with_status(r, CacheStatus::Miss))
            }
            Next::Slow(slow) => slow.await,
        }
    }

    async fn miss(
        &self,
        cache: &HttpCache,
        parts: &http::request::Parts,
        body: Bytes,
        host: &Hop,
        mode: RequestCache,
    ) -> Result<Response, Error> {
        host.miss();
        // The slow path asks the request's fields in full.
        if only_if_cached(parts, mode, true) {
            return Ok(gateway_timeout());
        }
        let fetch = || async {
            let r = self.fetch(parts, body, host).await?;
            self.store(cache, parts, &r, SystemTime::now());
            Ok(with_status(r, CacheStatus::Miss))
        };
        if self.inner.config.cache.coalesce {
            let key = self.inner.coalescer.key(parts);
            self.inner.coalescer.run(key, fetch).await
        } else {
            fetch().await
        }
    }

    async fn stale(
        &self,
        cache: &HttpCache,
        stored: Arc<Stored>,
        parts: &http::request::Parts,
        conditional: http::request::Parts,
        host: &Hop,
        now: SystemTime,
    ) -> Result<Response, Error> {
        if stored.within_swr(now) {
            host.stale(StaleReason::WhileRevalidate);
            self.refresh_in_background(Arc::clone(&stored), parts.clone(), conditional);
            return Ok(stored.stale_response(now));
        }
        // The typed `OnlyIfCached` never gets here (its lookup serves any stored response):
        // only the request directive can ask for a 504 now.
        if has_directive(&parts.headers, "only-if-cached") {
            return Ok(gateway_timeout());
        }
        let revalidate = || self.revalidate(cache, &stored, parts, conditional, host);
        if self.inner.config.cache.coalesce {
            let key = self.inner.coalescer.key(parts);
            self.inner.coalescer.run(key, revalidate).await
        } else {
            revalidate().await
        }
    }

    fn store(&self, cache: &HttpCache, parts: &http::request::Parts, r: &Response, at: SystemTime) {
        if cache.store(parts, r, at) {
            self.inner.metrics.stored_bytes(cache.stored_bytes());
        }
    }

    /// Sends the conditional request for a stale entry and serves what it says.
    async fn revalidate(
        &self,
        cache: &HttpCache,
        stored: &Stored,
        parts: &http::request::Parts,
        conditional: http::request::Parts,
        host: &Hop,
    ) -> Result<Response, Error> {
        let sent = SystemTime::now();
        match self.fetch(&conditional, Bytes::new(), host).await {
            Ok(r) if r.status.is_server_error() && stored.within_sie(SystemTime::now()) => {
                host.revalidation(Revalidation::Error);
                host.stale(StaleReason::IfError);
                Ok(stored.stale_response(SystemTime::now()))
            }
            Ok(r) if r.status == StatusCode::NOT_MODIFIED => {
                let head = head_of(&r);
                if let Some(merged) = cache.revalidated(parts, stored, &head, SystemTime::now()) {
                    host.revalidation(Revalidation::NotModified);
                    self.inner.metrics.stored_bytes(cache.stored_bytes());
                    return Ok(merged);
                }
                // A 304 whose validators do not match what is stored: ask again in full.
                host.revalidation(Revalidation::Modified);
                let r = self.fetch(parts, Bytes::new(), host).await?;
                self.store(cache, parts, &r, sent);
                Ok(with_status(r, CacheStatus::Miss))
            }
            Ok(r) => {
                host.revalidation(Revalidation::Modified);
                self.store(cache, parts, &r, sent);
                Ok(with_status(r, CacheStatus::Miss))
            }
            Err(e) => {
                host.revalidation(Revalidation::Error);
                if stored.within_sie(SystemTime::now()) {
                    host.stale(StaleReason::IfError);
                    return Ok(stored.stale_response(SystemTime::now()));
                }
                Err(e)
            }
        }
    }

    /// `stale-while-revalidate`: one background refresh per stored entry at a time.
    fn refresh_in_background(
        &self,
        stored: Arc<Stored>,
        parts: http::request::Parts,
        conditional: http::request::Parts,
    ) {
        let Some(cache) = &self.inner.cache else {
            return;
        };
        if !cache.begin_refresh(&stored) {
            return;
        }
        let client = self.clone();
        let timeout = self.inner.config.timeout;
        tokio::spawn(async move {
            let Some(cache) = client.inner.cache.as_ref() else {
                return;
            };
            let host = Hop::now(client.inner.metrics.host_of(&parts.uri));
            let refresh = client.revalidate(cache, &stored, &parts, conditional, &host);
            // The outcome is in the cache (or not, on failure); nobody waits for it.
            let _ = tokio::time::timeout(timeout, refresh).await;
            cache.end_refresh(&stored);
        });
    }

    /// Sends a request upstream, retrying idempotent ones after connection errors within the
    /// budget, and reads the body within the limits.
    ///
    /// The exchange with the network is boxed: the futures that await it (the cache's paths,
    /// the total timeout, the caller's own) stay small, so a caller that boxes or spawns the
    /// request allocates a block the allocator keeps at hand (glibc's per-thread cache stops
    /// at about 1 KiB; past it every request took the slow path of `malloc` and `free`), and
    /// moving them costs less.
    async fn fetch(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        host: &Hop,
    ) -> Result<Response, Error> {
        Box::pin(self.retrying(
            parts,
            body,
            host,
            |b| self.send_once(parts, b),
            |r: &Response| (r.status, &r.headers),
        ))
        .await
    }

    /// Sends `once` again, for idempotent requests, within `max_retries` and the retry
    /// budget: after a connection error (backoff with jitter), and after a 429 or 503 answer
    /// (its `Retry-After` when it is at most `max_retry_after`, else backoff; a longer one hands
    /// the answer back).
    async fn retrying<T, Fut>(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        host: &Hop,
        once: impl Fn(Bytes) -> Fut,
        head: impl Fn(&T) -> (StatusCode, &http::HeaderMap),
    ) -> Result<T, Error>
    where
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let inner = &*self.inner;
        let retry = &inner.config.retry;
        inner.budget.deposit(host.start);
        let idempotent = parts.method.is_idempotent();
        let mut attempt = 0u32;
        let circuit = inner
            .breakers
            .as_ref()
            .map(|b| (b, parts.uri.authority().map_or("", |a| a.as_str())));
        loop {
            if let Some((breakers, host)) = circuit {
                breakers.admit(host)?;
            }
            let outcome = once(body.clone()).await;
            if let Some((breakers, host)) = circuit {
                let failed = crate::breaker::is_failure(match &outcome {
                    Ok(answer) => Ok(head(answer).0),
                    Err(e) => Err(e),
                });
                breakers.record(host, failed);
            }
            match outcome {
                Err(e)
                    if idempotent
                        && attempt < retry.max_retries
                        && e.is_connection_error()
                        && inner.budget.withdraw(Instant::now()) =>
                {
                    attempt += 1;
                    host.retry();
                    // Boxed: a timer entry is large, and retries are rare.
                    Box::pin(tokio::time::sleep(backoff(
                        retry.backoff,
                        retry.max_backoff,
                        attempt,
                    )))
                    .await;
                }
                Ok(answer) => {
                    let (status, headers) = head(&answer);
                    let busy = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE;
                    if !busy
                        || !idempotent
                        || attempt >= retry.max_retries
                        || retry.max_retry_after.is_zero()
                    {
                        return Ok(answer);
                    }
                    let wait = match crate::wire::retry_after(headers, SystemTime::now()) {
                        Some(asked) if asked > retry.max_retry_after => return Ok(answer),
                        Some(asked) => asked,
                        None => backoff(retry.backoff, retry.max_backoff, attempt + 1),
                    };
                    if !inner.budget.withdraw(Instant::now()) {
                        return Ok(answer);
                    }
                    drop(answer);
                    attempt += 1;
                    host.retry();
                    Box::pin(tokio::time::sleep(wait)).await;
                }
                other => return other,
            }
        }
    }

    /// Adds the default fields (`User-Agent`, `Accept-Encoding`) the request does not set. They
    /// go on hyper's copy only: the cache reads the request as the caller wrote it (a `Vary`
    /// on them matches every request that left them to the client alike), and the common
    /// request's own map stays empty, so one copy of the defaults is made, not two.
    ///
    /// A plain-http request also gets its `Host` field here, the one hyper-util would write
    /// (it formats `host:port` anew for every request), from a copy made once per authority
    /// and thread.
    fn with_defaults(&self, headers: &mut http::HeaderMap, uri: &Uri) {
        if headers.is_empty() {
            let host = self.inner.host_headers.as_ref().zip(plain_host(uri));
            if let Some((template, host)) = host {
                headers.clone_from(template);
                headers.insert(http::header::HOST, host);
                return;
            }
            // Room for the defaults and the `Host` hyper-util adds: a copy of the defaults'
            // map would be exactly full and grow again on `Host`.
            headers.reserve(self.inner.default_headers.len() + 1);
            for (name, value) in &self.inner.default_headers {
                headers.append(name.clone(), value.clone());
            }
            return;
        }
        if let Some(ua) = &self.inner.user_agent {
            headers.entry(USER_AGENT).or_insert_with(|| ua.clone());
        }
        if self.inner.limits.decompress {
            headers
                .entry(ACCEPT_ENCODING)
                .or_insert(HeaderValue::from_static(body::ACCEPT_ENCODING));
        }
    }

    /// Sends a request and waits for the response head (within `read_timeout`).
    async fn send_head(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, Error> {
        let inner = &*self.inner;
        // The copy hyper takes is made here, before the first await: no future holds it.
        let mut head = parts.clone();
        self.with_defaults(&mut head.headers, &parts.uri);
        let req = http::Request::from_parts(head, Full::new(body));
        let sent = inner.hyper.request(req);
        match inner.limits.read_timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| Error::Timeout {
                    kind: TimeoutKind::Read,
                    after: t,
                })?,
            None => sent.await,
        }
        .map_err(|e| self.classify(e))
    }

    async fn send_once(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> Result<Response, Error> {
        let inner = &*self.inner;
        let head_request = parts.method == Method::HEAD;
        let resp = self.send_head(parts, body).await?;
        let (mut head, incoming) = resp.into_parts();
        let body = body::read(incoming, &mut head.headers, inner.limits).await?;
        let method = if head_request {
            Method::HEAD
        } else {
            Method::GET
        };
        crate::wire::end_to_end(&mut head.headers, &method, head.status, body.len());
        Ok(Response {
            status: head.status,
            version: head.version,
            headers: head.headers,
            body,
            cache: CacheStatus::Miss,
        })
    }

    fn classify(&self, e: hyper_util::client::legacy::Error) -> Error {
        if e.is_connect() {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = cur {
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                {
                    return Error::Timeout {
                        kind: TimeoutKind::Connect,
                        after: self.inner.config.connect_timeout,
                    };
                }
                cur = err.source();
            }
            if crate::error::failed_lookup(&e) == Some(crate::error::Lookup::NotFound) {
                return Error::UnknownHost(Error::source_of(e));
            }
            return Error::Connect(Error::source_of(e));
        }
        if crate::error::is_protocol_violation(&e) {
            return Error::Protocol(Error::source_of(e));
        }
        Error::Transport(Error::source_of(e))
    }
}

#[cfg(not(feature = "rustls"))]
fn tls(http: connector::Proxied, _config: &Config) -> Result<connector::Inner, Error> {
    Ok(http)
}

#[cfg(feature = "rustls")]
fn tls(http: connector::Proxied, config: &Config) -> Result<connector::Inner, Error> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let b = match &config.tls {
        Some(tls) => {
            // hyper-rustls sets ALPN from the enabled versions and refuses a preset list.
            let mut tls = (**tls).clone();
            tls.alpn_protocols.clear();
            builder.with_tls_config(tls)
        }
        None => builder.with_native_roots().map_err(|e| {
            Error::InvalidConfig(format!("cannot load the system's root certificates: {e}"))
        })?,
    };
    let b = b.https_or_http().enable_http1();
    #[cfg(feature = "http2")]
    let b = b.enable_http2();
    Ok(b.wrap_connector(http))
}

/// One hop of a request: its host's metrics, and when it started (the one clock read that
/// serves the retry budget, the cache's pass-through mark and the duration).
struct Hop {
    metrics: Arc<HostMetrics>,
    start: Instant,
}

impl Hop {
    fn now(metrics: Arc<HostMetrics>) -> Hop {
        Hop {
            metrics,
            start: Instant::now(),
        }
    }
}

impl std::ops::Deref for Hop {
    type Target = HostMetrics;

    fn deref(&self) -> &HostMetrics {
        &self.metrics
    }
}

/// What a cached GET does after the lookup: go upstream (and renew the pass mark if asked),
/// or run a boxed slow path.
enum Next<'a, F> {
    Pass(F, bool),
    Slow(std::pin::Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'a>>),
}

/// The `Host` field of a plain-http request as hyper-util writes it on HTTP/1 (the host,
/// and the port unless it is 80), when that is the authority as written: `None` for other
/// schemes (they may go out on HTTP/2, without a `Host` field), an authority with user
/// information or the default port (hyper-util writes those). Kept per thread for the last
/// authority: a service calls one upstream many times.
fn plain_host(uri: &Uri) -> Option<HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Box<str>, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return None;
    }
    let auth = uri.authority()?;
    let text = auth.as_str();
    // An empty port (`h:`) is written without its colon by hyper-util.
    if text.contains('@') || text.ends_with(':') || auth.port_u16() == Some(80) {
        return None;
    }
    LAST.try_with(|last| {
        let mut last = last.try_borrow_mut().ok()?;
        match &*last {
            Some((a, v)) if **a == *text => Some(v.clone()),
            _ => {
                let v = HeaderValue::from_str(text).ok()?;
                *last = Some((text.into(), v.clone()));
                Some(v)
            }
        }
    })
    .ok()
    .flatten()
}

/// `start + timeout` as a tokio deadline. A timeout too long to add (`Duration::MAX`, meant
/// as no limit) is capped at thirty years, as tokio's own sleeps do; it used to panic.
fn deadline_after(start: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(veza_core::duration::after(start.into_std(), timeout))
}

fn with_status(mut r: Response, status: CacheStatus) -> Response {
    r.cache = status;
    r
}

fn head_of(r: &Response) -> http::response::Parts {
    let mut head = http::Response::new(()).into_parts().0;
    head.status = r.status;
    head.version = r.version;
    head.headers = r.headers.clone();
    head
}

/// A stored full `200` answering a `Range` request (RFC 9111 §3.4, RFC 9110 §14): the
/// `206` for one satisfiable byte range, `416` for an unsatisfiable one; the full response
/// for anything else (several ranges, another unit, an `If-Range` that does not match the
/// stored strong `ETag`), which RFC 9110 §14.2 allows.
fn ranged(req: &http::HeaderMap, mut r: Response) -> Response {
    use http::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
    if r.status != StatusCode::OK {
        return r;
    }
    let Some(spec) = req.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return r;
    };
    if let Some(if_range) = req.get(IF_RANGE) {
        // Only a strong entity tag can be compared here (§13.1.5); a date is not trusted.
        let strong = r
            .headers
            .get(ETAG)
            .filter(|e| !e.as_bytes().starts_with(b"W/"));
        if strong != Some(if_range) {
            return r;
        }
    }
    let len = r.body.len() as u64;
    match crate::wire::single_range(spec, len) {
        None => r,
        Some(Err(())) => {
            r.status = StatusCode::RANGE_NOT_SATISFIABLE;
            r.body = Bytes::new();
            r.headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
            );
            r.headers.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
            r
        }
        Some(Ok((first, last))) => {
            // first <= last < len <= usize::MAX: the body is in memory.
            let (a, b) = (first as usize, last as usize);
            r.status = StatusCode::PARTIAL_CONTENT;
            r.body = r.body.slice(a..=b);
            r.headers.insert(
                CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")).expect("ascii"),
            );
            r.headers
                .insert(CONTENT_LENGTH, HeaderValue::from(r.body.len()));
            r
        }
    }
}

/// RFC 9111 §5.2.1.7 (`only-if-cached`), or the typed override: never ask the origin.
/// `directives`: whether the request has a `Cache-Control` field at all (when the caller
/// knows it has none, the field is not looked up again).
fn only_if_cached(parts: &http::request::Parts, mode: RequestCache, directives: bool) -> bool {
    mode == RequestCache::OnlyIfCached
        || (directives && has_directive(&parts.headers, "only-if-cached"))
}

/// `504 Gateway Timeout`: what a cache answers when it may not ask the origin and holds
/// nothing usable (RFC 9111 §5.2.1.7).
fn gateway_timeout() -> Response {
    Response {
        status: StatusCode::GATEWAY_TIMEOUT,
        version: http::Version::HTTP_11,
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
        cache: CacheStatus::Miss,
    }
}

/// The URI a `Location`-like header points to, when it is on the same origin as `base`.
fn same_origin(base: &Uri, value: Option<&HeaderValue>) -> Option<Uri> {
    let value = value?.to_str().ok()?.trim();
    if value.starts_with('/') && !value.starts_with("//") {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = Some(value.parse().ok()?);
        return Uri::from_parts(parts).ok();
    }
    let uri: Uri = value.parse().ok()?;
    (uri.scheme() == base.scheme() && uri.authority() == base.authority()).then_some(uri)
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The target of a `Location` field, resolved against `base` (RFC 9110 §10.2.2, RFC 3986
/// §5): absolute, scheme-relative, absolute-path or relative-path references; a fragment is
/// dropped.
fn location(base: &Uri, value: Option<&HeaderValue>) -> Option<Uri> {
    let value = value?.to_str().ok()?.trim();
    let value = value.split('#').next().unwrap_or("");
    if value.is_empty() {
        return None;
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let text = if value.contains("://") {
        value.to_owned()
    } else if let Some(rest) = value.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if value.starts_with('/') {
        format!("{scheme}://{}{value}", base.authority()?)
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{}{dir}{value}", base.authority()?)
    };
    text.parse().ok()
}

/// Turns `parts` into the request a redirect with `status` to `next` asks for.
fn redirect(parts: &mut http::request::Parts, body: &mut Bytes, status: StatusCode, next: Uri) {
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, PROXY_AUTHORIZATION};
    let to_get = status == StatusCode::SEE_OTHER && parts.method != Method::HEAD
        || matches!(status.as_u16(), 301 | 302) && parts.method == Method::POST;
    if to_get {
        parts.method = Method::GET;
        *body = Bytes::new();
        for name in [CONTENT_TYPE, CONTENT_LENGTH, http::header::CONTENT_ENCODING] {
            parts.headers.remove(name);
        }
    }
    let same_origin =
        next.scheme() == parts.uri.scheme() && next.authority() == parts.uri.authority();
    if !same_origin {
        for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, HOST] {
            parts.headers.remove(name);
        }
    }
    parts.uri = next;
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, scaled by a random factor in
/// [0.5, 1), capped at `max`.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let random = RandomState::new().build_hasher().finish();
    let factor = 0.5 + (random % 1000) as f64 / 2000.0;
    exp.mul_f64(factor).min(max)
}

/// Builds a client from [`Config::default`] with chained setters.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    config: Config,
}

impl ClientBuilder {
    /// Total time per request.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.config.timeout = d;
        self
    }

    /// Time to connect.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// Longest wait for the next bytes of a response.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.config.read_timeout = Some(d);
        self
    }

    /// Idle connections kept per host.
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.config.pool_max_idle_per_host = n;
        self
    }

    /// Idle time after which a pooled connection is closed.
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.config.pool_idle_timeout = d;
        self
    }

    /// HTTP/2 without negotiation.
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.config.http2_prior_knowledge = true;
        self
    }

    /// Largest body as sent, and once decoded.
    pub fn max_body_size(mut self, sent: u64, decoded: u64) -> Self {
        self.config.max_body_size = sent;
        self.config.max_decoded_size = decoded;
        self
    }

    /// The cache mode.
    pub fn cache(mut self, mode: CacheMode) -> Self {
        self.config.cache.mode = mode;
        self
    }

    /// The cache's bound in bytes.
    pub fn cache_max_bytes(mut self, bytes: u64) -> Self {
        self.config.cache.max_bytes = bytes;
        self
    }

    /// Sends requests through proxies ([`crate::Proxy`]); by default none.
    pub fn proxy(mut self, proxy: crate::Proxy) -> Self {
        self.config.proxy = proxy;
        self
    }

    /// Turns the per-host circuit breaker on ([`crate::BreakerConfig`]).
    pub fn circuit_breaker(mut self, breaker: crate::BreakerConfig) -> Self {
        self.config.circuit_breaker = Some(breaker);
        self
    }

    /// Redirects followed per request (default 0: a 3xx is returned as is); see
    /// [`Config::max_redirects`].
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.config.max_redirects = n;
        self
    }

    /// Retries per request (0 turns them off).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.retry.max_retries = n;
        self
    }

    /// Any other setting.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Builds the client, checking the configuration.
    pub fn build(self) -> Result<Client, Error> {
        Client::new(self.config)
    }
}

/// A request being built; [`RequestBuilder::send`] sends it. A bad URI or header is reported
/// by `send`, so calls chain.
#[derive(Debug)]
pub struct RequestBuilder {
    client: Client,
    req: Result<http::Request<Bytes>, Error>,
    timeout: Option<Duration>,
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        if let Ok(req) = &mut self.req {
            match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                (Ok(n), Ok(v)) => {
                    req.headers_mut().append(n, v);
                }
                _ => self.req = Err(Error::InvalidRequest("invalid header name or value".into())),
            }
        }
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let Ok(req) = &mut self.req {
            *req.body_mut() = body.into();
        }
        self
    }

    /// Appends `pairs` to the URI's query, form-urlencoded (`?a=1&b=x%20y`), after any query
    /// it already has.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(mut self, pairs: &[(K, V)]) -> Self {
        if let Ok(req) = &mut self.req {
            let uri = req.uri().clone();
            let mut query = form_urlencoded::Serializer::new(uri.query().unwrap_or("").to_owned());
            for (k, v) in pairs {
                query.append_pair(k.as_ref(), v.as_ref());
            }
            let path_and_query = format!("{}?{}", uri.path(), query.finish());
            let mut parts = uri.into_parts();
            match path_and_query.parse() {
                Ok(pq) => {
                    parts.path_and_query = Some(pq);
                    match Uri::from_parts(parts) {
                        Ok(uri) => *req.uri_mut() = uri,
                        Err(e) => {
                            self.req = Err(Error::InvalidRequest(format!("invalid uri: {e}")));
                        }
                    }
                }
                Err(e) => self.req = Err(Error::InvalidRequest(format!("invalid query: {e}"))),
            }
        }
        self
    }

    /// Sets a form-urlencoded body and its `Content-Type`.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k.as_ref(), v.as_ref());
        }
        self.content_type("application/x-www-form-urlencoded")
            .body(form.finish())
    }

    /// Sets a JSON body and its `Content-Type` (feature `json`). A value that cannot be
    /// serialised is reported by `send`.
    ///
    /// A reqwest JSON client ports by changing the imports and the builder:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use veza_httpopt::Client;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct User {
    ///     id: u64,
    ///     name: String,
    /// }
    ///
    /// #[derive(serde::Serialize)]
    /// struct NewUser<'a> {
    ///     name: &'a str,
    /// }
    ///
    /// # async fn demo(token: &str) -> Result<(), veza_httpopt::Error> {
    /// let client = Client::builder().timeout(Duration::from_secs(10)).build()?;
    /// let found: Vec<User> = client
    ///     .get("http://127.0.0.1:8080/users")
    ///     .query(&[("q", "ada lovelace"), ("page", "2")])
    ///     .bearer_auth(token)
    ///     .send()
    ///     .await?
    ///     .error_for_status()?
    ///     .json()?;
    /// let created: User = client
    ///     .post("http://127.0.0.1:8080/users")
    ///     .bearer_auth(token)
    ///     .json(&NewUser { name: "Ada" })
    ///     .send()
    ///     .await?
    ///     .error_for_status()?
    ///     .json()?;
    /// # let _ = (found.len(), created.id, created.name);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => self.content_type("application/json").body(bytes),
            Err(e) => RequestBuilder {
                req: Err(Error::Json(Arc::new(e))),
                ..self
            },
        }
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.sensitive_header(AUTHORIZATION, format!("Bearer {token}"))
    }

    /// `Authorization: Basic …` for `user` and, if any, `password`.
    pub fn basic_auth(
        self,
        user: impl std::fmt::Display,
        password: Option<impl std::fmt::Display>,
    ) -> Self {
        use base64::Engine as _;
        let credentials = match password {
            Some(p) => format!("{user}:{p}"),
            None => format!("{user}:"),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        self.sensitive_header(AUTHORIZATION, format!("Basic {encoded}"))
    }

    fn content_type(mut self, value: &'static str) -> Self {
        if let Ok(req) = &mut self.req {
            req.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(value));
        }
        self
    }

    /// Replaces `name` with `value`, marked sensitive (kept out of `Debug` output and of HPACK
    /// tables).
    fn sensitive_header(mut self, name: HeaderName, value: String) -> Self {
        if let Ok(req) = &mut self.req {
            match HeaderValue::try_from(value) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    req.headers_mut().insert(name, v);
                }
                Err(_) => {
                    self.req = Err(Error::InvalidRequest(format!("invalid {name} value")));
                }
            }
        }
        self
    }

    /// How this request uses the cache ([`RequestCache`]), whatever its headers say; the
    /// origin sees the request as built.
    pub fn cache(mut self, mode: crate::RequestCache) -> Self {
        if let Ok(req) = &mut self.req {
            req.extensions_mut().insert(mode);
        }
        self
    }

    /// Sets this request's total timeout (instead of the client's).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Sends it and returns once the response head is in; read the body as it arrives with
    /// [`StreamingResponse::chunk`](crate::StreamingResponse::chunk) (downloads, server-sent
    /// events, large payloads). See [`Client::execute_streaming`].
    pub async fn send_streaming(self) -> Result<crate::StreamingResponse, Error> {
        let req = self.req?;
        let timeout = self.timeout.unwrap_or(self.client.inner.config.timeout);
        self.client.streaming_with(req, timeout).await
    }

    /// Sends it.
    ///
    /// The future owns what it needs (`'static`): spawn it or keep it.
    pub fn send(self) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let timeout = self.timeout.unwrap_or(self.client.inner.config.timeout);
        let client = self.client;
        // Split before the future is made, and worked on where it lies (see `execute`).
        let mut request = self.req.map(http::Request::into_parts);
        async move {
            match &mut request {
                Ok((parts, body)) => client.execute_with(parts, body, timeout).await,
                Err(e) => Err(std::mem::replace(e, Error::InvalidRequest(String::new()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_field_is_the_authority_only_where_hyper_util_writes_it_so() {
        let host =
            |u: &str| plain_host(&u.parse().unwrap()).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(host("http://h/x").as_deref(), Some("h"));
        assert_eq!(host("http://h:8080/x").as_deref(), Some("h:8080"));
        assert_eq!(host("http://[::1]:8080/").as_deref(), Some("[::1]:8080"));
        // Twice the same, then another: the thread's copy follows the authority.
        assert_eq!(host("http://h:8080/y").as_deref(), Some("h:8080"));
        assert_eq!(host("http://g:8080/").as_deref(), Some("g:8080"));
        // Left to hyper-util: the default port (dropped), an empty one, user information,
        // other schemes (which may go out on HTTP/2).
        for u in ["http://h:80/", "http://u:p@h/", "https://h/"] {
            assert_eq!(host(u), None, "{u}");
        }
        if let Ok(u) = "http://h:/".parse::<Uri>() {
            assert_eq!(plain_host(&u), None);
        }
    }

    #[test]
    fn a_request_future_stays_under_a_kibibyte() {
        // What a caller boxes or spawns per request: under ~1 KiB glibc serves it from its
        // per-thread cache. It was 4,184 bytes when the request head rode every layer.
        let c = Client::builder().build().unwrap();
        let send = c.get("http://127.0.0.1:1/x").send();
        assert!(
            std::mem::size_of_val(&send) <= 1024,
            "{} bytes",
            std::mem::size_of_val(&send)
        );
        let execute = c.execute(http::Request::new(Bytes::new()));
        assert!(std::mem::size_of_val(&execute) <= 1024);
    }

    #[test]
    fn location_invalidation_stays_on_the_same_origin() {
        let base: Uri = "http://a.example/users/1".parse().unwrap();
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            same_origin(&base, Some(&v("/users/2")))
                .unwrap()
                .to_string(),
            "http://a.example/users/2"
        );
        assert!(same_origin(&base, Some(&v("http://a.example/x"))).is_some());
        assert!(same_origin(&base, Some(&v("http://b.example/x"))).is_none());
        assert!(same_origin(&base, Some(&v("//b.example/x"))).is_none());
        assert!(same_origin(&base, None).is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(20);
        let max = Duration::from_millis(100);
        let first = backoff(base, max, 1);
        assert!(first >= Duration::from_millis(10) && first < base);
        let third = backoff(base, max, 3);
        assert!(third >= Duration::from_millis(40));
        assert_eq!(backoff(base, max, 30), max.min(backoff(base, max, 30)));
        assert!(backoff(base, max, 30) <= max);
    }

    #[test]
    fn request_directives_are_found() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, No-Store"),
        );
        assert!(has_directive(&h, "no-store"));
        assert!(has_directive(&h, "max-age"));
        assert!(!has_directive(&h, "only-if-cached"));
    }
}

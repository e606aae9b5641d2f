//! [`Config`]: pool, time limits, body limits, cache and retry settings, with the guide's
//! defaults (30 s per request, 10 idle connections per host, 90 s idle timeout).

use std::time::Duration;

use crate::Error;

/// Who the cache serves, as RFC 9111 distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum CacheMode {
    /// No cache, no coalescing: every request goes upstream.
    Off,
    /// A private cache (the default), as in a browser: `private` responses are stored, and a
    /// response to a request carrying `Authorization` is reused only for the same credentials
    /// unless the response says it may be shared (`public`, `s-maxage`, `must-revalidate`).
    #[default]
    Private,
    /// A shared cache, as in a proxy: `s-maxage` wins over `max-age`, `private` responses and
    /// responses to authenticated requests are not stored unless explicitly allowed.
    Shared,
}

/// The HTTP cache's settings.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct CacheConfig {
    /// Private (default), shared, or off.
    pub mode: CacheMode,
    /// Most bytes of stored responses (bodies and headers); least recently used go first.
    /// Default 64 MiB.
    pub max_bytes: u64,
    /// Largest single response stored, in bytes; bigger ones are served but not kept.
    /// Default 4 MiB.
    pub max_entry_bytes: u64,
    /// Identical concurrent cacheable GETs share one upstream request. Default on.
    pub coalesce: bool,
    /// Heuristic freshness for responses with `Last-Modified` and no explicit lifetime, as a
    /// fraction of the time since the modification (RFC 9111 §4.2.2). Default 0.1.
    pub heuristic_fraction: f32,
    /// How long a URL whose last response could not be stored is sent straight upstream
    /// without coalescing ("hit-for-pass"): concurrent requests to an uncacheable resource
    /// must not wait for each other. Default 30 s.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub pass_ttl: Duration,
    /// Adds `x-cache: HIT` (or `MISS`, `REVALIDATED`, `STALE`, `COALESCED`, `BYPASS`) to each
    /// response handed out, for logs and browser tools downstream. Default off; in code,
    /// [`Response::cache_status`](crate::Response::cache_status) says the same.
    pub diagnostics: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: CacheMode::Private,
            max_bytes: 64 << 20,
            max_entry_bytes: 4 << 20,
            coalesce: true,
            heuristic_fraction: 0.1,
            pass_ttl: Duration::from_secs(30),
            diagnostics: false,
        }
    }
}

/// Where requests go through a proxy.
///
/// Unlike reqwest, the environment is read only when asked ([`Proxy::FromEnv`]): the
/// upstreams of a service are usually internal, and a proxy variable meant for a shell
/// should not reroute them silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Proxy {
    /// Straight to every upstream (the default).
    #[default]
    None,
    /// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), read when the
    /// client is built, as curl and reqwest read them.
    FromEnv,
    /// These proxies (`http://[user:password@]host:port`); `no` lists hosts, domains and
    /// CIDR ranges reached directly (the `NO_PROXY` syntax).
    Explicit {
        /// The proxy for `http` destinations.
        http: Option<String>,
        /// The proxy for `https` destinations (reached through `CONNECT`).
        https: Option<String>,
        /// Destinations reached directly.
        no: Option<String>,
    },
}

impl Proxy {
    /// The same proxy for every destination.
    pub fn all(url: impl Into<String>) -> Proxy {
        let url = url.into();
        Proxy::Explicit {
            http: Some(url.clone()),
            https: Some(url),
            no: None,
        }
    }

    /// The matcher for these settings; an error for a proxy URL that is not `http://host`.
    pub(crate) fn matcher(
        &self,
    ) -> Result<Option<hyper_util::client::proxy::matcher::Matcher>, Error> {
        use hyper_util::client::proxy::matcher::Matcher;
        match self {
            Proxy::None => Ok(None),
            Proxy::FromEnv => Ok(Some(Matcher::from_env())),
            Proxy::Explicit { http, https, no } => {
                for url in [http, https].into_iter().flatten() {
                    let uri: http::Uri = url.parse().map_err(|e| {
                        Error::InvalidConfig(format!("proxy {url:?} is not a URL: {e}"))
                    })?;
                    if uri.scheme_str() != Some("http") || uri.host().is_none() {
                        return Err(Error::InvalidConfig(format!(
                            "proxy {url:?} must be http://host:port"
                        )));
                    }
                }
                let mut b = Matcher::builder();
                if let Some(v) = http {
                    b = b.http(v.as_str());
                }
                if let Some(v) = https {
                    b = b.https(v.as_str());
                }
                if let Some(v) = no {
                    b = b.no(v.as_str());
                }
                Ok(Some(b.build()))
            }
        }
    }
}

/// A per-host circuit breaker (off by default): after `failures` failures in a row to one
/// host (connection errors, time-outs, broken exchanges, 502, 503, 504), requests to it fail
/// at once with [`Error::CircuitOpen`](crate::Error::CircuitOpen) for `open_for`; then one
/// request goes through as a probe, and closes the circuit or opens it again. Stored
/// responses are still served meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Failures in a row that open the circuit. Default 5.
    pub failures: u32,
    /// How long it stays open before a probe. Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            open_for: Duration::from_secs(10),
        }
    }
}

/// Retries of idempotent requests after connection errors.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RetryConfig {
    /// Most retries of one request. Default 2; 0 turns retries off.
    pub max_retries: u32,
    /// Retries allowed as a fraction of the requests of the last ten seconds (the scheme of
    /// tower's `TpsBudget`): 0.2 lets one request in five be retried, so an upstream in
    /// trouble does not get a retry storm. Default 0.2.
    pub budget_ratio: f32,
    /// Retries per second allowed whatever the traffic, so a quiet client can still retry.
    /// Default 10.
    pub min_per_sec: u32,
    /// Delay before the first retry; doubles each time, with jitter. Default 20 ms.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub backoff: Duration,
    /// Longest delay between retries. Default 1 s.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub max_backoff: Duration,
    /// A `429 Too Many Requests` or `503 Service Unavailable` answer to an idempotent request
    /// is retried (within `max_retries` and the budget) after its `Retry-After` (seconds or a
    /// date) when that is at most this long, after the usual backoff when it has none; a longer
    /// `Retry-After` hands the answer back at once. Default 10 s; zero turns it off.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 2,
            budget_ratio: 0.2,
            min_per_sec: 10,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

/// The client's configuration. Start from [`Config::default`] and change fields, or use
/// [`crate::Client::builder`].
///
/// With the `serde` feature, durations are human strings (`"30s"`, `"500ms"`, `"2m"`, `"1h"`)
/// and every field may be left out: `{"timeout": "5s", "cache": {"mode": "shared"}}`.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Config {
    /// Total time for a request: connect, send, response head and body, retries. Default 30 s
    /// (the guide's). A request may set its own with [`crate::RequestBuilder::timeout`].
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub timeout: Duration,
    /// Time to open a TCP connection (and finish the TLS handshake). Default 10 s.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (head or body): catches an upstream that
    /// stalls. `None` (the default) leaves it to `timeout`.
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human::option"))]
    pub read_timeout: Option<Duration>,
    /// Idle connections kept per host. Default 1,024: every connection a burst opened is kept
    /// for the next burst, until `pool_idle_timeout`. The guide's 10 (Go's habit) closes each
    /// connection above ten as it comes back, so a client with more requests than that in
    /// flight to one host churns: a share of its requests pay a new TCP connection and leave
    /// a socket in `TIME_WAIT` (133 extra connections in 14,000 requests at 16 in flight,
    /// measured with `strace` on `httpopt/get_16`). reqwest and hyper-util keep them all; a
    /// finite default still bounds the idle sockets of a runaway fan-out.
    pub pool_max_idle_per_host: usize,
    /// Idle connections are closed after this long, by a timer. Default 90 s (the guide's).
    #[cfg_attr(feature = "serde", serde(with = "veza_core::duration::human"))]
    pub pool_idle_timeout: Duration,
    /// Speak HTTP/2 without negotiation (h2c, or h2 over TLS without ALPN). Default off: HTTP/1.1,
    /// or HTTP/2 when TLS ALPN selects it.
    pub http2_prior_knowledge: bool,
    /// Largest response body accepted as sent (compressed), in bytes. Default 16 MiB.
    pub max_body_size: u64,
    /// Largest body after decompression, in bytes. Default 64 MiB.
    pub max_decoded_size: u64,
    /// Send `Accept-Encoding` with the codings this build decodes and decode responses.
    /// Default on.
    pub decompress: bool,
    /// `User-Agent` sent when the request has none. Default `veza-httpopt/<version>`.
    pub user_agent: Option<String>,
    /// The HTTP cache.
    pub cache: CacheConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Redirects followed per request (301, 302, 303, 307, 308 with a `Location`). Default 0:
    /// a 3xx is returned as is. A 303, and a 301 or 302 to a POST, continue as a GET without
    /// body; 307 and 308 keep the method and body. `Authorization`, `Cookie` and
    /// `Proxy-Authorization` are not sent to another origin. Past the limit, the request fails
    /// with [`Error::TooManyRedirects`](crate::Error::TooManyRedirects).
    pub max_redirects: u32,
    /// The per-host circuit breaker; `None` (the default) is none.
    pub circuit_breaker: Option<BreakerConfig>,
    /// Proxies; none by default.
    pub proxy: Proxy,
    /// The TLS client configuration; `None` (the default) trusts the system's root
    /// certificates. Its ALPN list is replaced by the client's (`h2` when the `http2` feature
    /// is on, and `http/1.1`).
    #[cfg(feature = "rustls")]
    #[cfg_attr(feature = "serde", serde(skip))]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            pool_max_idle_per_host: 1024,
            pool_idle_timeout: Duration::from_secs(90),
            http2_prior_knowledge: false,
            max_body_size: 16 << 20,
            max_decoded_size: 64 << 20,
            decompress: true,
            user_agent: Some(concat!("veza-httpopt/", env!("CARGO_PKG_VERSION")).to_owned()),
            cache: CacheConfig::default(),
            retry: RetryConfig::default(),
            max_redirects: 0,
            circuit_breaker: None,
            proxy: Proxy::None,
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }
}

impl Config {
    /// Checks the values; [`crate::Client::new`] calls it.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: &str| Err(Error::InvalidConfig(why.to_owned()));
        if self.timeout.is_zero() {
            return bad("timeout must be above zero");
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout must be above zero");
        }
        if self.read_timeout.is_some_and(|d| d.is_zero()) {
            return bad("read_timeout must be above zero");
        }
        if self.pool_idle_timeout.is_zero() {
            return bad("pool_idle_timeout must be above zero");
        }
        if self.max_body_size == 0 || self.max_decoded_size == 0 {
            return bad("max_body_size and max_decoded_size must be above zero");
        }
        if self.max_decoded_size < self.max_body_size {
            return bad("max_decoded_size must be at least max_body_size");
        }
        if let Some(ua) = &self.user_agent
            && http::HeaderValue::from_str(ua).is_err()
        {
            return bad("user_agent is not a valid header value");
        }
        self.proxy.matcher()?;
        if let Some(b) = &self.circuit_breaker
            && (b.failures == 0 || b.open_for.is_zero())
        {
            return bad("circuit_breaker.failures and open_for must be above zero");
        }
        let c = &self.cache;
        if c.mode != CacheMode::Off && (c.max_bytes == 0 || c.max_entry_bytes == 0) {
            return bad("cache.max_bytes and cache.max_entry_bytes must be above zero");
        }
        if !(0.0..=1.0).contains(&c.heuristic_fraction) {
            return bad("cache.heuristic_fraction must be within 0..=1");
        }
        let r = &self.retry;
        if !(0.0..=1000.0).contains(&r.budget_ratio) {
            return bad("retry.budget_ratio must be within 0..=1000");
        }
        if r.min_per_sec >= i32::MAX as u32 {
            return bad("retry.min_per_sec is too large");
        }
        if r.max_backoff < r.backoff {
            return bad("retry.max_backoff must be at least retry.backoff");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_guides_and_valid() {
        let c = Config::default();
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.pool_max_idle_per_host, 1024);
        assert_eq!(c.pool_idle_timeout, Duration::from_secs(90));
        c.validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let c = Config {
            max_decoded_size: 1,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("max_decoded_size"), "{e}");
        let mut c = Config::default();
        c.retry.budget_ratio = -1.0;
        assert!(c.validate().is_err());
        let c = Config {
            user_agent: Some("bad\nvalue".into()),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            timeout: Duration::ZERO,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn configs_read_from_json_with_human_durations() {
        let c: Config = serde_json::from_str(
            r#"{"timeout": "5s", "read_timeout": "250ms", "cache": {"mode": "shared", "pass_ttl": "2m"},
                "retry": {"max_retries": 0}}"#,
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.read_timeout, Some(Duration::from_millis(250)));
        assert_eq!(c.cache.mode, CacheMode::Shared);
        assert_eq!(c.cache.pass_ttl, Duration::from_secs(120));
        assert_eq!(c.retry.max_retries, 0);
        assert_eq!(
            c.pool_max_idle_per_host, 1024,
            "absent fields keep their defaults"
        );
        c.validate().unwrap();
        let back = serde_json::to_string(&c).unwrap();
        assert!(
            back.contains(r#""timeout":"5s""#) && back.contains(r#""read_timeout":"250ms""#),
            "{back}"
        );
        for bad in [
            r#"{"timeout": "5 parsecs"}"#,
            r#"{"timeout": 5}"#,
            r#"{"timeot": "5s"}"#,
        ] {
            assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}

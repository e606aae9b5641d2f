//! A pooled HTTP client on hyper with a real RFC 9111 cache, request coalescing, bounded
//! decompression and retries within a budget.
//!
//! The Veza guide's `HTTPOptimizer` is a client with a 30 s timeout and a pooled transport (10
//! idle connections per host, 90 s idle timeout) and a `GetWithCache` that keeps every body
//! forever by URL. This crate keeps the pool and the timeouts and replaces the cache with one
//! that follows the HTTP caching RFCs, so it can point at any upstream:
//!
//! ```no_run
//! # async fn run() -> Result<(), veza_httpopt::Error> {
//! use veza_httpopt::{CacheStatus, Client};
//!
//! let client = Client::builder().build()?; // the guide's defaults, private cache on
//! let first = client.get("http://127.0.0.1:8080/users/42").send().await?;
//! let again = client.get("http://127.0.0.1:8080/users/42").send().await?;
//! // With `Cache-Control: max-age=60` on the response, the second one never left the process.
//! assert_eq!(again.cache_status(), CacheStatus::Hit);
//! assert_eq!(first.body(), again.body());
//! # Ok(()) }
//! ```
//!
//! # What a request goes through
//! 1. **The cache** (GET only; [`CacheMode::Private`] by default): a fresh stored response is
//!    returned at once ([`CacheStatus::Hit`]); a stale one is revalidated with `If-None-Match`
//!    / `If-Modified-Since`, and a `304` refreshes its headers and serves the stored body
//!    ([`CacheStatus::Revalidated`]); `stale-while-revalidate` serves it at once and refreshes
//!    in the background, `stale-if-error` serves it when upstream fails ([`CacheStatus::Stale`]).
//!    Freshness, storability, `Vary`, `Age` and validators follow RFC 9111 through
//!    [`http-cache-semantics`](https://docs.rs/http-cache-semantics); what that library leaves
//!    to its user is done here (see [`HttpCache`]). Unsafe methods (POST, PUT, DELETE, PATCH)
//!    invalidate the target URI and same-origin `Location` / `Content-Location`.
//! 2. **Coalescing**: identical concurrent GETs that miss the cache share one upstream request.
//!    A URI whose last response could not be stored is not coalesced (it is sent straight on).
//! 3. **Upstream**, through hyper-util's pool: connections kept per host and closed by a timer
//!    when idle; HTTP/1.1, HTTP/2 by ALPN (feature `rustls`) or prior knowledge.
//! 4. **Retries**: idempotent requests that failed to connect, or whose connection broke before
//!    a response, are retried with exponential backoff, at most `max_retries` times and within a
//!    budget (20% of the last ten seconds' requests plus 10 per second by default, tower's
//!    `TpsBudget` scheme without its lock on every request), so an upstream in trouble never
//!    sees a retry storm.
//! 5. **The body** is read whole under hard limits: `max_body_size` as sent (a `Content-Length`
//!    above it fails before reading), `max_decoded_size` once decoded (gzip, deflate, br, zstd,
//!    decoded as the bytes arrive, so a compression bomb fails as its output crosses the limit,
//!    in bounded memory), and `read_timeout` between bytes. The whole exchange is under
//!    `timeout` (30 s).
//!
//! # Errors
//! [`Error`] implements [`veza_core::Classify`]: time-outs are `Timeout`, refused connections
//! and broken exchanges `Unavailable` (both retryable), bad requests `InvalidInput`, an unknown
//! host (DNS NXDOMAIN) `NotFound`, a response head that breaks the protocol and bodies too
//! large or corrupt `Internal` (none of these three retried).
//!
//! # An upstream is not trusted
//! Every number a response carries saturates at 2^31 s (RFC 9111 §1.2.2) and every time
//! computation is checked, so no header value panics the client. In the private cache,
//! `Set-Cookie` is never stored and a response to a request with credentials (`Authorization`,
//! `Cookie`) is kept for those credentials only: a client in a service serves many end users
//! from one cache, and none sees another's response or cookie.
//!
//! # Metrics
//! Under the catalog's names (`veza_core::catalog::http_client`): requests by method, host and
//! status class, duration, cache hits, misses, revalidations and stale serves, stored bytes,
//! open and opened connections, retries. Install the recorder (`veza-metrics`) before building
//! the client.
//!
//! # What it does not do
//! - Bodies are read whole by `send`; `send_streaming` reads them as they arrive (within the
//!   same limits) but bypasses the cache.
//! - The cache is in memory only, and does not store partial (206) responses (it answers
//!   a `Range` request from a stored full one).
//! - No cookies, no SOCKS proxies; HTTP proxies (and `CONNECT` for https) only when
//!   configured ([`Proxy`]), the environment only with [`Proxy::FromEnv`]. Redirects are followed only when
//!   asked (`max_redirects`); by default a 3xx is returned as is.
//!
//! # Features
//! | feature | default | what |
//! |---|---|---|
//! | `gzip` | yes | decode gzip and deflate (flate2, pure Rust) |
//! | `brotli` | yes | decode br (brotli-decompressor, pure Rust) |
//! | `zstd` | yes | decode zstd (the zstd C library) |
//! | `http2` | yes | HTTP/2 (ALPN over TLS, or prior knowledge) |
//! | `json` | yes | `RequestBuilder::json` and `Response::json` (serde_json) |
//! | `tracing` | no | an `http.request` span per request and redirect hop (method, host, path without the query, status, cache, duration) |
//! | `rustls` | no | HTTPS with rustls (ring), the system's roots or your config |
//! | `serde` | no | `Serialize`/`Deserialize` for [`Config`], durations as `"30s"` |

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod breaker;
mod budget;
mod cache;
mod client;
mod coalesce;
mod config;
mod connector;
mod error;
mod health;
mod metrics;
mod response;
mod wire;

pub use body::BodyStream;
pub use cache::HttpCache;
pub use client::{Client, ClientBuilder, RequestBuilder};
pub use config::{BreakerConfig, CacheConfig, CacheMode, Config, Proxy, RetryConfig};
pub use error::{Error, Source, TimeoutKind};
pub use health::UpstreamHealth;
pub use response::{CacheStatus, RequestCache, Response, StreamingResponse};

/// The `http` crate, re-exported for `Client::request`'s `Method`, `HeaderMap` and
/// `StatusCode`, at the version this crate uses.
pub use http;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

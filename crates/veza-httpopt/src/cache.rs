//! The HTTP cache: RFC 9111 semantics from `http-cache-semantics`, storage bounded in bytes in
//! `quick_cache`, and what the library leaves to its user.
//!
//! `http-cache-semantics` (kornelski's port of the npm package that Node's HTTP caches use)
//! decides storability, freshness (`max-age`, `s-maxage`, `Expires`, heuristics from
//! `Last-Modified`), `Age`, `no-cache`, `must-revalidate`, validators, the conditional request
//! and the 304 merge. This module adds what it does not do:
//! - storage, bounded in bytes, least recently used out first;
//! - `Vary`: each stored response is keyed by the URI and the values of the request headers it
//!   varies on, found through a per-URI index of the varying header names;
//! - credentials in a private cache: a response to a request with `Authorization` or `Cookie`
//!   is stored under a key of its own, made with a keyed hash of those credentials, and reused
//!   only for the same ones, unless it says it may be shared (`public`, `s-maxage`,
//!   `must-revalidate`, RFC 9111 §3.5); so each requester's entry stands on its own;
//! - `Set-Cookie` is never stored, so never replayed to another requester (in a shared cache a
//!   response with it is not stored at all unless `public`);
//! - numbers from the wire saturate at 2^31 s and time arithmetic is checked ([`crate::wire`]),
//!   directive names are matched case-insensitively;
//! - invalidation by unsafe methods (RFC 9111 §4.4): the index of the URI is dropped, which
//!   makes every variant unreachable at once (a new index gets a new generation number, so old
//!   variants never come back);
//! - `stale-while-revalidate` and `stale-if-error` (RFC 5861), off under `must-revalidate`,
//!   `no-cache` (and `proxy-revalidate` when shared);
//! - a list-valued `Age` uses its first member and an invalid one is ignored (RFC 9111 §5.1);
//! - "hit-for-pass": a URI whose response could not be stored is remembered for a while, so
//!   concurrent requests to it are not coalesced behind each other.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, COOKIE, DATE, ETAG, HeaderName, HeaderValue, LAST_MODIFIED,
    SET_COOKIE, VARY,
};
use http::{HeaderMap, Uri, Version};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use parking_lot::Mutex;
use veza_core::{CacheStats, Observe};

use crate::config::{CacheConfig, CacheMode};
use crate::response::{CacheStatus, RequestCache, Response};
use crate::wire;

/// What a lookup found.
pub(crate) enum Lookup {
    /// A fresh response.
    Fresh(Response),
    /// A stored response that needs revalidation; the conditional request to send, and the
    /// time of the lookup.
    Stale(Arc<Stored>, http::request::Parts, SystemTime),
    /// Nothing usable.
    Miss,
    /// The URI's last response could not be stored: go straight upstream. `renew`: the mark
    /// is past half its life, and a response that is still uncacheable should renew it.
    Pass {
        /// Whether to renew the mark.
        renew: bool,
    },
}

/// One stored response.
#[derive(Debug)]
pub(crate) struct Stored {
    policy: CachePolicy,
    status: http::StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    /// When it stops being fresh (response time + freshness lifetime - age).
    fresh_until: SystemTime,
    /// Whether it may be reused only for the credentials it was fetched with.
    restricted: bool,
    /// Keyed hash of those credentials (`None`: fetched without `Authorization`).
    owner: Option<u64>,
    /// `stale-while-revalidate` window.
    swr: Duration,
    /// `stale-if-error` window.
    sie: Duration,
    key: Key,
    weight: u64,
}

impl Stored {
    /// The stored response as served at `now`: the origin's fields as stored (its `Date`
    /// among them: RFC 9110 §6.6.1, the time the origin generated it) with `Age` brought up to
    /// date (RFC 9111 §5.1).
    pub(crate) fn served(&self, now: SystemTime, cache: CacheStatus) -> Response {
        let mut headers = self.headers.clone();
        headers.insert(AGE, HeaderValue::from(self.policy.age(now).as_secs()));
        Response {
            status: self.status,
            version: self.version,
            headers,
            body: self.body.clone(),
            cache,
        }
    }

    /// The stored response served stale, with its `Age` brought up to date.
    pub(crate) fn stale_response(&self, now: SystemTime) -> Response {
        self.served(now, CacheStatus::Stale)
    }

    /// Whether `now` is within the `stale-while-revalidate` window.
    pub(crate) fn within_swr(&self, now: SystemTime) -> bool {
        !self.swr.is_zero() && now < wire::after(self.fresh_until, self.swr)
    }

    /// Whether `now` is within the `stale-if-error` window.
    pub(crate) fn within_sie(&self, now: SystemTime) -> bool {
        !self.sie.is_zero() && now < wire::after(self.fresh_until, self.sie)
    }

    /// The key of this entry, to coalesce background refreshes.
    fn key(&self) -> &Key {
        &self.key
    }
}

#[derive(Debug, Clone)]
enum Index {
    /// Responses for the URI are stored under this generation, varying on these headers.
    Vary {
        generation: u64,
        names: Arc<[HeaderName]>,
    },
    /// The last response could not be stored.
    Pass { until: Instant },
}

#[derive(Debug, Clone)]
enum Slot {
    Index(Index),
    Entry(Arc<Stored>),
}

#[derive(Debug, Clone)]
struct Weigh;

/// A storage key: the index record of a URI (looked up on every request, so it is the URI
/// itself, hashed and compared without formatting or allocating), or one stored variant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Index(Uri),
    Entry(Box<str>),
}

/// `Key::Index` hashed a few slices at a time. `Uri`'s own `Hash` feeds the hasher one byte
/// at a time (it lowercases the authority as it goes), which made the index lookup of every
/// request cost as much as the rest of the cache's work. Equal URIs (`Uri`'s `PartialEq`:
/// scheme and authority compared without case, path and query exactly) hash equally: the
/// authority is fed lowercased, in the same 64-byte pieces whatever its case.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Index(uri) => hash_uri(uri, state),
            Key::Entry(k) => {
                state.write_u8(1);
                k.hash(state);
            }
        }
    }
}

fn hash_uri<H: Hasher>(uri: &Uri, state: &mut H) {
    // The scheme is left out: equality still tells `http` from `https`, and the two rarely
    // share an authority and a path in one cache.
    state.write_u8(0);
    hash_lowercased(uri.authority().map_or("", |a| a.as_str()).as_bytes(), state);
    state.write(uri.path().as_bytes());
    state.write_u8(0xff);
    if let Some(query) = uri.query() {
        state.write_u8(b'?');
        state.write(query.as_bytes());
    }
}

fn hash_lowercased<H: Hasher>(bytes: &[u8], state: &mut H) {
    let mut buf = [0u8; 64];
    for piece in bytes.chunks(64) {
        if piece.iter().any(u8::is_ascii_uppercase) {
            let lower = &mut buf[..piece.len()];
            lower.copy_from_slice(piece);
            lower.make_ascii_lowercase();
            state.write(lower);
        } else {
            state.write(piece);
        }
    }
    state.write_u8(0xff);
}

/// A request's URI as an index key, looked up without cloning it.
struct IndexOf<'a>(&'a Uri);

impl Hash for IndexOf<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_uri(self.0, state);
    }
}

impl quick_cache::Equivalent<Key> for IndexOf<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        matches!(key, Key::Index(uri) if wire::same_uri(uri, self.0))
    }
}

impl Key {
    fn len(&self) -> usize {
        match self {
            Key::Index(uri) => {
                16 + uri.host().map_or(0, str::len)
                    + uri.path_and_query().map_or(0, |p| p.as_str().len())
            }
            Key::Entry(k) => k.len(),
        }
    }
}

impl quick_cache::Weighter<Key, Slot> for Weigh {
    fn weight(&self, key: &Key, val: &Slot) -> u64 {
        let v = match val {
            Slot::Index(Index::Vary { names, .. }) => 64 + 32 * names.len() as u64,
            Slot::Index(Index::Pass { .. }) => 64,
            Slot::Entry(e) => e.weight,
        };
        key.len() as u64 + v
    }
}

/// The cache: shared by clones of a [`crate::Client`]; reach it with [`crate::Client::cache`]
/// for statistics, invalidation or clearing.
#[derive(Debug)]
pub struct HttpCache {
    store: quick_cache::sync::Cache<Key, Slot, Weigh>,
    opts: CacheOptions,
    shared: bool,
    max_entry_bytes: u64,
    pass_ttl: Duration,
    generation: AtomicU64,
    keyed: RandomState,
    refreshing: Mutex<HashSet<Key>>,
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    invalidations: AtomicU64,
}

/// The directives of every `Cache-Control` field: (name, argument), names as sent (compare
/// them case-insensitively), quotes stripped from arguments; fields that are not text are
/// skipped. The one parser the cache and the client use.
pub(crate) fn directives(headers: &HeaderMap) -> impl Iterator<Item = (&str, Option<&str>)> {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| match d.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (d.trim(), None),
        })
        .filter(|(n, _)| !n.is_empty())
}

/// Whether `Cache-Control` carries `name`: what `directives(headers).any(..)` says, read
/// byte by byte (this runs on every response; the iterator chain's `str` splitting and
/// Unicode trimming cost several times more).
pub(crate) fn has_directive(headers: &HeaderMap, name: &str) -> bool {
    let name = name.as_bytes();
    // The common field is the one directive alone (`no-store`), or none at all: one look-up
    // answers both, before the walk over every value.
    match headers.get(CACHE_CONTROL) {
        None => return false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(name) => return true,
        Some(_) => {}
    }
    headers.get_all(CACHE_CONTROL).iter().any(|v| {
        // The common field is the one directive alone (`no-store`): one comparison.
        if v.as_bytes().eq_ignore_ascii_case(name) {
            return true;
        }
        // A field that is not text is skipped, as `directives` does.
        v.to_str().is_ok()
            && v.as_bytes().split(|&b| b == b',').any(|d| {
                let n = d.iter().position(|&b| b == b'=').map_or(d, |i| &d[..i]);
                n.trim_ascii().eq_ignore_ascii_case(name)
            })
    })
}

/// Whether `stale-while-revalidate`/`stale-if-error` may apply, and their windows.
fn stale_windows(headers: &HeaderMap, shared: bool) -> (Duration, Duration) {
    let mut swr = Duration::ZERO;
    let mut sie = Duration::ZERO;
    for (name, arg) in directives(headers) {
        let secs = || {
            arg.and_then(wire::delta_seconds)
                .map(Duration::from_secs)
                .unwrap_or_default()
        };
        match name.to_ascii_lowercase().as_str() {
            "must-revalidate" | "no-cache" => return (Duration::ZERO, Duration::ZERO),
            "proxy-revalidate" if shared => return (Duration::ZERO, Duration::ZERO),
            "stale-while-revalidate" => swr = secs(),
            "stale-if-error" => sie = secs(),
            _ => {}
        }
    }
    (swr, sie)
}

/// Whether the response allows reuse across credentials (RFC 9111 §3.5).
fn shareable_with_credentials(headers: &HeaderMap) -> bool {
    ["public", "s-maxage", "must-revalidate"]
        .iter()
        .any(|d| has_directive(headers, d))
}

/// The header names a response varies on; `None` for `Vary: *` (never reusable).
fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(VARY) {
        let v = v.to_str().ok()?;
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// Fields a 304 does not update: they describe the stored body (RFC 9111 §3.2).
const KEPT_ON_UPDATE: [HeaderName; 4] = [
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
    http::header::TRANSFER_ENCODING,
    http::header::CONTENT_RANGE,
];

/// Whether a 304 with fields `fresh` selects the stored response with fields `stored`
/// (RFC 9111 §4.3.4, see [`HttpCache::revalidated`]).
fn selects(stored: &HeaderMap, fresh: &HeaderMap) -> bool {
    let text = |h: &HeaderMap, name: HeaderName| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    let (old_etag, new_etag) = (text(stored, ETAG), text(fresh, ETAG));
    let (old_lm, new_lm) = (text(stored, LAST_MODIFIED), text(fresh, LAST_MODIFIED));
    let opaque = |e: &str| e.trim_start_matches("W/").to_owned();
    match (new_etag, new_lm) {
        (Some(new), _) if !new.starts_with("W/") => {
            // Strong: the same strong validator.
            old_etag.is_some_and(|old| !old.starts_with("W/") && old == new)
        }
        (Some(new), _) => old_etag.is_some_and(|old| opaque(&old) == opaque(&new)),
        (None, Some(new)) => match old_lm {
            Some(old) => {
                httpdate::parse_http_date(&old).ok() == httpdate::parse_http_date(&new).ok()
            }
            // A Last-Modified for an entry that had an ETag only: not its validator.
            None => old_etag.is_none(),
        },
        (None, None) => true,
    }
}

/// Adds `Date: now` (IMF-fixdate) when the fields have none.
fn with_date(headers: &mut HeaderMap, now: SystemTime) {
    if !headers.contains_key(DATE)
        && let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(now))
    {
        headers.insert(DATE, v);
    }
}

fn index_key(uri: &Uri) -> Key {
    Key::Index(uri.clone())
}

/// Whether a response cannot be stored whatever else it says: `no-store` in the request or
/// the response. Checked before building a policy, which copies both header maps.
fn plainly_uncacheable(req: &HeaderMap, resp: &HeaderMap) -> bool {
    has_directive(resp, "no-store") || has_directive(req, "no-store")
}

impl HttpCache {
    pub(crate) fn new(config: &CacheConfig) -> Self {
        let shared = config.mode == CacheMode::Shared;
        let opts = CacheOptions {
            shared,
            cache_heuristic: config.heuristic_fraction,
            ..CacheOptions::default()
        };
        // quick_cache wants an estimate of the item count: assume 4 KiB per response.
        let items = (config.max_bytes / 4096).clamp(16, 1 << 20) as usize;
        HttpCache {
            store: quick_cache::sync::Cache::with_weighter(items, config.max_bytes, Weigh),
            opts,
            shared,
            max_entry_bytes: config.max_entry_bytes,
            pass_ttl: config.pass_ttl,
            generation: AtomicU64::new(1),
            keyed: RandomState::new(),
            refreshing: Mutex::new(HashSet::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// Keyed hash of a request's credentials (`Authorization` and `Cookie`), `None` without
    /// any. A shared cache keys nothing on credentials: its rules never store what it may not
    /// share.
    fn credentials(&self, headers: &HeaderMap) -> Option<u64> {
        if self.shared {
            return None;
        }
        let auth = headers.get(AUTHORIZATION);
        let cookies = headers.get_all(COOKIE);
        if auth.is_none() && cookies.iter().next().is_none() {
            return None;
        }
        let mut h = self.keyed.build_hasher();
        h.write(auth.map_or(&[][..], HeaderValue::as_bytes));
        for c in cookies {
            h.write_u8(0);
            h.write(c.as_bytes());
        }
        Some(h.finish())
    }

    /// The key of one stored variant: the URI's generation, the URI, the values of the headers
    /// it varies on, and for a response kept for one requester only, their credentials' hash.
    fn entry_key(
        &self,
        uri: &Uri,
        generation: u64,
        names: &[HeaderName],
        req: &HeaderMap,
        owner: Option<u64>,
    ) -> Key {
        let mut k = format!("{generation} {uri}");
        for name in names {
            k.push('\n');
            k.push_str(name.as_str());
            k.push(':');
            for (i, v) in req.get_all(name).iter().enumerate() {
                if i > 0 {
                    k.push(',');
                }
                k.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        if let Some(owner) = owner {
            k.push_str(&format!("\n\0owner:{owner:x}"));
        }
        Key::Entry(k.into_boxed_str())
    }

    /// Looks up a GET request, used as `mode` says.
    /// `now`: when the request started (a pass-through mark is timed on it).
    pub(crate) fn lookup(
        &self,
        req: &http::request::Parts,
        mode: RequestCache,
        now: Instant,
    ) -> Lookup {
        let stored = match self.find(req, now) {
            Ok(s) => s,
            Err(Some(renew)) => return Lookup::Pass { renew },
            Err(None) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                return Lookup::Miss;
            }
        };
        // The clock is read only when something is stored.
        let now = SystemTime::now();
        if matches!(mode, RequestCache::ForceCache | RequestCache::OnlyIfCached) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            let status = if stored.policy.is_stale(now) {
                CacheStatus::Stale
            } else {
                CacheStatus::Hit
            };
            return Lookup::Fresh(stored.served(now, status));
        }
        // The common request says nothing about caching: fresh means not stale, and the
        // stored fields are served as they are (the library's `before_request` would copy and
        // reformat them only to be replaced). The key already matched the URI, the method
        // (GET) and the `Vary` fields; a request naming its own `Host` takes the full path.
        let plain = mode == RequestCache::Default
            && !req.headers.contains_key(CACHE_CONTROL)
            && !req.headers.contains_key(http::header::PRAGMA)
            && !req.headers.contains_key(http::header::HOST);
        if plain && !stored.policy.is_stale(now) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh(stored.served(now, CacheStatus::Hit));
        }
        let verdict = if mode == RequestCache::NoCache {
            // Asked as if the request said `no-cache`; the origin gets the request's own fields.
            let mut asked = req.clone();
            asked
                .headers
                .append(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            match stored.policy.before_request(&asked, now) {
                BeforeRequest::Stale {
                    mut request,
                    matches,
                } => {
                    request.headers.remove(CACHE_CONTROL);
                    for v in req.headers.get_all(CACHE_CONTROL) {
                        request.headers.append(CACHE_CONTROL, v.clone());
                    }
                    BeforeRequest::Stale { request, matches }
                }
                fresh => fresh,
            }
        } else {
            stored.policy.before_request(req, now)
        };
        match verdict {
            // The library's own copy of the fields keeps one value per name and replaces
            // `Date` with the time of reading (in RFC 2822 form): the stored fields are served.
            BeforeRequest::Fresh(_) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Fresh(stored.served(now, CacheStatus::Hit))
            }
            BeforeRequest::Stale {
                request,
                matches: true,
            } => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Stale(stored, request, now)
            }
            BeforeRequest::Stale { matches: false, .. } => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    /// The stored entry for a request; `Err(Some(renew))` for a live pass mark, `Err(None)`
    /// for nothing.
    fn find(&self, req: &http::request::Parts, now: Instant) -> Result<Arc<Stored>, Option<bool>> {
        let Some(Slot::Index(index)) = self.store.get(&IndexOf(&req.uri)) else {
            return Err(None);
        };
        let (generation, names) = match index {
            Index::Pass { until } => {
                return Err((now < until)
                    .then(|| until < veza_core::duration::after(now, self.pass_ttl / 2)));
            }
            Index::Vary { generation, names } => (generation, names),
        };
        // A requester with credentials first finds what was kept for them alone, then what
        // may be shared.
        let owner = self.credentials(&req.headers);
        if owner.is_some() {
            let key = self.entry_key(&req.uri, generation, &names, &req.headers, owner);
            if let Some(Slot::Entry(stored)) = self.store.get(&key) {
                return Ok(stored);
            }
        }
        let key = self.entry_key(&req.uri, generation, &names, &req.headers, None);
        let Some(Slot::Entry(stored)) = self.store.get(&key) else {
            return Err(None);
        };
        // Never true for an entry under a shared key; kept as a second lock on the door.
        if stored.restricted && owner != stored.owner {
            return Err(None);
        }
        Ok(stored)
    }

    /// After a pass-through: stores the response if it became cacheable, renews the mark if
    /// asked, and does nothing else (the common case costs one header scan).
    pub(crate) fn after_pass(
        &self,
        req: &http::request::Parts,
        resp: &Response,
        renew: bool,
    ) -> bool {
        if !renew && plainly_uncacheable(&req.headers, &resp.headers) {
            return false;
        }
        // The clock is read only when something may be stored.
        self.store(req, resp, SystemTime::now())
    }

    /// Stores a response to `req` if RFC 9111 allows it; returns whether it did. A response
    /// that may not be stored marks the URI for pass-through.
    pub(crate) fn store(
        &self,
        req: &http::request::Parts,
        resp: &Response,
        response_time: SystemTime,
    ) -> bool {
        if plainly_uncacheable(&req.headers, &resp.headers) {
            self.pass(&req.uri);
            return false;
        }
        let mut head = http::Response::new(());
        *head.status_mut() = resp.status;
        *head.headers_mut() = resp.headers.clone();
        wire::normalize(head.headers_mut());
        with_date(head.headers_mut(), response_time);
        if !self.keep_without_cookie(head.headers_mut()) {
            self.pass(&req.uri);
            return false;
        }
        let (parts, ()) = head.into_parts();
        let policy = CachePolicy::new_options(req, &parts, response_time, self.opts);
        let names = vary_names(&parts.headers);
        let (Some(names), true) = (names, policy.is_storable()) else {
            self.store.insert(
                index_key(&req.uri),
                Slot::Index(Index::Pass {
                    until: veza_core::duration::after(Instant::now(), self.pass_ttl),
                }),
            );
            return false;
        };
        let size = resp.body.len() as u64;
        if size > self.max_entry_bytes {
            return false;
        }
        self.put(
            req,
            policy,
            parts,
            resp.version,
            resp.body.clone(),
            names,
            response_time,
        );
        true
    }

    /// `Set-Cookie` is never stored: the cookie goes to the requester whose request fetched it
    /// and is never replayed to a later one (a client in a service serves many end users from
    /// one private cache). A shared cache does not store such a response at all unless it is
    /// marked `public` or `immutable` (the semantics library's rule). Returns whether the
    /// response may still be stored.
    fn keep_without_cookie(&self, headers: &mut HeaderMap) -> bool {
        if !headers.contains_key(SET_COOKIE) {
            return true;
        }
        if self.shared && !has_directive(headers, "public") && !has_directive(headers, "immutable")
        {
            return false;
        }
        headers.remove(SET_COOKIE);
        true
    }

    /// Marks `uri` as uncacheable for `pass_ttl`.
    fn pass(&self, uri: &Uri) {
        let until = veza_core::duration::after(Instant::now(), self.pass_ttl);
        self.store
            .insert(index_key(uri), Slot::Index(Index::Pass { until }));
    }

    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        req: &http::request::Parts,
        policy: CachePolicy,
        parts: http::response::Parts,
        version: Version,
        body: Bytes,
        names: Vec<HeaderName>,
        now: SystemTime,
    ) {
        let ikey = index_key(&req.uri);
        let generation = match self.store.get(&ikey) {
            Some(Slot::Index(Index::Vary {
                generation,
                names: old,
            })) if *old == *names => generation,
            _ => {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                let names: Arc<[HeaderName]> = names.clone().into();
                self.store
                    .insert(ikey, Slot::Index(Index::Vary { generation, names }));
                generation
            }
        };
        // A shared cache never stores what it may not share (the library refuses it); a
        // private one keeps a credentialed response for the same credentials only, under a key
        // of their own, so each requester's entry stands on its own.
        let owner = self.credentials(&req.headers);
        let restricted = owner.is_some() && !shareable_with_credentials(&parts.headers);
        let key = self.entry_key(
            &req.uri,
            generation,
            &names,
            &req.headers,
            owner.filter(|_| restricted),
        );
        if owner.is_some() && !restricted {
            // A response that became shareable replaces the requester's own copy.
            let own = self.entry_key(&req.uri, generation, &names, &req.headers, owner);
            self.store.remove(&own);
        }
        let (swr, sie) = stale_windows(&parts.headers, self.shared);
        let header_bytes: u64 = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().len() + v.len() + 32) as u64)
            .sum();
        let weight = body.len() as u64 + 2 * header_bytes + 512 + key.len() as u64;
        let stored = Stored {
            fresh_until: wire::after(now, policy.time_to_live(now)),
            policy,
            version,
            status: parts.status,
            headers: parts.headers,
            body,
            restricted,
            owner,
            swr,
            sie,
            key: key.clone(),
            weight,
        };
        self.store.insert(key, Slot::Entry(Arc::new(stored)));
        self.inserts.fetch_add(1, Ordering::Relaxed);
    }

    /// Merges a revalidation's response into the stored one. Returns the response to serve:
    /// the stored body under the merged fields for a 304 that selects the stored response,
    /// `None` otherwise (the caller fetches in full).
    ///
    /// Done here rather than by the semantics library, which keeps one value per field name,
    /// drops fields the 304 adds, replaces `Date` with the time of the merge, and refuses a
    /// 304 without validators for a response that has one. RFC 9111 §4.3.4: a 304 with a
    /// strong validator selects the stored response with the same one, a weak validator the
    /// matching one; a 304 without any validator answers the conditional request this cache
    /// sent for this very response (each stored response is revalidated on its own), so it
    /// selects it, as every reference cache does. §3.2: every field of the 304, except those
    /// describing the body, replaces or adds to the stored ones.
    pub(crate) fn revalidated(
        &self,
        req: &http::request::Parts,
        stored: &Stored,
        resp: &http::response::Parts,
        now: SystemTime,
    ) -> Option<Response> {
        let mut fresh = resp.headers.clone();
        wire::normalize(&mut fresh);
        if resp.status != http::StatusCode::NOT_MODIFIED || !selects(&stored.headers, &fresh) {
            return None;
        }
        let mut merged = stored.headers.clone();
        for name in fresh.keys() {
            if KEPT_ON_UPDATE.contains(name) {
                continue;
            }
            merged.remove(name);
            for value in fresh.get_all(name) {
                merged.append(name.clone(), value.clone());
            }
        }
        if !fresh.contains_key(DATE) {
            // RFC 9110 §6.6.1: a response without Date gets the time it was received.
            merged.remove(DATE);
            with_date(&mut merged, now);
        }
        // The requester gets the 304's cookie; the stored copy never keeps one.
        let served_headers = merged.clone();
        let storable = self.keep_without_cookie(&mut merged);
        let mut head = http::Response::new(());
        *head.status_mut() = stored.status;
        *head.headers_mut() = merged;
        let (parts, ()) = head.into_parts();
        let policy = CachePolicy::new_options(req, &parts, now, self.opts);
        let mut out = Response {
            status: stored.status,
            version: stored.version,
            headers: served_headers,
            body: stored.body.clone(),
            cache: CacheStatus::Revalidated,
        };
        out.headers
            .insert(AGE, HeaderValue::from(policy.age(now).as_secs()));
        if let Some(names) = vary_names(&parts.headers)
            && storable
            && policy.is_storable()
        {
            self.put(
                req,
                policy,
                parts,
                stored.version,
                stored.body.clone(),
                names,
                now,
            );
        }
        Some(out)
    }

    /// Drops every stored response for `uri` (all its variants). Returns whether any was known.
    pub fn invalidate(&self, uri: &Uri) -> bool {
        let removed = self.store.remove(&IndexOf(uri)).is_some();
        if removed {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
        removed
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.store.clear();
    }

    /// Bytes held (bodies, headers and bookkeeping, as weighed for the bound).
    pub fn stored_bytes(&self) -> u64 {
        self.store.weight()
    }

    /// Marks a background refresh of `stored` as running; `false` if one already is.
    pub(crate) fn begin_refresh(&self, stored: &Stored) -> bool {
        self.refreshing.lock().insert(stored.key().clone())
    }

    pub(crate) fn end_refresh(&self, stored: &Stored) {
        self.refreshing.lock().remove(stored.key());
    }
}

impl Observe for HttpCache {
    type Snapshot = CacheStats;

    fn snapshot(&self) -> CacheStats {
        let mut s = CacheStats::default();
        s.hits = self.hits.load(Ordering::Relaxed);
        s.misses = self.misses.load(Ordering::Relaxed);
        s.inserts = self.inserts.load(Ordering::Relaxed);
        s.evictions_explicit = self.invalidations.load(Ordering::Relaxed);
        s.entries = self.store.len() as u64;
        s.weighted_size = self.store.weight();
        s.capacity = self.store.capacity();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_directive_says_what_the_directive_parser_says() {
        let values: &[&[u8]] = &[
            b"no-store",
            b"No-Store",
            b" max-age=60 , no-store ",
            b"max-age=60,no-cache=\"set-cookie, no-store\"",
            b"no-storex, xno-store",
            b"no-store=1",
            b"\tno-store\t",
            b",,, ,",
            b"private=\"a\", public",
            b"no-store\xff",
            b"",
        ];
        for v in values {
            let mut h = HeaderMap::new();
            h.append(CACHE_CONTROL, HeaderValue::from_bytes(v).unwrap());
            h.append(CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
            for name in [
                "no-store",
                "public",
                "max-age",
                "set-cookie",
                "no-cache",
                "x",
            ] {
                let parsed = directives(&h).any(|(n, _)| n.eq_ignore_ascii_case(name));
                assert_eq!(
                    has_directive(&h, name),
                    parsed,
                    "{name} in {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }

    #[test]
    fn index_keys_hash_like_uri_equality() {
        let hash = |k: &dyn Fn(&mut std::hash::DefaultHasher)| {
            let mut h = std::hash::DefaultHasher::new();
            k(&mut h);
            h.finish()
        };
        let long_host = format!("{}.example.com", "Ab".repeat(50));
        let pairs = [
            ("http://example.com/a?x=1", "HTTP://EXAMPLE.com/a?x=1"),
            ("http://example.com:8080/", "http://Example.COM:8080/"),
            (
                &*format!("http://{}/p", long_host.to_ascii_lowercase()),
                &*format!("http://{long_host}/p"),
            ),
        ];
        for (a, b) in pairs {
            let (a, b): (Uri, Uri) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(a, b, "Uri's equality ignores the case of scheme and host");
            let (ka, kb) = (Key::Index(a.clone()), Key::Index(b.clone()));
            assert_eq!(hash(&|h| ka.hash(h)), hash(&|h| kb.hash(h)), "{a} / {b}");
            assert_eq!(hash(&|h| IndexOf(&b).hash(h)), hash(&|h| ka.hash(h)));
            assert!(quick_cache::Equivalent::equivalent(&IndexOf(&b), &ka));
        }
        // Path and query are case-sensitive, and where the query starts matters.
        let distinct = [
            ("http://h/a", "http://h/A"),
            ("http://h/a?b", "http://h/a%3Fb"),
            ("http://h/ab", "http://h/a?b"),
        ];
        for (a, b) in distinct {
            let (a, b): (Uri, Uri) = (a.parse().unwrap(), b.parse().unwrap());
            let (ka, kb) = (Key::Index(a), Key::Index(b.clone()));
            assert_ne!(hash(&|h| ka.hash(h)), hash(&|h| kb.hash(h)));
            assert!(!quick_cache::Equivalent::equivalent(&IndexOf(&b), &ka));
        }
        // An index key never meets a variant key.
        let entry = Key::Entry("http://h/a".into());
        assert!(!quick_cache::Equivalent::equivalent(
            &IndexOf(&"http://h/a".parse().unwrap()),
            &entry
        ));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn stale_windows_follow_rfc5861_and_yield_to_must_revalidate() {
        let h = headers(&[(
            "cache-control",
            "max-age=1, stale-while-revalidate=30, stale-if-error=60",
        )]);
        assert_eq!(
            stale_windows(&h, false),
            (Duration::from_secs(30), Duration::from_secs(60))
        );
        let h = headers(&[(
            "cache-control",
            "max-age=1, stale-if-error=60, must-revalidate",
        )]);
        assert_eq!(stale_windows(&h, false), (Duration::ZERO, Duration::ZERO));
        let h = headers(&[("cache-control", "stale-while-revalidate=abc")]);
        assert_eq!(stale_windows(&h, false), (Duration::ZERO, Duration::ZERO));
        let h = headers(&[("cache-control", "proxy-revalidate, stale-if-error=5")]);
        assert_eq!(stale_windows(&h, false).1, Duration::from_secs(5));
        assert_eq!(stale_windows(&h, true).1, Duration::ZERO);
    }

    #[test]
    fn vary_names_are_normalised_and_star_is_never_reusable() {
        let h = headers(&[
            ("vary", "Accept-Language, accept-encoding"),
            ("vary", "Accept-Language"),
        ]);
        let names = vary_names(&h).unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(names[0].as_str(), "accept-encoding");
        assert!(vary_names(&headers(&[("vary", "*")])).is_none());
    }

    #[test]
    fn credentials_sharing_directives() {
        assert!(shareable_with_credentials(&headers(&[(
            "cache-control",
            "max-age=5, Public"
        )])));
        assert!(shareable_with_credentials(&headers(&[(
            "cache-control",
            "s-maxage=5"
        )])));
        assert!(!shareable_with_credentials(&headers(&[(
            "cache-control",
            "max-age=5, private"
        )])));
    }
}

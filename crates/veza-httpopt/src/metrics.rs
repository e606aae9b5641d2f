//! The client's metrics, named by the catalog (`veza_core::catalog::http_client`).
//!
//! Handles are resolved once per (host, method, status class) and kept, so a request costs a
//! read lock and a few atomic adds, not a registry lookup with label hashing. Hosts are a
//! bounded label (the upstreams a service calls); past [`MAX_HOSTS`] distinct hosts, the rest
//! are counted under `host="other"`.
//!
//! A client may be built, and used, before the recorder is installed: each host's handles
//! remember the recorder epoch they were made in (`veza_core::publish::epoch`) and are made
//! again on the first request after an install; the gauges are set from exact values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, StatusCode};
use metrics::{Counter, Gauge, Histogram};
use parking_lot::RwLock;
use veza_core::catalog::http_client as cat;
use veza_core::publish::Late;

/// Distinct `host` label values before the rest are folded into `other`.
pub(crate) const MAX_HOSTS: usize = 256;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The status class index of a response (or `error` for a failure).
fn class_index(status: Option<StatusCode>) -> usize {
    match status.map(|s| s.as_u16() / 100) {
        Some(c @ 1..=5) => (c - 1) as usize,
        _ => 5,
    }
}

/// Revalidation outcomes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Revalidation {
    NotModified = 0,
    Modified = 1,
    Error = 2,
}

/// Why a stale response was served.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StaleReason {
    WhileRevalidate = 0,
    IfError = 1,
}

/// The handles of one upstream host.
#[derive(Debug)]
pub(crate) struct HostMetrics {
    host: String,
    /// The recorder epoch these handles belong to.
    epoch: u64,
    requests: [[OnceLock<Counter>; 6]; 8],
    duration: [OnceLock<Histogram>; 8],
    hits: OnceLock<Counter>,
    misses: OnceLock<Counter>,
    revalidations: [OnceLock<Counter>; 3],
    stale: [OnceLock<Counter>; 2],
    opened: OnceLock<Counter>,
    retries: OnceLock<Counter>,
}

impl HostMetrics {
    fn new(host: String, epoch: u64) -> Self {
        HostMetrics {
            host,
            epoch,
            requests: Default::default(),
            duration: Default::default(),
            hits: OnceLock::new(),
            misses: OnceLock::new(),
            revalidations: Default::default(),
            stale: Default::default(),
            opened: OnceLock::new(),
            retries: OnceLock::new(),
        }
    }

    /// Counts a finished request and its duration.
    pub(crate) fn request(&self, method: &Method, status: Option<StatusCode>, took: Duration) {
        let m = method_index(method);
        let c = class_index(status);
        // Other methods (WebDAV and the like) share one slot, labelled `OTHER`: a label must
        // stay bounded whatever methods callers invent.
        self.requests[m][c]
            .get_or_init(|| {
                metrics::counter!(cat::REQUESTS.name, "method" => METHODS[m], "host" => self.host.clone(), "status_class" => CLASSES[c])
            })
            .increment(1);
        self.duration[m]
            .get_or_init(|| {
                metrics::histogram!(cat::REQUEST_DURATION.name, "method" => METHODS[m], "host" => self.host.clone())
            })
            .record(took.as_secs_f64());
    }

    pub(crate) fn hit(&self) {
        self.hits
            .get_or_init(|| metrics::counter!(cat::CACHE_HITS.name, "host" => self.host.clone()))
            .increment(1);
    }

    pub(crate) fn miss(&self) {
        self.misses
            .get_or_init(|| metrics::counter!(cat::CACHE_MISSES.name, "host" => self.host.clone()))
            .increment(1);
    }

    pub(crate) fn revalidation(&self, outcome: Revalidation) {
        const OUTCOMES: [&str; 3] = ["not_modified", "modified", "error"];
        let i = outcome as usize;
        self.revalidations[i]
            .get_or_init(|| {
                metrics::counter!(cat::CACHE_REVALIDATIONS.name, "host" => self.host.clone(), "outcome" => OUTCOMES[i])
            })
            .increment(1);
    }

    pub(crate) fn stale(&self, reason: StaleReason) {
        const REASONS: [&str; 2] = ["while_revalidate", "if_error"];
        let i = reason as usize;
        self.stale[i]
            .get_or_init(|| {
                metrics::counter!(cat::CACHE_STALE_SERVED.name, "host" => self.host.clone(), "reason" => REASONS[i])
            })
            .increment(1);
    }

    pub(crate) fn retry(&self) {
        self.retries
            .get_or_init(|| metrics::counter!(cat::RETRIES.name, "host" => self.host.clone()))
            .increment(1);
    }
}

/// Connections open, every client of the process together (the gauge has no client label).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// All of a client's handles.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Tells this client's metrics apart in the per-thread memo of [`Metrics::host`].
    id: u64,
    hosts: RwLock<HashMap<String, Arc<HostMetrics>>>,
    open: Late<Gauge>,
    stored: Late<Gauge>,
}

/// A client's metrics id, an authority, and its host's handles.
type Memo = (u64, Box<str>, Arc<HostMetrics>);

thread_local! {
    /// The last host's handles this thread asked for, with the id of the metrics they came
    /// from and the authority they were asked for. The handles of a host are never removed
    /// from a client's map (hosts past the bound fold into "other"), so a memo stays right
    /// until the recorder changes, which the epoch tells.
    static LAST_HOST: std::cell::RefCell<Option<Memo>> =
        const { std::cell::RefCell::new(None) };
}

impl Metrics {
    pub(crate) fn new() -> Self {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Metrics {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            hosts: RwLock::new(HashMap::new()),
            open: Late::new(|| metrics::gauge!(cat::CONNECTIONS_OPEN.name)),
            stored: Late::new(|| metrics::gauge!(cat::CACHE_STORED.name)),
        }
    }

    /// The handles for `uri`'s host. A thread's requests in a row to one upstream (the common
    /// case) find them in a per-thread memo of the last authority asked for, compared as
    /// bytes: no shared lock, no hash of the host name, not even the host parsed out of the
    /// authority (about 400 instructions a request, measured with callgrind on
    /// `httpopt/get_16`).
    pub(crate) fn host_of(&self, uri: &http::Uri) -> Arc<HostMetrics> {
        let epoch = veza_core::publish::epoch();
        let authority = uri.authority().map_or("", http::uri::Authority::as_str);
        let memo = LAST_HOST.with_borrow(|last| match last {
            Some((id, auth, h)) if *id == self.id && h.epoch == epoch && **auth == *authority => {
                Some(Arc::clone(h))
            }
            _ => None,
        });
        if let Some(h) = memo {
            return h;
        }
        let h = self.host(crate::wire::uri_host(uri).unwrap_or(""));
        LAST_HOST.with_borrow_mut(|last| *last = Some((self.id, authority.into(), Arc::clone(&h))));
        h
    }

    /// The handles for `host`, created on first use.
    pub(crate) fn host(&self, host: &str) -> Arc<HostMetrics> {
        let epoch = veza_core::publish::epoch();
        if let Some(h) = self.hosts.read().get(host)
            && h.epoch == epoch
        {
            return Arc::clone(h);
        }
        let mut hosts = self.hosts.write();
        let key = if hosts.len() >= MAX_HOSTS && !hosts.contains_key(host) {
            "other"
        } else {
            host
        };
        let entry = hosts
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(HostMetrics::new(key.to_owned(), epoch)));
        if entry.epoch != epoch {
            // A recorder was installed since these handles were made: make them again.
            *entry = Arc::new(HostMetrics::new(key.to_owned(), epoch));
        }
        Arc::clone(entry)
    }

    /// The gauges' handles, made again if a recorder was installed since.
    fn gauges(&self) -> (&Gauge, &Gauge) {
        self.open
            .refresh(|| metrics::gauge!(cat::CONNECTIONS_OPEN.name));
        self.stored
            .refresh(|| metrics::gauge!(cat::CACHE_STORED.name));
        (self.open.get(), self.stored.get())
    }

    pub(crate) fn connection_opened(&self, host: &str) {
        let now_open = OPEN.fetch_add(1, Ordering::Relaxed) + 1;
        self.gauges().0.set(now_open as f64);
        let h = self.host(host);
        h.opened
            .get_or_init(
                || metrics::counter!(cat::CONNECTIONS_OPENED.name, "host" => h.host.clone()),
            )
            .increment(1);
    }

    pub(crate) fn connection_closed(&self) {
        let now_open = OPEN.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        self.gauges().0.set(now_open as f64);
    }

    pub(crate) fn stored_bytes(&self, bytes: u64) {
        self.gauges().1.set(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_thread_memo_answers_per_client_and_per_host() {
        let (a, b) = (Metrics::new(), Metrics::new());
        let uri = |s: &str| -> http::Uri { s.parse().unwrap() };
        let first = a.host_of(&uri("http://h.example:8080/x"));
        // The memo answers the same client again, for any path.
        assert!(Arc::ptr_eq(
            &first,
            &a.host_of(&uri("http://h.example:8080/y"))
        ));
        // Another client on the same thread gets its own handles, not the memo's.
        let other = b.host_of(&uri("http://h.example:8080/x"));
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(Arc::ptr_eq(&other, &b.host("h.example")));
        // Another authority of the same host: the same handles, through the shared map.
        assert!(Arc::ptr_eq(
            &first,
            &a.host_of(&uri("http://h.example:9090/x"))
        ));
        // Another host: other handles.
        assert_eq!(a.host_of(&uri("http://i.example/")).host, "i.example");
        assert!(Arc::ptr_eq(
            &first,
            &a.host_of(&uri("http://h.example:8080/z"))
        ));
    }

    #[test]
    fn classes_and_methods_map_to_bounded_labels() {
        assert_eq!(CLASSES[class_index(Some(StatusCode::OK))], "2xx");
        assert_eq!(CLASSES[class_index(Some(StatusCode::NOT_MODIFIED))], "3xx");
        assert_eq!(CLASSES[class_index(Some(StatusCode::BAD_GATEWAY))], "5xx");
        assert_eq!(CLASSES[class_index(None)], "error");
        assert_eq!(METHODS[method_index(&Method::PATCH)], "PATCH");
        assert_eq!(method_index(&Method::from_bytes(b"PROPFIND").unwrap()), 7);
    }

    #[test]
    fn hosts_past_the_bound_fold_into_other() {
        let m = Metrics::new();
        for i in 0..MAX_HOSTS + 10 {
            m.host(&format!("h{i}.example"));
        }
        assert_eq!(m.hosts.read().len(), MAX_HOSTS + 1);
        assert_eq!(m.host("late.example").host, "other");
        assert_eq!(m.host("h1.example").host, "h1.example");
    }
}

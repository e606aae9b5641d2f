//! Exemplars: the trace id of one request on the histogram bucket its measurement fell in, so a
//! dashboard can jump from a slow bucket to a trace. Shown in OpenMetrics scrapes (the
//! Prometheus text format has no place for them); Prometheus stores them with
//! `--enable-feature=exemplar-storage`.
//!
//! The `metrics` facade has no exemplar argument, so the trace id rides along the thread:
//! histograms recorded inside [`with_trace_id`] keep it as their bucket's latest exemplar.
//! [`HttpMetricsLayer`](crate::HttpMetricsLayer) does this for the request duration when the
//! request carries a W3C `traceparent` header; with OpenTelemetry, pass the current span's
//! trace id yourself. Outside `with_trace_id` a record pays one thread-local flag read.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::family::escape_label_into;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LABELS: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The longest label set OpenMetrics allows on an exemplar, in characters.
const MAX_LABEL_CHARS: usize = 128;

/// Runs `f` with `trace_id` as the exemplar of every histogram it records into. An empty id,
/// or one that would make the exemplar longer than OpenMetrics allows (128 characters of
/// label names and values), is not attached; `f` runs anyway.
pub fn with_trace_id<R>(trace_id: &str, f: impl FnOnce() -> R) -> R {
    let fits =
        !trace_id.is_empty() && "trace_id".len() + trace_id.chars().count() <= MAX_LABEL_CHARS;
    if !fits || ARMED.get() {
        return f();
    }
    LABELS.with_borrow_mut(|labels| {
        labels.clear();
        labels.push_str("{trace_id=\"");
        escape_label_into(labels, trace_id);
        labels.push_str("\"}");
    });
    ARMED.set(true);
    /// Disarms on the way out, also when `f` panics.
    struct Disarm;
    impl Drop for Disarm {
        fn drop(&mut self) {
            ARMED.set(false);
        }
    }
    let _disarm = Disarm;
    f()
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if the header
/// is there and well formed (and the id not all zeros).
pub fn traceparent_trace_id(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && (version != "00" || parts.next().is_none());
    valid.then_some(trace)
}

/// One bucket's latest exemplar.
#[derive(Debug, Clone)]
pub(crate) struct Exemplar {
    /// `{trace_id="…"}`.
    pub(crate) labels: String,
    pub(crate) value: f64,
    /// Seconds since the Unix epoch.
    pub(crate) at: f64,
}

/// The exemplar to attach now, if inside [`with_trace_id`].
#[inline]
pub(crate) fn current(value: f64) -> Option<Exemplar> {
    if !ARMED.get() {
        return None;
    }
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Some(Exemplar {
        labels: LABELS.with_borrow(Clone::clone),
        value,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", v.parse().unwrap());
        h
    }

    #[test]
    fn traceparent_is_read_strictly() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let good = format!("00-{id}-00f067aa0ba902b7-01");
        assert_eq!(traceparent_trace_id(&headers(&good)), Some(id));
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all zeros
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with more
            "garbage",
        ] {
            assert_eq!(traceparent_trace_id(&headers(bad)), None, "{bad}");
        }
        assert_eq!(traceparent_trace_id(&http::HeaderMap::new()), None);
    }

    #[test]
    fn the_trace_id_rides_only_inside_the_closure() {
        assert!(current(1.0).is_none());
        let inside = with_trace_id("abc", || current(2.0)).unwrap();
        assert_eq!(inside.labels, "{trace_id=\"abc\"}");
        assert_eq!(inside.value, 2.0);
        assert!(current(1.0).is_none());
        let too_long = "a".repeat(121);
        assert!(with_trace_id(&too_long, || current(1.0)).is_none());
        let caught = std::panic::catch_unwind(|| with_trace_id("x", || panic!("boom")));
        assert!(
            caught.is_err() && current(1.0).is_none(),
            "disarmed after a panic"
        );
    }
}

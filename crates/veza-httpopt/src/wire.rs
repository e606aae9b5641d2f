//! Numbers and directives from the wire, made safe before any caching rule or clock sees them.
//!
//! An upstream controls every header the cache reads. RFC 9111 §1.2.2: a delta-seconds value
//! too large to represent is taken as 2147483648 (2^31 s, about 68 years), and every later
//! calculation that would overflow is taken the same way. So every delta-seconds value
//! (`max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error`, `max-stale`,
//! `min-fresh`, `Age`) is parsed here with saturation, and every point in time is computed with
//! [`after`], which saturates instead of panicking.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{AGE, CACHE_CONTROL, HeaderValue};

/// The largest delta-seconds value the cache acts on (RFC 9111 §1.2.2).
pub(crate) const MAX_DELTA_SECS: u64 = 1 << 31;

/// The largest span the cache ever adds to a point in time.
pub(crate) const MAX_DELTA: Duration = Duration::from_secs(MAX_DELTA_SECS);

/// Cache-Control directives whose argument is delta-seconds.
const DELTA_DIRECTIVES: &[&str] = &[
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
    "max-stale",
    "min-fresh",
];

/// `delta-seconds = 1*DIGIT` (RFC 9111 §1.2.2), saturated at 2^31; `None` for anything else
/// (empty, a sign, a fraction, letters). Surrounding quotes are tolerated, as every cache does.
pub(crate) fn delta_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        n = n * 10 + u64::from(b - b'0');
        if n >= MAX_DELTA_SECS {
            return Some(MAX_DELTA_SECS);
        }
    }
    Some(n)
}

/// `t + d`, or `t` plus the largest span the clock can still represent after it: a point in
/// time computed from the wire never panics.
pub(crate) fn after(t: SystemTime, d: Duration) -> SystemTime {
    let d = d.min(MAX_DELTA);
    t.checked_add(d).unwrap_or(t)
}

/// Makes a response's (or a 304's) caching headers safe and canonical before the rules read
/// them: `Cache-Control` directive names in lower case (RFC 9111 §5.2: they are
/// case-insensitive) with delta-seconds saturated at 2^31, and `Age` normalised. Fields that
/// need nothing are left as they are (nothing is allocated for them).
pub(crate) fn normalize(headers: &mut HeaderMap) {
    normalize_cache_control(headers);
    normalize_age(headers);
}

fn normalize_cache_control(headers: &mut HeaderMap) {
    let needs = headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(directive_needs_rewrite))
    });
    if !needs {
        return;
    }
    let mut out = String::new();
    for value in headers.get_all(CACHE_CONTROL) {
        // A field that is not text cannot be read by the rules either; it is dropped.
        let Ok(value) = value.to_str() else { continue };
        for d in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            push_directive(&mut out, d);
        }
    }
    headers.remove(CACHE_CONTROL);
    if let Ok(v) = HeaderValue::from_str(&out) {
        headers.insert(CACHE_CONTROL, v);
    }
}

fn directive_needs_rewrite(d: &str) -> bool {
    let (name, arg) = split_directive(d);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return true;
    }
    match arg {
        Some(arg) if is_delta_directive(name) => {
            delta_seconds(arg).is_some_and(|n| n.to_string() != arg.trim())
        }
        _ => false,
    }
}

fn push_directive(out: &mut String, d: &str) {
    let (name, arg) = split_directive(d);
    let name = name.to_ascii_lowercase();
    out.push_str(&name);
    if let Some(arg) = arg {
        out.push('=');
        match delta_seconds(arg).filter(|_| is_delta_directive(&name)) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str(arg.trim()),
        }
    }
}

fn split_directive(d: &str) -> (&str, Option<&str>) {
    match d.split_once('=') {
        Some((n, a)) => (n.trim(), Some(a)),
        None => (d.trim(), None),
    }
}

fn is_delta_directive(name: &str) -> bool {
    DELTA_DIRECTIVES
        .iter()
        .any(|d| d.eq_ignore_ascii_case(name))
}

/// RFC 9111 §5.1: a list-valued `Age` uses its first member, a value past 2^31 is 2^31, and an
/// invalid one is ignored.
fn normalize_age(headers: &mut HeaderMap) {
    let Some(v) = headers.get(AGE) else { return };
    let raw = v.to_str().unwrap_or("");
    let first = raw.split(',').next().unwrap_or("");
    let single = headers.get_all(AGE).iter().count() == 1;
    match delta_seconds(first) {
        Some(n) if single && n.to_string() == raw => {}
        Some(n) => {
            headers.insert(AGE, HeaderValue::from(n));
        }
        None => {
            headers.remove(AGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn delta_seconds_saturate_at_two_to_the_31() {
        assert_eq!(delta_seconds("0"), Some(0));
        assert_eq!(delta_seconds("60"), Some(60));
        assert_eq!(delta_seconds("\"60\""), Some(60));
        assert_eq!(delta_seconds("2147483647"), Some(2_147_483_647));
        assert_eq!(delta_seconds("2147483648"), Some(MAX_DELTA_SECS));
        assert_eq!(delta_seconds("18446744073709551615"), Some(MAX_DELTA_SECS));
        assert_eq!(
            delta_seconds("99999999999999999999999999999999"),
            Some(MAX_DELTA_SECS)
        );
        for bad in ["", "-1", "+5", "1.5", "abc", "1e9", "\"", "0x10"] {
            assert_eq!(delta_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn points_in_time_saturate() {
        let now = SystemTime::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after(now, Duration::MAX), now + MAX_DELTA);
    }

    #[test]
    fn cache_control_is_lowercased_and_saturated() {
        let mut h = cc(&[
            "MAX-AGE=18446744073709551615, No-CaChE",
            "stale-if-error=99999999999",
        ]);
        normalize(&mut h);
        assert_eq!(
            h.get(CACHE_CONTROL).unwrap(),
            "max-age=2147483648, no-cache, stale-if-error=2147483648"
        );
        // Arguments that are not numbers are kept (the rules treat them as invalid).
        let mut h = cc(&["Private=\"Set-Cookie\", max-age=-5"]);
        normalize(&mut h);
        assert_eq!(
            h.get(CACHE_CONTROL).unwrap(),
            "private=\"Set-Cookie\", max-age=-5"
        );
        // Nothing to change: the fields stay as sent.
        let mut h = cc(&["max-age=60", "public"]);
        normalize(&mut h);
        assert_eq!(h.get_all(CACHE_CONTROL).iter().count(), 2);
    }

    #[test]
    fn age_uses_the_first_member_saturates_and_ignores_garbage() {
        let age = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AGE, HeaderValue::from_str(v).unwrap());
            normalize(&mut h);
            h.get(AGE).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(age("10, 20").as_deref(), Some("10"));
        assert_eq!(age("7").as_deref(), Some("7"));
        assert_eq!(age("18446744073709551615").as_deref(), Some("2147483648"));
        assert_eq!(age("-5"), None);
        assert_eq!(age("soon"), None);
    }
}

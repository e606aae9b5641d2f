//! Numbers and directives from the wire, made safe before any caching rule or clock sees them.
//!
//! An upstream controls every header the cache reads. RFC 9111 §1.2.2: a delta-seconds value
//! too large to represent is taken as 2147483648 (2^31 s, about 68 years), and every later
//! calculation that would overflow is taken the same way. So every delta-seconds value
//! (`max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error`, `max-stale`,
//! `min-fresh`, `Age`) is parsed here with saturation, and every point in time is computed with
//! [`after`], which saturates instead of panicking.

use std::time::{Duration, SystemTime};

use http::header::{
    AGE, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, DATE, EXPIRES, HeaderName, HeaderValue, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, StatusCode, Uri};

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
    normalize_dates(headers);
}

/// The one byte range of a `Range` field (RFC 9110 §14.1.2) against a representation of
/// `len` bytes: `Some(Ok((first, last)))` inclusive, `Some(Err(()))` when unsatisfiable (416),
/// `None` when the field is not one `bytes` range this cache answers (several ranges, another
/// unit, a malformed one): then the full response is served, which RFC 9110 §14.2 allows.
pub(crate) fn single_range(spec: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let (unit, set) = spec.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Saturates: a position past u64 is past any body.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => {
            let n = number(last)?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            Some(Ok((len.saturating_sub(n), len - 1)))
        }
        // bytes=a-
        (false, true) => {
            let a = number(first)?;
            Some(if a >= len { Err(()) } else { Ok((a, len - 1)) })
        }
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            if a > b {
                return None; // invalid: ignored
            }
            Some(if a >= len {
                Err(())
            } else {
                Ok((a, b.min(len - 1)))
            })
        }
        (true, true) => None,
    }
}

/// How long `Retry-After` asks to wait (RFC 9110 §10.2.3): delta-seconds (saturated) or an
/// HTTP date (from `now`; a date in the past is no wait); `None` when absent or invalid.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Some(secs) = delta_seconds(value) {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A request's `Cache-Control` made canonical like a response's (directive names in lower
/// case, delta-seconds saturated); nothing is touched when nothing needs it.
pub(crate) fn normalize_request(headers: &mut HeaderMap) {
    normalize_cache_control(headers);
}

/// RFC 9110 §5.6.7: recipients accept the three date forms (IMF-fixdate, the obsolete RFC 850
/// and asctime) and nothing else. The semantics library reads dates as RFC 2822, which takes
/// invalid forms (doubled spaces) and refuses the obsolete ones; so each date is parsed
/// strictly here and written back as IMF-fixdate. RFC 9111 §5.3: an invalid `Expires` means
/// already expired (written as the epoch); an invalid `Date` is dropped, and the response time
/// stands in for it (RFC 9110 §6.6.1).
fn normalize_dates(headers: &mut HeaderMap) {
    for (name, invalid) in [(EXPIRES, Some(UNIX_EPOCH_DATE)), (DATE, None)] {
        let Some(value) = headers.get(&name) else {
            continue;
        };
        let parsed = value
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v.trim()).ok());
        let several = headers.get_all(&name).iter().count() > 1;
        match (parsed, invalid) {
            (Some(t), _) => {
                let canonical = httpdate::fmt_http_date(t);
                if (several
                    || headers
                        .get(&name)
                        .is_none_or(|v| v.as_bytes() != canonical.as_bytes()))
                    && let Ok(v) = HeaderValue::from_str(&canonical)
                {
                    headers.insert(&name, v);
                }
            }
            (None, Some(expired)) => {
                headers.insert(&name, HeaderValue::from_static(expired));
            }
            (None, None) => {
                headers.remove(&name);
            }
        }
    }
}

const UNIX_EPOCH_DATE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// The hop-by-hop fields (RFC 9110 §7.6.1), which describe one connection and are never
/// handed on: the fixed list and whatever `Connection` names.
const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The host of `uri`, what `Uri::host` gives, found in one forward and one backward pass over
/// the authority's few bytes (`Uri::host` splits with `str` searchers whose set-up costs more
/// than the search; it ran twice per request).
pub(crate) fn uri_host(uri: &Uri) -> Option<&str> {
    let auth = uri.authority()?.as_str();
    let start = auth.bytes().rposition(|b| b == b'@').map_or(0, |i| i + 1);
    let host_port = &auth[start..];
    let end = if host_port.starts_with('[') {
        host_port
            .bytes()
            .position(|b| b == b']')
            .map_or(host_port.len(), |i| i + 1)
    } else {
        host_port
            .bytes()
            .position(|b| b == b':')
            .unwrap_or(host_port.len())
    };
    Some(&host_port[..end])
}

/// Whether `uri` names a host (`uri_host` is some and not empty), without finding where the
/// host ends in the common authority: one without user information that does not start
/// with the port (checked on every request).
pub(crate) fn has_host(uri: &Uri) -> bool {
    let Some(auth) = uri.authority() else {
        return false;
    };
    let a = auth.as_str().as_bytes();
    let common = a.first().is_some_and(|b| !matches!(b, b':' | b'[')) && !a.contains(&b'@');
    common || uri_host(uri).is_some_and(|h| !h.is_empty())
}

/// Whether two URIs are equal as `Uri`'s `PartialEq` says (scheme and authority without
/// case), with the common case first: the same bytes.
pub(crate) fn same_uri(a: &Uri, b: &Uri) -> bool {
    fn text(u: &Uri) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            u.scheme_str(),
            u.authority().map(http::uri::Authority::as_str),
            u.path_and_query().map(http::uri::PathAndQuery::as_str),
        )
    }
    text(a) == text(b) || a == b
}

/// Removes the hop-by-hop fields (RFC 9110 §7.6.1): the fixed list and what `Connection`
/// names (never `Content-Length`).
pub(crate) fn hop_by_hop(headers: &mut HeaderMap) {
    // The common response has none: one pass over the names finds out, cheaper than a
    // removal per name.
    if !headers.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    remove_hop_by_hop(headers);
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        if *name != CONTENT_LENGTH {
            headers.remove(name);
        }
    }
}

/// Makes a response read whole consistent, whether it is then served from the network or
/// from the cache: hop-by-hop fields go (RFC 9110 §7.6.1), and `Content-Length` says the
/// length of the body handed out (a `Transfer-Encoding` response's own `Content-Length`
/// must be ignored, RFC 9112 §6.3; a decoded body has another length). HEAD responses and
/// the statuses without a body keep theirs.
pub(crate) fn end_to_end(
    headers: &mut HeaderMap,
    method: &Method,
    status: StatusCode,
    body_len: usize,
) {
    // One pass over the fields (this runs on every response): any hop-by-hop field, and the
    // `Content-Length` values.
    let mut hop = false;
    let mut lengths = 0usize;
    let mut said = None;
    for (name, value) in headers.iter() {
        if *name == CONTENT_LENGTH {
            lengths += 1;
            if lengths == 1 {
                said = value.to_str().ok().and_then(|v| v.parse::<usize>().ok());
            }
        } else if HOP_BY_HOP.contains(name) {
            hop = true;
        }
    }
    if hop {
        // `Content-Length` is never among the fields removed: the count above stands.
        remove_hop_by_hop(headers);
    }
    let bodiless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if bodiless {
        return;
    }
    if said != Some(body_len) || lengths > 1 {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    }
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

    #[test]
    fn uri_host_and_same_uri_agree_with_http() {
        let uris = [
            "http://example.com/a",
            "http://example.com:8080/a?b=c",
            "http://user:pw@example.com:81/",
            "http://a@b@example.com/",
            "http://[::1]:8080/x",
            "http://[fe80::1%25eth0]/",
            "HTTP://EXAMPLE.COM/a",
            "http://Example.com:8080/a?b=c",
            "/relative/only",
            "http://h",
            "http://h/",
            "http://h?",
            "https://h:443/p?q",
        ];
        // Authorities without a host, where `http` parses them at all.
        for a in ["http://:80/", "http://u@:80/", "http://u@/", "http://u@h/"] {
            if let Ok(u) = a.parse::<Uri>() {
                assert_eq!(has_host(&u), u.host().is_some_and(|h| !h.is_empty()), "{a}");
            }
        }
        for a in uris {
            let ua: Uri = a.parse().unwrap();
            assert_eq!(uri_host(&ua), ua.host(), "{a}");
            assert_eq!(
                has_host(&ua),
                ua.host().is_some_and(|h| !h.is_empty()),
                "{a}"
            );
            for b in uris {
                let ub: Uri = b.parse().unwrap();
                assert_eq!(same_uri(&ua, &ub), ua == ub, "{a} / {b}");
            }
        }
    }

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
    fn dates_are_strict_and_rewritten_as_imf_fixdate() {
        let date = |name: HeaderName, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(name.clone(), HeaderValue::from_str(v).unwrap());
            normalize(&mut h);
            h.get(&name).map(|v| v.to_str().unwrap().to_owned())
        };
        let imf = "Thu, 18 Aug 2050 02:01:18 GMT";
        // RFC 9110 §5.6.7: the two obsolete forms are accepted and rewritten.
        assert_eq!(
            date(EXPIRES, "Thursday, 18-Aug-50 02:01:18 GMT").as_deref(),
            Some(imf)
        );
        assert_eq!(
            date(EXPIRES, "Thu Aug 18 02:01:18 2050").as_deref(),
            Some(imf)
        );
        assert_eq!(date(EXPIRES, imf).as_deref(), Some(imf));
        // RFC 9111 §5.3: an invalid Expires is in the past.
        for bad in [
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "0",
            "-1",
            "soon",
            "Thu, 18 Aug 2050 02:01:18 +0000",
        ] {
            assert_eq!(
                date(EXPIRES, bad).as_deref(),
                Some(UNIX_EPOCH_DATE),
                "{bad:?}"
            );
        }
        // An invalid Date is dropped; a valid obsolete one rewritten.
        assert_eq!(date(DATE, "yesterday"), None);
        assert_eq!(
            date(DATE, "Thursday, 18-Aug-50 02:01:18 GMT").as_deref(),
            Some(imf)
        );
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::now();
        let ra = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h, now)
        };
        assert_eq!(ra("3"), Some(Duration::from_secs(3)));
        assert_eq!(ra("99999999999999999999"), Some(MAX_DELTA));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(120));
        let got = ra(&later).unwrap();
        assert!(
            got > Duration::from_secs(118) && got <= Duration::from_secs(120),
            "{got:?}"
        );
        assert_eq!(
            ra(&httpdate::fmt_http_date(now - Duration::from_secs(60))),
            Some(Duration::ZERO)
        );
        assert_eq!(ra("-1"), None);
        assert_eq!(ra("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn byte_ranges_follow_rfc9110() {
        assert_eq!(single_range("bytes=0-3", 10), Some(Ok((0, 3))));
        assert_eq!(single_range("Bytes = 2-", 10), Some(Ok((2, 9))));
        assert_eq!(single_range("bytes=-4", 10), Some(Ok((6, 9))));
        assert_eq!(single_range("bytes=-40", 10), Some(Ok((0, 9))));
        assert_eq!(
            single_range("bytes=5-99999999999999999999999", 10),
            Some(Ok((5, 9)))
        );
        assert_eq!(single_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(
            single_range("bytes=99999999999999999999999-", 10),
            Some(Err(()))
        );
        assert_eq!(single_range("bytes=-0", 10), Some(Err(())));
        assert_eq!(single_range("bytes=0-0", 0), Some(Err(())));
        for ignored in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=-",
            "bytes=a-b",
            "0-1",
            "bytes=+1-2",
        ] {
            assert_eq!(single_range(ignored, 10), None, "{ignored}");
        }
    }

    #[test]
    fn hop_by_hop_fields_go_and_the_length_is_the_body_handed_out() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-trace"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert("etag", HeaderValue::from_static("\"v1\""));
        end_to_end(&mut h, &Method::GET, StatusCode::OK, 42);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "etag"]);
        assert_eq!(h.get(CONTENT_LENGTH).unwrap(), "42");
        // HEAD keeps the length GET would have had.
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("1000"));
        end_to_end(&mut h, &Method::HEAD, StatusCode::OK, 0);
        assert_eq!(h.get(CONTENT_LENGTH).unwrap(), "1000");
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

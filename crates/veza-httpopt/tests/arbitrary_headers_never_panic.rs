//! Property: whatever caching headers an upstream sends (numbers near and past u64, negative,
//! malformed, repeated, in any case), the cache's store, lookup, revalidation and stale paths
//! never panic and never serve a body the upstream did not send for that URI.

mod common;

use std::sync::{Arc, Mutex};

use common::{response, serve};
use proptest::prelude::*;
use veza_httpopt::Client;

/// Numbers and non-numbers an upstream may put where delta-seconds belong.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("2147483647".to_owned()),
        Just("2147483648".to_owned()),
        Just("99999999999999999999999999999".to_owned()),
        Just("-1".to_owned()),
        Just(String::new()),
        Just("1.5".to_owned()),
        Just("\"60\"".to_owned()),
        Just("abc".to_owned()),
        (0u64..120).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

fn directive() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("max-age"),
        Just("MAX-AGE"),
        Just("Max-Age"),
        Just("s-maxage"),
        Just("stale-while-revalidate"),
        Just("Stale-If-Error"),
        Just("stale-if-error"),
    ];
    let flag = prop_oneof![
        Just("no-cache"),
        Just("No-Cache"),
        Just("must-revalidate"),
        Just("public"),
        Just("private"),
        Just("immutable"),
        Just("no-store"),
    ];
    prop_oneof![
        3 => (name, number()).prop_map(|(n, v)| format!("{n}={v}")),
        1 => flag.prop_map(str::to_owned),
    ]
}

fn date() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_owned()),
        Just("Thu, 01 Jan 1970 00:00:00 GMT".to_owned()),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
        Just("Thu, 18  Aug  2050 02:01:18 GMT".to_owned()),
        Just("garbage".to_owned()),
        (-1_500_000_000i64..4_000_000_000).prop_map(common::http_date),
    ]
}

/// One header set: (name, value) pairs, names possibly repeated.
fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let one = prop_oneof![
        4 => proptest::collection::vec(directive(), 1..4)
            .prop_map(|d| ("cache-control", d.join(", "))),
        2 => number().prop_map(|v| ("age", v)),
        1 => date().prop_map(|v| ("expires", v)),
        1 => date().prop_map(|v| ("date", v)),
        1 => date().prop_map(|v| ("last-modified", v)),
        1 => Just(("etag", "\"v1\"".to_owned())),
    ];
    proptest::collection::vec(one, 0..6)
}

/// What the upstream answers a case's n-th request with.
#[derive(Debug, Clone)]
struct Script {
    first: Vec<(&'static str, String)>,
    later: Vec<(&'static str, String)>,
    /// Status of each later answer: 200, 304 or 500.
    statuses: Vec<u16>,
}

fn script() -> impl Strategy<Value = Script> {
    (
        headers(),
        headers(),
        proptest::collection::vec(prop_oneof![Just(200u16), Just(304), Just(500)], 3),
    )
        .prop_map(|(first, later, statuses)| Script {
            first,
            later,
            statuses,
        })
}

#[test]
fn any_caching_headers_are_survived() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let current: Arc<Mutex<(Script, usize)>> = Arc::new(Mutex::new((
        Script {
            first: vec![],
            later: vec![],
            statuses: vec![],
        },
        0,
    )));
    let server = {
        let current = Arc::clone(&current);
        rt.block_on(serve(move |_req| {
            let (status, mut h) = {
                let mut g = current.lock().unwrap();
                let n = g.1;
                g.1 += 1;
                match n {
                    0 => (200, g.0.first.clone()),
                    n => (*g.0.statuses.get(n - 1).unwrap_or(&200), g.0.later.clone()),
                }
            };
            h.push(("etag", "\"v1\"".to_owned()));
            async move {
                let body = match status {
                    200 => "the body",
                    304 => "",
                    _ => "error",
                };
                response(status, &h, body)
            }
        }))
    };
    let client = Client::builder().build().unwrap();
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let case = std::sync::atomic::AtomicU64::new(0);
    proptest!(config, |(s in script())| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *current.lock().unwrap() = (s, 0);
        let url = server.url(&format!("/case/{n}"));
        for _ in 0..4 {
            let r = rt.block_on(client.get(url.as_str()).send());
            let r = r.map_err(|e| TestCaseError::fail(format!("request failed: {e}")))?;
            match r.status().as_u16() {
                200 => prop_assert_eq!(r.body().as_ref(), b"the body"),
                500 => prop_assert_eq!(r.body().as_ref(), b"error"),
                // A 304 to a request the client sent unconditionally (nothing was stored) is
                // the upstream's, passed through as it came.
                304 => prop_assert!(r.body().is_empty()),
                other => prop_assert!(false, "status {} reached the caller", other),
            }
        }
    });
}

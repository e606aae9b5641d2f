//! A scraper that asks for OpenMetrics (as Prometheus does by default) gets OpenMetrics 1.0 text
//! that the reference parser (`prometheus_client.openmetrics.parser`, Debian's
//! python3-prometheus-client) accepts, with the same values as the Prometheus text.

mod common;

use std::time::Duration;

use veza_metrics::Business;

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Parses the text with the reference OpenMetrics parser and prints one `name value` line per
/// sample.
const PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(f"{family.type} {s.name}{{{labels}}} {s.value}")
        if s.exemplar:
            print(f"exemplar {s.name}{{{labels}}} {s.exemplar.labels['trace_id']} {s.exemplar.value}")
"#;

#[test]
fn openmetrics_is_served_on_request_and_parses() {
    let metrics = common::metrics();
    let business = Business::new();
    business.messages.increment(7);
    business.active_users.set(2.0);
    metrics::histogram!(veza_core::catalog::db::QUERY_DURATION.name, "pool" => "om", "statement" => "s")
        .record(Duration::from_millis(30));
    metrics::counter!("custom_events", "kind" => "a\"b").increment(3);
    // An exemplar, as the tower layer leaves for a request with a `traceparent`.
    let traced = metrics::histogram!(veza_core::catalog::http::REQUEST_DURATION.name, "method" => "GET", "route" => "/om");
    veza_metrics::exemplar::with_trace_id("4bf92f3577b34da6a3ce929d0e0e4736", || {
        traced.record(0.2);
    });

    let exporter = metrics.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let (status, headers, body) = common::get(
        exporter.local_addr(),
        "/metrics",
        &[("Accept", PROMETHEUS_ACCEPT)],
    );
    assert_eq!(status, 200);
    let content_type = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Counter families lose `_total`; samples keep or gain it.
    assert!(text.contains("# TYPE messages counter\n"), "{text}");
    assert!(text.contains("\nmessages_total 7\n"), "{text}");
    assert!(text.contains("# TYPE custom_events counter\n"), "{text}");
    assert!(
        text.contains("\ncustom_events_total{kind=\"a\\\"b\"} 3\n"),
        "{text}"
    );

    let Some(parsed) = reference_parse(&text) else {
        return;
    };
    for expected in [
        "counter messages_total{} 7\n",
        "gauge active_users{} 2\n",
        "histogram db_query_duration_seconds_bucket{le=0.05,pool=om,statement=s} 1\n",
        "histogram db_query_duration_seconds_count{pool=om,statement=s} 1\n",
        "counter custom_events_total{kind=a\"b} 3\n",
        "counter process_cpu_seconds_total{} ",
        "exemplar http_request_duration_seconds_bucket{le=0.25,method=GET,route=/om} 4bf92f3577b34da6a3ce929d0e0e4736 0.2\n",
    ] {
        assert!(
            parsed.contains(expected),
            "`{expected}` not in the parsed samples:\n{parsed}"
        );
    }

    // Without the Accept header: the Prometheus text, no EOF marker.
    let (_, headers, body) = common::get(exporter.local_addr(), "/metrics", &[]);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/plain; version=0.0.4"))
    );
    let plain = String::from_utf8(body).unwrap();
    assert!(!plain.contains("# EOF") && plain.contains("\ncustom_events{kind=\"a\\\"b\"} 3\n"));
}

/// The reference parser's reading (`None`: skipped outside CI without the parser).
fn reference_parse(text: &str) -> Option<String> {
    // Debian's python3, where Debian's python3-prometheus-client is; a missing module is a
    // missing program.
    let module = std::path::Path::new("/usr/lib/python3/dist-packages/prometheus_client");
    let python = if module.exists() {
        "/usr/bin/python3"
    } else {
        "/nonexistent/python3"
    };
    let package = "python3-prometheus-client";
    let (ok, out, err) = common::pipe_through(python, &["-c", PARSE], package, text)?;
    assert!(
        ok,
        "the OpenMetrics parser rejected the text:\n{err}\n{text}"
    );
    Some(out)
}

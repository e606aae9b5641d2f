//! A real scrape over HTTP returns valid Prometheus text that `promtool check metrics` accepts
//! without complaint, plain or gzip-compressed.

mod common;

use std::io::Read;
use std::time::Duration;

use veza_metrics::{Business, HttpMetricsLayer, Routes};

#[test]
fn the_scraped_text_passes_promtool() {
    let metrics = common::metrics();
    // Some of every kind, from the catalog, through the recorder.
    let business = Business::new();
    business.active_users.set(3.0);
    business.messages.increment(10);
    let _layer = HttpMetricsLayer::new(Routes::new(["/users/{id}"]));
    metrics::histogram!(veza_core::catalog::db::QUERY_DURATION.name, "pool" => "main", "statement" => "get_user")
        .record(Duration::from_millis(3));
    metrics::counter!(veza_core::catalog::cache::HITS.name, "cache" => "users").increment(5);

    let exporter = metrics.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let (status, headers, body) = common::get(exporter.local_addr(), "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/plain; version=0.0.4"))
    );
    let text = String::from_utf8(body).unwrap();
    for expected in [
        "# TYPE process_cpu_seconds_total counter",
        "process_resident_memory_bytes ",
        "system_cpu_usage_ratio{mode=\"user\"}",
        "active_users 3",
        "messages_total 10",
        "db_query_duration_seconds_bucket{pool=\"main\",statement=\"get_user\",le=\"0.005\"} 1",
        "cache_hits_total{cache=\"users\"} 5",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    promtool_accepts(&text);

    // gzip when asked, same content.
    let (status, headers, gz) = common::get(
        exporter.local_addr(),
        "/metrics",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-encoding" && v == "gzip")
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert!(unzipped.contains("# TYPE process_cpu_seconds_total counter"));
    assert!(gz.len() < unzipped.len() / 2, "gzip did not compress");

    let (status, _, _) = common::get(exporter.local_addr(), "/other", &[]);
    assert_eq!(status, 404);
}

/// Runs `promtool check metrics` (skipped outside CI without promtool).
fn promtool_accepts(text: &str) {
    let Some((ok, out, err)) =
        common::pipe_through("promtool", &["check", "metrics"], "prometheus", text)
    else {
        return;
    };
    let complaints = format!("{out}{err}");
    assert!(ok, "promtool rejected the text:\n{complaints}");
    assert!(
        complaints.trim().is_empty(),
        "promtool lint complaints:\n{complaints}"
    );
}

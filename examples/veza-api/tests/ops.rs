//! The Grafana dashboard only queries metrics the catalog defines (or its recording rules), so
//! a renamed metric cannot leave a dashboard panel silently empty.

use std::collections::BTreeSet;

use veza_core::catalog;

/// Identifiers followed by `{` or `[` in a PromQL expression: the metric names it selects.
fn selected_metrics(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
        {
            i += 1;
        }
        if i > start && i < bytes.len() && (bytes[i] == b'{' || bytes[i] == b'[') {
            out.push(expr[start..i].to_owned());
        }
        if i == start {
            i += 1;
        }
    }
    out
}

#[test]
fn the_dashboard_uses_catalog_metrics_only() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/ops/grafana-dashboard.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut known: BTreeSet<String> = catalog::ALL.iter().map(|d| d.name.to_owned()).collect();
    known.extend(catalog::DERIVED.iter().map(|d| d.name.to_owned()));
    known.insert("up".to_owned());
    let mut seen = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in selected_metrics(expr) {
                let base = name.strip_suffix("_bucket").unwrap_or(&name);
                assert!(
                    known.contains(base),
                    "panel {:?} queries unknown metric {name}",
                    panel["title"]
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 20, "only {seen} metric selections found");
    assert_eq!(
        selected_metrics("rate(a_b{x=\"1\"}[5m]) / c:d:e{}"),
        ["a_b", "c:d:e"]
    );
}

//! The metric catalog obeys the Prometheus naming conventions and covers every metric the
//! performance guide lists.

use std::collections::HashSet;

use veza_core::catalog::{self, MetricKind, Unit};

/// `[a-zA-Z_][a-zA-Z0-9_]*`; colons are reserved for recording rules.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the grammar for recording-rule names.
fn is_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[test]
fn names_match_the_grammar_and_are_snake_case() {
    for def in catalog::ALL {
        assert!(
            is_metric_name(def.name),
            "{} is not a metric name",
            def.name
        );
        assert_eq!(def.name, def.name.to_ascii_lowercase(), "{}", def.name);
        assert!(!def.name.contains("__"), "{}", def.name);
        assert!(!def.name.ends_with('_'), "{}", def.name);
    }
    for rule in catalog::DERIVED {
        assert!(is_rule_name(rule.name), "{} is not a rule name", rule.name);
        assert_eq!(rule.name.matches(':').count(), 2, "level:metric:operations");
    }
}

#[test]
fn names_are_unique_including_histogram_series() {
    let mut seen = HashSet::new();
    for def in catalog::ALL {
        assert!(seen.insert(def.name.to_owned()), "{} twice", def.name);
    }
    // A histogram `x` also exports `x_bucket`, `x_sum` and `x_count`: no other metric may use them.
    for def in catalog::ALL
        .iter()
        .filter(|d| d.kind == MetricKind::Histogram)
    {
        for suffix in ["_bucket", "_sum", "_count"] {
            let series = format!("{}{suffix}", def.name);
            assert!(!seen.contains(&series), "{series} clashes with a histogram");
        }
    }
    let rules: HashSet<_> = catalog::DERIVED.iter().map(|r| r.name).collect();
    assert_eq!(rules.len(), catalog::DERIVED.len());
}

#[test]
fn counters_and_only_counters_end_in_total() {
    for def in catalog::ALL {
        let total = def.name.ends_with("_total");
        assert_eq!(total, def.kind == MetricKind::Counter, "{}", def.name);
        for reserved in ["_bucket", "_sum", "_count", "_created", "_info"] {
            assert!(
                !def.name.ends_with(reserved),
                "{} ends in {reserved}",
                def.name
            );
        }
    }
}

#[test]
fn units_are_base_units_and_named_in_the_suffix() {
    const NOT_BASE: &[&str] = &[
        "_milliseconds",
        "_microseconds",
        "_nanoseconds",
        "_ms",
        "_us",
        "_minutes",
        "_hours",
        "_percent",
        "_percentage",
        "_kilobytes",
        "_megabytes",
        "_gigabytes",
        "_kb",
        "_mb",
        "_bits",
    ];
    for def in catalog::ALL {
        let stem = def.name.strip_suffix("_total").unwrap_or(def.name);
        for bad in NOT_BASE {
            assert!(
                !stem.contains(&format!("{bad}_")) && !stem.ends_with(bad),
                "{} uses a non-base unit",
                def.name
            );
        }
        match def.unit.suffix() {
            Some(suffix) => assert!(
                stem.ends_with(suffix),
                "{} is in {} but does not end in {suffix}",
                def.name,
                def.unit
            ),
            None => {
                for suffix in [Unit::Seconds, Unit::Bytes, Unit::Ratio].map(Unit::suffix) {
                    assert!(
                        !stem.ends_with(suffix.unwrap()),
                        "{} is a count but names a unit",
                        def.name
                    );
                }
            }
        }
    }
}

#[test]
fn ratios_are_gauges_and_histograms_have_units() {
    for def in catalog::ALL {
        if def.unit == Unit::Ratio {
            assert_eq!(def.kind, MetricKind::Gauge, "{}", def.name);
        }
        if def.kind == MetricKind::Histogram {
            assert_ne!(def.unit, Unit::Count, "{} histogram without unit", def.name);
        }
    }
}

#[test]
fn labels_are_valid_bounded_and_unique() {
    // Labels whose values are unbounded (ids, raw paths, urls) must never appear.
    const UNBOUNDED: &[&str] = &[
        "user", "user_id", "id", "path", "url", "uri", "query", "email",
    ];
    for def in catalog::ALL {
        let mut seen = HashSet::new();
        for label in def.labels {
            assert!(is_metric_name(label), "{}: bad label {label}", def.name);
            assert!(
                !label.starts_with("__"),
                "{}: reserved label {label}",
                def.name
            );
            assert!(seen.insert(label), "{}: {label} twice", def.name);
            assert!(
                !UNBOUNDED.contains(label),
                "{}: unbounded {label}",
                def.name
            );
            if def.kind == MetricKind::Histogram {
                assert_ne!(*label, "le", "{}", def.name);
            }
            assert_ne!(*label, "quantile", "{}", def.name);
        }
    }
}

#[test]
fn help_texts_are_sentences() {
    for def in catalog::ALL {
        assert!(def.help.len() > 10, "{} has no real help", def.name);
        assert!(
            def.help.ends_with('.'),
            "{}: help should end with a period",
            def.name
        );
        assert!(!def.help.contains('\n'), "{}", def.name);
    }
}

#[test]
fn process_metrics_use_the_standard_names() {
    let names: HashSet<_> = catalog::process::ALL.iter().map(|d| d.name).collect();
    for standard in [
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_virtual_memory_max_bytes",
        "process_resident_memory_bytes",
        "process_heap_bytes",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(names.contains(standard), "missing {standard}");
    }
    for def in catalog::process::ALL {
        assert!(def.name.starts_with("process_"), "{}", def.name);
    }
}

#[test]
fn every_guide_metric_has_a_home() {
    for guide in catalog::GUIDE_METRICS {
        let (metrics, derived) = catalog::for_guide_name(guide);
        assert!(
            !metrics.is_empty() || !derived.is_empty(),
            "the guide's {guide} has no metric or rule in the catalog"
        );
    }
    // And nothing claims a guide name the guide does not have.
    for def in catalog::ALL {
        if let Some(guide) = def.guide_name {
            assert!(
                catalog::GUIDE_METRICS.contains(&guide),
                "{}: {guide}",
                def.name
            );
        }
    }
    for rule in catalog::DERIVED {
        assert!(
            catalog::GUIDE_METRICS.contains(&rule.guide_name),
            "{}",
            rule.name
        );
    }
}

#[test]
fn rules_only_use_catalog_metrics() {
    let names: HashSet<_> = catalog::ALL.iter().map(|d| d.name).collect();
    for rule in catalog::DERIVED {
        // Every identifier in the expression that looks like one of our metric series.
        for word in rule
            .expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            if word.starts_with("http_") || word.starts_with("messages_") {
                assert!(names.contains(base), "{}: unknown metric {word}", rule.name);
            }
        }
    }
}

#[test]
fn all_is_the_union_of_the_groups() {
    let total: usize = catalog::GROUPS.iter().map(|g| g.len()).sum();
    assert_eq!(catalog::ALL.len(), total);
    for group in catalog::GROUPS {
        for def in *group {
            assert_eq!(catalog::find(def.name), Some(def));
            assert_eq!(
                def.group, group[0].group,
                "{} is in the wrong group",
                def.name
            );
        }
    }
}

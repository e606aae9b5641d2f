//! Metric families that collectors produce at scrape time, and their Prometheus text encoding.

use std::fmt::Write as _;

use veza_core::catalog::{MetricDef, MetricKind};

use crate::recorder::Format;

/// Something that produces metric families when scraped: the process and system collectors,
/// or your own.
pub trait Collector: Send + Sync {
    /// Appends the current values to `out`.
    fn collect(&self, out: &mut Vec<Family>);
}

/// One metric family: a catalog definition and its samples.
#[derive(Debug, Clone)]
pub struct Family {
    def: &'static MetricDef,
    samples: Vec<Sample>,
}

/// One sample: label values (in the order of the definition's labels) and a value.
#[derive(Debug, Clone)]
struct Sample {
    labels: Vec<String>,
    value: f64,
}

impl Family {
    /// An empty family for `def` (counters and gauges; histograms come from the recorder).
    pub fn new(def: &'static MetricDef) -> Family {
        debug_assert!(
            def.kind != MetricKind::Histogram,
            "collectors emit no histograms"
        );
        Family {
            def,
            samples: Vec::new(),
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(def: &'static MetricDef, value: f64) -> Family {
        Family::new(def).with(&[], value)
    }

    /// Adds a sample with these label values (one per label of the definition).
    pub fn with(mut self, labels: &[&str], value: f64) -> Family {
        self.push(labels, value);
        self
    }

    /// Adds a sample with these label values (one per label of the definition).
    pub fn push(&mut self, labels: &[&str], value: f64) {
        debug_assert_eq!(labels.len(), self.def.labels.len(), "{}", self.def.name);
        self.samples.push(Sample {
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            value,
        });
    }

    /// The metric name.
    pub fn name(&self) -> &'static str {
        self.def.name
    }

    /// Whether it has no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Appends `families` in `format`, each sample with the `global` labels after its own.
pub(crate) fn encode(
    families: &[Family],
    global: &[(String, String)],
    format: Format,
    out: &mut String,
) {
    for family in families.iter().filter(|f| !f.is_empty()) {
        let def = family.def;
        let counter = def.kind == MetricKind::Counter;
        // OpenMetrics names a counter family without `_total` and its samples with it.
        let (family_name, sample_name) = match format {
            Format::OpenMetrics if counter => {
                let base = def.name.strip_suffix("_total").unwrap_or(def.name);
                (base, std::borrow::Cow::Owned(format!("{base}_total")))
            }
            _ => (def.name, std::borrow::Cow::Borrowed(def.name)),
        };
        let help = escape_help(def.help, format);
        let _ = writeln!(out, "# HELP {family_name} {help}");
        let _ = writeln!(out, "# TYPE {family_name} {}", def.kind.as_str());
        for sample in &family.samples {
            out.push_str(&sample_name);
            let own = def
                .labels
                .iter()
                .copied()
                .zip(sample.labels.iter().map(String::as_str));
            let all = own.chain(global.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            for (i, (name, value)) in all.enumerate() {
                out.push(if i == 0 { '{' } else { ',' });
                out.push_str(name);
                out.push_str("=\"");
                escape_label_into(out, value);
                out.push('"');
            }
            if !sample.labels.is_empty() || !global.is_empty() {
                out.push('}');
            }
            out.push(' ');
            push_value(out, sample.value);
            out.push('\n');
        }
    }
}

/// A sample value as Prometheus spells it (`NaN`, `+Inf`, `-Inf`, shortest decimal).
pub(crate) fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// HELP text: backslashes and newlines escaped, and double quotes in OpenMetrics.
pub(crate) fn escape_help(s: &str, format: Format) -> String {
    let s = s.replace('\\', "\\\\").replace('\n', "\\n");
    match format {
        Format::OpenMetrics => s.replace('"', "\\\""),
        Format::Prometheus => s,
    }
}

/// A label value, escaped (`\\`, `\"`, `\n`) onto `out`.
pub(crate) fn escape_label_into(out: &mut String, s: &str) {
    if !s.contains(['\\', '"', '\n']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veza_core::catalog;

    #[test]
    fn families_encode_as_prometheus_text() {
        let families = vec![
            Family::single(&catalog::process::CPU_SECONDS, 1.5),
            Family::new(&catalog::system::NETWORK_RECEIVED)
                .with(&["eth\"0"], 10.0)
                .with(&["lo"], 2.0),
            Family::new(&catalog::system::LOAD_AVERAGE), // empty: omitted
        ];
        let mut out = String::new();
        encode(&families, &[], Format::Prometheus, &mut out);
        assert_eq!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.5\n\
             # HELP system_network_receive_bytes_total Bytes received on the network interface.\n\
             # TYPE system_network_receive_bytes_total counter\n\
             system_network_receive_bytes_total{interface=\"eth\\\"0\"} 10\n\
             system_network_receive_bytes_total{interface=\"lo\"} 2\n"
        );
    }

    #[test]
    fn global_labels_follow_the_sample_labels() {
        let families = vec![
            Family::single(&catalog::process::CPU_SECONDS, 1.0),
            Family::new(&catalog::system::NETWORK_RECEIVED).with(&["lo"], 2.0),
        ];
        let global = [("service".to_owned(), "api".to_owned())];
        let mut out = String::new();
        encode(&families, &global, Format::Prometheus, &mut out);
        assert!(
            out.contains("process_cpu_seconds_total{service=\"api\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "system_network_receive_bytes_total{interface=\"lo\",service=\"api\"} 2\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn special_values_use_prometheus_spelling() {
        let mut out = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.25] {
            push_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "NaN +Inf -Inf 0.25 ");
    }
}

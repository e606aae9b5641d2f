//! Human-readable numbers for progress lines and reports.

use std::time::Duration;

/// `value` with three significant digits and an SI prefix (`k`, `M`, `G`) when large, followed
/// by `unit`: `5.10 M jobs/s`, `812 ns`, `0.643 ratio`.
///
/// Times in `ns` or `s` are shown in the closest of ns, µs, ms and s instead: `42.6 µs`.
pub fn format_value(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return format!("{value} {unit}");
    }
    let nanos = match unit {
        "ns" => Some(value),
        "s" => Some(value * 1e9),
        _ => None,
    };
    if let Some(ns) = nanos {
        let (scaled, unit) = match ns.abs() {
            v if v >= 1e9 => (ns / 1e9, "s"),
            v if v >= 1e6 => (ns / 1e6, "ms"),
            v if v >= 1e3 => (ns / 1e3, "µs"),
            _ => (ns, "ns"),
        };
        return format!("{} {unit}", three_digits(scaled));
    }
    let (scaled, prefix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e4 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix} ")
    };
    format!("{} {prefix}{unit}", three_digits(scaled))
}

/// Three significant digits (more before the point when the number is large).
fn three_digits(value: f64) -> String {
    let digits = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        v if v >= 1.0 => 2,
        _ => 3,
    };
    format!("{value:.digits$}")
}

/// A duration as `12.3s` or `4m05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_get_prefixes_and_three_digits() {
        assert_eq!(format_value(5_100_000.0, "jobs/s"), "5.10 M jobs/s");
        assert_eq!(format_value(812.0, "ns"), "812 ns");
        assert_eq!(format_value(12_345.0, "req/s"), "12.3 k req/s");
        assert_eq!(format_value(0.6431, "ratio"), "0.643 ratio");
        assert_eq!(format_value(42_600.0, "ns"), "42.6 µs");
        assert_eq!(format_value(0.0133, "s"), "13.3 ms");
        assert_eq!(format_value(369.0, "ns"), "369 ns");
    }

    #[test]
    fn durations_switch_to_minutes() {
        assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
    }
}

//! The records of `report.json`, schema 2 (see BENCHMARKS.md), shared by the suites that write
//! them and by `xtask`, which reads them back. Schema 2 adds `allocs` to a case; schema 1
//! reports read back with it empty.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The whole report: `target/veza-bench/report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// 2 (1 before allocations per operation were recorded).
    pub schema: u32,
    /// `"quick"` or `"full"`.
    pub mode: String,
    /// `git rev-parse --short HEAD`, or `"unknown"`.
    pub git_rev: String,
    /// The machine.
    pub host: Host,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// Every case run or skipped.
    pub cases: Vec<CaseRecord>,
}

/// The machine the report was made on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// `std::env::consts::OS`.
    pub os: String,
    /// Available parallelism.
    pub cpus: usize,
    /// Physical memory.
    pub mem_bytes: u64,
}

/// One case: every contender's samples and median.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRecord {
    /// `suite/case`, e.g. `workers/tiny_jobs`.
    pub id: String,
    /// The work measured, in one sentence.
    pub what: String,
    /// `"throughput"`, `"latency"` or `"ratio"`.
    pub metric: String,
    /// The unit of every value, e.g. `jobs/s` or `ns`.
    pub unit: String,
    /// Whether a higher value is better.
    pub higher_is_better: bool,
    /// The contender key that is ours.
    pub ours: String,
    /// The median of each contender's samples, ours first.
    pub results: IndexMap<String, f64>,
    /// Every sample, in the order taken.
    pub samples: IndexMap<String, Vec<f64>>,
    /// Why the case did not run, when it did not.
    pub skipped: Option<String>,
    /// Allocations per operation of each contender (schema 2; empty when the case does not
    /// count them, and in schema 1 reports).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub allocs: IndexMap<String, Allocs>,
}

/// What one operation allocates, from a counting sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Allocs {
    /// Heap allocations (and reallocations) per operation.
    pub per_op: f64,
    /// Bytes allocated per operation (not net of frees).
    pub bytes_per_op: f64,
}

impl CaseRecord {
    /// Ours against `peer` as a ratio where above 1.0 means we are better.
    pub fn ratio_against(&self, peer: &str) -> Option<f64> {
        let ours = *self.results.get(&self.ours)?;
        let theirs = *self.results.get(peer)?;
        let ratio = if self.higher_is_better {
            ours / theirs
        } else {
            theirs / ours
        };
        ratio.is_finite().then_some(ratio)
    }
}

/// The median of `values` (mean of the middle two for an even count); `NaN` for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(higher_is_better: bool) -> CaseRecord {
        let mut results = IndexMap::new();
        results.insert("ours".to_owned(), 4.0);
        results.insert("peer".to_owned(), 2.0);
        CaseRecord {
            id: "x/y".into(),
            what: "w".into(),
            metric: "throughput".into(),
            unit: "ops/s".into(),
            higher_is_better,
            ours: "ours".into(),
            results,
            samples: IndexMap::new(),
            skipped: None,
            allocs: IndexMap::new(),
        }
    }

    #[test]
    fn ratios_are_above_one_when_we_are_better() {
        assert_eq!(record(true).ratio_against("peer"), Some(2.0));
        assert_eq!(record(false).ratio_against("peer"), Some(0.5));
        assert_eq!(record(true).ratio_against("missing"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}

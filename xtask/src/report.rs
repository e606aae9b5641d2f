//! The bench report: targets, `report.md`, baseline comparison, and the facts around a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Deserialize;
use veza_benches::{CaseRecord, Report, format_value};

use crate::util;

/// One line of `benches/targets.toml`: ours must beat `peer` on `case` by `min_ratio`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Target {
    pub(crate) case: String,
    pub(crate) peer: String,
    pub(crate) min_ratio: f64,
    /// The issue that set the target.
    #[serde(default)]
    pub(crate) issue: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    target: Vec<Target>,
}

pub(crate) fn load_targets(path: &Path) -> Result<Vec<Target>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: TargetsFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.target)
}

/// `crate version` for every dev-dependency of `veza-benches`, from `Cargo.lock`.
pub(crate) fn peer_versions() -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Manifest {
        #[serde(rename = "dev-dependencies", default)]
        dev: BTreeMap<String, toml::Value>,
    }
    #[derive(Deserialize)]
    struct Lock {
        package: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        version: String,
        source: Option<String>,
    }
    let root = util::root();
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(root.join("benches/Cargo.toml"))?)?;
    let lock: Lock = toml::from_str(&std::fs::read_to_string(root.join("Cargo.lock"))?)?;
    Ok(lock
        .package
        .iter()
        .filter(|p| p.source.is_some() && manifest.dev.contains_key(&p.name))
        .map(|p| format!("{} {}", p.name, p.version))
        .collect())
}

/// `report.md`: the targets table, then one table per case.
pub(crate) fn markdown(report: &Report, targets: &[Target], versions: &[String]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Veza benchmark report\n");
    let _ = writeln!(
        md,
        "- mode **{}**, revision `{}`, started {}\n- host: {}, {} CPUs, {:.1} GiB memory",
        report.mode,
        report.git_rev,
        report.started_at,
        report.host.os,
        report.host.cpus,
        report.host.mem_bytes as f64 / f64::from(1u32 << 30)
    );
    let _ = writeln!(
        md,
        "- ratio = ours / peer when higher is better, peer / ours otherwise: \
         above 1.0 means the Veza crate is better. Values are medians; contenders ran interleaved.\n"
    );
    if !targets.is_empty() {
        md.push_str(&targets_table(report, targets));
    }
    for case in &report.cases {
        md.push_str(&case_table(case));
    }
    if !versions.is_empty() {
        let _ = writeln!(md, "## Peer versions\n\n{}\n", versions.join(", "));
    }
    md
}

fn targets_table(report: &Report, targets: &[Target]) -> String {
    let mut md = String::from(
        "## Targets\n\n| case | peer | ratio | target | status | issue |\n|---|---|---:|---:|---|---|\n",
    );
    for t in targets {
        let case = report.cases.iter().find(|c| c.id == t.case);
        let (ratio, status) = match case {
            None => ("–".to_owned(), "not run".to_owned()),
            Some(c) if c.skipped.is_some() => (
                "–".to_owned(),
                format!("skipped: {}", c.skipped.as_deref().unwrap_or_default()),
            ),
            Some(c) => match c.ratio_against(&t.peer) {
                None => ("–".to_owned(), "no result for this peer".to_owned()),
                Some(r) if r >= t.min_ratio => (format!("{r:.2}"), "meets".to_owned()),
                Some(r) => (format!("{r:.2}"), "**misses**".to_owned()),
            },
        };
        let issue = t.issue.map_or(String::new(), |n| format!("#{n}"));
        let _ = writeln!(
            md,
            "| {} | {} | {ratio} | ≥ {:.2} | {status} | {issue} |",
            t.case, t.peer, t.min_ratio
        );
    }
    md.push('\n');
    md
}

fn case_table(case: &CaseRecord) -> String {
    let mut md = format!(
        "## {}\n\n{} ({}, {}",
        case.id, case.what, case.metric, case.unit
    );
    md.push_str(if case.higher_is_better {
        ", higher is better)\n\n"
    } else {
        ", lower is better)\n\n"
    });
    if let Some(reason) = &case.skipped {
        let _ = writeln!(md, "Skipped: {reason}\n");
        return md;
    }
    let allocs = !case.allocs.is_empty();
    md.push_str(if allocs {
        "| contender | median | min | max | samples | allocs/op | bytes/op | ours vs this |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "| contender | median | min | max | samples | ours vs this |\n|---|---:|---:|---:|---:|---:|\n"
    });
    for (name, median) in &case.results {
        let samples = case.samples.get(name).map_or(&[][..], Vec::as_slice);
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ratio = if *name == case.ours {
            "(ours)".to_owned()
        } else {
            case.ratio_against(name)
                .map_or("–".to_owned(), |r| format!("{r:.2}"))
        };
        let alloc_cells = if allocs {
            let (per_op, bytes) = alloc_cells(case, name);
            format!(" {per_op} | {bytes} |")
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} |{alloc_cells} {ratio} |",
            format_value(*median, &case.unit),
            format_value(min, &case.unit),
            format_value(max, &case.unit),
            samples.len()
        );
    }
    md.push('\n');
    md
}

/// A contender's allocations and bytes per operation as table cells (`–` when not counted).
pub(crate) fn alloc_cells(case: &CaseRecord, name: &str) -> (String, String) {
    match case.allocs.get(name) {
        Some(a) => (format_count(a.per_op), format_count(a.bytes_per_op)),
        None => ("–".to_owned(), "–".to_owned()),
    }
}

/// 0, 0.002, 1.5, 12, 65,536: enough digits to tell small counts apart.
fn format_count(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v < 0.01 {
        format!("{v:.4}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        let whole = v.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}

/// Our median in `new` against `base`, case by case. Returns the text and the number of cases
/// that got worse by more than `threshold_pct`.
pub(crate) fn compare(base: &Report, new: &Report, threshold_pct: f64) -> (String, usize) {
    let mut md =
        String::from("| case | baseline | now | change | verdict |\n|---|---:|---:|---:|---|\n");
    let mut regressions = 0;
    for case in &new.cases {
        let Some(old) = base.cases.iter().find(|c| c.id == case.id) else {
            let _ = writeln!(md, "| {} | – | – | – | new case |", case.id);
            continue;
        };
        let (Some(now), Some(then)) = (case.results.get(&case.ours), old.results.get(&old.ours))
        else {
            let _ = writeln!(md, "| {} | – | – | – | no result |", case.id);
            continue;
        };
        // Positive change = better, whatever the direction of the metric.
        let change = if case.higher_is_better {
            now / then - 1.0
        } else {
            then / now - 1.0
        };
        let verdict = if change < -threshold_pct / 100.0 {
            regressions += 1;
            "**worse**"
        } else if change > threshold_pct / 100.0 {
            "better"
        } else {
            "same"
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:+.1}% | {verdict} |",
            case.id,
            format_value(*then, &case.unit),
            format_value(*now, &case.unit),
            change * 100.0
        );
    }
    (md, regressions)
}

/// Now as RFC 3339 in UTC, to the second.
pub(crate) fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use veza_benches::Host;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_784_400), "2026-11-27T13:00:00Z");
    }

    fn report(ours: f64, peer: f64) -> Report {
        let case: CaseRecord = serde_json::from_value(serde_json::json!({
            "id": "x/y", "what": "w", "metric": "throughput", "unit": "ops/s",
            "higher_is_better": true, "ours": "veza",
            "results": { "veza": ours, "peer": peer },
            "samples": { "veza": [ours], "peer": [peer] },
            "skipped": null
        }))
        .unwrap();
        Report {
            schema: 1,
            mode: "quick".into(),
            git_rev: "abc".into(),
            host: Host {
                os: "linux".into(),
                cpus: 2,
                mem_bytes: 1 << 30,
            },
            started_at: rfc3339(0),
            cases: vec![case],
        }
    }

    #[test]
    fn allocations_show_when_recorded_and_old_reports_still_render() {
        // A schema 1 report: no `allocs`, no columns for them.
        let old = report(3.0, 2.0);
        let md = markdown(&old, &[], &[]);
        assert!(
            md.contains("| contender | median | min | max | samples | ours vs this |"),
            "{md}"
        );
        assert!(!md.contains("allocs/op"));
        // Schema 2: counted for one contender, not for the other.
        let mut new = report(3.0, 2.0);
        new.schema = 2;
        new.cases[0].allocs.insert(
            "veza".into(),
            veza_benches::Allocs {
                per_op: 0.0005,
                bytes_per_op: 65_536.0,
            },
        );
        let md = markdown(&new, &[], &[]);
        assert!(md.contains("| allocs/op | bytes/op |"), "{md}");
        assert!(md.contains("| 1 | 0.0005 | 65,536 | (ours) |"), "{md}");
        assert!(md.contains("| 1 | – | – | 1.50 |"), "{md}");
        let html = crate::html::page(&new, &[], &[]);
        assert!(html.contains("<td>0.0005</td><td>65,536</td>"), "{html}");
        // And it reads back.
        let json = serde_json::to_string(&new).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.cases[0].allocs, new.cases[0].allocs);
    }

    #[test]
    fn targets_are_marked_met_or_missed() {
        let target = |min_ratio| Target {
            case: "x/y".into(),
            peer: "peer".into(),
            min_ratio,
            issue: None,
        };
        let md = markdown(&report(3.0, 2.0), &[target(1.4), target(1.6)], &[]);
        assert!(
            md.contains("| x/y | peer | 1.50 | ≥ 1.40 | meets |  |"),
            "{md}"
        );
        assert!(
            md.contains("| x/y | peer | 1.50 | ≥ 1.60 | **misses** |  |"),
            "{md}"
        );
        let missing = Target {
            case: "a/b".into(),
            peer: "p".into(),
            min_ratio: 1.0,
            issue: None,
        };
        assert!(markdown(&report(1.0, 1.0), &[missing], &[]).contains("not run"));
    }

    #[test]
    fn compare_flags_regressions_beyond_the_threshold() {
        let (_, worse) = compare(&report(100.0, 1.0), &report(85.0, 1.0), 10.0);
        assert_eq!(worse, 1);
        let (_, same) = compare(&report(100.0, 1.0), &report(95.0, 1.0), 10.0);
        assert_eq!(same, 0);
    }

    #[test]
    fn the_checked_in_targets_parse() {
        let targets = load_targets(&util::root().join("benches/targets.toml")).unwrap();
        assert!(targets.iter().any(|t| t.case == "floor/channel_handoff"));
        assert!(
            targets
                .iter()
                .all(|t| t.min_ratio > 0.0 && t.case.contains('/'))
        );
    }
}

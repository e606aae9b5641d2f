//! `report.html`: one self-contained page (inline SVG, no network) with a chart per case, the
//! ratios against each peer and the targets, and the machine and revision.

use std::fmt::Write as _;

use plotters::prelude::*;
use veza_benches::{CaseRecord, Report, format_value};

use crate::report::Target;

/// The whole page.
pub(crate) fn page(report: &Report, targets: &[Target], versions: &[String]) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Veza benchmark report</title>\n<style>\
         body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}\
         table{border-collapse:collapse;margin:.5rem 0 1.5rem}\
         td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}\
         td:first-child,th:first-child{text-align:left}\
         .meets{color:#17692f;font-weight:600}.misses{color:#b00020;font-weight:600}\
         section{margin-bottom:2.5rem}h2{margin-bottom:.3rem}.what{color:#555;margin-top:0}\
         </style></head><body>\n<h1>Veza benchmark report</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p>Mode <b>{}</b> · revision <code>{}</code> · started {} · {} with {} CPUs and {:.1} GiB. \
         Ratios are ours / peer when higher is better and peer / ours otherwise: above 1 means the \
         Veza crate is better. Bars are medians, whiskers the min–max of the samples; contenders \
         ran interleaved.</p>",
        esc(&report.mode),
        esc(&report.git_rev),
        esc(&report.started_at),
        esc(&report.host.os),
        report.host.cpus,
        report.host.mem_bytes as f64 / f64::from(1u32 << 30)
    );
    for case in &report.cases {
        html.push_str(&section(case, targets));
    }
    if !versions.is_empty() {
        let _ = writeln!(html, "<p>Peer versions: {}</p>", esc(&versions.join(", ")));
    }
    html.push_str("</body></html>\n");
    html
}

fn section(case: &CaseRecord, targets: &[Target]) -> String {
    let mut html = format!(
        "<section id=\"{}\">\n<h2>{}</h2>\n<p class=\"what\">{} ({}, {}, {})</p>\n",
        esc(&case.id),
        esc(&case.id),
        esc(&case.what),
        esc(&case.metric),
        esc(&case.unit),
        if case.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        }
    );
    if let Some(reason) = &case.skipped {
        let _ = writeln!(html, "<p>Skipped: {}</p></section>", esc(reason));
        return html;
    }
    html.push_str(&chart(case).unwrap_or_else(|e| format!("<p>chart failed: {}</p>", esc(&e))));
    let allocs = !case.allocs.is_empty();
    html.push_str(if allocs {
        "<table><tr><th>contender</th><th>median</th><th>allocs/op</th><th>bytes/op</th><th>ours vs this</th><th>target</th></tr>\n"
    } else {
        "<table><tr><th>contender</th><th>median</th><th>ours vs this</th><th>target</th></tr>\n"
    });
    for (name, median) in &case.results {
        let ratio = case.ratio_against(name);
        let target = targets
            .iter()
            .find(|t| t.case == case.id && t.peer == *name);
        let (ratio_text, target_text) = match (name == &case.ours, ratio, target) {
            (true, _, _) => ("(ours)".to_owned(), String::new()),
            (false, Some(r), Some(t)) => {
                let class = if r >= t.min_ratio { "meets" } else { "misses" };
                (
                    format!("<span class=\"{class}\">{r:.2}</span>"),
                    format!("≥ {:.2} ({class})", t.min_ratio),
                )
            }
            (false, Some(r), None) => (format!("{r:.2}"), String::new()),
            (false, None, _) => ("–".to_owned(), String::new()),
        };
        let alloc_cells = if allocs {
            let (per_op, bytes) = crate::report::alloc_cells(case, name);
            format!("<td>{per_op}</td><td>{bytes}</td>")
        } else {
            String::new()
        };
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td>{alloc_cells}<td>{ratio_text}</td><td>{target_text}</td></tr>",
            esc(name),
            esc(&format_value(*median, &case.unit))
        );
    }
    html.push_str("</table></section>\n");
    html
}

/// A bar chart of the medians with min–max whiskers; ours in a color of its own.
pub(crate) fn chart(case: &CaseRecord) -> Result<String, String> {
    let names: Vec<&String> = case.results.keys().collect();
    let rows: Vec<(usize, f64, f64, f64)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let samples = case.samples.get(*name).map_or(&[][..], Vec::as_slice);
            let median = case.results[*name];
            let min = samples.iter().copied().fold(median, f64::min);
            let max = samples.iter().copied().fold(median, f64::max);
            (i, median, min, max)
        })
        .collect();
    let top = rows
        .iter()
        .map(|r| r.3)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let mut svg = String::new();
    {
        let height = 60 + 34 * names.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(190)
            .build_cartesian_2d(0.0..top, -0.6..(names.len() as f64 - 0.4))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(names.len())
            .x_desc(if is_time(&case.unit) {
                ""
            } else {
                case.unit.as_str()
            })
            .x_label_formatter(&|v| {
                // Times read best in their own scale (µs, ms); other units once, in the legend.
                if is_time(&case.unit) {
                    format_value(*v, &case.unit)
                } else {
                    format_value(*v, "")
                }
            })
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 0.01 && i >= 0.0 {
                    names
                        .get(i as usize)
                        .map_or(String::new(), |n| (*n).clone())
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let ours = RGBColor(0x1f, 0x77, 0xb4);
        let peer = RGBColor(0xaa, 0xaa, 0xaa);
        chart
            .draw_series(rows.iter().map(|&(i, median, _, _)| {
                let color = if *names[i] == case.ours { ours } else { peer };
                let y = i as f64;
                Rectangle::new([(0.0, y - 0.3), (median, y + 0.3)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(rows.iter().map(|&(i, _, min, max)| {
                PathElement::new(
                    vec![(min, i as f64), (max, i as f64)],
                    BLACK.stroke_width(2),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn is_time(unit: &str) -> bool {
    unit == "ns" || unit == "s"
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use veza_benches::Host;

    #[test]
    fn the_page_has_one_chart_per_case_and_marks_targets() {
        let case: CaseRecord = serde_json::from_value(serde_json::json!({
            "id": "x/y", "what": "w <b>", "metric": "throughput", "unit": "ops/s",
            "higher_is_better": true, "ours": "veza",
            "results": { "veza": 3.0, "peer": 2.0 },
            "samples": { "veza": [2.9, 3.0, 3.1], "peer": [2.0, 2.0] },
            "skipped": null
        }))
        .unwrap();
        let skipped: CaseRecord = serde_json::from_value(serde_json::json!({
            "id": "db/z", "what": "w", "metric": "latency", "unit": "ns",
            "higher_is_better": false, "ours": "veza", "results": {}, "samples": {},
            "skipped": "no PostgreSQL"
        }))
        .unwrap();
        let report = Report {
            schema: 1,
            mode: "quick".into(),
            git_rev: "abc".into(),
            host: Host {
                os: "linux".into(),
                cpus: 2,
                mem_bytes: 1 << 30,
            },
            started_at: "2026-11-27T13:00:00Z".into(),
            cases: vec![case, skipped],
        };
        let target = |min_ratio| Target {
            case: "x/y".into(),
            peer: "peer".into(),
            min_ratio,
            issue: None,
        };
        let html = page(&report, &[target(1.4)], &["peer 1.0".into()]);
        assert_eq!(
            html.matches("<svg").count(),
            1,
            "one chart for the case that ran"
        );
        assert!(html.contains("Skipped: no PostgreSQL"));
        assert!(html.contains("class=\"meets\">1.50"));
        assert!(html.contains("w &lt;b&gt;"), "text is escaped");
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("xmlns=\"http://www.w3.org").count(),
            "no external resources"
        );
        let html = page(&report, &[target(1.6)], &[]);
        assert!(html.contains("class=\"misses\">1.50"));
    }
}

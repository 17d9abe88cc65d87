//! `cargo xtask bench-report`: runs the criterion benches, then reads each
//! benchmark's median from `target/criterion/**/new/estimates.json` and writes
//! the comparisons the issues set goals on, plus every median, as markdown.
//!
//! Every ratio is `baseline time ÷ subject time` from the same run, so above
//! 1 means Waybill is faster than the baseline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::{cargo, run, target_dir};

/// Benchmark id (`group/function[/parameter]`) to median time in ns.
type Medians = BTreeMap<String, f64>;

/// One comparison: `subject` against `baseline`, with an optional goal.
struct Comparison {
    subject: String,
    baseline: String,
    goal: Option<f64>,
}

pub(crate) fn bench_report(extra: &[String]) -> Result<(), String> {
    // `--no-run-benches` reports on the last run without measuring again.
    if !extra.iter().any(|a| a == "--no-run-benches") {
        run(cargo().args([
            "bench",
            "--all-features",
            "--bench",
            "hot_paths",
            "--bench",
            "storage",
        ]))?;
    }
    let root = target_dir().join("criterion");
    let mut medians = Medians::new();
    collect(&root, &root, &mut medians)?;
    if medians.is_empty() {
        return Err(format!("no criterion results under {}", root.display()));
    }
    let report = render(&medians);
    let out = target_dir().join("bench-report.md");
    std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{report}");
    println!("wrote {}", out.display());
    Ok(())
}

/// Walks criterion's output for `<id>/new/estimates.json`.
fn collect(root: &Path, dir: &Path, out: &mut Medians) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || path.file_name().is_some_and(|n| n == "report") {
            continue;
        }
        let estimates = path.join("new/estimates.json");
        if estimates.is_file() {
            let text = std::fs::read_to_string(&estimates).map_err(|e| e.to_string())?;
            let id = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            let median =
                median_ns(&text).ok_or_else(|| format!("no median in {}", estimates.display()))?;
            out.insert(id, median);
        } else {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

/// The median's point estimate from criterion's `estimates.json`, found by
/// position: xtask stays dependency-free, so no JSON parser.
fn median_ns(json: &str) -> Option<f64> {
    let after = &json[json.find("\"median\"")?..];
    let value = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

/// The comparisons the issues ask for, for whichever results exist.
fn comparisons(m: &Medians) -> Vec<Comparison> {
    let mut out = Vec::new();
    let mut add = |subject: String, baseline: String, goal: Option<f64>| {
        if m.contains_key(&subject) && m.contains_key(&baseline) {
            out.push(Comparison {
                subject,
                baseline,
                goal,
            });
        }
    };
    let params = |prefix: &str| -> Vec<String> {
        m.keys()
            .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
            .collect()
    };
    for p in params("edge_selection/waybill/") {
        for (base, goal) in [("wildmatch", 10.0), ("regex", 0.0), ("globset", 35.0)] {
            let goal = (p == "100000x10" && goal > 0.0).then_some(goal);
            add(
                format!("edge_selection/waybill/{p}"),
                format!("edge_selection/{base}/{p}"),
                goal,
            );
        }
    }
    add(
        "checksum/sha256_ingest_64k_chunks".into(),
        "checksum/raw_ring_sha256_baseline".into(),
        Some(0.95),
    );
    add(
        "checksum/ingest_sha256_sha1_md5_64k_chunks".into(),
        "checksum/raw_md5_baseline".into(),
        Some(0.9),
    );
    for kind in ["all_three", "sha256_vouched"] {
        add(
            format!("checksum_many_files/{kind}/two_workers"),
            format!("checksum_many_files/{kind}/one_worker"),
            None,
        );
    }
    for op in ["get", "list_page_100", "create"] {
        for backend in ["sqlite", "sled"] {
            add(
                format!("storage_10k_versions/{op}/{backend}"),
                format!("storage_10k_versions/{op}/memory"),
                None,
            );
        }
    }
    out
}

fn time(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.2} ms", n / 1e6),
        n if n >= 1e3 => format!("{:.2} µs", n / 1e3),
        n => format!("{n:.0} ns"),
    }
}

fn render(m: &Medians) -> String {
    let mut s = String::from(
        "# Benchmark report\n\nMedians from one `cargo xtask bench-report` run. \
         Ratio = baseline time ÷ subject time, both from this run: above 1 means \
         the subject is faster.\n\n\
         | subject | baseline | subject median | baseline median | ratio | goal |\n\
         |---|---|---|---|---|---|\n",
    );
    for c in comparisons(m) {
        let (subject, baseline) = (m[&c.subject], m[&c.baseline]);
        let ratio = baseline / subject;
        let goal = c.goal.map_or(String::new(), |g| {
            format!("≥ {g} ({})", if ratio >= g { "met" } else { "not met" })
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {ratio:.2}× | {goal} |",
            c.subject,
            c.baseline,
            time(subject),
            time(baseline)
        );
    }
    s += "\n## Every median\n\n| benchmark | median |\n|---|---|\n";
    for (id, ns) in m {
        let _ = writeln!(s, "| {id} | {} |", time(*ns));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_median_not_the_mean() {
        let json = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5,"standard_error":0.1},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":3.0,"upper_bound":4.0},"point_estimate":3.25,"standard_error":0.2}}"#;
        assert_eq!(median_ns(json), Some(3.25));
        assert_eq!(median_ns("{}"), None);
    }

    #[test]
    fn ratios_and_goals_come_from_the_same_run() {
        let m: Medians = [
            ("edge_selection/waybill/100000x10", 1.0e6),
            ("edge_selection/wildmatch/100000x10", 12.0e6),
            ("edge_selection/globset/100000x10", 30.0e6),
            ("checksum/sha256_ingest_64k_chunks", 100.0),
            ("checksum/raw_ring_sha256_baseline", 99.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let report = render(&m);
        assert!(report.contains("| 12.00× | ≥ 10 (met) |"), "{report}");
        assert!(report.contains("| 30.00× | ≥ 35 (not met) |"), "{report}");
        assert!(report.contains("| 0.99× | ≥ 0.95 (met) |"), "{report}");
        // A comparison whose baseline did not run is left out, not invented.
        assert!(!report.contains("regex/100000x10 |"), "{report}");
    }
}

//! Checks on measured records (the results JSON of `chipbench run`, from one machine or many).
//!
//! Records are compared only within a group that differs in nothing but the weight format: same
//! host, backend, device, op, shape and thread count. Only validated records count, and never one
//! above its ceiling (read bandwidth or FMA peak, see `measure::ceilings`): such a figure is an
//! artefact, not evidence.

use super::{median, sig3, Finding, LoadedRun, Verdict};
use crate::formats::Format;
use crate::measure::ceilings::above_ceiling;
use crate::results::Record;
use std::collections::BTreeMap;

/// What a fair comparison holds fixed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub host: String,
    pub backend: String,
    pub device: String,
    pub op: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub threads: usize,
}

impl GroupKey {
    pub fn label(&self) -> String {
        format!("{} {} {} {}x{}x{}", self.host, self.backend, self.op, self.m, self.n, self.k)
    }
}

pub type Entry<'a> = (&'a LoadedRun, &'a Record);

/// Valid, timed GEMM/GEMV records not above their ceiling, grouped by everything but the format (`op` filters).
pub fn groups<'a>(runs: &'a [LoadedRun], op: Option<&str>) -> BTreeMap<GroupKey, Vec<Entry<'a>>> {
    let mut out: BTreeMap<GroupKey, Vec<Entry<'a>>> = BTreeMap::new();
    for lr in runs {
        for r in &lr.run.records {
            let matrix_op = r.op == "gemm" || r.op == "gemv";
            if !matrix_op || !r.valid || r.time.median_s <= 0.0 || op.is_some_and(|o| o != r.op) {
                continue;
            }
            if above_ceiling(r, &lr.run) {
                continue;
            }
            let key = GroupKey {
                host: lr.run.env.host.clone(),
                backend: r.backend.clone(),
                device: r.device.clone(),
                op: r.op.clone(),
                m: r.m,
                n: r.n,
                k: r.k,
                threads: r.threads,
            };
            out.entry(key).or_default().push((lr, r));
        }
    }
    out
}

/// The fastest record per weight format (records with an unknown format name are ignored).
pub fn best_by_format<'a>(recs: &[Entry<'a>]) -> Vec<(Format, Entry<'a>)> {
    let mut best: BTreeMap<Format, Entry<'a>> = BTreeMap::new();
    for &(lr, r) in recs {
        let Ok(f) = r.format.parse::<Format>() else { continue };
        let faster = best.get(&f).is_none_or(|(_, b)| r.time.median_s < b.time.median_s);
        if faster {
            best.insert(f, (lr, r));
        }
    }
    best.into_iter().collect()
}

/// Fastest FP8 entry (E4M3 or E5M2) of a best-by-format list.
pub fn fastest_fp8<'a>(best: &[(Format, Entry<'a>)]) -> Option<Entry<'a>> {
    best.iter()
        .filter(|(f, _)| f.is_fp8())
        .map(|(_, e)| *e)
        .min_by(|a, b| a.1.time.median_s.total_cmp(&b.1.time.median_s))
}

/// A record's format with its scaling, e.g. `e4m3 deepseek`.
pub fn format_label(r: &Record) -> String {
    if r.scaling.is_empty() || r.scaling == "none" {
        r.format.clone()
    } else {
        format!("{} {}", r.format, r.scaling)
    }
}

/// Run ids behind a list of entries, first-seen order, deduplicated.
pub fn run_ids<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (lr, _) in entries {
        let id = format!("run {} ({})", lr.run.run_id, lr.run.env.host);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Compare FP8 against `baseline` over every group of `op` records; returns
/// (speedups, per-group lines, entries used).
pub fn format_speedups<'a>(
    runs: &'a [LoadedRun],
    op: &str,
    baseline: Format,
) -> (Vec<f64>, Vec<String>, Vec<Entry<'a>>) {
    let (mut speedups, mut lines, mut used) = (Vec::new(), Vec::new(), Vec::new());
    for (key, recs) in groups(runs, Some(op)) {
        let best = best_by_format(&recs);
        let base = best.iter().find(|(f, _)| *f == baseline).map(|(_, e)| *e);
        let (Some(base), Some(fp8)) = (base, fastest_fp8(&best)) else { continue };
        let s = base.1.time.median_s / fp8.1.time.median_s;
        speedups.push(s);
        let mut line = format!(
            "{}: {} {}s vs {} {}s = {}x",
            key.label(),
            format_label(fp8.1),
            sig3(fp8.1.time.median_s),
            baseline,
            sig3(base.1.time.median_s),
            sig3(s)
        );
        if op == "gemv" {
            if let Some(read) = fp8.0.run.calibration.as_ref().map(|c| c.read_gbs).filter(|g| *g > 0.0) {
                line.push_str(&format!(
                    "; FP8 {} GB/s = {}% of the {} GB/s read ceiling",
                    sig3(fp8.1.gbs),
                    sig3(100.0 * fp8.1.gbs / read),
                    sig3(read)
                ));
            }
        } else {
            line.push_str(&format!(" ({} vs {} GFLOP/s)", sig3(fp8.1.gflops), sig3(base.1.gflops)));
        }
        lines.push(line);
        used.push(base);
        used.push(fp8);
    }
    (speedups, lines, used)
}

/// Cap a list of per-group lines so a table cell stays readable.
pub fn capped(mut lines: Vec<String>, max: usize) -> Vec<String> {
    if lines.len() > max {
        let more = lines.len() - max;
        lines.truncate(max);
        lines.push(format!("(+{more} more)"));
    }
    lines
}

pub fn gemv_speedup(runs: &[LoadedRun], baseline: Format, supported_at: f64, partly_at: f64) -> Finding {
    let (mut speedups, lines, used) = format_speedups(runs, "gemv", baseline);
    if speedups.is_empty() {
        return Finding::no_data(format!(
            "no valid FP8 and {baseline} GEMV records on the same host/backend/shape in the results given"
        ));
    }
    let any_full = speedups.iter().any(|&s| s >= supported_at);
    let (lo, hi) = (
        speedups.iter().copied().fold(f64::INFINITY, f64::min),
        speedups.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let n = speedups.len();
    let med = median(&mut speedups);
    let mut verdict = Verdict::at_least(med, supported_at, partly_at);
    if verdict == Verdict::NotSupported && any_full {
        verdict = Verdict::Partly;
    }
    let mut numbers = vec![format!(
        "median FP8/{baseline} GEMV speedup {}x over {n} problems (range {}–{}x)",
        sig3(med),
        sig3(lo),
        sig3(hi)
    )];
    numbers.extend(capped(lines, 6));
    Finding::new(verdict, numbers, run_ids(used))
}

//! The honest check of the roofline method: project every measured record onto *this machine*
//! (a chip profile built from the run's own calibration) and compare with the measured time.
//!
//! The check ([`Method::Roofline`]) uses only ceilings measured by microbenchmarks that share no
//! code with the kernels they bound: the FMA peak (`measure::fma`) and the read ceiling
//! (`measure::read_bw`). A roofline is then a lower bound on time, so a record can miss it in
//! two ways that mean different things, and they are counted apart:
//! - a **violation**: measured faster than the bound by more than [`VIOLATION_TOLERANCE`] (the
//!   bound is broken: cache reuse, a wrong byte count, or a ceiling measured too low);
//! - **slack**: measured slower than the bound (what the kernel leaves on the table: decode
//!   instructions, packing, load), reported as the median error of the non-violating records.
//!
//! [`Method::Measured`] adds the CPU backend's own measured ceilings per configuration
//! ([`super::kernel_roofs`]): a model of the kernels, not independent of them, so it is not the
//! check; it is printed beside it when asked for.

use super::kernel_roofs::{Key, LocalRoofs, Statistic};
use super::roofline::{local_chip, project, Bound};
use crate::results::{Record, Run};
use crate::{Error, Result};

/// One record: measured vs projected on this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    pub index: usize,
    pub measured_s: f64,
    pub projected_s: f64,
    /// `projected / measured − 1` (−0.5: the roofline predicts half the measured time).
    pub error: f64,
    pub bound: Bound,
    /// Measured faster than the bound by more than [`VIOLATION_TOLERANCE`].
    pub violation: bool,
}

/// How far a record may beat its bound before it counts as a violation rather than noise.
pub const VIOLATION_TOLERANCE: f64 = 0.05;

/// Errors of one op × format group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupError {
    pub op: String,
    pub format: String,
    pub count: usize,
    pub median_error: f64,
    pub median_abs_error: f64,
    pub violations: usize,
    /// Median error of the records that do not violate the bound (NaN when none).
    pub median_slack: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalCheck {
    pub rows: Vec<CheckRow>,
    pub groups: Vec<GroupError>,
    pub median_abs_error: f64,
    /// Records measured faster than their bound beyond noise.
    pub violations: usize,
    /// Median error of the other records (how far above the bound they ran; ≤ 0 up to noise).
    pub median_slack: f64,
}

/// (violations, median error of the rest) of some rows.
fn split<'a>(rows: impl Iterator<Item = &'a CheckRow>) -> (usize, f64) {
    let (bad, ok): (Vec<&CheckRow>, Vec<&CheckRow>) = rows.partition(|c| c.violation);
    (bad.len(), median(&ok.iter().map(|c| c.error).collect::<Vec<_>>()))
}

/// Median of a non-empty slice (mean of the middle two for even lengths).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Whether a record can be projected: a valid, timed GEMM or GEMV.
pub fn projectable(r: &Record) -> bool {
    r.valid
        && (r.op == "gemm" || r.op == "gemv")
        && r.time.median_s > 0.0
        && r.time.min_s > 0.0
        && r.bytes.total > 0
}

/// How the local projection is made.
#[derive(Debug, Clone, Copy)]
pub enum Method<'a> {
    /// `max(flops / FMA peak, bytes / read bandwidth)`.
    Roofline,
    /// The measured kernel ceilings: for a record whose configuration has a kernel roof,
    /// `max(roof time, bytes / read ceiling)`; others fall back to the roofline.
    Measured(&'a LocalRoofs),
}

/// Project every projectable record of `run` onto this machine with the bytes-only roofline.
pub fn check_local(run: &Run) -> Result<LocalCheck> {
    check_local_with(run, Method::Roofline, Statistic::Median)
}

/// Project every projectable record of `run` onto this machine with `method` and compare.
/// `stat` picks the records' measured time (median or minimum of their samples).
pub fn check_local_with(run: &Run, method: Method, stat: Statistic) -> Result<LocalCheck> {
    let cal = run.calibration.as_ref().ok_or_else(|| {
        Error::config("results", "calibration", "missing: the run has no local calibration")
    })?;
    let mut rows = Vec::new();
    for (index, r) in run.records.iter().enumerate().filter(|(_, r)| projectable(r)) {
        let chip = local_chip(cal, r.threads)?;
        let p = project(r, &chip)?;
        let roof = match method {
            Method::Roofline => None,
            Method::Measured(roofs) => {
                roofs.kernel(&Key::of(r)).map(|roof| (roof.time(r.m, r.n, r.k), p.memory_s))
            }
        };
        let (projected_s, bound) = match roof {
            Some((t, m)) if t > m => (t, Bound::Kernel),
            Some((_, m)) => (m, Bound::Memory),
            None => (p.time_s, p.bound),
        };
        let measured_s = stat.of(&r.time);
        let error = projected_s / measured_s - 1.0;
        rows.push(CheckRow {
            index,
            measured_s,
            projected_s,
            error,
            bound,
            violation: error > VIOLATION_TOLERANCE,
        });
    }
    if rows.is_empty() {
        return Err(Error::config("results", "records", "no valid gemm/gemv records to check"));
    }
    let mut keys: Vec<(String, String)> =
        rows.iter().map(|c| (run.records[c.index].op.clone(), run.records[c.index].format.clone())).collect();
    keys.sort();
    keys.dedup();
    let groups = keys
        .into_iter()
        .map(|(op, format)| {
            let mine = || {
                rows.iter().filter(|c| run.records[c.index].op == op && run.records[c.index].format == format)
            };
            let errs: Vec<f64> = mine().map(|c| c.error).collect();
            let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
            let (violations, median_slack) = split(mine());
            GroupError {
                count: errs.len(),
                median_error: median(&errs),
                median_abs_error: median(&abs),
                violations,
                median_slack,
                op,
                format,
            }
        })
        .collect();
    let all: Vec<f64> = rows.iter().map(|c| c.error.abs()).collect();
    let (violations, median_slack) = split(rows.iter());
    Ok(LocalCheck { median_abs_error: median(&all), violations, median_slack, rows, groups })
}

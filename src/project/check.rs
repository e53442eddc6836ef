//! The honest check of the roofline method: project every measured record onto *this machine*
//! (a chip profile built from the run's own calibration) and compare with the measured time.
//! A roofline is a lower bound on time, so the projection is expected to be fast (negative
//! error); how fast, per op × format, is what this reports.
//!
//! Two methods: [`Method::Roofline`] (bytes-only: measured FMA peak and read bandwidth) and
//! [`Method::Measured`], which adds the CPU backend's own measured ceilings per configuration
//! ([`super::kernel_roofs`], calibrated on shapes the suite does not contain).

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
}

/// Errors of one op × format group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupError {
    pub op: String,
    pub format: String,
    pub count: usize,
    pub median_error: f64,
    pub median_abs_error: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalCheck {
    pub rows: Vec<CheckRow>,
    pub groups: Vec<GroupError>,
    pub median_abs_error: f64,
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
    /// The measured local ceilings: for a record whose configuration has a kernel roof,
    /// `max(roof time, bytes / streaming bandwidth)`; others fall back to the roofline.
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
            Method::Measured(roofs) => roofs.kernel(&Key::of(r)).map(|roof| {
                let memory_s = roofs.stream(r.threads).map_or(p.memory_s, |bw| p.bytes / bw);
                (roof.time(r.m, r.n, r.k), memory_s)
            }),
        };
        let (projected_s, bound) = match roof {
            Some((t, m)) if t > m => (t, Bound::Kernel),
            Some((_, m)) => (m, Bound::Memory),
            None => (p.time_s, p.bound),
        };
        let measured_s = stat.of(&r.time);
        rows.push(CheckRow { index, measured_s, projected_s, error: projected_s / measured_s - 1.0, bound });
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
            let errs: Vec<f64> = rows
                .iter()
                .filter(|c| run.records[c.index].op == op && run.records[c.index].format == format)
                .map(|c| c.error)
                .collect();
            let abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
            GroupError {
                op,
                format,
                count: errs.len(),
                median_error: median(&errs),
                median_abs_error: median(&abs),
            }
        })
        .collect();
    let all: Vec<f64> = rows.iter().map(|c| c.error.abs()).collect();
    Ok(LocalCheck { median_abs_error: median(&all), rows, groups })
}

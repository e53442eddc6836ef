//! Collectives in projection: a measured collective record (op `all-reduce`, ...) projected onto
//! a chip's interconnect, and the latency + size/bandwidth (α–β) fit of a measured curve.
//!
//! Model (nccl-tests' bus bandwidth): a collective of `B` bytes over `n` ranks moves
//! `f(n)·B` bytes over each rank's link, `f` = 2(n−1)/n for all-reduce, (n−1)/n for all-gather,
//! reduce-scatter and all-to-all ([`crate::collectives::Op::bus_factor`]). On a chip with link
//! bandwidth `L` per direction: `t = α + f(n)·B / L`, with `α = steps · hop latency` (ring steps:
//! 2(n−1) for all-reduce, n−1 otherwise). The hop latency is an assumption (no chip profile
//! sources one), [`HOP_LATENCY_S`] unless the caller gives another.
//!
//! The fit: over the sizes of one (op, payload, ranks) curve, least squares of
//! `t = α + x/β` with `x = f(n)·B` (bus bytes), relative residuals (weights 1/t², so 1 KiB and
//! 256 MiB count alike). β is then a bus bandwidth comparable to a link's per-direction figure.

use crate::collectives::Op;
use crate::profiles::Chip;
use crate::results::{Record, Run};
use crate::{Error, Result};
use std::str::FromStr;

/// Assumed latency of one ring step on a scale-up link (NVLink/HCCS class): 2 µs.
pub const HOP_LATENCY_S: f64 = 2e-6;

/// Whether a record is a valid, timed collective.
pub fn is_collective(r: &Record) -> bool {
    r.valid && Op::from_str(&r.op).is_ok() && r.ranks.unwrap_or(0) >= 2 && r.time.median_s > 0.0
}

/// Ring steps of one collective over `ranks` ranks.
pub fn ring_steps(op: Op, ranks: usize) -> f64 {
    let n = ranks.max(1) as f64;
    match op {
        Op::AllReduce => 2.0 * (n - 1.0),
        _ => n - 1.0,
    }
}

/// One collective on a chip's link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkTime {
    /// Bytes over each rank's link: bus factor × payload bytes.
    pub bus_bytes: f64,
    pub latency_s: f64,
    pub time_s: f64,
}

/// `α + f(n)·B / L` for `bytes` payload bytes over `ranks` ranks on a link of `link` bytes/s per
/// direction.
pub fn link_time(op: Op, ranks: usize, bytes: f64, link: f64, hop_latency_s: f64) -> LinkTime {
    let bus_bytes = op.bus_factor(ranks) * bytes;
    let latency_s = ring_steps(op, ranks) * hop_latency_s;
    LinkTime { bus_bytes, latency_s, time_s: latency_s + bus_bytes / link }
}

/// A collective record projected onto `chip` at the record's rank count.
pub fn project_record(r: &Record, chip: &Chip, hop_latency_s: f64) -> Result<LinkTime> {
    let op = Op::from_str(&r.op)?;
    let ranks =
        r.ranks.ok_or_else(|| Error::config("results", "records[].ranks", "missing on a collective"))?;
    let (link, _) = chip.link_per_direction_bytes_s().ok_or_else(|| {
        Error::Unsupported(format!(
            "chip {}: interconnect is not sourced; cannot project collectives",
            chip.id
        ))
    })?;
    Ok(link_time(op, ranks, r.bytes.total as f64, link, hop_latency_s))
}

/// The α–β fit of one measured curve.
#[derive(Debug, Clone, PartialEq)]
pub struct AlphaBeta {
    pub op: String,
    pub payload: String,
    pub ranks: usize,
    /// Latency, s.
    pub alpha_s: f64,
    /// Bus bandwidth, bytes/s.
    pub beta: f64,
    pub points: usize,
    /// Median |relative residual| of the fit.
    pub median_rel_residual: f64,
}

impl AlphaBeta {
    /// Time the fit predicts for `bus_bytes` over each link.
    pub fn time(&self, bus_bytes: f64) -> f64 {
        self.alpha_s + bus_bytes / self.beta
    }
}

/// Least squares of `t = α + c·x` with relative residuals; `α ≥ 0` (clamped, then `c` re-solved).
/// Returns `(α, c)`, or `None` with fewer than two distinct sizes or a non-positive slope.
pub fn fit_alpha_beta(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, t)| *x > 0.0 && *t > 0.0).collect();
    let distinct = pts.iter().any(|p| p.0 != pts[0].0);
    if pts.len() < 2 || !distinct {
        return None;
    }
    // Minimise Σ (α·u + c·v − 1)², u = 1/t, v = x/t.
    let (mut uu, mut uv, mut vv, mut u, mut v) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, t) in &pts {
        let (ui, vi) = (1.0 / t, x / t);
        uu += ui * ui;
        uv += ui * vi;
        vv += vi * vi;
        u += ui;
        v += vi;
    }
    let det = uu * vv - uv * uv;
    let (mut a, mut c) =
        if det.abs() > 0.0 { ((u * vv - uv * v) / det, (uu * v - uv * u) / det) } else { (0.0, 0.0) };
    if a < 0.0 || !a.is_finite() {
        a = 0.0;
        c = v / vv;
    }
    (c > 0.0 && c.is_finite()).then_some((a, c))
}

/// α–β fits of every (op, payload, ranks) curve in a collectives results file.
pub fn fits(run: &Run) -> Vec<AlphaBeta> {
    let mut keys: Vec<(String, String, usize)> = run
        .records
        .iter()
        .filter(|r| is_collective(r))
        .map(|r| (r.op.clone(), r.format.clone(), r.ranks.unwrap_or(0)))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(op, payload, ranks)| {
            let o = Op::from_str(&op).ok()?;
            let pts: Vec<(f64, f64)> = run
                .records
                .iter()
                .filter(|r| is_collective(r) && r.op == op && r.format == payload && r.ranks == Some(ranks))
                .map(|r| (o.bus_factor(ranks) * r.bytes.total as f64, r.time.median_s))
                .collect();
            let (alpha_s, c) = fit_alpha_beta(&pts)?;
            let res: Vec<f64> = pts.iter().map(|(x, t)| ((alpha_s + c * x) / t - 1.0).abs()).collect();
            Some(AlphaBeta {
                op,
                payload,
                ranks,
                alpha_s,
                beta: 1.0 / c,
                points: pts.len(),
                median_rel_residual: super::check::median(&res),
            })
        })
        .collect()
}

/// The fit for `op` with the first payload of `payloads` that has one (largest rank count).
pub fn find_fit<'a>(fits: &'a [AlphaBeta], op: Op, payloads: &[&str]) -> Option<&'a AlphaBeta> {
    payloads
        .iter()
        .find_map(|p| fits.iter().filter(|f| f.op == op.name() && f.payload == *p).max_by_key(|f| f.ranks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_alpha_beta() {
        let (alpha, beta) = (5e-6, 8e9);
        let pts: Vec<(f64, f64)> = (10..28).map(|e| (2f64.powi(e), alpha + 2f64.powi(e) / beta)).collect();
        let (a, c) = fit_alpha_beta(&pts).unwrap();
        assert!((a / alpha - 1.0).abs() < 1e-9 && (1.0 / c / beta - 1.0).abs() < 1e-9, "{a} {c}");
        assert!(fit_alpha_beta(&pts[..1]).is_none());
        assert!(fit_alpha_beta(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
        // Falling times: no positive bandwidth.
        assert!(fit_alpha_beta(&[(1.0, 2.0), (1e6, 1.0)]).is_none());
    }

    #[test]
    fn link_time_uses_bus_factor_and_ring_steps() {
        let t = link_time(Op::AllReduce, 4, 1e9, 1e11, 1e-6);
        assert_eq!(t.bus_bytes, 1.5e9);
        assert_eq!(t.latency_s, 6e-6);
        assert!((t.time_s - (6e-6 + 0.015)).abs() < 1e-15);
        let t = link_time(Op::AllToAll, 2, 1e9, 1e11, 0.0);
        assert_eq!(t.time_s, 0.5e9 / 1e11);
    }
}

//! Measured per-kernel ceilings of the CPU backend on this machine ("instruction roofs"), for
//! the local projection check.
//!
//! Why: a bytes-only roofline (FMA peak, read bandwidth) ignores what decoding a storage format
//! costs. On a CPU an FP8 GEMV decodes every weight in registers (shift, rebias, scale) and is
//! limited by those instructions long before the memory bus; a BLIS GEMM reaches only a fraction
//! of the register-only FMA peak and pays a decode per packed element. So the local profile adds
//! two measured ceilings per (format, scaling, activation format, threads):
//! - GEMV: weight elements per second of the backend's own GEMV on a cache-resident matrix
//!   ([`GEMV_SHAPE`], 4 Mi elements, inside the L3), so DRAM does not limit it. Projected GEMV time = `max(bytes / read bandwidth, n·k / rate)`.
//! - GEMM: the FLOP rate the backend's GEMM reaches on [`GEMM_SHAPE`] (packing and decode
//!   included). Projected GEMM time = `max(flops / rate, bytes / read ceiling)`.
//! - Memory: the read ceiling of the run's calibration (a microbenchmark, `measure::read_bw`).
//!   An earlier version used the f32 GEMV itself on a DRAM-resident matrix, which then scored
//!   the F32 GEMVs against themselves (issue 19): removed.
//!
//! These roofs are a *model* of the kernels, measured on the kernels' own code: they are not
//! independent of the records they score, so `project --chip local` prints them only with
//! `--kernel-roofs`, beside (never instead of) the check on independent ceilings.
//!
//! The calibration shapes are none of the suite's (default or `--quick`), so scoring the suite
//! with them is a prediction, not a fit to the scored records. Each output is validated against
//! the f64 reference before it is timed, and the time statistic is the one the records are scored
//! with ([`Statistic`]: median or minimum of the samples).

use crate::formats::{Format, Scaling};
use crate::kernels::cpu::CpuBackend;
use crate::kernels::{Backend, Op};
use crate::measure::inputs::ProblemSpec;
use crate::measure::timer::{time, TimerConfig};
use crate::measure::validate::{validate, Reference};
use crate::results::Record;
use crate::{Error, Result};
use std::str::FromStr;
use std::time::Duration;

/// GEMV calibration shape (n, k): cache-resident (16 MiB of f32, 4 MiB of FP8, inside the
/// 32 MiB L3). Not smaller: at 512×1024 one run lasts ~40 µs, and waking the second worker
/// thread on a busy machine costs a scheduler slice of that order, so the rate measured the
/// wake-up rather than the decode.
pub const GEMV_SHAPE: (usize, usize) = (2048, 2048);
/// GEMM calibration shape (m, n, k).
pub const GEMM_SHAPE: (usize, usize, usize) = (512, 768, 1024);

/// What a kernel configuration is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub op: String,
    pub format: String,
    pub scaling: String,
    pub act_format: String,
    pub threads: usize,
}

impl Key {
    pub fn of(r: &Record) -> Key {
        Key {
            op: r.op.clone(),
            format: r.format.clone(),
            scaling: r.scaling.clone(),
            act_format: if r.act_format.is_empty() { "f32".into() } else { r.act_format.clone() },
            threads: r.threads,
        }
    }
}

/// Measured ceilings of one configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Roof {
    /// Weight elements per second (cache-resident GEMV).
    Gemv { elems_s: f64 },
    /// FLOP/s reached on the calibration shape.
    Gemm { flops_s: f64 },
}

impl Roof {
    /// Time this roof predicts for an m×n×k problem (without the memory term).
    pub fn time(&self, m: usize, n: usize, k: usize) -> f64 {
        match *self {
            Roof::Gemv { elems_s } => (n * k) as f64 / elems_s,
            Roof::Gemm { flops_s } => 2.0 * (m * n * k) as f64 / flops_s,
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            Roof::Gemv { elems_s } => format!("{:.2} G weights/s", elems_s / 1e9),
            Roof::Gemm { flops_s } => format!("{:.1} GFLOP/s", flops_s / 1e9),
        }
    }
}

/// Which statistic of the samples a time is: the median (what a run reports as its time) or the
/// minimum (the sample that escaped the most interference, as the FMA and bandwidth calibration
/// do with their best trial).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    Median,
    Min,
}

impl FromStr for Statistic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "median" => Ok(Statistic::Median),
            "min" => Ok(Statistic::Min),
            _ => Err(Error::invalid("--statistic", s, "median, min")),
        }
    }
}

impl Statistic {
    pub fn of(self, t: &crate::results::Time) -> f64 {
        match self {
            Statistic::Median => t.median_s,
            Statistic::Min => t.min_s,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::Min => "min",
        }
    }
}

/// Measure one kernel configuration on `shape` and return its time per run (`stat` of samples).
fn measure(key: &Key, m: usize, n: usize, k: usize, timer: &TimerConfig, stat: Statistic) -> Result<f64> {
    let op = if key.op == "gemv" { Op::Gemv } else { Op::Gemm };
    let format = Format::from_str(&key.format)?;
    let act = Format::from_str(&key.act_format)?;
    let scaling = if key.scaling.is_empty() { Scaling::NONE } else { Scaling::from_str(&key.scaling)? };
    let problem = ProblemSpec::new(op, m, n, k, format, scaling).with_act_format(act).with_seed(7).build()?;
    let backend = CpuBackend::new(key.threads);
    let mut prepared = backend.prepare(&problem)?;
    prepared.run()?;
    let out = prepared.output()?;
    let v = validate(&out, &Reference::compute(&problem), backend.output_roundoff(&problem));
    if !v.valid {
        return Err(Error::Other(format!("calibration {key:?} {m}x{n}x{k}: invalid output: {}", v.reason)));
    }
    // Batched samples exactly as the records are timed (timer::time, ≥ 1 ms per sample).
    let timing = time(timer, || prepared.run())?;
    Ok(stat.of(&timing.time))
}

/// The timer of a calibration measurement: short, it runs once per configuration.
pub fn calibration_timer(budget: Duration) -> TimerConfig {
    TimerConfig {
        warmup_runs: 2,
        warmup: budget / 4,
        budget,
        min_samples: 5,
        max_samples: 100_000,
        min_sample: crate::measure::timer::MIN_SAMPLE,
    }
}

/// Measure the roof of one configuration.
pub fn calibrate(key: &Key, timer: &TimerConfig, stat: Statistic) -> Result<Roof> {
    match key.op.as_str() {
        "gemv" => {
            let (n, k) = GEMV_SHAPE;
            let t = measure(key, 1, n, k, timer, stat)?;
            Ok(Roof::Gemv { elems_s: (n * k) as f64 / t })
        }
        "gemm" => {
            let (m, n, k) = GEMM_SHAPE;
            let t = measure(key, m, n, k, timer, stat)?;
            Ok(Roof::Gemm { flops_s: 2.0 * (m * n * k) as f64 / t })
        }
        other => Err(Error::invalid("record op", other, "gemm, gemv")),
    }
}

/// The measured kernel ceilings, per configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalRoofs {
    pub kernels: Vec<(Key, Roof)>,
}

impl LocalRoofs {
    pub fn kernel(&self, key: &Key) -> Option<&Roof> {
        self.kernels.iter().find(|(k, _)| k == key).map(|(_, r)| r)
    }
}

/// Roofs for every distinct configuration among `records` (CPU backend only).
pub fn calibrate_for(records: &[&Record], timer: &TimerConfig, stat: Statistic) -> Result<LocalRoofs> {
    let mut keys: Vec<Key> = records.iter().filter(|r| r.backend == "cpu").map(|r| Key::of(r)).collect();
    keys.sort();
    keys.dedup();
    let kernels =
        keys.into_iter().map(|k| calibrate(&k, timer, stat).map(|r| (k, r))).collect::<Result<_>>()?;
    Ok(LocalRoofs { kernels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrates_small_gemv_and_gemm() {
        let timer = calibration_timer(Duration::from_millis(5));
        for (op, format, scaling) in [("gemv", "e4m3", "deepseek"), ("gemm", "bf16", "none")] {
            let key = Key {
                op: op.into(),
                format: format.into(),
                scaling: scaling.into(),
                act_format: "f32".into(),
                threads: 1,
            };
            let roof = calibrate(&key, &timer, Statistic::Min).unwrap();
            let t = roof.time(4, 33, 129);
            assert!(t.is_finite() && t > 0.0, "{key:?} {roof:?}");
            match roof {
                Roof::Gemv { elems_s } => assert!(elems_s > 1e6 && elems_s < 1e13),
                Roof::Gemm { flops_s, .. } => assert!(flops_s > 1e6 && flops_s < 1e14),
            }
        }
    }
}

//! Roofline projection of one measured kernel onto a chip:
//! `time = max(flops / peak(format), bytes / memory bandwidth)`.
//!
//! Which peak: FP32 uses the chip's non-tensor FP32 peak (chipbench's FP32 kernels are plain FMA,
//! not TF32); BF16/FP16 their tensor peaks; FP8 the FP8 peak when the chip has it natively.
//! A chip without native FP8 (A100, Ascend 910B/910C) still *stores* the weights in FP8, so the
//! bytes stay those of the FP8 record (half of BF16), but it computes at its BF16 rate (FP16 when
//! no BF16 figure is sourced): labelled "weight-only FP8, emulated compute".
//!
//! The bytes are the record's logical bytes (codes + scales + activations + outputs), i.e. each
//! operand read once, the ideal a chip's caches would reach. Spec rooflines therefore tend to
//! over-predict speed; [`local_chip`] lets `chipbench project --chip local` measure by how much on
//! this machine.

use crate::formats::Format;
use crate::kernels::cpu::is_tile_compute;
use crate::profiles::{Chip, Figure, Peaks, Precision, Status};
use crate::results::{Calibration, Record};
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// What limits the projected time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Compute,
    Memory,
    /// A measured kernel ceiling (decode/instruction roof, see `kernel_roofs`).
    Kernel,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
            Bound::Kernel => "kernel",
        })
    }
}

/// The peak a projection used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct PeakUsed {
    /// The chip precision whose figure was used.
    pub precision: Precision,
    /// FLOP/s.
    pub flops_s: f64,
    /// True when the format is not native and runs at another precision's rate.
    pub emulated: bool,
    /// "bf16 tensor peak", "fp32 non-tensor peak", "weight-only FP8, emulated compute (bf16 rate)".
    pub label: String,
}

/// One record projected onto one chip.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub flops: f64,
    pub bytes: f64,
    pub compute_s: f64,
    pub memory_s: f64,
    /// `max(compute_s, memory_s)`.
    pub time_s: f64,
    pub bound: Bound,
    pub peak: PeakUsed,
    /// Memory bandwidth used, bytes/s.
    pub bandwidth: f64,
}

fn missing(chip: &Chip, what: &str, fig: Option<&Figure>) -> Error {
    let why = fig.map(|f| f.status().label()).unwrap_or("absent");
    Error::Unsupported(format!("chip {}: {what} is {why}; cannot project", chip.id))
}

/// The peak a chip computes `format` at, with the emulation rule for formats it lacks.
pub fn peak_for(chip: &Chip, format: Format) -> Result<PeakUsed> {
    let native = Precision::of_format(format);
    let kind = |p: Precision| if p == Precision::Fp32 { "non-tensor peak" } else { "tensor peak" };
    if chip.is_native(native) {
        let flops_s = chip
            .peak_flops(native)
            .ok_or_else(|| missing(chip, &format!("peak.{native}"), chip.peak_figure(native)))?;
        return Ok(PeakUsed {
            precision: native,
            flops_s,
            emulated: false,
            label: format!("{native} {}", kind(native)),
        });
    }
    // Not native: only FP8 falls here (every chip has BF16/FP16/FP32 if it has anything).
    let (p, flops_s) = [Precision::Bf16, Precision::Fp16]
        .into_iter()
        .find_map(|p| chip.peak_flops(p).map(|f| (p, f)))
        .ok_or_else(|| missing(chip, "peak.bf16 (and fp16)", chip.peak_figure(Precision::Bf16)))?;
    let label = if format.is_fp8() {
        format!("weight-only FP8, emulated compute ({p} rate)")
    } else {
        format!("{format} not native, emulated compute ({p} rate)")
    };
    Ok(PeakUsed { precision: p, flops_s, emulated: true, label })
}

/// Project `flops` and `bytes` of a kernel whose weights are stored in `format`.
pub fn project_work(flops: f64, bytes: f64, format: Format, chip: &Chip) -> Result<Projection> {
    let peak = peak_for(chip, format)?;
    let bandwidth =
        chip.memory_bw_bytes_s().ok_or_else(|| missing(chip, "memory_bw", chip.memory_bw.as_ref()))?;
    let compute_s = flops / peak.flops_s;
    let memory_s = bytes / bandwidth;
    let (time_s, bound) =
        if compute_s >= memory_s { (compute_s, Bound::Compute) } else { (memory_s, Bound::Memory) };
    Ok(Projection { flops, bytes, compute_s, memory_s, time_s, bound, peak, bandwidth })
}

/// FLOPs of a GEMM/GEMV record: `2·m·n·k`.
pub fn record_flops(r: &Record) -> Result<f64> {
    match r.op.as_str() {
        "gemm" | "gemv" => Ok(2.0 * r.m as f64 * r.n as f64 * r.k as f64),
        other => Err(Error::invalid("record op", other, "gemm, gemv (collectives are not projected)")),
    }
}

/// Project one measured record onto a chip.
pub fn project(r: &Record, chip: &Chip) -> Result<Projection> {
    let format = Format::from_str(&r.format)?;
    project_work(record_flops(r)?, r.bytes.total as f64, format, chip)
}

/// The FMA peak measured at `threads` (exact match, else the entry with the nearest thread
/// count), GFLOP/s.
pub fn calibration_peak(cal: &Calibration, threads: usize) -> Option<(usize, f64)> {
    nearest_peak(&cal.fma_peak_gflops, threads)
}

/// Of measured FMA peaks per thread count, the one at the count nearest `threads`.
pub fn nearest_peak(peaks: &[crate::results::ThreadPeak], threads: usize) -> Option<(usize, f64)> {
    peaks
        .iter()
        .filter(|p| p.gflops > 0.0)
        .min_by_key(|p| p.threads.abs_diff(threads))
        .map(|p| (p.threads, p.gflops))
}

fn measured(value: f64, unit: &str, source: String) -> Option<Figure> {
    Some(Figure {
        value: Some(value),
        unit: Some(unit.into()),
        status: None,
        direction: None,
        source,
        alternatives: vec![],
        note: None,
    })
}

/// The measured peak of the CPU's BF16 dot-product vector units nearest `threads` (the
/// `bf16-dot ...` entries of `compute_peaks` but a tile unit's), GFLOP/s; `None` where the CPU
/// has none.
pub fn dot_peak(cal: &Calibration, threads: usize) -> Option<(usize, f64, String)> {
    unit_peak(cal, threads, |u| u.starts_with("bf16-dot") && !is_tile_compute(u))
}

/// The measured roof of the CPU's BF16 tile-matrix unit (AMX) nearest `threads`, GFLOP/s;
/// `None` where the CPU has none.
pub fn tile_peak(cal: &Calibration, threads: usize) -> Option<(usize, f64, String)> {
    unit_peak(cal, threads, is_tile_compute)
}

fn unit_peak(
    cal: &Calibration,
    threads: usize,
    which: impl Fn(&str) -> bool,
) -> Option<(usize, f64, String)> {
    cal.compute_peaks
        .iter()
        .filter(|p| p.gflops > 0.0 && which(&p.unit))
        .min_by_key(|p| p.threads.abs_diff(threads))
        .map(|p| (p.threads, p.gflops, p.unit.clone()))
}

/// The compute peaks one roof is chosen from (the calibration's, or ones re-measured later),
/// GFLOP/s: FMA, BF16 dot-product vector units, BF16 tile-matrix unit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks3 {
    pub fma: Option<f64>,
    pub dot: Option<f64>,
    pub tile: Option<f64>,
}

/// The compute roof of a product on this machine, GFLOP/s: the roof of the unit that ran it.
/// `compute` is the record's (`bf16-dot amx_bf16`: the tile unit's roof); without one (files
/// written before the key, or another backend) the operands decide: the BF16 dot-product peak
/// where the CPU has those units and both operands run on them (BF16 and FP8, decoded exactly
/// to BF16), else the FMA peak (f32 and f16 operands, or no units).
pub fn compute_roof(peaks: Peaks3, compute: &str, act: Format, weights: Format) -> Option<f64> {
    let positive = |g: Option<f64>| g.filter(|g| *g > 0.0);
    if is_tile_compute(compute) {
        if let Some(g) = positive(peaks.tile) {
            return Some(g);
        }
    }
    match positive(peaks.dot) {
        Some(g) if crate::kernels::cpu::dot_eligible(act, weights) => Some(g),
        _ => positive(peaks.fma),
    }
}

/// [`compute_roof`] at the run's calibration, at the calibrated thread count nearest `threads`.
pub fn calibration_roof(
    cal: &Calibration,
    threads: usize,
    compute: &str,
    act: Format,
    weights: Format,
) -> Option<f64> {
    let peaks = Peaks3 {
        fma: calibration_peak(cal, threads).map(|(_, g)| g),
        dot: dot_peak(cal, threads).map(|(_, g, _)| g),
        tile: tile_peak(cal, threads).map(|(_, g, _)| g),
    };
    compute_roof(peaks, compute, act, weights)
}

/// A chip profile for *this machine* from a run's calibration, at `threads` threads: FP32 and
/// FP16 get the measured FMA peak (the CPU kernels decode them to f32), BF16 and FP8 the
/// measured BF16 dot-product peak where the CPU has those units (low-precision activations run
/// on them; FP8 is decoded exactly to BF16), else the FMA peak; the memory bandwidth is the
/// measured read-only bandwidth (the GEMV ceiling).
pub fn local_chip(cal: &Calibration, threads: usize) -> Result<Chip> {
    let (t, gflops) = calibration_peak(cal, threads).ok_or_else(|| {
        Error::config("results", "calibration.fma_peak_gflops", "no positive FMA peak measured")
    })?;
    if cal.read_gbs.is_nan() || cal.read_gbs <= 0.0 {
        return Err(Error::config("results", "calibration.read_gbs", "no positive read bandwidth measured"));
    }
    let peak =
        || measured(gflops / 1000.0, "TFLOPS", format!("measured: register-only FMA loop at {t} threads"));
    // BF16/FP8 GEMMs run on the tile unit where there is one (its loop fed from L1), else on
    // the dot-product vector units (register-only loop).
    let low = || match (tile_peak(cal, threads), dot_peak(cal, threads)) {
        (Some((t, g, unit)), _) => {
            measured(g / 1000.0, "TFLOPS", format!("measured: {unit} tile loop fed from L1 at {t} threads"))
        }
        (None, Some((t, g, unit))) => {
            measured(g / 1000.0, "TFLOPS", format!("measured: register-only {unit} loop at {t} threads"))
        }
        (None, None) => peak(),
    };
    let none = |why: &str| {
        Some(Figure { value: None, unit: None, status: Some(Status::Unfound), ..peak().unwrap() })
            .map(|f| Figure { source: why.to_string(), ..f })
    };
    Ok(Chip {
        id: "local".into(),
        name: format!("this machine ({t} threads)"),
        vendor: "measured".into(),
        aliases: vec!["local".into()],
        year: None,
        year_source: String::new(),
        confidence: "measured".into(),
        confidence_note: "built from the results file's calibration".into(),
        notes: vec![],
        memory: none("not needed for projection"),
        memory_bw: measured(
            cal.read_gbs / 1000.0,
            "TB/s",
            "measured: read-only sum over a large buffer".into(),
        ),
        tdp: none("not measured"),
        interconnect: none("not measured"),
        peak: Some(Peaks {
            fp32: peak(),
            tf32: none("CPU has no TF32"),
            bf16: low(),
            fp16: peak(),
            fp8: low(),
            int8: none("not measured"),
            fp4: None,
        }),
        origin: "calibration".into(),
    })
}

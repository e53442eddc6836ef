//! The planner's collective times calibrated with a measured local curve (`plan --collectives
//! FILE`): the spec figure assumes a link runs at its sourced bandwidth; the calibrated figure
//! assumes it reaches the same fraction of it as MPI reaches of this machine's "link".
//!
//! Method, per collective: fit `t = α + bus bytes / β` to the measured local curve
//! ([`super::collective::fits`]); the local link's own figure is one core's best memcpy rate (Open
//! MPI's shared-memory transport moves each message with a memory copy by the sending or
//! receiving rank's core), so the efficiency is `η = β / memcpy rate`; on a chip,
//! `t = α + bus bytes / (η · L)`. The gradient all-reduce uses the f32 curve (MPI's own sum, the
//! counterpart of NCCL's in-kernel reduction; the bf16 curve here adds a CPU decode-reduce-encode),
//! the MoE all-to-all the bf16 and e4m3 curves. α is this machine's latency (shared memory),
//! smaller than any network's: the calibrated times are still lower bounds.

use super::collective::{find_fit, fits, AlphaBeta};
use super::planner::{dispatch_bytes_per_element, Plan, WeightPrecision};
use crate::collectives::Op;
use crate::results::Run;
use crate::{Error, Result};
use std::time::Instant;

/// The local curves the calibration uses.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalLink {
    /// One core's memcpy rate, bytes/s: the local link's "spec".
    pub memcpy: f64,
    pub allreduce: AlphaBeta,
    pub alltoall_bf16: AlphaBeta,
    pub alltoall_fp8: AlphaBeta,
}

impl LocalLink {
    /// Efficiency of a fitted curve against the memcpy rate.
    pub fn eta(&self, f: &AlphaBeta) -> f64 {
        f.beta / self.memcpy
    }
}

/// Pick the curves out of a collectives results file.
pub fn local_link(run: &Run, memcpy: f64) -> Result<LocalLink> {
    if !(memcpy > 0.0 && memcpy.is_finite()) {
        return Err(Error::invalid("memcpy rate", &memcpy.to_string(), "a positive bytes/s"));
    }
    let all = fits(run);
    let need = |op: Op, payloads: &[&str]| {
        find_fit(&all, op, payloads).cloned().ok_or_else(|| {
            Error::config(
                "--collectives",
                "records",
                format!(
                    "no {op} curve with payload {} (two or more valid sizes needed)",
                    payloads.join(" or ")
                ),
            )
        })
    };
    Ok(LocalLink {
        memcpy,
        allreduce: need(Op::AllReduce, &["f32", "bf16"])?,
        alltoall_bf16: need(Op::AllToAll, &["bf16"])?,
        alltoall_fp8: need(Op::AllToAll, &["e4m3", "e5m2"])?,
    })
}

/// One core copying a 64 MiB buffer: the fastest of 7 copies (after one that touches the
/// pages), bytes/s. The fastest, not the median: it is the local link's *ceiling*, the
/// counterpart of a spec figure, and a busy machine only ever slows a copy down.
pub fn measure_memcpy() -> f64 {
    let n = 64 << 20;
    let src = vec![1u8; n];
    let mut dst = vec![0u8; n];
    let mut times: Vec<f64> = (0..8)
        .map(|_| {
            let t0 = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&dst);
            t0.elapsed().as_secs_f64().max(1e-9)
        })
        .skip(1)
        .collect();
    times.sort_by(f64::total_cmp);
    n as f64 / times[0]
}

/// The calibrated collective figures of one plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibrated {
    pub allreduce_eta: f64,
    pub allreduce_s: Option<f64>,
    /// All-to-all dispatch bytes per chip with BF16 and with FP8 (+ scales) payloads.
    pub a2a_bytes_bf16: f64,
    pub a2a_bytes_fp8: f64,
    /// At the spec link bandwidth.
    pub a2a_spec_bf16_s: Option<f64>,
    pub a2a_spec_fp8_s: Option<f64>,
    pub a2a_eta_bf16: f64,
    pub a2a_eta_fp8: f64,
    /// Calibrated with the local curves.
    pub a2a_cal_bf16_s: Option<f64>,
    pub a2a_cal_fp8_s: Option<f64>,
}

impl Calibrated {
    pub fn bytes_ratio(&self) -> f64 {
        self.a2a_bytes_fp8 / self.a2a_bytes_bf16
    }
    pub fn spec_time_ratio(&self) -> Option<f64> {
        Some(self.a2a_spec_fp8_s? / self.a2a_spec_bf16_s?)
    }
    pub fn cal_time_ratio(&self) -> Option<f64> {
        Some(self.a2a_cal_fp8_s? / self.a2a_cal_bf16_s?)
    }
}

/// Calibrate one plan's collectives; `hidden` is the model's hidden size.
pub fn calibrate(plan: &Plan, hidden: usize, link: &LocalLink) -> Calibrated {
    let l = plan.link.map(|(bw, _)| bw);
    let r = plan.ring as f64;
    let ar_bus = 2.0 * (r - 1.0) / r * plan.grad_bytes;
    let timed = |f: &AlphaBeta, bus: f64| l.map(|bw| f.alpha_s + bus / (link.eta(f) * bw));
    let per_el = dispatch_bytes_per_element(plan.options.precision, hidden);
    let elements = plan.alltoall_bytes / per_el;
    let a2a_bytes_bf16 = elements * dispatch_bytes_per_element(WeightPrecision::Bf16, hidden);
    let a2a_bytes_fp8 = elements * dispatch_bytes_per_element(WeightPrecision::Fp8, hidden);
    let moe = plan.alltoall_bytes > 0.0;
    let when = |v: Option<f64>| if moe { v } else { None };
    Calibrated {
        allreduce_eta: link.eta(&link.allreduce),
        allreduce_s: timed(&link.allreduce, ar_bus),
        a2a_bytes_bf16,
        a2a_bytes_fp8,
        a2a_spec_bf16_s: when(l.map(|bw| a2a_bytes_bf16 / bw)),
        a2a_spec_fp8_s: when(l.map(|bw| a2a_bytes_fp8 / bw)),
        a2a_eta_bf16: link.eta(&link.alltoall_bf16),
        a2a_eta_fp8: link.eta(&link.alltoall_fp8),
        a2a_cal_bf16_s: when(timed(&link.alltoall_bf16, a2a_bytes_bf16)),
        a2a_cal_fp8_s: when(timed(&link.alltoall_fp8, a2a_bytes_fp8)),
    }
}

//! Validation against an f64 reference computed on the same quantized inputs.
//!
//! Because the reference sees exactly the values the kernel multiplies, the only legitimate
//! difference is f32 rounding in the accumulation (and, for a backend that returns a 16-bit
//! output, the output rounding). That gives a rigorous per-element bound:
//! `|c - ref| ≤ (γ_k + u_out) · Σ_k |a_ik · w_jk|` with `γ_k = 2 (k + 16) · 2^-24`.
//! A wrong kernel misses it by orders of magnitude; a correct one never touches it.

use crate::kernels::Problem;
use crate::results::ErrorStats;
use rayon::prelude::*;

/// The f64 reference and, per element, Σ|a·w| (the scale of the rounding error bound).
#[derive(Debug, Clone)]
pub struct Reference {
    pub values: Vec<f64>,
    pub abs_sums: Vec<f64>,
    pub k: usize,
}

impl Reference {
    pub fn compute(problem: &Problem) -> Reference {
        let (m, n, k) = (problem.m(), problem.n(), problem.k());
        let a = problem.a.dequantize_f64();
        let w = problem.w.dequantize_f64();
        let mut values = vec![0f64; m * n];
        let mut abs_sums = vec![0f64; m * n];
        values.par_chunks_mut(n.max(1)).zip(abs_sums.par_chunks_mut(n.max(1))).enumerate().for_each(
            |(i, (vrow, srow))| {
                let ar = &a[i * k..(i + 1) * k];
                for j in 0..n {
                    let wr = &w[j * k..(j + 1) * k];
                    let (mut s, mut sa) = (0f64, 0f64);
                    for (x, y) in ar.iter().zip(wr) {
                        let p = x * y;
                        s += p;
                        sa += p.abs();
                    }
                    vrow[j] = s;
                    srow[j] = sa;
                }
            },
        );
        Reference { values, abs_sums, k }
    }
}

/// Outcome of comparing an output with the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub error: ErrorStats,
    pub valid: bool,
    /// Empty when valid; otherwise the first violation, in words.
    pub reason: String,
}

/// Error metrics: max abs, max rel (relative to max |ref| so near-zero outputs don't explode),
/// and DeepGEMM's `diff = 1 - 2Σxy / Σ(x²+y²)`.
pub fn error_stats(output: &[f32], reference: &[f64]) -> ErrorStats {
    let scale = reference.iter().fold(0f64, |m, r| m.max(r.abs())).max(f64::MIN_POSITIVE);
    let (mut max_abs, mut xy, mut xxyy) = (0f64, 0f64, 0f64);
    for (&o, &r) in output.iter().zip(reference) {
        let o = o as f64;
        let d = (o - r).abs();
        // NaN is sticky: f64::max would drop it at the next finite difference.
        max_abs = if d.is_nan() || max_abs.is_nan() { f64::NAN } else { max_abs.max(d) };
        xy += o * r;
        xxyy += o * o + r * r;
    }
    let diff = if xxyy == 0.0 { 0.0 } else { 1.0 - 2.0 * xy / xxyy };
    ErrorStats { max_abs, max_rel: max_abs / scale, diff }
}

/// Check `output` against the reference. `output_roundoff` is the unit roundoff of the backend's
/// output format (0 for f32 output, 2^-8 for a bf16 output, ...).
pub fn validate(output: &[f32], reference: &Reference, output_roundoff: f64) -> Validation {
    let error = error_stats(output, &reference.values);
    if output.len() != reference.values.len() {
        return Validation {
            error,
            valid: false,
            reason: format!("output has {} values, expected {}", output.len(), reference.values.len()),
        };
    }
    let gamma = 2.0 * (reference.k as f64 + 16.0) * (2f64).powi(-24) + output_roundoff;
    for (i, ((&o, &r), &s)) in output.iter().zip(&reference.values).zip(&reference.abs_sums).enumerate() {
        let bound = gamma * s + 1e-30;
        let d = (o as f64 - r).abs();
        if d.is_nan() || d > bound {
            let reason = if o.is_nan() {
                format!("output[{i}] is NaN (reference {r:e})")
            } else {
                format!("output[{i}] = {o:e}, reference {r:e}: error {d:.3e} exceeds bound {bound:.3e}")
            };
            return Validation { error, valid: false, reason };
        }
    }
    Validation { error, valid: true, reason: String::new() }
}

//! Validation against an f64 reference computed on the same quantized inputs.
//!
//! Because the reference sees exactly the values the kernel multiplies, the only legitimate
//! difference is f32 rounding in the accumulation (and, for a backend that returns a 16-bit
//! output, the output rounding). Validation has two parts:
//!
//! 1. A rigorous per-element bound, the hard limit:
//!    `|c - ref| ≤ (γ_k + u_out) · Σ_k |a_ik · w_jk|` with `γ_k = 2 (k + 16) · 2^-24`.
//!    It is a worst case: a correct GEMV 8192² uses ~10⁻⁴ of it, so on its own it passes kernels
//!    that round an operand they should not, drop a K column or misplace a block scale.
//! 2. A statistical check against the error the arithmetic is *expected* to make. Every f32
//!    rounding contributes an independent error of at most `u·|x|` (u = 2^-24) on the value `x` it
//!    rounds, so an output's error variance is below `u²·Σ x²` over everything rounded on its way.
//!    In any summation order each product enters at most a few roundings of its own (decode ×
//!    scale, product, block scale) and the additions round partial sums; with terms of random sign
//!    a partial sum of `t` terms has `E[s²] = t·σ² + t²·μ²`, and the recursive (left-to-right)
//!    order, whose partial sums hold the most terms, is the worst tree. Summing over its `k`
//!    additions gives the expected error of output `i` (an upper expectation, order-free):
//!    `e_i² = u²·((k + 8)·Σ_k p² + k·c²) + u_out²·c²`, with `p = a_ik·w_jk` and `c = Σ_k p`
//!    (`u·k·RMS(p)` for random-sign products: √k times the √k·u·RMS(p) of a random walk of the
//!    products' own roundings, because each addition rounds a partial sum ~√t·RMS(p) large).
//!    A blocked or pairwise sum makes less error; the output's rounding (a 16-bit output) adds
//!    its own term. Measured on correct kernels (cpu, candle, wgpu on lavapipe, every format ×
//!    scaling of the backend suites, and the `--quick` default suite) the RMS error is at most 0.48·e
//!    (0.75·e on a single output), the aggregate 1.8 √(Σ e²) (0.26 of its unit below) and the peak
//!    2.1; the check
//!    requires
//!    - RMS over the whole output: `√(Σ d²/Σ e²) ≤ RMS_FACTOR` (widened as `√(SMALL_SAMPLE/N)` for
//!      outputs of fewer than `SMALL_SAMPLE` elements, where an RMS of a few values is noisy);
//!    - aggregate: `|Σ d_i·sign(ref_i)| / (√(Σ e²) + 2u·Σ|ref_i|) ≤ AGGREGATE_FACTOR` — independent
//!      rounding errors add like a random walk, a systematic one (a wrong scale, truncation) adds
//!      up linearly; the `2u·Σ|ref|` term admits the one systematic error a correct kernel makes,
//!      each code's fixed rounding when decoded times its scale;
//!    - per element: `|d_i| ≤ PEAK_FACTOR·e_i`, which catches an error confined to a few outputs
//!      (an edge tile, a row off by one) that an RMS over a large output would dilute.
//!
//! What the check saw is kept in [`ErrorCheck`] so a record can carry it.

use crate::kernels::Problem;
use crate::results::{ErrorCheck, ErrorStats};
use rayon::prelude::*;

/// Unit roundoff of the f32 accumulator: the only arithmetic precision the expected error uses.
pub const U_ACC: f64 = 1.0 / 16_777_216.0;
/// Roundings a product may go through on its own (decode × scale of each operand, the product,
/// the block scale of a partial sum...), counted in the expected error as extra partial sums.
pub const EXTRA_ROUNDINGS: f64 = 8.0;
/// Limit on RMS error / expected RMS error, for outputs of at least [`SMALL_SAMPLE`] elements.
pub const RMS_FACTOR: f64 = 1.0;
/// Below this many outputs the RMS limit widens by `√(SMALL_SAMPLE / N)`.
pub const SMALL_SAMPLE: usize = 32;
/// Limit on the aggregate signed error over the whole output, in units of its expected size
/// `√(Σ e²) + SYSTEMATIC_ROUNDINGS·u·Σ|ref|`.
pub const AGGREGATE_FACTOR: f64 = 4.0;
/// Roundings whose relative error is the same on every use, so they add up coherently over the
/// output: decoding a code times its scale to f32 gives each code one fixed relative error (per
/// operand), i.e. a scale off by up to ~u. A correct GEMM 256³ E4M3 per-tensor showed
/// Σ d·sign(ref) = 1.8·√(Σ e²), 8σ for independent errors; larger outputs grow it as √N.
pub const SYSTEMATIC_ROUNDINGS: f64 = 2.0;
/// Limit on any one element's error, in units of its expected error.
pub const PEAK_FACTOR: f64 = 16.0;
/// f32's smallest subnormal: an absolute floor on what one rounding can be off by.
const F32_TINY: f64 = 1.401298464324817e-45;

/// The f64 reference and, per element, Σ|a·w| (the scale of the rigorous bound) and Σ(a·w)² (the
/// scale of the expected error).
#[derive(Debug, Clone)]
pub struct Reference {
    pub values: Vec<f64>,
    pub abs_sums: Vec<f64>,
    pub sq_sums: Vec<f64>,
    pub k: usize,
}

/// Rows of A up to which [`Reference::compute`] streams W instead of running GEMMs.
const STREAM_ROWS: usize = 4;

/// Σ a·w, Σ|a·w|, Σ(a·w)² of two equal-length slices, four interleaved partial sums each.
fn dot3(a: &[f64], w: &[f64]) -> [f64; 3] {
    const L: usize = 4;
    let (mut s, mut sa, mut sq) = ([0f64; L], [0f64; L], [0f64; L]);
    for (x, y) in a.chunks_exact(L).zip(w.chunks_exact(L)) {
        for l in 0..L {
            let p = x[l] * y[l];
            s[l] += p;
            sa[l] += p.abs();
            sq[l] += p * p;
        }
    }
    let t = a.len() - a.len() % L;
    for (x, y) in a[t..].iter().zip(&w[t..]) {
        let p = x * y;
        s[0] += p;
        sa[0] += p.abs();
        sq[0] += p * p;
    }
    let sum = |v: [f64; L]| (v[0] + v[1]) + (v[2] + v[3]);
    [sum(s), sum(sa), sum(sq)]
}

/// `A · Bᵀ` in f64 for row-major `a` (m × k) and `b` (n × k), row-major m × n, by the gemm
/// crate's f64 kernels (all cores). They share no code with any f32 kernel a backend runs,
/// and `tests::reference_matches_the_definition` checks them against the plain triple loop.
fn f64_gemm_nt(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    assert!(a.len() == m * k && b.len() == n * k, "operand sizes");
    let mut dst = vec![0f64; m * n];
    if m == 0 || n == 0 || k == 0 {
        return dst;
    }
    let (n_, k_) = (n as isize, k as isize);
    // SAFETY: dst is m × n with row stride n; a is m × k with row stride k (lhs element (i, t)
    // at i·k + t); b read as the k × n matrix Bᵀ (element (t, j) at j·k + t). Every index the
    // strides reach lies inside the three slices, which outlive the call; dst is not read
    // (read_dst = false), alpha = 0, beta = 1.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n_,
            false,
            a.as_ptr(),
            1,
            k_,
            b.as_ptr(),
            k_,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    dst
}

impl Reference {
    /// The reference of `problem`: every output's Σ a·w, Σ|a·w| and Σ(a·w)² in f64, as three
    /// f64 GEMMs (`A·Wᵀ`, `|A|·|W|ᵀ`, `A²·(W²)ᵀ`; the squares of f32-representable values are
    /// exact in f64). A GEMM 2048³ takes about a second here, against four for a tiled safe
    /// loop, and the sums of a few thousand products agree with the plain definition to
    /// ~10⁻¹⁶ relative in any order.
    pub fn compute(problem: &Problem) -> Reference {
        let (m, n, k) = (problem.m(), problem.n(), problem.k());
        let a = problem.a.dequantize_f64();
        if m <= STREAM_ROWS {
            return Self::streamed(problem, &a);
        }
        let w = problem.w.dequantize_f64();
        let values = f64_gemm_nt(&a, &w, m, n, k);
        let abs = |v: &[f64]| -> Vec<f64> { v.par_iter().map(|x| x.abs()).collect() };
        let abs_sums = f64_gemm_nt(&abs(&a), &abs(&w), m, n, k);
        let sq = |v: &[f64]| -> Vec<f64> { v.par_iter().map(|x| x * x).collect() };
        let sq_sums = f64_gemm_nt(&sq(&a), &sq(&w), m, n, k);
        Reference { values, abs_sums, sq_sums, k }
    }

    /// For a few rows of A (a GEMV): W streamed once, a row at a time, in parallel, with no f64
    /// copy of the whole of W (that copy alone is 4 GiB for a 16384 × 32768 GEMV, and its
    /// allocation took longer than the sums).
    fn streamed(problem: &Problem, a: &[f64]) -> Reference {
        let (m, n, k) = (problem.m(), problem.n(), problem.k());
        let rows: Vec<Vec<[f64; 3]>> = (0..n)
            .into_par_iter()
            .map_init(
                || vec![0f64; k],
                |w, j| {
                    problem.w.dequantize_row_f64(j, w);
                    a.chunks(k.max(1)).take(m).map(|ai| dot3(ai, w)).collect()
                },
            )
            .collect();
        let mut r =
            Reference { values: vec![0.0; m * n], abs_sums: vec![0.0; m * n], sq_sums: vec![0.0; m * n], k };
        for (j, sums) in rows.iter().enumerate() {
            for (i, s) in sums.iter().enumerate() {
                [r.values[i * n + j], r.abs_sums[i * n + j], r.sq_sums[i * n + j]] = *s;
            }
        }
        r
    }

    /// The plain definition (one sequential sum per element), for the test of [`compute`].
    #[cfg(test)]
    fn compute_naive(problem: &Problem) -> Reference {
        let (m, n, k) = (problem.m(), problem.n(), problem.k());
        let (a, w) = (problem.a.dequantize_f64(), problem.w.dequantize_f64());
        let mut r =
            Reference { values: vec![0.0; m * n], abs_sums: vec![0.0; m * n], sq_sums: vec![0.0; m * n], k };
        for i in 0..m {
            for j in 0..n {
                for t in 0..k {
                    let p = a[i * k + t] * w[j * k + t];
                    r.values[i * n + j] += p;
                    r.abs_sums[i * n + j] += p.abs();
                    r.sq_sums[i * n + j] += p * p;
                }
            }
        }
        r
    }

    /// Expected rounding error of element `i` for f32 accumulation of `k` products in any order,
    /// plus the roundings of the output `rounding` describes (see the module docs).
    pub fn expected_error(&self, i: usize, rounding: OutputRounding) -> f64 {
        let k = self.k as f64;
        let (c, s2) = (self.values[i], self.sq_sums[i]);
        let acc = (k + EXTRA_ROUNDINGS) * s2 + k * c * c;
        // The final rounding of c, and `partials` roundings of partial sums of K blocks, the
        // b-th of which is on average b/(partials+1) of the whole: Σ E[s_b²] < partials·(S2 + c²)/2.
        let out = c * c + rounding.partials as f64 * (s2 + c * c) / 2.0;
        let floor = (k + EXTRA_ROUNDINGS) * F32_TINY * F32_TINY;
        (U_ACC * U_ACC * acc + rounding.unit * rounding.unit * out + floor).sqrt()
    }
}

/// How a backend rounds its output: the unit roundoff of the output format (0 for f32) and how
/// many partial sums of each output it stores in that format before the final result (see
/// `Backend::output_partial_roundings`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutputRounding {
    pub unit: f64,
    pub partials: usize,
}

impl OutputRounding {
    /// What `backend` declares for `problem`.
    pub fn of(backend: &dyn crate::kernels::Backend, problem: &Problem) -> OutputRounding {
        OutputRounding {
            unit: backend.output_roundoff(problem),
            partials: backend.output_partial_roundings(problem),
        }
    }
}

/// Outcome of comparing an output with the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    pub error: ErrorStats,
    /// What the rigorous and the statistical checks measured.
    pub check: ErrorCheck,
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

/// The RMS limit for an output of `n` elements: [`RMS_FACTOR`], widened below [`SMALL_SAMPLE`].
pub fn rms_limit(n: usize) -> f64 {
    RMS_FACTOR * (SMALL_SAMPLE as f64 / n.max(1) as f64).sqrt().max(1.0)
}

/// The rigorous bound's and the statistical check's measurements of `output`.
pub fn error_check(output: &[f32], reference: &Reference, rounding: OutputRounding) -> ErrorCheck {
    let gamma = rigorous_gamma(reference.k, rounding);
    let (mut bound_used, mut peak) = (0f64, 0f64);
    let (mut dd, mut ee, mut signed, mut abs_ref) = (0f64, 0f64, 0f64, 0f64);
    for (i, (&o, &r)) in output.iter().zip(&reference.values).enumerate() {
        let d = o as f64 - r;
        let bound = gamma * reference.abs_sums[i] + 1e-30;
        let e = reference.expected_error(i, rounding);
        // NaN is sticky, as in error_stats.
        let sticky = |m: f64, x: f64| if x.is_nan() || m.is_nan() { f64::NAN } else { m.max(x) };
        bound_used = sticky(bound_used, d.abs() / bound);
        peak = sticky(peak, d.abs() / e);
        dd += d * d;
        ee += e * e;
        signed += if r < 0.0 { -d } else { d };
        abs_ref += r.abs();
    }
    let ee = ee.max(f64::MIN_POSITIVE);
    ErrorCheck {
        bound_used,
        rms_ratio: (dd / ee).sqrt(),
        rms_limit: rms_limit(output.len()),
        aggregate_ratio: signed.abs() / (ee.sqrt() + SYSTEMATIC_ROUNDINGS * U_ACC * abs_ref),
        peak_ratio: peak,
    }
}

/// The rigorous bound's factor on Σ|a·w|: `γ_k = 2 (k + 16)·u` for the f32 accumulation plus one
/// output roundoff per rounding of the output (each rounds a value no larger than Σ|a·w|).
fn rigorous_gamma(k: usize, rounding: OutputRounding) -> f64 {
    2.0 * (k as f64 + 16.0) * U_ACC + (1 + rounding.partials) as f64 * rounding.unit
}

/// Check `output` against the reference. `output_roundoff` is the unit roundoff of the backend's
/// output format (0 for f32 output, 2^-8 for a bf16 output, ...), rounded once at the end.
pub fn validate(output: &[f32], reference: &Reference, output_roundoff: f64) -> Validation {
    validate_rounded(output, reference, OutputRounding { unit: output_roundoff, partials: 0 })
}

/// [`validate`] for an output rounded as `rounding` says (use [`OutputRounding::of`] a backend).
pub fn validate_rounded(output: &[f32], reference: &Reference, rounding: OutputRounding) -> Validation {
    let error = error_stats(output, &reference.values);
    let invalid = |check, reason| Validation { error, check, valid: false, reason };
    if output.len() != reference.values.len() {
        let reason = format!("output has {} values, expected {}", output.len(), reference.values.len());
        return invalid(ErrorCheck::default(), reason);
    }
    let check = error_check(output, reference, rounding);
    let gamma = rigorous_gamma(reference.k, rounding);
    for (i, ((&o, &r), &s)) in output.iter().zip(&reference.values).zip(&reference.abs_sums).enumerate() {
        let bound = gamma * s + 1e-30;
        let d = (o as f64 - r).abs();
        if d.is_nan() || d > bound {
            let reason = if o.is_nan() {
                format!("output[{i}] is NaN (reference {r:e})")
            } else {
                format!("output[{i}] = {o:e}, reference {r:e}: error {d:.3e} exceeds bound {bound:.3e}")
            };
            return invalid(check, reason);
        }
    }
    if check.rms_ratio > check.rms_limit {
        let reason = format!(
            "RMS error is {:.3}× the expected f32 rounding error (limit {:.2}): the kernel rounds, \
             drops or misplaces something",
            check.rms_ratio, check.rms_limit
        );
        return invalid(check, reason);
    }
    if check.aggregate_ratio > AGGREGATE_FACTOR {
        let reason = format!(
            "aggregate error Σ d·sign(ref) is {:.3}× its expected size (limit {AGGREGATE_FACTOR}): \
             a systematic error, not rounding",
            check.aggregate_ratio
        );
        return invalid(check, reason);
    }
    if check.peak_ratio > PEAK_FACTOR {
        let (i, d, e) = (0..output.len())
            .map(|i| {
                let d = (output[i] as f64 - reference.values[i]).abs();
                (i, d, reference.expected_error(i, rounding))
            })
            .max_by(|x, y| (x.1 / x.2).total_cmp(&(y.1 / y.2)))
            .expect("non-empty: peak_ratio > 0");
        let reason = format!(
            "output[{i}]: error {d:.3e} is {:.1}× its expected rounding error {e:.3e} (limit {PEAK_FACTOR})",
            d / e
        );
        return invalid(check, reason);
    }
    Validation { error, check, valid: true, reason: String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{Format, Scaling};
    use crate::kernels::Op;
    use crate::measure::inputs::ProblemSpec;

    /// The GEMM-based reference equals the plain definition on odd shapes (GEMV, edge tiles, K
    /// not a multiple of any block).
    #[test]
    fn reference_matches_the_definition() {
        for (op, m, n, k) in [
            (Op::Gemv, 1, 1, 1),
            (Op::Gemv, 1, 131, 129),
            (Op::Gemm, 3, 5, 130),
            (Op::Gemm, 17, 67, 7),
            (Op::Gemm, 33, 129, 130),
        ] {
            let p = ProblemSpec::new(op, m, n, k, Format::E4M3, Scaling::DEEPSEEK).build().unwrap();
            let (fast, slow) = (Reference::compute(&p), Reference::compute_naive(&p));
            for (name, x, y) in [
                ("values", &fast.values, &slow.values),
                ("abs_sums", &fast.abs_sums, &slow.abs_sums),
                ("sq_sums", &fast.sq_sums, &slow.sq_sums),
            ] {
                assert_eq!(x.len(), m * n);
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    let tol = 1e-13 * slow.abs_sums[i].max(slow.sq_sums[i]).max(1e-300);
                    assert!((u - v).abs() <= tol, "{op} {m}x{n}x{k} {name}[{i}]: {u} vs {v}");
                }
            }
        }
    }
}

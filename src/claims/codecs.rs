//! Checks that need no run: they quantize seeded matrices with the project's own codecs, so their
//! numbers are the same on every machine (and computed fresh each time, never written down).

use super::measured::{best_by_format, groups, run_ids};
use super::{sig3, Finding, LoadedRun, Verdict};
use crate::formats::scaling::{Role, ScaleFormat};
use crate::formats::{Format, QuantizedMatrix, Scaling};
use crate::measure::inputs::{random_matrix, Dist};
use crate::Result;

const SEED: u64 = 42;
const FROM_CODECS: &str = "computed: chipbench's bit-exact codecs on seeded matrices (seed 42)";

/// Effective stored bits per element of a quantized matrix (codes + scales).
fn bits_per_element(q: &QuantizedMatrix) -> f64 {
    q.logical_bytes().total as f64 * 8.0 / (q.rows * q.cols) as f64
}

fn quantized(
    rows: usize,
    cols: usize,
    format: Format,
    scaling: Scaling,
    role: Role,
) -> Result<QuantizedMatrix> {
    let scaling = if format.is_fp8() { scaling } else { Scaling::NONE };
    QuantizedMatrix::quantize(
        &random_matrix(rows, cols, SEED, Dist::Gaussian),
        rows,
        cols,
        format,
        scaling,
        role,
    )
}

pub fn format_bits(rows: usize, cols: usize, scaling: Scaling) -> Result<Finding> {
    let widths: Vec<String> = Format::ALL.iter().map(|f| format!("{f} {} bits", f.bits())).collect();
    let expected = |f: Format| match f {
        Format::E4M3 | Format::E5M2 => 8,
        Format::BF16 | Format::F16 => 16,
        Format::F32 => 32,
    };
    let widths_ok = Format::ALL.iter().all(|&f| f.bits() == expected(f));
    let w = quantized(rows, cols, Format::E4M3, scaling, Role::Weights)?;
    let a = quantized(rows, cols, Format::E4M3, scaling, Role::Activations)?;
    let (wb, ab) = (bits_per_element(&w), bits_per_element(&a));
    let verdict = match (widths_ok, wb - 8.0 < 0.5) {
        (true, true) => Verdict::Supported,
        (true, false) => Verdict::Partly,
        _ => Verdict::NotSupported,
    };
    let blk = |q: &QuantizedMatrix| format!("{}x{}", q.block.rows, q.block.cols);
    Ok(Finding::new(
        verdict,
        vec![
            widths.join(", "),
            format!(
                "E4M3 weights {rows}x{cols} with {scaling} {} scales: {} bits/parameter",
                blk(&w),
                sig3(wb)
            ),
            format!("E4M3 activations with {} tiles: {} bits/value", blk(&a), sig3(ab)),
        ],
        vec![FROM_CODECS.into()],
    ))
}

pub fn weight_bytes(
    rows: usize,
    cols: usize,
    scaling: Scaling,
    (low, high): (f64, f64),
    runs: &[LoadedRun],
) -> Result<Finding> {
    let bytes = |f: Format| -> Result<f64> {
        Ok(quantized(rows, cols, f, scaling, Role::Weights)?.logical_bytes().total as f64)
    };
    let (fp8, bf16, f32b) = (bytes(Format::E4M3)?, bytes(Format::BF16)?, bytes(Format::F32)?);
    let computed = fp8 / bf16;
    let mut numbers = vec![format!(
        "computed {rows}x{cols} weights: E4M3+{scaling} {} B, BF16 {} B, F32 {} B; FP8/BF16 = {}, FP8/F32 = {}",
        fp8,
        bf16,
        f32b,
        sig3(computed),
        sig3(fp8 / f32b)
    )];
    let mut from = vec![FROM_CODECS.to_string()];
    let in_range = |r: f64| (low..=high).contains(&r);

    // Measured: the bytes each backend reported for the same problem in FP8 and BF16.
    let (mut logical, mut buffers, mut used) = (Vec::new(), Vec::new(), Vec::new());
    for (_, recs) in groups(runs, None) {
        let best = best_by_format(&recs);
        let fp8 = best.iter().find(|(f, _)| f.is_fp8());
        let bf = best.iter().find(|(f, _)| *f == Format::BF16);
        if let (Some((_, (lr8, r8))), Some((_, (_, rb)))) = (fp8, bf) {
            let w = |r: &crate::results::Record| (r.bytes.weights + r.bytes.scales) as f64;
            if w(rb) > 0.0 {
                logical.push(w(r8) / w(rb));
            }
            if let (Some(m8), Some(mb)) = (&r8.memory, &rb.memory) {
                let b = |m: &crate::results::Memory| (m.buffers.weights + m.buffers.scales) as f64;
                if b(mb) > 0.0 {
                    buffers.push((b(m8) / b(mb), r8.backend.clone()));
                }
            }
            used.push((*lr8, *r8));
        }
    }
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if v.len() == 1 || sig3(lo) == sig3(hi) {
            sig3(lo)
        } else {
            format!("{}–{}", sig3(lo), sig3(hi))
        }
    };
    if !logical.is_empty() {
        numbers.push(format!(
            "measured records: FP8/BF16 weight bytes {} over {} problems",
            range(&logical),
            logical.len()
        ));
    }
    let mut bad_buffers: Vec<String> =
        buffers.iter().filter(|(r, _)| !in_range(*r)).map(|(r, b)| format!("{b} {}", sig3(*r))).collect();
    bad_buffers.dedup();
    if !buffers.is_empty() {
        let v: Vec<f64> = buffers.iter().map(|b| b.0).collect();
        numbers.push(format!("allocated weight buffers FP8/BF16: {}", range(&v)));
        if !bad_buffers.is_empty() {
            numbers.push(format!("buffers outside [{low}, {high}]: {}", bad_buffers.join(", ")));
        }
    }
    from.extend(run_ids(used));
    let verdict = if !in_range(computed) || logical.iter().any(|&r| !in_range(r)) {
        Verdict::NotSupported
    } else if !bad_buffers.is_empty() {
        Verdict::Partly
    } else {
        Verdict::Supported
    };
    Ok(Finding::new(verdict, numbers, from))
}

/// Relative RMS error of `approx` against `exact`.
fn rel_rms(approx: &[f64], exact: &[f64]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (a, e) in approx.iter().zip(exact) {
        num += (a - e) * (a - e);
        den += e * e;
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// `C = A · Wᵀ` in f64 (A is m×k, W is n×k).
fn gemm_f64(a: &[f64], w: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = a[i * k..(i + 1) * k].iter().zip(&w[j * k..(j + 1) * k]).map(|(x, y)| x * y).sum();
        }
    }
    c
}

/// Scale `v` by the power of two `s` by adding to the exponent field only (what a chip without a
/// floating-point multiplier in its scaling path would do). `None` if `s` is not a power of two
/// or the result would leave the normal range (then an exponent add is not enough).
fn exponent_add(v: f32, s: f32) -> Option<f32> {
    let sb = s.to_bits();
    if s <= 0.0 || sb & 0x007f_ffff != 0 || !s.is_normal() {
        return None;
    }
    if v == 0.0 {
        return Some(v);
    }
    if !v.is_normal() {
        return None;
    }
    let e = ((v.to_bits() >> 23) & 0xff) as i32 + ((sb >> 23) & 0xff) as i32 - 127;
    if !(1..=254).contains(&e) {
        return None;
    }
    Some(f32::from_bits((v.to_bits() & 0x807f_ffff) | ((e as u32) << 23)))
}

/// How many elements of `q` dequantize exactly by an exponent add, of how many.
fn exponent_add_exact(q: &QuantizedMatrix) -> (usize, usize) {
    let decoded = q.codes.decode();
    let mut ok = 0;
    for r in 0..q.rows {
        for c in 0..q.cols {
            let (v, s) = (decoded[r * q.cols + c], q.scale_at(r, c));
            if exponent_add(v, s).is_some_and(|x| x.to_bits() == (v * s).to_bits()) {
                ok += 1;
            }
        }
    }
    (ok, q.rows * q.cols)
}

fn power_of_two_share(q: &QuantizedMatrix) -> f64 {
    let p2 = q.scales.iter().filter(|s| s.to_bits() & 0x007f_ffff == 0).count();
    p2 as f64 / q.scales.len().max(1) as f64
}

pub fn ue8m0_accuracy(m: usize, n: usize, k: usize, supported: f64, partly: f64) -> Result<Finding> {
    // Activations carry outlier channels, weights are plain Gaussian (as in an LLM layer).
    let a = random_matrix(m, k, SEED, Dist::HeavyTailed);
    let w = random_matrix(n, k, SEED + 1, Dist::Gaussian);
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let exact = gemm_f64(&to64(&a), &to64(&w), m, n, k);
    let mut rows = Vec::new();
    for scaling in [Scaling::DEEPSEEK, Scaling::DEEPSEEK_UE8M0] {
        let qa = QuantizedMatrix::quantize(&a, m, k, Format::E4M3, scaling, Role::Activations)?;
        let qw = QuantizedMatrix::quantize(&w, n, k, Format::E4M3, scaling, Role::Weights)?;
        let (da, dw) = (qa.dequantize_f64(), qw.dequantize_f64());
        let c = gemm_f64(&da, &dw, m, n, k);
        let (ea, ew, ec) = (rel_rms(&da, &to64(&a)), rel_rms(&dw, &to64(&w)), rel_rms(&c, &exact));
        let (ok_a, all_a) = exponent_add_exact(&qa);
        let (ok_w, all_w) = exponent_add_exact(&qw);
        let p2 = (power_of_two_share(&qa) + power_of_two_share(&qw)) / 2.0;
        rows.push((scaling, ea, ew, ec, ok_a + ok_w, all_a + all_w, p2));
    }
    let (f32s, ue) = (rows[0], rows[1]);
    debug_assert_eq!(ue.0.scale_format, ScaleFormat::Ue8m0Up);
    let ratio = ue.3 / f32s.3;
    let exact_add = ue.4 == ue.5;
    let verdict = if !exact_add { Verdict::NotSupported } else { Verdict::at_most(ratio, supported, partly) };
    let describe = |r: &(Scaling, f64, f64, f64, usize, usize, f64)| {
        format!(
            "{}: rel RMS error activations {}, weights {}, GEMM {}x{}x{} output {}; exponent add exact on {}/{} values; {}% of scales are powers of two",
            r.0,
            sig3(r.1),
            sig3(r.2),
            m,
            n,
            k,
            sig3(r.3),
            r.4,
            r.5,
            sig3(r.6 * 100.0)
        )
    };
    Ok(Finding::new(
        verdict,
        vec![describe(&f32s), describe(&ue), format!("UE8M0/f32-scale GEMM error ratio {}", sig3(ratio))],
        vec![FROM_CODECS.into()],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_add_matches_multiply_for_powers_of_two() {
        for v in [1.0f32, -3.5, 448.0, 0.001953125, 0.0] {
            for e in [-20i32, -1, 0, 3, 17] {
                let s = 2f32.powi(e);
                assert_eq!(exponent_add(v, s).map(f32::to_bits), Some((v * s).to_bits()), "{v} * 2^{e}");
            }
        }
        assert_eq!(exponent_add(1.0, 3.0), None);
        assert_eq!(exponent_add(f32::MAX, 4.0), None);
    }

    #[test]
    fn ue8m0_costs_some_accuracy_but_applies_by_exponent_add() {
        let f = ue8m0_accuracy(7, 33, 257, 2.0, 4.0).unwrap();
        assert_ne!(f.verdict, Verdict::NoData);
        assert!(f.numbers[1].contains("100% of scales are powers of two"), "{:?}", f.numbers);
        assert!(
            !f.numbers[0].contains("100% of scales"),
            "f32 scales are not powers of two: {:?}",
            f.numbers
        );
    }
}

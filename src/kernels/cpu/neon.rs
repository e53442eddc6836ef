//! aarch64 NEON kernels: the GEMM microkernel and the GEMV row kernel. All `unsafe` of the CPU
//! backend on aarch64 lives here.
//!
//! NEON (Advanced SIMD) is part of the aarch64 baseline, but each public function still checks
//! it (cached) and slice lengths before calling its body, like the x86 module. The portable
//! twins ([`super::gemm::portable_microkernel`], [`super::gemv::rows_portable`]) do the same
//! arithmetic and are tested to give the same bits (`fmla` is a fused multiply-add, as
//! `f32::mul_add` is).
//!
//! Decode (GEMV): 16 codes → four `float32x4_t`, no tables, value / raw_factor as on x86:
//! - f32: loads; bf16: widening shift left by 16 (`ushll`).
//! - f16: integer conversion (normals rebias the exponent; subnormals are mantissa × 2^-24,
//!   exact in f32; inf/NaN keep their payload), since Rust's f16 NEON intrinsics are not stable.
//! - E5M2 is the top byte of an f16 (widening shift left by 8), then the f16 conversion.
//! - E4M3: sign-extend, shift left 7, mask to `S.0EEEE.MMM0000000` = the f16 bits of
//!   `value · 2^-8`, NaN codes (S.1111.111) forced to an f16 NaN; then the f16 conversion.

use super::gemm::{NEON_MR, NEON_NR};
use super::gemv::{reduce16, Rows, LANES, ROWS};
use crate::formats::{Element, Format};
use std::arch::aarch64::*;

fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

// ---------------------------------------------------------------- decode

/// f16 bits (4 lanes) → f32, exactly.
#[inline(always)]
unsafe fn f16_to_f32(h: uint16x4_t) -> float32x4_t {
    unsafe {
        let w = vmovl_u16(h);
        let sign = vshlq_n_u32::<16>(vandq_u32(w, vdupq_n_u32(0x8000)));
        let mag = vandq_u32(w, vdupq_n_u32(0x7fff));
        let normal = vaddq_u32(vshlq_n_u32::<13>(mag), vdupq_n_u32(0x3800_0000));
        let sub = vreinterpretq_u32_f32(vmulq_f32(vcvtq_f32_u32(mag), vdupq_n_f32(1.0 / 16_777_216.0)));
        let special = vorrq_u32(vshlq_n_u32::<13>(mag), vdupq_n_u32(0x7f80_0000));
        let bits = vbslq_u32(
            vcltq_u32(mag, vdupq_n_u32(0x0400)),
            sub,
            vbslq_u32(vcgeq_u32(mag, vdupq_n_u32(0x7c00)), special, normal),
        );
        vreinterpretq_f32_u32(vorrq_u32(bits, sign))
    }
}

/// 8 codes at `p` as f16 bits (F16, E5M2, E4M3 only). `NAN`: whether an E4M3 code may be NaN
/// (without, the fix-up is skipped, as on x86: the rows were checked at prepare time).
#[inline(always)]
unsafe fn f16_bits8<E: Element, const NAN: bool>(p: *const E) -> uint16x8_t {
    unsafe {
        match E::FORMAT {
            Format::E5M2 => vshll_n_u8::<8>(vld1_u8(p.cast())),
            Format::E4M3 => {
                let sx = vreinterpretq_u16_s16(vmovl_s8(vld1_s8(p.cast())));
                let bits = vandq_u16(vshlq_n_u16::<7>(sx), vdupq_n_u16(0xBF80));
                if !NAN {
                    return bits;
                }
                let nan = vceqq_u16(vorrq_u16(bits, vdupq_n_u16(0x8000)), vdupq_n_u16(0xBF80));
                vorrq_u16(bits, nan)
            }
            _ => vld1q_u16(p.cast()),
        }
    }
}

/// 16 codes at `p` → 16 raw f32 lanes (value / raw_factor).
#[inline(always)]
unsafe fn load16<E: Element, const NAN: bool>(p: *const E) -> [float32x4_t; 4] {
    unsafe {
        match E::FORMAT {
            Format::F32 => std::array::from_fn(|q| vld1q_f32(p.cast::<f32>().add(4 * q))),
            Format::BF16 => {
                let (lo, hi) = (vld1q_u16(p.cast()), vld1q_u16(p.cast::<u16>().add(8)));
                [
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(lo))),
                    vreinterpretq_f32_u32(vshll_high_n_u16::<16>(lo)),
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(hi))),
                    vreinterpretq_f32_u32(vshll_high_n_u16::<16>(hi)),
                ]
            }
            _ => {
                let (lo, hi) = (f16_bits8::<E, NAN>(p), f16_bits8::<E, NAN>(p.add(8)));
                [
                    f16_to_f32(vget_low_u16(lo)),
                    f16_to_f32(vget_high_u16(lo)),
                    f16_to_f32(vget_low_u16(hi)),
                    f16_to_f32(vget_high_u16(hi)),
                ]
            }
        }
    }
}

#[cfg(test)]
/// Decode 16 codes with the NEON path into raw f32 values (for tests: every code).
pub(crate) fn decode16_raw<E: Element>(codes: &[E; 16]) -> [f32; 16] {
    assert!(has_neon());
    let mut out = [0f32; 16];
    // SAFETY: NEON checked; 16 codes readable, 16 floats writable.
    unsafe {
        for (q, v) in load16::<E, true>(codes.as_ptr()).into_iter().enumerate() {
            vst1q_f32(out.as_mut_ptr().add(4 * q), v);
        }
    }
    out
}

// ---------------------------------------------------------------- GEMV

/// The row kernel: per row 16 lanes of partial sums per scale segment, folded into the totals
/// with the segment's scale, then [`reduce16`] — the arithmetic of
/// [`super::gemv::rows_portable`].
pub(crate) fn gemv_rows_neon<E: Element>(
    rows: &Rows<E>,
    x: &[f32],
    seg: usize,
    factor: f32,
    out: &mut [f32],
) {
    assert!(has_neon());
    rows.check(x, seg, out);
    // SAFETY: NEON checked; every load reads 16 codes below `end ≤ k` of a row of ≥ k codes (the
    // tail goes through padded copies); the scale slices hold one scale per segment.
    unsafe {
        if rows.finite {
            rows_body::<E, false>(rows, x, seg, factor, out)
        } else {
            rows_body::<E, true>(rows, x, seg, factor, out)
        }
    }
}

#[inline(always)]
unsafe fn rows_body<E: Element, const NAN: bool>(
    rows: &Rows<E>,
    x: &[f32],
    seg: usize,
    factor: f32,
    out: &mut [f32],
) {
    let k = x.len();
    let zero = [0f32; 4];
    unsafe {
        let mut total = [[vld1q_f32(zero.as_ptr()); 4]; ROWS];
        let (mut start, mut s) = (0, 0);
        while start < k {
            let end = (start + seg).min(k);
            let mut part = [[vld1q_f32(zero.as_ptr()); 4]; ROWS];
            let mut c = start;
            while c < end {
                let full = c + LANES <= end;
                let xb;
                let wb;
                let (xp, wps): (*const f32, [*const E; ROWS]) = if full {
                    (x.as_ptr().add(c), std::array::from_fn(|r| rows.w[r].as_ptr().add(c)))
                } else {
                    let mut xs = [0f32; LANES];
                    xs[..end - c].copy_from_slice(&x[c..end]);
                    xb = xs;
                    wb = std::array::from_fn::<[E; LANES], ROWS, _>(|r| {
                        let mut b = [bytemuck::Zeroable::zeroed(); LANES];
                        b[..end - c].copy_from_slice(&rows.w[r][c..end]);
                        b
                    });
                    (xb.as_ptr(), std::array::from_fn(|r| wb[r].as_ptr()))
                };
                let xv: [float32x4_t; 4] = std::array::from_fn(|q| vld1q_f32(xp.add(4 * q)));
                for r in 0..ROWS {
                    let wv = load16::<E, NAN>(wps[r]);
                    for q in 0..4 {
                        part[r][q] = vfmaq_f32(part[r][q], wv[q], xv[q]);
                    }
                }
                c += LANES;
            }
            for r in 0..ROWS {
                let sf = vdupq_n_f32(rows.scales[r].get(s) * factor);
                for q in 0..4 {
                    total[r][q] = vfmaq_f32(total[r][q], part[r][q], sf);
                }
            }
            start = end;
            s += 1;
        }
        for (y, total) in out.iter_mut().zip(&total).take(rows.count) {
            let mut t = [0f32; LANES];
            for (q, v) in total.iter().enumerate() {
                vst1q_f32(t.as_mut_ptr().add(4 * q), *v);
            }
            *y = reduce16(&t);
        }
    }
}

// ---------------------------------------------------------------- GEMM microkernel

/// 6 × 16 tile: 24 q-register accumulators, A broadcast per row, four W vectors per K step;
/// then `c[r][col..col + 16] += acc[r]`.
pub(crate) fn microkernel_neon(kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize) {
    assert!(has_neon());
    assert!(a.len() >= kc * NEON_MR && b.len() >= kc * NEON_NR && c.len() >= NEON_MR);
    let rows: [*mut f32; NEON_MR] = std::array::from_fn(|r| {
        assert!(c[r].len() >= col + NEON_NR);
        c[r][col..].as_mut_ptr()
    });
    // SAFETY: NEON checked; panel lengths and the row ranges of C checked above.
    unsafe {
        let (mut ap, mut bp) = (a.as_ptr(), b.as_ptr());
        let zero = [0f32; 4];
        let mut acc = [[vld1q_f32(zero.as_ptr()); 4]; NEON_MR];
        for _ in 0..kc {
            let bv: [float32x4_t; 4] = std::array::from_fn(|q| vld1q_f32(bp.add(4 * q)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = vdupq_n_f32(*ap.add(r));
                for q in 0..4 {
                    acc[q] = vfmaq_f32(acc[q], av, bv[q]);
                }
            }
            ap = ap.add(NEON_MR);
            bp = bp.add(NEON_NR);
        }
        for (acc, &p) in acc.iter().zip(&rows) {
            for (q, acc) in acc.iter().enumerate() {
                vst1q_f32(p.add(4 * q), vaddq_f32(vld1q_f32(p.add(4 * q)), *acc));
            }
        }
    }
}

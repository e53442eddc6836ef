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
use super::gemv::{lanes16_rows, rows_simd, Lanes16, Rows, LANES};
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
    unsafe { Neon::store(load16::<E, true>(codes.as_ptr()), &mut out) };
    out
}

// ---------------------------------------------------------------- GEMV

/// NEON: 16 lanes in four q registers (no software prefetch: the row streams are left to the
/// hardware prefetcher).
pub(crate) struct Neon;

// SAFETY: every method runs only after `available()` (the row kernel checks it); the loads read
// 16 values at their pointer, as the trait requires of its callers.
unsafe impl Lanes16 for Neon {
    type Acc = [float32x4_t; 4];
    fn available() -> bool {
        has_neon()
    }
    #[inline(always)]
    unsafe fn zero() -> [float32x4_t; 4] {
        unsafe { [vdupq_n_f32(0.0); 4] }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> [float32x4_t; 4] {
        unsafe { [vdupq_n_f32(v); 4] }
    }
    #[inline(always)]
    unsafe fn load_x(p: *const f32) -> [float32x4_t; 4] {
        unsafe { std::array::from_fn(|q| vld1q_f32(p.add(4 * q))) }
    }
    #[inline(always)]
    unsafe fn load_w<E: Element, const NAN: bool, const INT: bool>(p: *const E) -> [float32x4_t; 4] {
        unsafe { load16::<E, NAN>(p) }
    }
    #[inline(always)]
    unsafe fn fma(a: [float32x4_t; 4], b: [float32x4_t; 4], c: [float32x4_t; 4]) -> [float32x4_t; 4] {
        unsafe { std::array::from_fn(|q| vfmaq_f32(c[q], a[q], b[q])) }
    }
    #[inline(always)]
    unsafe fn store(a: [float32x4_t; 4], out: &mut [f32; LANES]) {
        for (q, v) in a.into_iter().enumerate() {
            unsafe { vst1q_f32(out.as_mut_ptr().add(4 * q), v) }
        }
    }
    // NEON is the aarch64 baseline: no target features to enable.
    lanes16_rows!();
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

//! aarch64 FEAT_BF16: the dot-path vector layer on q registers (`BFDOT`, through inline assembly
//! since Rust's NEON BF16 intrinsics are unstable), behind run-time detection. The generic bodies
//! ([`super::dot::tile`], [`super::dot::rows`]) do the rest; the portable twin is
//! [`super::dot::Soft`]`<true>` (the pair sum and the accumulation rounded to odd, denormals
//! flushed, as the Arm ARM's `BFDotAdd` without FPCR.EBF), compared bit for bit under qemu.

use super::dot::DotVec;
use std::arch::aarch64::*;
use std::arch::asm;

/// 4 × 16 tiles: 16 q-register accumulators (BFDOT's latency needs about ten independent
/// chains), four W vectors and one broadcast per K-pair; a multiple of the twin's 4 × 16 tile.
const MR: usize = 4;
const NV: usize = 4;

pub(crate) fn has_bf16() -> bool {
    std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("bf16")
}

#[derive(Clone, Copy)]
pub(crate) struct Q(float32x4_t);

// SAFETY (every method, callers): run only inside `#[target_feature(enable = "neon,bf16")]`
// bodies, with pointers valid for 4 lanes.
impl DotVec for Q {
    const W: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Q(vdupq_n_f32(0.0))
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        unsafe { Q(vld1q_f32(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat(pair: u32) -> Self {
        Q(vreinterpretq_f32_u32(vdupq_n_u32(pair)))
    }
    #[inline(always)]
    unsafe fn dot(acc: Self, a: Self, b: Self) -> Self {
        let mut acc = acc.0;
        // SAFETY: register-only; the caller runs with FEAT_BF16.
        unsafe {
            asm!(
                ".arch_extension bf16",
                "bfdot {acc:v}.4s, {a:v}.8h, {b:v}.8h",
                acc = inout(vreg) acc,
                a = in(vreg) a.0,
                b = in(vreg) b.0,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        Q(acc)
    }
    #[inline(always)]
    unsafe fn loadf(p: *const f32) -> Self {
        unsafe { Q(vld1q_f32(p)) }
    }
    #[inline(always)]
    unsafe fn splatf(x: f32) -> Self {
        Q(vdupq_n_f32(x))
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Q(vmulq_f32(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Q(vfmaq_f32(c.0, a.0, b.0))
    }
    #[inline(always)]
    unsafe fn storef(p: *mut f32, v: Self) {
        unsafe { vst1q_f32(p, v.0) }
    }
    // Four lanes: the grouped order of the two-vector loads is the natural one.
    #[inline(always)]
    unsafe fn load_fp8_x2(p: *const u8, e4m3: bool) -> (Self, Self) {
        unsafe { (Self::load_fp8(p, e4m3), Self::load_fp8(p.add(8), e4m3)) }
    }
    #[inline(always)]
    unsafe fn load_pairs_x2(p: *const u32) -> (Self, Self) {
        unsafe { (Self::load(p), Self::load(p.add(4))) }
    }
}

crate::dot_kernels!(Q, MR, NV, has_bf16(), "neon,bf16");

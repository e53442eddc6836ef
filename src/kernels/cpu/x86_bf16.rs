//! x86-64 AVX512_BF16: the dot-path vector layer on zmm registers (`vdpbf16ps`), behind run-time
//! detection. The generic bodies ([`super::dot::tile`], [`super::dot::rows`]) do the rest; the
//! portable twin is [`super::dot::Soft`]`<false>`, which follows Intel's pseudo-code (odd pair
//! element first, RNE, denormals flushed) and is compared bit for bit where the CPU has the units.

use super::dot::DotVec;
use std::arch::x86_64::*;

/// 12 × 32 tiles: 24 zmm accumulators, two W vectors and one broadcast per K-pair.
const MR: usize = 12;
const NV: usize = 2;

pub(crate) fn has_avx512_bf16() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
}

#[derive(Clone, Copy)]
pub(crate) struct Zmm(__m512);

// SAFETY (every method, callers): run only inside `#[target_feature(enable =
// "avx512f,avx512bf16")]` bodies, with pointers valid for 16 lanes.
impl DotVec for Zmm {
    const W: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Zmm(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        unsafe { Zmm(_mm512_loadu_ps(p.cast())) }
    }
    #[inline(always)]
    unsafe fn splat(pair: u32) -> Self {
        Zmm(_mm512_castsi512_ps(_mm512_set1_epi32(pair as i32)))
    }
    #[inline(always)]
    unsafe fn dot(acc: Self, a: Self, b: Self) -> Self {
        // SAFETY: __m512 and __m512bh are both 512 bits of plain data.
        unsafe {
            let (a, b): (__m512bh, __m512bh) =
                (std::mem::transmute::<__m512, __m512bh>(a.0), std::mem::transmute::<__m512, __m512bh>(b.0));
            Zmm(_mm512_dpbf16_ps(acc.0, a, b))
        }
    }
    #[inline(always)]
    unsafe fn loadf(p: *const f32) -> Self {
        unsafe { Zmm(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn splatf(x: f32) -> Self {
        Zmm(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        Zmm(_mm512_mul_ps(a.0, b.0))
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Zmm(_mm512_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn storef(p: *mut f32, v: Self) {
        unsafe { _mm512_storeu_ps(p, v.0) }
    }
}

crate::dot_kernels!(Zmm, MR, NV, has_avx512_bf16(), "avx512f,avx512bf16");

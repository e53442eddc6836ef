//! The register-only FMA loop behind the compute-peak calibration, one kernel per instruction
//! set behind runtime detection (AVX-512F, AVX2+FMA, NEON) and a portable scalar loop.
//!
//! Each kernel runs `ACC` independent chains `acc = acc · x + y` (enough chains to cover the FMA
//! latency on every port), touching no memory, so the time is the FMA throughput alone. The
//! scalar twin computes exactly the same values with `f32::mul_add`, and a test checks every
//! SIMD kernel against it bit for bit.

/// Independent accumulator chains per kernel.
pub const ACC: usize = 12;
/// The multiplier and addend: the chains converge to y / (1 - x), so values stay finite.
const X: f32 = 0.999_999;
const Y: f32 = 1e-6;

/// Result of one loop: floating-point operations done and a checksum that keeps the work alive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FmaRun {
    pub flops: f64,
    pub checksum: f32,
}

fn init(j: usize) -> f32 {
    j as f32 * 0.01
}

/// The instruction set [`run`] uses on this machine.
pub fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        #[cfg(chipbench_avx512)]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return "neon";
        }
    }
    "scalar"
}

/// Run `iters` iterations of the FMA loop with the widest instruction set available.
pub fn run(iters: u64) -> FmaRun {
    match isa() {
        // SAFETY: each arm runs only when `isa()` detected the features the kernel enables.
        #[cfg(all(target_arch = "x86_64", chipbench_avx512))]
        "avx512f" => unsafe { x86::avx512(iters) },
        #[cfg(target_arch = "x86_64")]
        "avx2+fma" => unsafe { x86::avx2(iters) },
        #[cfg(target_arch = "aarch64")]
        "neon" => unsafe { arm::neon(iters) },
        _ => scalar(iters, 8, false),
    }
}

/// The portable loop over `lanes` lanes per chain. `fused` uses `mul_add` (the exact twin of the
/// SIMD kernels); unfused is the fallback that is fast without hardware FMA.
pub fn scalar(iters: u64, lanes: usize, fused: bool) -> FmaRun {
    let mut acc = vec![0f32; ACC * lanes];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = init(i / lanes);
    }
    let (x, y) = (std::hint::black_box(X), std::hint::black_box(Y));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = if fused { a.mul_add(x, y) } else { *a * x + y };
        }
    }
    FmaRun { flops: 2.0 * (iters as f64) * (ACC * lanes) as f64, checksum: acc.iter().sum() }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{init, FmaRun, ACC, X, Y};
    use std::arch::x86_64::*;

    macro_rules! fma_kernel {
        ($name:ident, $feat:literal, $lanes:expr, $vec:ty, $set1:ident, $fma:ident, $store:ident) => {
            #[target_feature(enable = $feat)]
            pub unsafe fn $name(iters: u64) -> FmaRun {
                let x = $set1(std::hint::black_box(X));
                let y = $set1(std::hint::black_box(Y));
                let mut acc: [$vec; ACC] = [$set1(0.0); ACC];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = $set1(init(j));
                }
                for _ in 0..iters {
                    for a in acc.iter_mut() {
                        *a = $fma(*a, x, y);
                    }
                }
                let mut lanes = [0f32; ACC * $lanes];
                for (j, a) in acc.iter().enumerate() {
                    $store(lanes.as_mut_ptr().add(j * $lanes), *a);
                }
                FmaRun { flops: 2.0 * (iters as f64) * (ACC * $lanes) as f64, checksum: lanes.iter().sum() }
            }
        };
    }

    fma_kernel!(avx2, "avx2,fma", 8, __m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
    #[cfg(chipbench_avx512)]
    fma_kernel!(avx512, "avx512f", 16, __m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps);
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{init, FmaRun, ACC, X, Y};
    use std::arch::aarch64::*;

    #[target_feature(enable = "neon")]
    pub unsafe fn neon(iters: u64) -> FmaRun {
        let x = vdupq_n_f32(std::hint::black_box(X));
        let y = vdupq_n_f32(std::hint::black_box(Y));
        let mut acc = [vdupq_n_f32(0.0); ACC];
        for (j, a) in acc.iter_mut().enumerate() {
            *a = vdupq_n_f32(init(j));
        }
        for _ in 0..iters {
            for a in acc.iter_mut() {
                // vfmaq_f32(a, b, c) = a + b·c
                *a = vfmaq_f32(y, *a, x);
            }
        }
        let mut lanes = [0f32; ACC * 4];
        for (j, a) in acc.iter().enumerate() {
            vst1q_f32(lanes.as_mut_ptr().add(j * 4), *a);
        }
        FmaRun { flops: 2.0 * (iters as f64) * (ACC * 4) as f64, checksum: lanes.iter().sum() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_kernels_match_the_scalar_twin() {
        let iters = 1000;
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                assert_eq!(unsafe { x86::avx2(iters) }, scalar(iters, 8, true));
            }
            #[cfg(chipbench_avx512)]
            if std::arch::is_x86_feature_detected!("avx512f") {
                assert_eq!(unsafe { x86::avx512(iters) }, scalar(iters, 16, true));
            }
        }
        #[cfg(target_arch = "aarch64")]
        assert_eq!(unsafe { arm::neon(iters) }, scalar(iters, 4, true));
        let r = run(iters);
        assert!(r.flops > 0.0 && r.checksum.is_finite() && r.checksum > 0.0, "{r:?} on {}", isa());
    }

    #[test]
    fn unfused_fallback_stays_close() {
        let (a, b) = (scalar(500, 8, true), scalar(500, 8, false));
        assert_eq!(a.flops, b.flops);
        assert!((a.checksum - b.checksum).abs() <= 1e-3 * a.checksum.abs(), "{a:?} {b:?}");
    }
}

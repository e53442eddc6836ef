//! Which instruction set the kernels use, chosen at run time.
//!
//! The crate is built for the baseline target (no `-C target-cpu=native`), so the fast paths are
//! compiled with `#[target_feature]` and picked here by feature detection. [`Isa::detect`] is the
//! only constructor of a SIMD variant that a backend uses without asking, so a SIMD kernel never
//! runs on a CPU that lacks its features; [`Isa::available`] lists what a test may compare.

use serde::Serialize;
use std::fmt;

/// A hint to fetch the cache line at `p` into L2 (x86-64; nothing elsewhere), the one every row
/// stream and the GEMM's next-block fetch use. It reads nothing and cannot fault, so `p` may lie
/// anywhere.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint (SSE, part of the x86-64 baseline).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An instruction-set level with its own microkernel and GEMV row kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Isa {
    /// x86-64 AVX-512F (plus AVX2/FMA/F16C, implied on every AVX-512 CPU).
    Avx512,
    /// x86-64 AVX2 + FMA + F16C (Haswell, Zen and later).
    Avx2,
    /// aarch64 Advanced SIMD (NEON), part of the aarch64 baseline.
    Neon,
    /// Plain Rust: the fallback for CPUs without the above, and the twin every SIMD kernel is
    /// tested against.
    Portable,
}

impl Isa {
    /// The best level this CPU supports (feature checks only: cheap enough for every call).
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if super::x86::has_avx512() {
                return Isa::Avx512;
            }
            if super::x86::has_avx2() {
                return Isa::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            return Isa::Neon;
        }
        Isa::Portable
    }

    /// Every level this CPU can run, best first (`Portable` is always last): the best one and
    /// every level below it on the same architecture.
    pub fn available() -> Vec<Isa> {
        match Self::detect() {
            Isa::Avx512 => vec![Isa::Avx512, Isa::Avx2, Isa::Portable],
            Isa::Avx2 => vec![Isa::Avx2, Isa::Portable],
            Isa::Neon => vec![Isa::Neon, Isa::Portable],
            Isa::Portable => vec![Isa::Portable],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2+fma",
            Isa::Neon => "neon",
            Isa::Portable => "portable",
        }
    }

    /// Microkernel tile: rows of A (broadcast) × columns of W (vector lanes).
    pub(crate) fn tile(self) -> (usize, usize) {
        match self {
            Isa::Avx512 => (super::gemm::AVX512_MR, super::gemm::AVX512_NR),
            Isa::Avx2 => (super::gemm::AVX2_MR, super::gemm::AVX2_NR),
            Isa::Neon => (super::gemm::NEON_MR, super::gemm::NEON_NR),
            Isa::Portable => (super::gemm::PORTABLE_MR, super::gemm::PORTABLE_NR),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

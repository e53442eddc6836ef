//! The inner loops of the read-bandwidth microbenchmark ([`super::read_bw`]): sum several equal
//! streams of f64 in blocks of 16 (128 bytes, two cache lines per stream per step), with
//! optional software prefetch. One body, written once in [`read_kernel!`], instantiated for
//! AVX2, AVX-512 and NEON; [`sum_portable`] is the safe twin the tests compare them with.
//!
//! The sums are not the point (they only keep the loads alive), but they are exact on small
//! integers, so a SIMD kernel that skipped or repeated a block shows up as a wrong sum.

/// 16 f64 = 128 bytes: what every kernel reads from each stream per step.
pub const BLOCK: usize = 16;

/// The instruction set of a read kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    Portable,
    Avx2,
    Avx512,
    Neon,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU runs the kernel.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The SIMD kernels this CPU runs, widest first.
    pub fn simd() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Neon].into_iter().filter(|i| i.available()).collect()
    }
}

/// Sum `parts` (all the same length) read as interleaved streams, prefetching `prefetch`
/// elements ahead in each stream (0: none; ignored on NEON, whose prefetch hint is not stable
/// in Rust). Panics if the parts differ in length or `isa` is not available.
pub fn sum_streams(isa: Isa, parts: &[&[f64]], prefetch: usize) -> f64 {
    let Some(first) = parts.first() else { return 0.0 };
    let len = first.len();
    assert!(parts.iter().all(|p| p.len() == len), "read streams of different lengths");
    assert!(isa.available(), "read kernel {} not available on this CPU", isa.name());
    let body = len / BLOCK * BLOCK;
    let head = match isa {
        Isa::Portable => sum_portable(parts, body),
        // SAFETY: the feature was detected above; every part holds at least `body` elements and
        // the kernels read only below `body` (prefetches use wrapping pointer arithmetic and
        // never dereference).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::sum_avx2(parts, body, prefetch) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::sum_avx512(parts, body, prefetch) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { arm::sum_neon(parts, body, prefetch) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("checked available above"),
    };
    head + parts.iter().map(|p| p[body..].iter().sum::<f64>()).sum::<f64>()
}

/// The portable twin: the same blocks and streams, 16 scalar accumulators (which the compiler
/// vectorises with the baseline ISA). Reads the first `len` elements of each part.
pub fn sum_portable(parts: &[&[f64]], len: usize) -> f64 {
    let mut acc = [0f64; BLOCK];
    for j in (0..len / BLOCK * BLOCK).step_by(BLOCK) {
        for p in parts {
            for (a, v) in acc.iter_mut().zip(&p[j..j + BLOCK]) {
                *a += v;
            }
        }
    }
    acc.iter().sum()
}

/// One read kernel: `$lanes` f64 per vector, `BLOCK / $lanes` accumulators.
macro_rules! read_kernel {
    ($name:ident, $feat:literal, $lanes:expr, $zero:expr, $load:path, $add:path, $store:path, $prefetch:path) => {
        #[target_feature(enable = $feat)]
        pub unsafe fn $name(parts: &[&[f64]], len: usize, prefetch: usize) -> f64 {
            const VECS: usize = super::BLOCK / $lanes;
            let mut acc = [$zero; VECS];
            let mut j = 0;
            while j + super::BLOCK <= len {
                for p in parts {
                    let ptr = p.as_ptr().add(j);
                    if prefetch > 0 {
                        $prefetch(ptr.wrapping_add(prefetch));
                        $prefetch(ptr.wrapping_add(prefetch + super::BLOCK / 2));
                    }
                    for (v, a) in acc.iter_mut().enumerate() {
                        *a = $add(*a, $load(ptr.add(v * $lanes)));
                    }
                }
                j += super::BLOCK;
            }
            let mut out = [0f64; super::BLOCK];
            for (v, a) in acc.iter().enumerate() {
                $store(out.as_mut_ptr().add(v * $lanes), *a);
            }
            out.iter().sum()
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn prefetch(p: *const f64) {
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
    }

    read_kernel!(
        sum_avx2,
        "avx2",
        4,
        _mm256_setzero_pd(),
        _mm256_loadu_pd,
        _mm256_add_pd,
        _mm256_storeu_pd,
        prefetch
    );
    read_kernel!(
        sum_avx512,
        "avx512f",
        8,
        _mm512_setzero_pd(),
        _mm512_loadu_pd,
        _mm512_add_pd,
        _mm512_storeu_pd,
        prefetch
    );
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    #[inline(always)]
    unsafe fn no_prefetch(_p: *const f64) {}

    read_kernel!(sum_neon, "neon", 2, vdupq_n_f64(0.0), vld1q_f64, vaddq_f64, vst1q_f64, no_prefetch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_kernels_match_the_portable_twin() {
        // Odd lengths: a tail after the blocks; small integers: every order sums exactly.
        for (streams, len) in [(1, 0), (1, 15), (1, 16), (2, 161), (4, 1000), (3, 517)] {
            let data: Vec<Vec<f64>> =
                (0..streams).map(|s| (0..len).map(|i| ((i * 7 + s * 13) % 101) as f64).collect()).collect();
            let parts: Vec<&[f64]> = data.iter().map(|v| v.as_slice()).collect();
            let exact: f64 = data.iter().flatten().sum();
            for prefetch in [0, 64, 4096] {
                assert_eq!(sum_streams(Isa::Portable, &parts, prefetch), exact, "{streams} {len}");
                for isa in Isa::simd() {
                    assert_eq!(
                        sum_streams(isa, &parts, prefetch),
                        exact,
                        "{isa:?} {streams}x{len} pf {prefetch}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "different lengths")]
    fn refuses_streams_of_different_lengths() {
        let (a, b) = (vec![1.0; 32], vec![1.0; 48]);
        sum_streams(Isa::Portable, &[&a, &b], 0);
    }
}

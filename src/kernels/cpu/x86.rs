//! x86-64 kernels: AVX-512F and AVX2+FMA+F16C. All `unsafe` of the CPU backend lives here.
//!
//! Each public function is safe: it checks (cached, one atomic load) that the CPU has the
//! features, checks slice lengths, then calls a `#[target_feature]` body. Their portable twins
//! ([`super::gemm::portable_microkernel`], [`super::gemv::rows_portable`],
//! [`super::pack::transpose_portable`]) do the same arithmetic and are tested to give the same bits.
//!
//! Decode (GEMV; GEMM decodes while packing): 16 codes → 16 f32 lanes, no tables.
//! - f32: a load; bf16: zero-extend to 32 bits and shift left 16; f16: `vcvtph2ps` (F16C).
//! - E5M2 is the top byte of an f16: zero-extend to 16 bits, shift left 8, `vcvtph2ps`.
//! - E4M3: sign-extend to 16 bits, shift left 7, mask to `S.0EEEE.MMM0000000`: that f16 is
//!   exactly `value · 2^-8`, subnormals included (the caller folds 2^8 into the scale). The NaN
//!   codes (S.1111.111) would read as ±1.875; a compare turns them into f16 NaN. When the
//!   weights hold no NaN code (checked once at prepare time) the GEMV skips that fix-up: three
//!   of eight vector ops per 16 weights, +40 % E4M3 GEMV rate on one Zen 4 core.

use super::gemm::{AVX2_MR, AVX2_NR, AVX512_MR, AVX512_NR};
#[cfg(doc)]
use super::gemv::FP8_PRESCALE;
use super::gemv::{lanes16_rows, rows_simd, Lanes16, Rows, LANES};
use crate::formats::{Element, Format};
use std::arch::x86_64::*;

pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

pub(crate) fn has_avx512() -> bool {
    has_avx2() && is_x86_feature_detected!("avx512f")
}

// ---------------------------------------------------------------- packing transpose

/// `out[p * width + r] = src[r * ld + p]` for `r < rows`, `p < kc` (the GEMM packing transpose;
/// rows of `out` past `rows` are left alone): 16 × 16 blocks transposed in registers (masked
/// stores for a block of fewer than 16 rows), the last `kc % 16` columns by the portable twin.
pub(crate) fn transpose_avx512(
    src: &[f32],
    ld: usize,
    rows: usize,
    kc: usize,
    width: usize,
    out: &mut [f32],
) {
    assert!(has_avx512());
    assert!(rows <= width && kc <= ld && out.len() >= kc * width);
    assert!(rows == 0 || src.len() >= (rows - 1) * ld + kc);
    let kc16 = kc - kc % 16;
    for r0 in (0..rows).step_by(16) {
        let h = (rows - r0).min(16);
        for p0 in (0..kc16).step_by(16) {
            // SAFETY: features checked; rows r0..r0+h of src hold columns p0..p0+16 (p0 + 16 ≤
            // kc ≤ ld, r0 + h ≤ rows), and out rows p0..p0+16 hold columns r0..r0+h (r0 + h ≤ width).
            unsafe {
                transpose16_avx512(
                    src.as_ptr().add(r0 * ld + p0),
                    ld,
                    h,
                    out.as_mut_ptr().add(p0 * width + r0),
                    width,
                )
            };
        }
    }
    super::pack::transpose_portable(src, ld, rows, kc, width, out, kc16);
}

/// Transpose the `h × 16` block at `src` (row stride `kc`) into the `16 × h` block at `dst` (row
/// stride `width`): the classic unpack / shuffle / 128-bit-lane shuffle network.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16_avx512(src: *const f32, kc: usize, h: usize, dst: *mut f32, width: usize) {
    unsafe {
        let r: [__m512; 16] =
            std::array::from_fn(
                |j| if j < h { _mm512_loadu_ps(src.add(j * kc)) } else { _mm512_setzero_ps() },
            );
        // Pairs of rows interleaved within each 128-bit lane.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        // u[4q + j], lane l: column 4l + j of rows 4q..4q+4.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (q, j) = (i / 4, i % 4);
            let (a, b) = (t[4 * q + j / 2], t[4 * q + 2 + j / 2]);
            if j % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(a, b)
            } else {
                _mm512_shuffle_ps::<0xEE>(a, b)
            }
        });
        // v[8h' + 4s + j]: lanes (s = 0: 0 and 2; s = 1: 1 and 3) of u[8h' + j] and u[8h' + 4 + j].
        let v: [__m512; 16] = std::array::from_fn(|i| {
            let (half, s, j) = (i / 8, (i / 4) % 2, i % 4);
            let (a, b) = (u[8 * half + j], u[8 * half + 4 + j]);
            if s == 0 {
                _mm512_shuffle_f32x4::<0x88>(a, b)
            } else {
                _mm512_shuffle_f32x4::<0xDD>(a, b)
            }
        });
        let mask: __mmask16 = ((1u32 << h) - 1) as __mmask16;
        for j in 0..4 {
            for s in 0..2 {
                let (a, b) = (v[4 * s + j], v[8 + 4 * s + j]);
                // Column 4s + j from lanes 0 and 2, column 8 + 4s + j from lanes 1 and 3.
                _mm512_mask_storeu_ps(dst.add((4 * s + j) * width), mask, _mm512_shuffle_f32x4::<0x88>(a, b));
                _mm512_mask_storeu_ps(
                    dst.add((8 + 4 * s + j) * width),
                    mask,
                    _mm512_shuffle_f32x4::<0xDD>(a, b),
                );
            }
        }
    }
}

/// `out[p * width + r] = src[r * ld + p]` as [`transpose_avx512`] does, on AVX2: 8 × 8 blocks
/// transposed in registers (masked stores for a block of fewer than 8 rows), the last `kc % 8`
/// columns by the portable twin. On a CPU without AVX-512 this is most of what packing W costs
/// when the GEMM has few rows (a scalar transpose took two thirds of an 18 × 2048 × 7168 GEMM).
pub(crate) fn transpose_avx2(src: &[f32], ld: usize, rows: usize, kc: usize, width: usize, out: &mut [f32]) {
    assert!(has_avx2());
    assert!(rows <= width && kc <= ld && out.len() >= kc * width);
    assert!(rows == 0 || src.len() >= (rows - 1) * ld + kc);
    let kc8 = kc - kc % 8;
    for r0 in (0..rows).step_by(8) {
        let h = (rows - r0).min(8);
        for p0 in (0..kc8).step_by(8) {
            // SAFETY: features checked; rows r0..r0+h of src hold columns p0..p0+8 (p0 + 8 ≤
            // kc ≤ ld, r0 + h ≤ rows), and out rows p0..p0+8 hold columns r0..r0+h (r0 + h ≤ width).
            unsafe {
                transpose8_avx2(
                    src.as_ptr().add(r0 * ld + p0),
                    ld,
                    h,
                    out.as_mut_ptr().add(p0 * width + r0),
                    width,
                )
            };
        }
    }
    super::pack::transpose_portable(src, ld, rows, kc, width, out, kc8);
}

/// Transpose the `h × 8` block at `src` (row stride `ld`) into the `8 × h` block at `dst` (row
/// stride `width`): unpack, shuffle, then swap 128-bit halves.
#[target_feature(enable = "avx2")]
unsafe fn transpose8_avx2(src: *const f32, ld: usize, h: usize, dst: *mut f32, width: usize) {
    unsafe {
        let r: [__m256; 8] =
            std::array::from_fn(
                |j| if j < h { _mm256_loadu_ps(src.add(j * ld)) } else { _mm256_setzero_ps() },
            );
        // t[2q], t[2q + 1]: rows 2q and 2q + 1 interleaved (low / high pairs of each 128-bit lane).
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (a, b) = (r[2 * (i / 2)], r[2 * (i / 2) + 1]);
            if i % 2 == 0 {
                _mm256_unpacklo_ps(a, b)
            } else {
                _mm256_unpackhi_ps(a, b)
            }
        });
        // u[4q + j], 128-bit lane l: column 4l + j of rows 4q..4q+4.
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (q, j) = (i / 4, i % 4);
            let (a, b) = (t[4 * q + j / 2], t[4 * q + 2 + j / 2]);
            if j % 2 == 0 {
                _mm256_shuffle_ps::<0x44>(a, b)
            } else {
                _mm256_shuffle_ps::<0xEE>(a, b)
            }
        });
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(h as i32), lanes);
        for j in 0..4 {
            // Column j from the low halves, column 4 + j from the high halves.
            let lo = _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j]);
            let hi = _mm256_permute2f128_ps::<0x31>(u[j], u[4 + j]);
            if h == 8 {
                _mm256_storeu_ps(dst.add(j * width), lo);
                _mm256_storeu_ps(dst.add((4 + j) * width), hi);
            } else {
                _mm256_maskstore_ps(dst.add(j * width), mask, lo);
                _mm256_maskstore_ps(dst.add((4 + j) * width), mask, hi);
            }
        }
    }
}

// ---------------------------------------------------------------- decode (16 codes → f16 bits)

/// E4M3 codes (16 bytes) → f16 bits of `value · 2^-8`.
#[target_feature(enable = "avx2")]
fn e4m3_f16_bits(codes: __m128i) -> __m256i {
    let sx = _mm256_cvtepi8_epi16(codes);
    let bits = _mm256_and_si256(_mm256_slli_epi16::<7>(sx), _mm256_set1_epi16(0xBF80u16 as i16));
    // NaN codes: magnitude bits all ones (0x3F80 here); OR-ing all ones makes an f16 NaN.
    let nan = _mm256_cmpeq_epi16(
        _mm256_or_si256(bits, _mm256_set1_epi16(0x8000u16 as i16)),
        _mm256_set1_epi16(0xBF80u16 as i16),
    );
    _mm256_or_si256(bits, nan)
}

/// E4M3 codes known not to be NaN → f16 bits of `value · 2^-8` (no NaN fix-up: 2 ops fewer).
#[target_feature(enable = "avx2")]
fn e4m3_f16_bits_finite(codes: __m128i) -> __m256i {
    let sx = _mm256_cvtepi8_epi16(codes);
    _mm256_and_si256(_mm256_slli_epi16::<7>(sx), _mm256_set1_epi16(0xBF80u16 as i16))
}

/// 16 codes at `p` as f16 bits (E5M2, E4M3, F16 only). `NAN`: whether an E4M3 code may be NaN.
#[target_feature(enable = "avx2")]
unsafe fn f16_bits<E: Element, const NAN: bool>(p: *const E) -> __m256i {
    // SAFETY (callers): `p` points at 16 readable codes.
    unsafe {
        match E::FORMAT {
            Format::E5M2 => _mm256_slli_epi16::<8>(_mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast()))),
            Format::E4M3 if NAN => e4m3_f16_bits(_mm_loadu_si128(p.cast())),
            Format::E4M3 => e4m3_f16_bits_finite(_mm_loadu_si128(p.cast())),
            _ => _mm256_loadu_si256(p.cast()),
        }
    }
}

/// 16 codes at `p` → 16 raw f32 lanes (value / raw_factor).
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn load16_avx512<E: Element, const NAN: bool>(p: *const E) -> __m512 {
    unsafe {
        match E::FORMAT {
            Format::F32 => _mm512_loadu_ps(p.cast()),
            Format::BF16 => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                _mm256_loadu_si256(p.cast()),
            ))),
            _ => _mm512_cvtph_ps(f16_bits::<E, NAN>(p)),
        }
    }
}

/// 16 finite FP8 codes at `p` → lanes 0..8 and 8..16 of `value · 2^-120` (E4M3, `SHR` 4) or
/// `value · 2^-112` (E5M2, `SHR` 3): each code moved onto the top byte of its dword by an in-lane
/// byte shuffle of the 16 codes broadcast to both halves, then shifted right arithmetically so its
/// exponent and mantissa bits land on the f32's low exponent and top mantissa bits, and masked to
/// those bits and the sign (bit 31). Exact for every finite code (subnormal codes become f32
/// subnormals). The shuffle replaced a sign extension of 8 codes to dwords (`vpmovsxbd`): on Zen 3
/// the cold-weights E4M3 GEMV went from 9.3-10.1 to 12.5-13.0 Gweights/s (2 threads, three
/// interleaved pairs).
#[target_feature(enable = "avx2")]
unsafe fn fp8_int<const SHR: i32>(p: *const u8) -> [__m256; 2] {
    let mask = _mm256_set1_epi32((0x8000_0000u32 | (0x7Fu32 << (24 - SHR))) as i32);
    // byte 3 of dword i takes code i (low 128 bits: codes 0..4 / 8..12, high: 4..8 / 12..16).
    let z = -128i8;
    let lo = _mm256_setr_epi8(
        z, z, z, 0, z, z, z, 1, z, z, z, 2, z, z, z, 3, z, z, z, 4, z, z, z, 5, z, z, z, 6, z, z, z, 7,
    );
    let hi = _mm256_setr_epi8(
        z, z, z, 8, z, z, z, 9, z, z, z, 10, z, z, z, 11, z, z, z, 12, z, z, z, 13, z, z, z, 14, z, z, z, 15,
    );
    // SAFETY (callers): `p` points at 16 readable codes.
    unsafe {
        let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
        let f = |m| {
            _mm256_castsi256_ps(_mm256_and_si256(_mm256_srai_epi32::<SHR>(_mm256_shuffle_epi8(v, m)), mask))
        };
        [f(lo), f(hi)]
    }
}

/// 16 codes at `p` → lanes 0..8 and 8..16. `INT` (FP8 with finite codes only): the integer
/// decode [`fp8_int`], for activations pre-scaled by 2^[`FP8_PRESCALE`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load16_avx2<E: Element, const NAN: bool, const INT: bool>(p: *const E) -> [__m256; 2] {
    unsafe {
        match (INT, E::FORMAT) {
            (true, Format::E4M3) => return fp8_int::<4>(p.cast()),
            (true, Format::E5M2) => return fp8_int::<3>(p.cast()),
            _ => {}
        }
        match E::FORMAT {
            Format::F32 => [_mm256_loadu_ps(p.cast()), _mm256_loadu_ps(p.cast::<f32>().add(8))],
            Format::BF16 => {
                let h = _mm256_loadu_si256(p.cast());
                let lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(h));
                let hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(h));
                [
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lo)),
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(hi)),
                ]
            }
            _ => {
                let h = f16_bits::<E, NAN>(p);
                [
                    _mm256_cvtph_ps(_mm256_castsi256_si128(h)),
                    _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h)),
                ]
            }
        }
    }
}

#[cfg(test)]
/// Decode 16 codes with the SIMD path of `isa` into raw f32 values (for tests: every code).
/// `finite`: take the E4M3 path without the NaN fix-up (only for codes that are not NaN).
pub(crate) fn decode16_raw<E: Element>(avx512: bool, finite: bool, codes: &[E; 16]) -> [f32; 16] {
    let mut out = [0f32; 16];
    if avx512 {
        assert!(has_avx512());
        // SAFETY: features checked; 16 codes readable, 16 floats writable.
        unsafe {
            let v = if finite {
                load16_avx512::<E, false>(codes.as_ptr())
            } else {
                load16_avx512::<E, true>(codes.as_ptr())
            };
            Avx512::store(v, &mut out)
        };
    } else {
        assert!(has_avx2());
        unsafe {
            let v = if finite {
                load16_avx2::<E, false, false>(codes.as_ptr())
            } else {
                load16_avx2::<E, true, false>(codes.as_ptr())
            };
            Avx2::store(v, &mut out)
        };
    }
    out
}

#[cfg(test)]
/// The AVX2 integer FP8 decode of 16 codes (`value · 2^-120` for E4M3, `value · 2^-112` for
/// E5M2; for tests: every finite code).
pub(crate) fn decode16_fp8_int<E: Element>(codes: &[E; 16]) -> [f32; 16] {
    assert!(has_avx2() && E::FORMAT.is_fp8());
    let mut out = [0f32; 16];
    // SAFETY: AVX2 checked; 16 codes readable, 16 floats writable.
    unsafe { Avx2::store(load16_avx2::<E, false, true>(codes.as_ptr()), &mut out) };
    out
}

// ---------------------------------------------------------------- GEMV rows
/// How far ahead (bytes) each row stream is prefetched, the same for every code width: 2 KiB
/// into L2 (see [`prefetch_rows`]). History: with prefetches into L1, 512 B suited 1-byte codes
/// and 256 B wider ones (Zen 3/Zen 4 measurements, docs/cpu.md); into L2, 2 KiB beat both on
/// Zen 4 (2 threads, cold weights, alternated four times): E5M2 GEMV 8192² +22 %, E4M3 rows
/// 16384×8192 +8-15 %, k = 2048 +40 %, k = 512 +40 %, BF16 +10 %, F32 within noise.
const PREFETCH_BYTES: usize = 2048;

/// Prefetch every row [`PREFETCH_BYTES`] ahead of code `c`. Past the end of a row the stream
/// continues in the same row of the next group (`rows.len() · k` codes further: the caller's rows
/// are consecutive rows of W, taken `rows.len()` at a time), which the hardware prefetcher would
/// only find after a few misses.
/// A prefetch never faults, so the address may lie past the matrix (`wrapping_add`, not read).
/// The hint is T1 (into L2, not L1): an L1 prefetch holds one of the core's few L1 miss buffers
/// until its line arrives, so prefetching far ahead into L1 throttles the loads that need data
/// now; L2 tracks more misses, and the L1 misses on lines already in L2 cost little.
#[inline(always)]
fn prefetch_rows<E>(rows: &[&[E]], k: usize, c: usize) {
    let ahead = c + PREFETCH_BYTES / std::mem::size_of::<E>();
    let skip = if ahead < k { ahead } else { rows.len() * k + ahead - k };
    for w in rows {
        super::isa::prefetch(w.as_ptr().wrapping_add(skip).cast());
    }
}

/// AVX-512F: 16 lanes in one zmm.
pub(crate) struct Avx512;

// SAFETY: every method runs only after `available()` (the row kernel checks it); the loads read
// 16 values at their pointer, as the trait requires of its callers.
unsafe impl Lanes16 for Avx512 {
    /// 32 zmm registers: 16 accumulators and 8 operands (measured: docs/cpu.md, "Skinny
    /// f32-path products").
    const TILES_4X4: bool = true;
    type Acc = __m512;
    fn available() -> bool {
        has_avx512()
    }
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    unsafe fn load_x(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_w<E: Element, const NAN: bool, const INT: bool>(p: *const E) -> __m512 {
        unsafe { load16_avx512::<E, NAN>(p) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(a: __m512, out: &mut [f32; LANES]) {
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), a) }
    }
    #[inline(always)]
    unsafe fn prefetch_rows<E>(w: &[&[E]], k: usize, c: usize) {
        prefetch_rows(w, k, c)
    }
    lanes16_rows!("avx512f,avx2,fma,f16c");
}

/// AVX2+FMA+F16C: 16 lanes in two ymm (lanes 0..8, 8..16), and the integer FP8 decode.
pub(crate) struct Avx2;

// SAFETY: as for `Avx512`.
unsafe impl Lanes16 for Avx2 {
    type Acc = [__m256; 2];
    fn available() -> bool {
        has_avx2()
    }
    #[inline(always)]
    unsafe fn zero() -> [__m256; 2] {
        unsafe { [_mm256_setzero_ps(); 2] }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> [__m256; 2] {
        unsafe { [_mm256_set1_ps(v); 2] }
    }
    #[inline(always)]
    unsafe fn load_x(p: *const f32) -> [__m256; 2] {
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
    }
    #[inline(always)]
    unsafe fn load_w<E: Element, const NAN: bool, const INT: bool>(p: *const E) -> [__m256; 2] {
        unsafe { load16_avx2::<E, NAN, INT>(p) }
    }
    #[inline(always)]
    unsafe fn fma(a: [__m256; 2], b: [__m256; 2], c: [__m256; 2]) -> [__m256; 2] {
        unsafe { [_mm256_fmadd_ps(a[0], b[0], c[0]), _mm256_fmadd_ps(a[1], b[1], c[1])] }
    }
    #[inline(always)]
    unsafe fn store(a: [__m256; 2], out: &mut [f32; LANES]) {
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), a[0]);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), a[1]);
        }
    }
    #[inline(always)]
    unsafe fn prefetch_rows<E>(w: &[&[E]], k: usize, c: usize) {
        prefetch_rows(w, k, c)
    }
    lanes16_rows!("avx2,fma,f16c");
}

// ---------------------------------------------------------------- GEMM microkernels

/// The row pointers of the `mr × nr` block of C at column `col` (lengths checked).
fn tile_rows<const MR: usize>(c: &mut [&mut [f32]], col: usize, nr: usize) -> [*mut f32; MR] {
    assert!(c.len() >= MR);
    std::array::from_fn(|r| {
        let row = &mut c[r];
        assert!(row.len() >= col + nr);
        row[col..].as_mut_ptr()
    })
}

fn check_panels(kc: usize, a: &[f32], b: &[f32], mr: usize, nr: usize) {
    assert!(a.len() >= kc * mr && b.len() >= kc * nr);
}

/// 12 × 32 tile: 24 zmm accumulators, A broadcast, two W vectors per K step; then
/// `c[r][col..col + 32] += acc[r]`.
pub(crate) fn microkernel_avx512(kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize) {
    assert!(has_avx512());
    check_panels(kc, a, b, AVX512_MR, AVX512_NR);
    let rows = tile_rows::<AVX512_MR>(c, col, AVX512_NR);
    // SAFETY: features checked; panel lengths and the 12 row ranges of C checked above.
    unsafe { microkernel_avx512_body(kc, a.as_ptr(), b.as_ptr(), rows) }
}

#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn microkernel_avx512_body(kc: usize, a: *const f32, b: *const f32, c: [*mut f32; AVX512_MR]) {
    // SAFETY (caller): as for `tile_body`.
    unsafe { tile_body::<AVX512_MR, { AVX512_NR / 16 }>(kc, a, b, c) }
}

/// `MR × 16·NV` tile: `MR · NV` zmm accumulators, one broadcast of A per row and NV vectors of W
/// per K step; then `c[r][..16·NV] += acc[r]`.
#[inline(always)]
unsafe fn tile_body<const MR: usize, const NV: usize>(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: [*mut f32; MR],
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    unsafe {
        for _ in 0..kc {
            let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(16 * v)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(r));
                for v in 0..NV {
                    acc[v] = _mm512_fmadd_ps(av, bv[v], acc[v]);
                }
            }
            a = a.add(MR);
            b = b.add(16 * NV);
        }
        for (acc, &p) in acc.iter().zip(&c) {
            for (v, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(p.add(16 * v), _mm512_add_ps(_mm512_loadu_ps(p.add(16 * v)), *acc));
            }
        }
    }
}

/// 6 × 16 tile: 12 ymm accumulators; then `c[r][col..col + 16] += acc[r]`.
pub(crate) fn microkernel_avx2(kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize) {
    assert!(has_avx2());
    check_panels(kc, a, b, AVX2_MR, AVX2_NR);
    let rows = tile_rows::<AVX2_MR>(c, col, AVX2_NR);
    // SAFETY: features checked; panel lengths and the 6 row ranges of C checked above.
    unsafe { microkernel_avx2_body(kc, a.as_ptr(), b.as_ptr(), rows) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn microkernel_avx2_body(kc: usize, mut a: *const f32, mut b: *const f32, c: [*mut f32; AVX2_MR]) {
    const MR: usize = AVX2_MR;
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    unsafe {
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*a.add(r));
                acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
            }
            a = a.add(MR);
            b = b.add(AVX2_NR);
        }
        for (acc, &p) in acc.iter().zip(&c) {
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), acc[0]));
            _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), acc[1]));
        }
    }
}

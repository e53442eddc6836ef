//! x86-64 AVX512_BF16: the dot-path vector layer on zmm registers (`vdpbf16ps`), behind run-time
//! detection. The generic bodies ([`super::dot::tile`], [`super::dot::rows`]) do the rest; the
//! portable twin is [`super::dot::Soft`]`<false>`, which follows Intel's pseudo-code (odd pair
//! element first, RNE, denormals flushed) and is compared bit for bit where the CPU has the units.

use super::dot::{DotVec, LANES};
use std::arch::x86_64::*;

/// 12 × 32 tiles: 24 zmm accumulators, two W vectors and one broadcast per K-pair.
const MR: usize = 12;
const NV: usize = 2;

/// AVX512_BF16 with the AVX-512 base the unit's kernels use (F, and BW for the FP8 conversion;
/// every CPU with AVX512_BF16 has both).
pub(crate) fn has_avx512_bf16() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512bf16")
}

/// [`has_avx512_bf16`] and AVX512_VBMI (Zen 4, Sapphire Rapids and later; not Cooper Lake): FP8
/// codes then convert to BF16 by table lookup ([`fp8_vbmi`]).
pub(crate) fn has_vbmi() -> bool {
    has_avx512_bf16() && is_x86_feature_detected!("avx512vbmi")
}

/// The unit's kernels: the table-lookup FP8 conversion where the CPU has AVX512_VBMI, else the
/// integer one. The same arithmetic either way (both conversions are exact).
pub(crate) fn kernels() -> super::dot::Kernels {
    if has_vbmi() {
        vbmi::KERNELS
    } else {
        KERNELS
    }
}

/// 16 f32 lanes or 16 K-pairs; `VBMI`: FP8 codes convert through [`fp8_vbmi`].
#[derive(Clone, Copy)]
pub(crate) struct Zmm<const VBMI: bool>(__m512);

// SAFETY (every method, callers): run only inside `#[target_feature(enable =
// "avx512f,avx512bw,avx512bf16")]` bodies (plus "avx512vbmi" when `VBMI`), with pointers valid
// for 16 lanes.
impl<const VBMI: bool> DotVec for Zmm<VBMI> {
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
    #[inline(always)]
    unsafe fn reduce(t: &[f32; LANES]) -> f32 {
        // SAFETY (caller): AVX-512F present; `t` holds 16 floats. The tree of `reduce16`: lanes
        // l + 8 onto l (256-bit halves), l + 4 onto l (128-bit halves), then (0 + 2, 1 + 3), then
        // the two.
        unsafe {
            let v = _mm512_loadu_ps(t.as_ptr());
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            let h = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
            let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let p = _mm_add_ps(q, _mm_movehl_ps(q, q));
            _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)))
        }
    }
    #[inline(always)]
    fn prefetch(p: *const u8) {
        // Into L2, as the f32 row kernel's (`x86::prefetch_rows` says why).
        super::isa::prefetch(p)
    }
    #[inline(always)]
    unsafe fn load_fp8(p: *const u8, e4m3: bool) -> Self {
        // SAFETY (caller): 32 codes readable at `p`; the body has AVX512BW (see `fp8_pairs`),
        // and AVX512_VBMI when `VBMI`.
        unsafe {
            Zmm(_mm512_castsi512_ps(match (VBMI, e4m3) {
                (true, _) => fp8_vbmi(p, e4m3),
                (false, true) => fp8_zmm::<true>(p),
                (false, false) => fp8_zmm::<false>(p),
            }))
        }
    }
    #[inline(always)]
    unsafe fn load_fp8_x2(p: *const u8, e4m3: bool) -> (Self, Self) {
        // SAFETY (caller): 64 codes readable at `p`; features as for `load_fp8`.
        unsafe {
            let (a, b) = if VBMI {
                fp8_vbmi_x2(p, e4m3)
            } else {
                let (a, b) = (Self::load_fp8(p, e4m3), Self::load_fp8(p.add(32), e4m3));
                split_groups(_mm512_castps_si512(a.0), _mm512_castps_si512(b.0))
            };
            (Zmm(_mm512_castsi512_ps(a)), Zmm(_mm512_castsi512_ps(b)))
        }
    }
    #[inline(always)]
    unsafe fn load_pairs_x2(p: *const u32) -> (Self, Self) {
        // SAFETY (caller): 32 pairs readable at `p`.
        unsafe {
            let (a, b) = split_groups(_mm512_loadu_si512(p.cast()), _mm512_loadu_si512(p.add(16).cast()));
            (Zmm(_mm512_castsi512_ps(a)), Zmm(_mm512_castsi512_ps(b)))
        }
    }
}

/// Pairs 0–15 in `a` and 16–31 in `b` regrouped as [`DotVec::load_fp8_x2`] lays them out: the
/// even 128-bit groups of four pairs (0–3, 8–11, 16–19, 24–27) and the odd ones.
#[inline(always)]
unsafe fn split_groups(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    (_mm512_shuffle_i64x2::<0b10_00_10_00>(a, b), _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b))
}

/// The low and the high byte of the BF16 bits of each byte's FP8 magnitude (its low 7 bits;
/// E4M3 when `e4m3`, else E5M2), looked up for all 64 bytes by two `vpermi2b` on the 128-entry
/// tables; the sign is the caller's.
///
/// # Safety
/// AVX512F, AVX512BW and AVX512_VBMI present (the caller's features).
#[inline(always)]
unsafe fn bf16_bytes(codes: __m512i, e4m3: bool) -> (__m512i, __m512i) {
    use super::dot::FP8_BF16_BYTES;
    let t = &FP8_BF16_BYTES[if e4m3 { 0 } else { 1 }];
    // SAFETY: each table half holds 64 bytes; features as the caller's.
    unsafe {
        let table = |h: usize, half: usize| _mm512_loadu_si512(t[h][64 * half..].as_ptr().cast());
        (
            _mm512_permutex2var_epi8(table(0, 0), codes, table(0, 1)),
            _mm512_permutex2var_epi8(table(1, 0), codes, table(1, 1)),
        )
    }
}

/// The 64 FP8 codes at `p` (E4M3 when `e4m3`, else E5M2) as 64 BF16 words in the order of
/// [`DotVec::load_fp8_x2`]: the low and the high byte of every code's BF16 bits looked up at once
/// for all 64 (two `vpermi2b` on the 128-entry tables), the sign put in the high bytes, and the
/// two byte vectors interleaved into words (`vpunpcklbw` / `vpunpckhbw`, which work within each
/// 128-bit lane: codes 16L..16L+7 go to the first result, 16L+8..16L+15 to the second). Four
/// shuffles for 64 codes where [`fp8_vbmi`] takes six; exact for every code.
///
/// # Safety
/// AVX512F, AVX512BW and AVX512_VBMI present (the caller's features); 64 codes readable at `p`.
#[inline(always)]
unsafe fn fp8_vbmi_x2(p: *const u8, e4m3: bool) -> (__m512i, __m512i) {
    unsafe {
        let codes = _mm512_loadu_si512(p.cast());
        let (lo, hi) = bf16_bytes(codes, e4m3);
        // hi | (codes & 0x80): the sign bit of each code into its high byte.
        let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, codes, _mm512_set1_epi8(0x80u8 as i8));
        (_mm512_unpacklo_epi8(lo, hi), _mm512_unpackhi_epi8(lo, hi))
    }
}

/// FP8 codes (E4M3 when `e4m3`, else E5M2) to K-pairs of BF16, 32 codes at a time: as many as
/// the CPU can take (AVX512_BF16 and AVX512BW) in whole groups of 32; returns how many it
/// converted (0 without the features). Exact: E4M3 by integer arithmetic ([`e4m3_zmm`]); E5M2
/// as the top byte of an f16, widened to f32 (`vcvtph2ps`, exact for every f16) and narrowed to
/// BF16 (`vcvtne2ps2bf16`, exact since every FP8 value is a BF16 value, none of them denormal).
/// NaN codes give a NaN. Twin: [`super::dot`]'s portable pair conversion.
///
/// Packing takes the integer conversion even where the CPU has AVX512_VBMI: a conversion loop
/// with nothing else to do ran the E4M3 GEMM 256×2048×7168 at 267–275 GFLOP/s with it against
/// 245–256 with the table lookup (Zen 4, three alternations; the GEMV, whose loads convert in
/// registers beside the dot steps, is the other way round: +20 % with the lookup).
pub(crate) fn fp8_pairs(e4m3: bool, codes: &[u8], out: &mut [u32]) -> usize {
    fp8_pairs_on(false, e4m3, codes, out)
}

/// [`fp8_pairs`] through the table lookup (`vbmi`, where the CPU has it) or the integer
/// conversion (tests run both).
pub(crate) fn fp8_pairs_on(vbmi: bool, e4m3: bool, codes: &[u8], out: &mut [u32]) -> usize {
    let groups = (codes.len() / 32).min(out.len() / 16);
    if groups == 0 || !has_avx512_bf16() || (vbmi && !has_vbmi()) {
        return 0;
    }
    // SAFETY: the features are present; `groups` whole groups fit `codes` and `out`.
    unsafe {
        match (vbmi, e4m3) {
            (true, _) => fp8_pairs_vbmi(e4m3, codes.as_ptr(), groups, out.as_mut_ptr()),
            (false, true) => fp8_pairs_body::<true>(codes.as_ptr(), groups, out.as_mut_ptr()),
            (false, false) => fp8_pairs_body::<false>(codes.as_ptr(), groups, out.as_mut_ptr()),
        }
    }
    groups * 32
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn fp8_pairs_body<const E4M3: bool>(codes: *const u8, groups: usize, out: *mut u32) {
    for g in 0..groups {
        // SAFETY (caller): 32 codes readable at `codes + 32g`, 16 pairs writable at `out + 16g`.
        unsafe { _mm512_storeu_si512(out.add(16 * g).cast(), fp8_zmm::<E4M3>(codes.add(32 * g))) }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx512vbmi")]
unsafe fn fp8_pairs_vbmi(e4m3: bool, codes: *const u8, groups: usize, out: *mut u32) {
    for g in 0..groups {
        // SAFETY (caller): as for `fp8_pairs_body`.
        unsafe { _mm512_storeu_si512(out.add(16 * g).cast(), fp8_vbmi(codes.add(32 * g), e4m3)) }
    }
}

/// The 32 FP8 codes at `p` (E4M3 when `e4m3`, else E5M2) as 32 BF16 words, in order, by table
/// lookup: each code is spread to both bytes of its word (`vpermb`), each byte looked up in a
/// 128-entry table of the low or high byte of the magnitude's BF16 bits
/// ([`FP8_BF16_BYTES`](super::dot::FP8_BF16_BYTES), two `vpermi2b`, which read 7 index bits, so
/// the sign bit is ignored), and the sign put back in bit 15: five instructions for 32 codes,
/// exact for every code (subnormals, NaN, E5M2's infinities) with no special cases.
///
/// # Safety
/// AVX512F, AVX512BW and AVX512_VBMI present (the caller's features); 32 codes readable at `p`.
#[inline(always)]
unsafe fn fp8_vbmi(p: *const u8, e4m3: bool) -> __m512i {
    // Byte 2i and 2i + 1 of the result take code i.
    const SPREAD: [u8; 64] = {
        let mut s = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            s[i] = (i / 2) as u8;
            i += 1;
        }
        s
    };
    unsafe {
        let codes = _mm512_castsi256_si512(_mm256_loadu_si256(p.cast()));
        let dup = _mm512_permutexvar_epi8(_mm512_loadu_si512(SPREAD.as_ptr().cast()), codes);
        let (lo, hi) = bf16_bytes(dup, e4m3);
        let v = _mm512_mask_blend_epi8(0xAAAA_AAAA_AAAA_AAAA, lo, hi);
        // v | (dup & 0x8000): the code's sign bit, which sits at bit 15 of each word of `dup`.
        _mm512_ternarylogic_epi32::<0xF8>(v, dup, _mm512_set1_epi16(0x8000u16 as i16))
    }
}

/// The 32 FP8 codes at `p` as 16 K-pairs of BF16 (see [`fp8_pairs`]).
///
/// # Safety
/// AVX512F, AVX512BW and AVX512_BF16 present (the caller's features); 32 codes readable at `p`.
#[inline(always)]
unsafe fn fp8_zmm<const E4M3: bool>(p: *const u8) -> __m512i {
    unsafe {
        let c = _mm256_loadu_si256(p.cast());
        if E4M3 {
            return e4m3_zmm(c);
        }
        let h = _mm512_slli_epi16::<8>(_mm512_cvtepu8_epi16(c));
        let lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        let hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(h));
        // Codes 0..16 in the low half (pairs 0..8), 16..32 in the high half.
        std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
    }
}

/// 32 E4M3 codes as 32 BF16 words, in integer arithmetic (no float conversion: on Zen 4 the f16
/// route, two `vcvtph2ps`, two multiplies and `vcvtne2ps2bf16`, held the GEMV at 9-14 G
/// weights/s). Normal codes: the 7 magnitude bits shifted into BF16's exponent and mantissa
/// fields and the exponent re-biased (+120); the 7 subnormal codes (and zero) from an 8-entry
/// table; S.1111.111 → NaN; the sign moved to bit 15.
#[inline(always)]
unsafe fn e4m3_zmm(c: __m256i) -> __m512i {
    const SUBNORMAL: [u16; 8] = [0, 0x3B00, 0x3B80, 0x3BC0, 0x3C00, 0x3C20, 0x3C40, 0x3C60];
    unsafe {
        let w = _mm512_cvtepu8_epi16(c);
        let mag = _mm512_and_si512(w, _mm512_set1_epi16(0x7F));
        let normal = _mm512_add_epi16(_mm512_slli_epi16::<4>(mag), _mm512_set1_epi16(120 << 7));
        let table = _mm512_castsi128_si512(_mm_loadu_si128(SUBNORMAL.as_ptr().cast()));
        let zero_exp = _mm512_testn_epi16_mask(w, _mm512_set1_epi16(0x78));
        let v = _mm512_mask_permutexvar_epi16(normal, zero_exp, mag, table);
        let nan = _mm512_cmpeq_epi16_mask(mag, _mm512_set1_epi16(0x7F));
        let v = _mm512_mask_mov_epi16(v, nan, _mm512_set1_epi16(0x7FC0));
        let sign = _mm512_and_si512(_mm512_slli_epi16::<8>(w), _mm512_set1_epi16(0x8000u16 as i16));
        _mm512_or_si512(v, sign)
    }
}

crate::dot_kernels!(Zmm<false>, MR, NV, has_avx512_bf16(), "avx512f,avx512bw,avx512bf16");

/// The kernels with the table-lookup FP8 conversion (CPUs with AVX512_VBMI).
pub(crate) mod vbmi {
    use super::{has_vbmi, Zmm, MR, NV};
    crate::dot_kernels!(Zmm<true>, MR, NV, has_vbmi(), "avx512f,avx512bw,avx512bf16,avx512vbmi");
}

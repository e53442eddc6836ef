//! GEMV `y = W · x`: memory-bound, so it streams W once, decoding the codes in registers (no
//! staging copy), four rows at a time so each load of `x` serves four rows; threads split rows.
//! The SIMD kernels take one cache line of every row per step and prefetch each row stream
//! ahead (continuing into the next group of rows), which the 1-byte formats need: their rows
//! are short (8 KiB at k = 8192), so the hardware prefetcher restarts on every few pages.
//!
//! The arithmetic every ISA follows (so the SIMD kernels and the portable twin agree bit for
//! bit): per row, 16 f32 lanes; along K, per scale segment (the block width along K: 32 for MX,
//! 128 for DeepSeek, all of K otherwise) a partial sum `part[l] = fma(w, x, part[l])` over chunks
//! of 16 (the last chunk zero-padded), then `total[l] = fma(part[l], scale · factor, total[l])`
//! — the weight scale applied once per K block into the f32 accumulator — and finally a fixed
//! pairwise reduction of the 16 lanes ([`reduce16`]).
//!
//! `factor` exists because the SIMD decode of E4M3 goes through f16 bits without rebiasing:
//! `code << 7` read as an f16 is exactly `value · 2^-8` (subnormals included), so the kernels use
//! that raw value and fold the `2^8` into the per-segment scale. A power-of-two factor changes no
//! rounding (barring underflow below 2^-118).
//!
//! AVX2 decodes FP8 without the f16 conversion when it can: sign-extend, shift and mask give
//! `value · 2^-120` (E4M3) or `value · 2^-112` (E5M2) as f32 bits — three integer ops per 8
//! codes instead of a widen, a shift, (a mask,) a lane extract and two `vcvtph2ps`; +20–30 % on
//! Zen 3, where that decode, not DRAM, bounds the FP8 GEMV. The activations are then pre-scaled by
//! 2^[`FP8_PRESCALE`] = 2^112, so every product — `(value · 2^-120) · (x · 2^112)` for E4M3,
//! `(value · 2^-112) · (x · 2^112)` for E5M2 — is exactly the f16 path's `(value · 2^-8) · x` or
//! `value · x`, and the sums, hence the bits, are the same as every other path's. It needs finite
//! codes ([`finite_codes`]: no E4M3 NaN, no E5M2 inf/NaN, which the integer decode would read as
//! numbers) and an exact pre-scale (|x| < 2^16); otherwise the call keeps the f16 decode.

use super::isa::Isa;
use super::pack::decode_row_scaled;
use super::Pool;
use crate::formats::{Element, Format, QuantizedMatrix, ScaleSlice};
use crate::with_codes;
use rayon::prelude::*;

/// Lanes of the logical accumulator vector (one zmm, or two ymm on AVX2).
pub(crate) const LANES: usize = 16;
/// Rows per call of the row kernel.
pub(crate) const ROWS: usize = 4;

/// The raw value the SIMD decode produces is `value / raw_factor`.
pub(crate) fn raw_factor(format: Format) -> f32 {
    if format == Format::E4M3 {
        256.0
    } else {
        1.0
    }
}

/// The fixed reduction order of the 16 lanes.
#[inline(always)]
pub(crate) fn reduce16(t: &[f32; LANES]) -> f32 {
    let h: [f32; 8] = std::array::from_fn(|l| t[l] + t[l + 8]);
    let q: [f32; 4] = std::array::from_fn(|l| h[l] + h[l + 4]);
    (q[0] + q[2]) + (q[1] + q[3])
}

/// One group of up to [`ROWS`] rows: `out[r] = Σ_k w[r][k] · x[k]` with the row's segment scales.
pub(crate) struct Rows<'a, E> {
    pub w: [&'a [E]; ROWS],
    /// Per row: its scale per K segment (f32, or E8M0 codes decoded per segment).
    pub scales: [ScaleSlice<'a>; ROWS],
    /// How many of the [`ROWS`] rows are real (the rest repeat the first and are ignored).
    pub count: usize,
    /// Every code of these rows is finite (FP8 only, [`finite_codes`]): the SIMD E4M3 decode may
    /// then skip its NaN fix-up (same bits for every other code). Found once at prepare time, as
    /// an inference engine would when it loads the weights.
    pub finite: bool,
    /// `x` holds the activations × 2^[`FP8_PRESCALE`] (FP8 weights with finite codes, AVX2
    /// only): the kernel then takes its integer decode (see the module docs).
    pub x_prescaled: bool,
}

/// 2-byte codes with at least 4 activation rows take two weight rows × two activation rows per
/// block once a group's four rows hold this many bytes (k ≥ 1024 for BF16): the four-row loop
/// would read each group once per activation row from L2, the pairs read it half as often.
/// Measured on Zen 3 (2 threads, BF16, alternated with the four-row loop): 16 × 2048 × 7168
/// +15–36 %, 16 × 7168 × 2048 +30–34 %, 8 × 16384 × 4096 +6–28 %, 4 × 16384 × 4096 −4 to +13 %;
/// slower at 2 activation rows (−5–14 %) and on 128-deep rows (a GQA score product, 1 KiB
/// groups that stay in L1: −3–9 %), which keep the four-row loop (docs/cpu.md).
const PAIRS_MIN_GROUP_BYTES: usize = 8 << 10;
// The paired path splits a group into pairs of rows.
const _: () = assert!(ROWS.is_multiple_of(2));

/// The power of two the activations are pre-scaled by for the AVX2 integer FP8 decode, which
/// yields `value · 2^-120` (E4M3; the f16 path: `value · 2^-8`) or `value · 2^-112` (E5M2; the
/// f16 path: `value`).
pub(crate) const FP8_PRESCALE: i32 = 112;

/// Whether the row kernel of `isa` has the integer FP8 decode that pre-scaled activations are
/// meant for (AVX2 only: AVX-512 and NEON convert through f16 at the same cost).
pub(crate) fn int_decode(isa: Isa) -> bool {
    isa == Isa::Avx2
}

/// Whether `x · 2^FP8_PRESCALE` is exact for every activation (no finite value overflows;
/// infinities and NaN stay what they are).
fn prescale_is_exact(x: &[f32]) -> bool {
    x.iter().all(|v| !v.is_finite() || v.abs() < 65536.0)
}

impl<E> Rows<'_, E> {
    /// The depth `k` of the rows (the length of each).
    pub(crate) fn k(&self) -> usize {
        self.w[0].len()
    }

    /// What a SIMD row kernel relies on before its unchecked loads: every row holds `k` codes
    /// and one scale per segment, `x` holds `m ≥ 1` activation rows of `k` values, and `out` a
    /// slot per real row and activation row.
    pub(crate) fn check(&self, x: &[f32], seg: usize, out: &[f32]) {
        let k = self.k();
        assert!(k > 0 && x.len().is_multiple_of(k) && !x.is_empty(), "x holds whole rows of k = {k}");
        let m = x.len() / k;
        let nseg = k.div_ceil(seg.max(1));
        assert!(seg > 0 && self.count <= ROWS && out.len() >= self.count * m);
        assert!(self.w.iter().all(|w| w.len() == k) && self.scales.iter().all(|s| s.len() >= nseg));
    }
}

/// Whether every code of the FP8 matrix `w` is a finite number: no E4M3 NaN (`S.1111.111`), no
/// E5M2 infinity or NaN (`S.11111.xx`). Always false for the wider formats (whose kernels ignore it).
pub(crate) fn finite_codes(w: &QuantizedMatrix) -> bool {
    match &w.codes {
        crate::formats::scaling::Codes::E4M3(c) => c.iter().all(|c| c.0 & 0x7F != 0x7F),
        crate::formats::scaling::Codes::E5M2(c) => c.iter().all(|c| c.0 & 0x7C != 0x7C),
        _ => false,
    }
}

/// The portable twin: the same arithmetic as the SIMD row kernels, lane by lane. `x` holds `m`
/// activation rows of `k`; `out[r·m + i]` = row `r` · activation row `i`.
pub(crate) fn rows_portable<E: Element>(rows: &Rows<E>, x: &[f32], seg: usize, factor: f32, out: &mut [f32]) {
    let k = rows.k();
    let m = x.len() / k.max(1);
    for (ri, y) in out.iter_mut().enumerate().take(rows.count * m) {
        let (r, x) = (ri / m, &x[ri % m * k..][..k]);
        let (w, scales) = (rows.w[r], rows.scales[r]);
        let mut total = [0f32; LANES];
        for (s, start) in (0..k).step_by(seg).enumerate() {
            let end = (start + seg).min(k);
            let mut part = [0f32; LANES];
            for c0 in (start..end).step_by(LANES) {
                for (l, p) in part.iter_mut().enumerate() {
                    let i = c0 + l;
                    let (wv, xv) = if i < end { (w[i].decode() / factor, x[i]) } else { (0.0, 0.0) };
                    *p = wv.mul_add(xv, *p);
                }
            }
            let sf = scales.get(s) * factor;
            for (t, p) in total.iter_mut().zip(part) {
                *t = p.mul_add(sf, *t);
            }
        }
        *y = reduce16(&total);
    }
}

/// One ISA's 16-lane vector layer for the row kernel ([`rows_simd`] is the one body every ISA
/// runs): `Acc` holds 16 f32 lanes (one zmm, two ymm, four NEON q registers), lane `l` of a
/// chunk of 16 codes is code `c0 + l`, as in [`rows_portable`].
///
/// # Safety
/// Every method may only run on a CPU with the features of its ISA ([`Lanes16::available`]);
/// the pointer methods read 16 values (codes or f32) at their pointer.
pub(crate) unsafe trait Lanes16 {
    type Acc: Copy;
    /// Whether the ISA's register file holds a tile of [`ROWS`] weight rows × 4 activation rows
    /// of partial sums (16 accumulators) with its 8 operand vectors: a skinny product then reads
    /// (and decodes) each group of rows once per 4 activation rows instead of once per row, and
    /// each activation vector once per 4 weight rows (see [`rows_simd`]).
    const TILES_4X4: bool = false;
    /// Whether this CPU has the ISA (checked before every call of [`Lanes16::rows`]).
    fn available() -> bool;
    unsafe fn zero() -> Self::Acc;
    unsafe fn splat(v: f32) -> Self::Acc;
    unsafe fn load_x(p: *const f32) -> Self::Acc;
    /// 16 codes → 16 raw f32 lanes (`value / raw_factor`; `INT`: the integer FP8 decode).
    /// `NAN`: whether an E4M3 code may be NaN.
    unsafe fn load_w<E: Element, const NAN: bool, const INT: bool>(p: *const E) -> Self::Acc;
    /// `a · b + c`, fused, lane by lane.
    unsafe fn fma(a: Self::Acc, b: Self::Acc, c: Self::Acc) -> Self::Acc;
    unsafe fn store(a: Self::Acc, out: &mut [f32; LANES]);
    /// Prefetch each row stream of `w` (consecutive groups of rows of W) ahead of code `c`
    /// (no-op where the ISA layer does not).
    #[inline(always)]
    unsafe fn prefetch_rows<E>(_w: &[&[E]], _k: usize, _c: usize) {}
    /// The row kernel compiled for this ISA: `#[target_feature]` on the ISA's side, calling
    /// [`rows_simd`] with `Self`.
    unsafe fn rows<E: Element, const NAN: bool, const INT: bool>(
        rows: &Rows<E>,
        x: &[f32],
        seg: usize,
        factor: f32,
        out: &mut [f32],
    );
    /// [`decode_simd`] compiled for this ISA.
    unsafe fn decode<E: Element>(codes: &[E], out: &mut [f32]);
}

/// The row kernel on ISA `V`, checked: the CPU has it, the slices have the lengths the
/// unchecked loads rely on; then the variant for the rows' codes (NaN fix-up or not, integer
/// FP8 decode where the activations were pre-scaled for it, which [`rows_kernel`] allows only
/// where [`int_decode`] says the ISA has that decode).
pub(crate) fn rows_on<V: Lanes16, E: Element>(
    rows: &Rows<E>,
    x: &[f32],
    seg: usize,
    factor: f32,
    out: &mut [f32],
) {
    assert!(V::available());
    rows.check(x, seg, out);
    // SAFETY: the ISA is present; every row and x hold k values and every row a scale per
    // segment (checked); `rows_simd` loads 16 codes only below each segment's end (the tail
    // goes through padded copies).
    unsafe {
        match (rows.finite, rows.x_prescaled) {
            (true, true) => V::rows::<E, false, true>(rows, x, seg, factor, out),
            (true, false) => V::rows::<E, false, false>(rows, x, seg, factor, out),
            (false, _) => V::rows::<E, true, false>(rows, x, seg, factor, out),
        }
    }
}

/// The [`Lanes16::rows`] method of an ISA: [`rows_simd`] on `Self`, compiled with the ISA's
/// target features (none for an ISA of the architecture's baseline).
macro_rules! lanes16_rows {
    ($($features:literal)?) => {
        $(#[target_feature(enable = $features)])?
        unsafe fn rows<E: Element, const NAN: bool, const INT: bool>(
            rows: &Rows<E>,
            x: &[f32],
            seg: usize,
            factor: f32,
            out: &mut [f32],
        ) {
            unsafe { rows_simd::<Self, E, NAN, INT>(rows, x, seg, factor, out) }
        }
        $(#[target_feature(enable = $features)])?
        unsafe fn decode<E: Element>(codes: &[E], out: &mut [f32]) {
            unsafe { super::gemv::decode_simd::<Self, E>(codes, out) }
        }
    };
}
pub(crate) use lanes16_rows;

/// A tail chunk (< 16 values) copied into a zero-padded buffer, so the last step uses the same
/// 16-lane arithmetic as the others.
fn padded<T: Copy + bytemuck::Zeroable>(src: &[T]) -> [T; LANES] {
    let mut b = [T::zeroed(); LANES];
    b[..src.len()].copy_from_slice(src);
    b
}

/// Codes per 64-byte cache line, at least one 16-lane step.
fn codes_per_line<E>() -> usize {
    (64 / std::mem::size_of::<E>()).max(LANES)
}

/// One 16-code step of `R` weight rows × `MX` activation rows: `part[r][i] += w[r][..16] ·
/// x[i][..16]`, lane by lane; each weight vector is decoded once for all activation rows.
#[inline(always)]
unsafe fn step<V: Lanes16, E: Element, const NAN: bool, const INT: bool, const R: usize, const MX: usize>(
    part: &mut [[V::Acc; MX]; R],
    x: [*const f32; MX],
    w: [*const E; R],
) {
    unsafe {
        let xv: [V::Acc; MX] = std::array::from_fn(|i| V::load_x(x[i]));
        for r in 0..R {
            let wv = V::load_w::<E, NAN, INT>(w[r]);
            for i in 0..MX {
                part[r][i] = V::fma(wv, xv[i], part[r][i]);
            }
        }
    }
}

/// The row kernel every SIMD ISA runs (the arithmetic of [`rows_portable`]) on the activation
/// rows of `xs` (`m` rows of `k`: a skinny product passes them all in one call): one activation
/// row against the group's [`ROWS`] weight rows at a time, or, for FP8 codes and `m > 1`, one
/// weight row against up to 4 activation rows at a time, decoding each weight vector once for all
/// of them (AVX2 has registers for 4 × 16 lanes of partial sums, not 16 × 16). Either way every
/// output element is the same chain of operations, hence the same bits: `out[r·m + i]` = weight
/// row `r` · activation row `i`. Measured on Zen 3 (2 threads, W 16384 × 4096, alternated with
/// the one-row-at-a-time loop): E4M3, whose decode is most of its work, m = 4 4.7-5.6 -> 6.1-6.8
/// Gweights/s, m = 2 +5-30 %; BF16, memory-bound, lost 5-20 % at m = 2 and on 128-deep rows
/// with one weight stream per thread instead of four, so the wider codes keep the four-row loop.
/// Where the ISA holds a 4 × 4 tile of partial sums ([`Lanes16::TILES_4X4`]: AVX-512), every
/// format with `m ≥ 4` takes the whole group × 4 activation rows at a time: measured on a Xeon
/// (2 threads, cold W, m = 4–16, alternated with the loops above) +25–100 % for F32, F16, BF16
/// and E4M3 (docs/cpu.md, "Skinny f32-path products").
///
/// # Safety
/// The CPU has `V`'s ISA; the caller checked the lengths ([`Rows::check`]).
#[inline(always)]
pub(crate) unsafe fn rows_simd<V: Lanes16, E: Element, const NAN: bool, const INT: bool>(
    rows: &Rows<E>,
    xs: &[f32],
    seg: usize,
    factor: f32,
    out: &mut [f32],
) {
    let (k, size) = (rows.k(), std::mem::size_of::<E>());
    let m = xs.len() / k;
    // SAFETY (all calls): as for the whole function.
    unsafe {
        if m >= 4 && V::TILES_4X4 {
            tiles::<V, E, NAN, INT, ROWS, 4>(rows, xs, seg, factor, out)
        } else if m == 1 || (size > 1 && !(size == 2 && m >= 4 && ROWS * k * size >= PAIRS_MIN_GROUP_BYTES)) {
            tiles::<V, E, NAN, INT, ROWS, 1>(rows, xs, seg, factor, out)
        } else if size == 2 {
            tiles::<V, E, NAN, INT, 2, 2>(rows, xs, seg, factor, out)
        } else {
            tiles::<V, E, NAN, INT, 1, 4>(rows, xs, seg, factor, out)
        }
    }
}

/// The group's weight rows in tiles of `R` × the activation rows of `xs` in tiles of `MX` (the
/// last tile may hold fewer, 1..=3 of them), each tile pair through [`block`]; `out[r·m + i]` =
/// weight row `r` · activation row `i`.
///
/// # Safety
/// As for [`rows_simd`]; `R` divides [`ROWS`] and `MX` ≤ 4.
#[inline(always)]
unsafe fn tiles<V: Lanes16, E: Element, const NAN: bool, const INT: bool, const R: usize, const MX: usize>(
    rows: &Rows<E>,
    xs: &[f32],
    seg: usize,
    factor: f32,
    out: &mut [f32],
) {
    let k = rows.k();
    let m = xs.len() / k;
    let x_at = |i: usize| &xs[i * k..(i + 1) * k];
    for h in (0..rows.count).step_by(R) {
        let w: [&[E]; R] = std::array::from_fn(|r| rows.w[h + r]);
        let sc: [ScaleSlice<'_>; R] = std::array::from_fn(|r| rows.scales[h + r]);
        let count = (rows.count - h).min(R);
        let mut i0 = 0;
        while i0 < m {
            let mut put = |r: usize, i: usize, v: f32| out[(h + r) * m + i0 + i] = v;
            // The activation rows i0..i0 + n against the weight rows h..h + R.
            macro_rules! mx {
                ($n:expr) => {
                    // SAFETY: as for the whole function; each `x` is an activation row of `k`.
                    unsafe {
                        block::<V, E, NAN, INT, R, { $n }>(
                            w,
                            sc,
                            std::array::from_fn(|i| x_at(i0 + i)),
                            seg,
                            factor,
                            count,
                            &mut put,
                        )
                    }
                };
            }
            match (m - i0).min(MX) {
                n if n == MX => mx!(MX),
                1 => mx!(1),
                2 => mx!(2),
                _ => mx!(3),
            }
            i0 += MX;
        }
    }
}

/// `R` weight rows (`count` of them real) × `MX` activation rows: one cache line of every weight
/// row per iteration with its prefetch, then the 16-code steps left in the segment, then a
/// zero-padded tail; per segment the partial sums go into the totals with the segment's scale,
/// and the 16 lanes are reduced by [`reduce16`]; `put(r, i, y)` takes each result.
#[inline(always)]
unsafe fn block<V: Lanes16, E: Element, const NAN: bool, const INT: bool, const R: usize, const MX: usize>(
    w: [&[E]; R],
    scales: [ScaleSlice<'_>; R],
    x: [&[f32]; MX],
    seg: usize,
    factor: f32,
    count: usize,
    mut put: impl FnMut(usize, usize, f32),
) {
    let k = x[0].len();
    let line = codes_per_line::<E>();
    let at = |c: usize| -> [*const E; R] { std::array::from_fn(|r| w[r].as_ptr().wrapping_add(c)) };
    let x_ptrs = |c: usize| -> [*const f32; MX] { std::array::from_fn(|i| x[i].as_ptr().wrapping_add(c)) };
    unsafe {
        let mut total = [[V::zero(); MX]; R];
        let (mut start, mut s) = (0, 0);
        while start < k {
            let end = (start + seg).min(k);
            let mut part = [[V::zero(); MX]; R];
            let mut c = start;
            while c + line <= end {
                V::prefetch_rows(&w, k, c);
                for _ in 0..line / LANES {
                    step::<V, E, NAN, INT, R, MX>(&mut part, x_ptrs(c), at(c));
                    c += LANES;
                }
            }
            while c + LANES <= end {
                // Segments shorter than a line (MX-32 over 1-byte codes) step here alone.
                if c % line == 0 {
                    V::prefetch_rows(&w, k, c);
                }
                step::<V, E, NAN, INT, R, MX>(&mut part, x_ptrs(c), at(c));
                c += LANES;
            }
            if c < end {
                let xb: [[f32; LANES]; MX] = std::array::from_fn(|i| padded(&x[i][c..end]));
                let wb: [[E; LANES]; R] = std::array::from_fn(|r| padded(&w[r][c..end]));
                step::<V, E, NAN, INT, R, MX>(
                    &mut part,
                    std::array::from_fn(|i| xb[i].as_ptr()),
                    std::array::from_fn(|r| wb[r].as_ptr()),
                );
            }
            for r in 0..R {
                let sf = V::splat(scales[r].get(s) * factor);
                for i in 0..MX {
                    total[r][i] = V::fma(part[r][i], sf, total[r][i]);
                }
            }
            start = end;
            s += 1;
        }
        for (r, total) in total.into_iter().enumerate().take(count) {
            for (i, total) in total.into_iter().enumerate() {
                let mut t = [0f32; LANES];
                V::store(total, &mut t);
                put(r, i, reduce16(&t));
            }
        }
    }
}

/// `out[i] = codes[i].decode()`, exactly, 16 codes at a time through the row kernel's decode
/// ([`Lanes16::load_w`], NaN codes included) times its raw factor (a power of two; the `-0`
/// addend keeps the sign of zero), the tail by [`Element::decode_slice`].
///
/// # Safety
/// The CPU has `V`'s ISA; `out` holds `codes.len()` values.
#[inline(always)]
pub(crate) unsafe fn decode_simd<V: Lanes16, E: Element>(codes: &[E], out: &mut [f32]) {
    let n16 = codes.len() / LANES * LANES;
    let factor = raw_factor(E::FORMAT);
    unsafe {
        let (f, neg_zero) = (V::splat(factor), V::splat(-0.0));
        for c in (0..n16).step_by(LANES) {
            let raw = V::load_w::<E, true, false>(codes.as_ptr().add(c));
            let v = if factor == 1.0 { raw } else { V::fma(raw, f, neg_zero) };
            V::store(v, &mut *(out.as_mut_ptr().add(c) as *mut [f32; LANES]));
        }
    }
    E::decode_slice(&codes[n16..], &mut out[n16..]);
}

/// `out[i] = codes[i].decode()` (exactly [`Element::decode_slice`]'s values) with the best SIMD
/// decode this CPU has: the decode of GEMM packing and of activations.
pub(crate) fn decode_codes<E: Element>(codes: &[E], out: &mut [f32]) {
    decode_codes_on(Isa::detect(), codes, out)
}

/// [`decode_codes`] with the decode of `isa` (which the CPU must have).
pub(crate) fn decode_codes_on<E: Element>(isa: Isa, codes: &[E], out: &mut [f32]) {
    assert_eq!(codes.len(), out.len(), "decode_codes: length mismatch");
    fn on<V: Lanes16, E: Element>(codes: &[E], out: &mut [f32]) {
        assert!(V::available());
        // SAFETY: the ISA is present; out holds codes.len() values (checked above).
        unsafe { V::decode(codes, out) }
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => on::<super::x86::Avx512, E>(codes, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => on::<super::x86::Avx2, E>(codes, out),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => on::<super::neon::Neon, E>(codes, out),
        _ => E::decode_slice(codes, out),
    }
}

/// The row kernel of `isa` on one group of rows and the `m = x.len() / k` activation rows of
/// `x`: `out[r·m + i]` = weight row `r` · activation row `i`, each as the one-row GEMV computes it.
pub(crate) fn rows_kernel<E: Element>(
    isa: Isa,
    rows: &Rows<E>,
    x: &[f32],
    seg: usize,
    factor: f32,
    out: &mut [f32],
) {
    assert!(!rows.x_prescaled || int_decode(isa), "pre-scaled activations reach the {isa} row kernel");
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => rows_on::<super::x86::Avx512, E>(rows, x, seg, factor, out),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => rows_on::<super::x86::Avx2, E>(rows, x, seg, factor, out),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => rows_on::<super::neon::Neon, E>(rows, x, seg, factor, out),
        _ => rows_portable(rows, x, seg, factor, out),
    }
}

/// Most activation rows run by the GEMV kernel ([`crate::kernels::SKINNY_M`]): a skinny product
/// streams W once and reuses each group of [`ROWS`] rows from L1 for every activation row, which
/// beats packing W for the GEMM microkernel, whose rows would be mostly idle (docs/cpu.md).
pub(crate) use crate::kernels::SKINNY_M;

/// What a prepared GEMV (or skinny product) keeps between calls.
pub(crate) struct GemvWork {
    /// The decoded, scaled activations (`m × k`).
    x: Vec<f32>,
    /// For `m > 1`: the results per weight row (`n × m`), transposed into `y` after each call.
    gathered: Vec<f32>,
    /// Every weight code is finite ([`finite_codes`]), found once at prepare time.
    finite: bool,
}

impl GemvWork {
    pub(crate) fn new(a: &QuantizedMatrix, w: &QuantizedMatrix) -> GemvWork {
        let (m, n, k) = (a.rows, w.rows, w.cols);
        let gathered = if m > 1 { vec![0f32; n * m] } else { Vec::new() };
        GemvWork { x: vec![0f32; m * k], gathered, finite: finite_codes(w) }
    }

    /// Bytes of the buffers it holds.
    pub(crate) fn bytes(&self) -> u64 {
        ((self.x.len() + self.gathered.len()) * 4) as u64
    }
}

/// `y = a · Wᵀ` for `a` of `m ≤` [`SKINNY_M`] rows (`m = 1`: the GEMV `y = W · x`). Every output
/// element is computed exactly as the one-row GEMV computes it (the same row kernel on the same
/// rows), so a skinny product gives the GEMV's bits row by row, for every thread count.
pub(crate) fn run(
    a: &QuantizedMatrix,
    w: &QuantizedMatrix,
    isa: Isa,
    work: &mut GemvWork,
    y: &mut [f32],
    pool: &Pool,
) {
    let (m, n, k) = (a.rows, w.rows, w.cols);
    let GemvWork { x: x_buf, gathered, finite } = work;
    assert!(m >= 1 && x_buf.len() == m * k && y.len() == m * n && (m == 1 || gathered.len() == n * m));
    if k == 0 {
        y.fill(0.0);
        return;
    }
    for (i, x) in x_buf.chunks_mut(k).enumerate() {
        with_codes!(&a.codes, |codes| decode_row_scaled(codes, a, i, 0, x));
    }
    let finite = *finite;
    let x_prescaled = int_decode(isa) && w.format().is_fp8() && finite && prescale_is_exact(x_buf);
    if x_prescaled {
        let f = 2f32.powi(FP8_PRESCALE);
        x_buf.iter_mut().for_each(|v| *v *= f);
    }
    let xs = &*x_buf;
    let seg = w.block.cols.min(k).max(1);
    let factor = raw_factor(w.format());
    let threads = pool.threads();
    // Small chunks (a multiple of ROWS) let rayon balance; each row's result does not depend on
    // which chunk or thread computes it. The results are laid out per weight row (n × m: for
    // m = 1 that is y itself) and, for m > 1, transposed once at the end (n·m floats beside n·k
    // weights).
    let chunk = (n.div_ceil(threads * 8)).div_ceil(ROWS).max(1) * ROWS;
    let out_t: &mut [f32] = if m > 1 { gathered } else { y };
    let row_scales = w.row_scales_fn();
    with_codes!(&w.codes, |codes| pool.install(|| {
        out_t.par_chunks_mut(chunk * m).enumerate().for_each(|(ci, ys)| {
            let row0 = ci * chunk;
            for (g, out) in ys.chunks_mut(ROWS * m).enumerate() {
                let r0 = row0 + g * ROWS;
                let count = out.len() / m;
                let row = |i: usize| r0 + i.min(count - 1);
                let rows = Rows {
                    w: std::array::from_fn(|i| &codes[row(i) * k..(row(i) + 1) * k]),
                    scales: std::array::from_fn(|i| row_scales(row(i))),
                    count,
                    finite,
                    x_prescaled,
                };
                rows_kernel(isa, &rows, xs, seg, factor, out);
            }
        })
    }));
    if m > 1 {
        for (j, row) in gathered.chunks(m).enumerate() {
            for (i, v) in row.iter().enumerate() {
                y[i * n + j] = *v;
            }
        }
    }
}

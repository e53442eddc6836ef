//! The dot path's vector layer and generic bodies (see the parent module for the arithmetic).
//! Self-contained — no other module of the crate is used — so the per-ISA layers can be checked
//! against the twins in isolation.

/// Logical lanes of a GEMV row (pairs per step).
pub(crate) const LANES: usize = 16;
/// Rows per GEMV row-kernel call (independent chains hide the dot latency).
pub(crate) const ROWS: usize = 4;

// ---------------------------------------------------------------- vector layer

/// The per-ISA vector layer: `W` f32 lanes, or `W` K-pairs of BF16 in the same register.
pub(crate) trait DotVec: Copy {
    const W: usize;
    /// # Safety
    /// Every method: the CPU has the unit's features (the caller's `#[target_feature]`), and
    /// pointers are valid for `W` elements.
    unsafe fn zero() -> Self;
    unsafe fn load(p: *const u32) -> Self;
    unsafe fn splat(pair: u32) -> Self;
    /// Per lane: `acc + a.pair · b.pair`, rounded as the instruction rounds.
    unsafe fn dot(acc: Self, a: Self, b: Self) -> Self;
    unsafe fn loadf(p: *const f32) -> Self;
    unsafe fn splatf(x: f32) -> Self;
    unsafe fn mul(a: Self, b: Self) -> Self;
    /// `a · b + c`, fused.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn storef(p: *mut f32, v: Self);
    /// A hint to fetch the cache line at `p` (which may lie past any allocation: never read).
    #[inline(always)]
    fn prefetch(_p: *const u8) {}
    /// The 16 lane totals of one output summed in [`reduce16`](crate::kernels::cpu::gemv::reduce16)'s
    /// fixed tree (units override it with the same tree in registers: the same bits).
    #[inline(always)]
    unsafe fn reduce(t: &[f32; LANES]) -> f32 {
        crate::kernels::cpu::gemv::reduce16(t)
    }
    /// `W` K-pairs from the `2W` FP8 codes at `p` (E4M3 when `e4m3`, else E5M2), each code
    /// converted exactly to BF16. The default converts code by code ([`fp8_bf16`]); units with a
    /// vector conversion override it and are tested against it.
    #[inline(always)]
    unsafe fn load_fp8(p: *const u8, e4m3: bool) -> Self {
        let mut pairs = [0u32; LANES];
        for (i, q) in pairs[..Self::W].iter_mut().enumerate() {
            // SAFETY (caller): `p` is valid for 2W codes.
            let (lo, hi) = unsafe { (*p.add(2 * i), *p.add(2 * i + 1)) };
            *q = fp8_bf16(lo, e4m3) as u32 | (fp8_bf16(hi, e4m3) as u32) << 16;
        }
        // SAFETY: `pairs` holds W values.
        unsafe { Self::load(pairs.as_ptr()) }
    }
    /// `2W` K-pairs from the `4W` FP8 codes at `p`, as two vectors that take the pairs in groups
    /// of four: lane `l` of the first holds pair `8⌊l/4⌋ + l mod 4`, lane `l` of the second the
    /// pair four further on (the order in which an AVX-512 table lookup and a byte unpack leave
    /// 64 codes; for `W = 4` simply the first and the second four pairs). [`load_pairs_x2`]
    /// splits the activations the same way. The default converts code by code.
    ///
    /// [`load_pairs_x2`]: DotVec::load_pairs_x2
    #[inline(always)]
    unsafe fn load_fp8_x2(p: *const u8, e4m3: bool) -> (Self, Self) {
        let (mut a, mut b) = ([0u32; LANES], [0u32; LANES]);
        for l in 0..Self::W {
            let q = 8 * (l / 4) + l % 4;
            // SAFETY (caller): `p` is valid for 4W codes, and q + 4 < 2W.
            let pair = |q: usize| unsafe {
                fp8_bf16(*p.add(2 * q), e4m3) as u32 | (fp8_bf16(*p.add(2 * q + 1), e4m3) as u32) << 16
            };
            (a[l], b[l]) = (pair(q), pair(q + 4));
        }
        // SAFETY: both hold W values.
        unsafe { (Self::load(a.as_ptr()), Self::load(b.as_ptr())) }
    }
    /// The `2W` K-pairs at `p` split as [`load_fp8_x2`](DotVec::load_fp8_x2) splits FP8 codes.
    #[inline(always)]
    unsafe fn load_pairs_x2(p: *const u32) -> (Self, Self) {
        let (mut a, mut b) = ([0u32; LANES], [0u32; LANES]);
        for l in 0..Self::W {
            let q = 8 * (l / 4) + l % 4;
            // SAFETY (caller): `p` is valid for 2W pairs.
            unsafe { (a[l], b[l]) = (*p.add(q), *p.add(q + 4)) };
        }
        // SAFETY: both hold W values.
        unsafe { (Self::load(a.as_ptr()), Self::load(b.as_ptr())) }
    }
}

/// An FP8 code (E4M3 when `e4m3`, else E5M2) as BF16 bits: exact, since every FP8 value is a
/// BF16 value. NaN codes give the positive quiet NaN `0x7FC0` (E4M3's S.1111.111, E5M2's
/// S.11111.mm with mm ≠ 0); E5M2's infinities keep their sign.
pub(crate) fn fp8_bf16(c: u8, e4m3: bool) -> u16 {
    let (mbits, bias) = if e4m3 { (3u32, 7i32) } else { (2, 15) };
    let sign = ((c & 0x80) as u16) << 8;
    let mag = (c & 0x7F) as u32;
    let (e, m) = ((mag >> mbits) as i32, mag & ((1 << mbits) - 1));
    let top = if e4m3 { 0x7F } else { 0x7C };
    if (e4m3 && mag == top) || (!e4m3 && mag > top) {
        return 0x7FC0;
    }
    if !e4m3 && mag == top {
        return sign | 0x7F80;
    }
    let v = if e == 0 {
        m as f32 * 2f32.powi(1 - bias - mbits as i32)
    } else {
        f32::from_bits((((e - bias + 127) as u32) << 23) | (m << (23 - mbits)))
    };
    sign | (v.to_bits() >> 16) as u16
}

/// [`fp8_bf16`] of every magnitude `0..128` as two byte tables, computed at compile time for the
/// table-lookup conversions (AVX512_VBMI `vpermi2b`): `FP8_BF16_BYTES[f][h][mag]` is byte `h`
/// (0 low, 1 high) of the BF16 bits of magnitude `mag` of format `f` (0 E4M3, 1 E5M2); the sign
/// is bit 7 of the code, bit 15 of the result.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const FP8_BF16_BYTES: [[[u8; 128]; 2]; 2] = {
    let mut t = [[[0u8; 128]; 2]; 2];
    let mut f = 0;
    while f < 2 {
        let mut mag = 0;
        while mag < 128 {
            let b = fp8_bf16_magnitude(mag as u8, f == 0);
            t[f][0][mag] = b as u8;
            t[f][1][mag] = (b >> 8) as u8;
            mag += 1;
        }
        f += 1;
    }
    t
};

/// [`fp8_bf16`] of a magnitude (sign bit clear), in integer arithmetic (usable in a constant).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn fp8_bf16_magnitude(mag: u8, e4m3: bool) -> u16 {
    let (mbits, rebias) = if e4m3 { (3u32, 120u32) } else { (2, 112) };
    let mag = mag as u32;
    let (e, m) = (mag >> mbits, mag & ((1 << mbits) - 1));
    if (e4m3 && mag == 0x7F) || (!e4m3 && mag > 0x7C) {
        return 0x7FC0;
    }
    if !e4m3 && mag == 0x7C {
        return 0x7F80;
    }
    if e > 0 {
        return (((e + rebias) << 7) | (m << (7 - mbits))) as u16;
    }
    if m == 0 {
        return 0;
    }
    // Subnormal: m · 2^(1 - rebias - 127 - mbits) = 1.f · 2^p · 2^(...), p the top bit of m.
    let p = 31 - m.leading_zeros();
    let exp = p + rebias + 1 - mbits;
    ((exp << 7) | ((m << (7 - p)) & 0x7F)) as u16
}

/// What the weight rows of a GEMV row-kernel call hold: K-pairs ([`PAIRS`]), or FP8 codes
/// ([`CODES_E4M3`], [`CODES_E5M2`]) converted to pairs in registers as they are loaded.
pub(crate) const PAIRS: u8 = 0;
pub(crate) const CODES_E4M3: u8 = 1;
pub(crate) const CODES_E5M2: u8 = 2;
/// K-pairs of FP8 codes converted beforehand by [`fp8_x2`], in the order of
/// [`DotVec::load_fp8_x2`], and activation rows split beforehand the same way ([`split_x2`]):
/// the row body reads both with plain loads where it would convert the codes and split the
/// activations, so the sums are the bits of [`CODES_E4M3`] / [`CODES_E5M2`]. Only for spans
/// whose segments are whole steps of `2 · LANES` pairs (the body's two-vector loop).
pub(crate) const PAIRS_X2: u8 = 3;

/// How far ahead the GEMV row body asks for each weight row, into L2 (the distance and the hint
/// the f32 row kernel uses: `x86::PREFETCH_BYTES`): 2 KiB beat the former 256 B of pairs and
/// 512 B of FP8 codes into L1 (BF16 GEMV 16384×8192 +10 %, E4M3 +8-15 %, E4M3 k = 2048 and
/// k = 512 +40 %; Zen 4, 2 threads, cold weights, alternated four times).
const PREFETCH_BYTES: usize = 2048;

/// The portable twin of a dot unit: 16 lanes, each computed as the instruction computes it.
/// Products of two BF16 values are exact in f32; denormal inputs read as zero and denormal
/// results are flushed (both vendors ignore MXCSR/FPCR here).
/// - `ARM = false`, Intel `vdpbf16ps`: `acc += odd product` (RNE), then `acc += even product`
///   (RNE) — Intel's pseudo-code adds element `2j + 1` first.
/// - `ARM = true`, Arm `BFDOT` without FEAT_EBF16's FPCR.EBF: the pair sum rounded to odd, then
///   added to the accumulator, rounded to odd (the Arm ARM's `BFDotAdd` with `FPAdd_BF16`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Soft<const ARM: bool>([u32; LANES]);

#[inline(always)]
pub(crate) fn daz(v: f32) -> f32 {
    if v.is_subnormal() {
        0.0f32.copysign(v)
    } else {
        v
    }
}

/// `x + y` rounded to odd (truncate, then set the last bit if inexact), denormals flushed.
pub(crate) fn add_round_to_odd(x: f32, y: f32) -> f32 {
    let (x, y) = (x as f64, y as f64);
    let s = x + y;
    if !s.is_finite() {
        return s as f32;
    }
    // TwoSum: x + y = s + e exactly.
    let bb = s - x;
    let e = (x - (s - bb)) + (y - bb);
    let toward_zero = |t: f32| f32::from_bits(t.to_bits() - 1);
    let mut t = s as f32;
    if (t as f64).abs() > s.abs() {
        t = toward_zero(t);
    }
    let representable = t as f64 == s;
    if representable && e != 0.0 && (e < 0.0) != (s < 0.0) {
        t = toward_zero(t); // the exact value lies just inside |s|
    }
    if !representable || e != 0.0 {
        t = f32::from_bits(t.to_bits() | 1);
    }
    daz(t)
}

impl<const ARM: bool> Soft<ARM> {
    #[inline(always)]
    pub(crate) fn step(acc: f32, a: u32, b: u32) -> f32 {
        let half = |p: u32, hi: bool| daz(f32::from_bits(if hi { p & 0xFFFF_0000 } else { p << 16 }));
        let (a0, a1, b0, b1) = (half(a, false), half(a, true), half(b, false), half(b, true));
        if ARM {
            add_round_to_odd(daz(acc), add_round_to_odd(a0 * b0, a1 * b1))
        } else {
            let t = daz(daz(a1 * b1) + daz(acc));
            daz(daz(a0 * b0) + t)
        }
    }
}

impl<const ARM: bool> DotVec for Soft<ARM> {
    const W: usize = LANES;
    unsafe fn zero() -> Self {
        Soft([0; LANES])
    }
    unsafe fn load(p: *const u32) -> Self {
        // SAFETY (caller): `p` is valid for LANES reads.
        Soft(std::array::from_fn(|l| unsafe { *p.add(l) }))
    }
    unsafe fn splat(pair: u32) -> Self {
        Soft([pair; LANES])
    }
    unsafe fn dot(acc: Self, a: Self, b: Self) -> Self {
        Soft(std::array::from_fn(|l| Self::step(f32::from_bits(acc.0[l]), a.0[l], b.0[l]).to_bits()))
    }
    unsafe fn loadf(p: *const f32) -> Self {
        // SAFETY (caller): as `load`.
        unsafe { Self::load(p.cast()) }
    }
    unsafe fn splatf(x: f32) -> Self {
        Soft([x.to_bits(); LANES])
    }
    unsafe fn mul(a: Self, b: Self) -> Self {
        Soft(std::array::from_fn(|l| (f32::from_bits(a.0[l]) * f32::from_bits(b.0[l])).to_bits()))
    }
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Soft(std::array::from_fn(|l| {
            f32::from_bits(a.0[l]).mul_add(f32::from_bits(b.0[l]), f32::from_bits(c.0[l])).to_bits()
        }))
    }
    unsafe fn storef(p: *mut f32, v: Self) {
        for (l, &x) in v.0.iter().enumerate() {
            // SAFETY (caller): `p` is valid for LANES writes.
            unsafe { *p.add(l) = f32::from_bits(x) };
        }
    }
}

// ---------------------------------------------------------------- generic bodies

/// One K block of a GEMM tile. `a[q·MR + r]` and `b[q·NR + j]` are the K-pairs of row `r` of A
/// and column `j` of C; `sa[s·MR + r]`, `sw[s·NR + j]` the scales of segment `s`. Per segment,
/// `c[r][j] = fma(Σ dot, sa[r] · sw[j], c[r][j])`, with `c` read as +0 in the first segment when
/// `fresh` (C's first K block: what C holds is not read, and the bits are those of a C zeroed
/// first).
///
/// # Safety
/// The caller has the unit's features; `a` holds `pairs · MR`, `b` `pairs · NR` values, `sa`
/// and `sw` one group per segment, every `c[r]` `NR = NV · W` floats.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<V: DotVec, const MR: usize, const NV: usize>(
    pairs: usize,
    seg_pairs: usize,
    a: *const u32,
    b: *const u32,
    sa: *const f32,
    sw: *const f32,
    c: [*mut f32; MR],
    fresh: bool,
) {
    let nr = NV * V::W;
    let (mut q, mut s) = (0, 0);
    unsafe {
        while q < pairs {
            let end = (q + seg_pairs).min(pairs);
            let mut acc = [[V::zero(); NV]; MR];
            while q < end {
                let bv: [V; NV] = std::array::from_fn(|v| V::load(b.add(q * nr + v * V::W)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = V::splat(*a.add(q * MR + r));
                    for v in 0..NV {
                        acc[v] = V::dot(acc[v], av, bv[v]);
                    }
                }
                q += 1;
            }
            let swv: [V; NV] = std::array::from_fn(|v| V::loadf(sw.add(s * nr + v * V::W)));
            for (r, acc) in acc.iter().enumerate() {
                let sr = V::splatf(*sa.add(s * MR + r));
                for v in 0..NV {
                    let p = c[r].add(v * V::W);
                    let old = if fresh && s == 0 { V::zero() } else { V::loadf(p) };
                    V::storef(p, V::fma(acc[v], V::mul(sr, swv[v]), old));
                }
            }
            s += 1;
        }
    }
}

/// GEMV: [`ROWS`] weight rows × `MX` activation rows at once over one chunk of K (each weight
/// vector is loaded, or converted from FP8, once for all `MX` activation rows). `x[i]` holds
/// `pairs` K-pairs (a multiple of [`LANES`], zero-padded), every `w[r]` the same span of its row
/// as `pairs` K-pairs (`CODES` = [`PAIRS`]) or as `2 · pairs` FP8 codes; `sw[r][seg]` and
/// `sx[i][seg]` are the weight and activation scales of segment `seg`, applied as one product
/// `sw · sx`. `out[i][r]` holds the 16 lane totals of weight row `r` · activation row `i` so
/// far (read as zero when `fresh`: the row's first chunk) and receives them after this chunk, so
/// a row cut into chunks of whole segments adds up exactly as one call over the whole row would; and each
/// output is the same chain of operations whatever `MX`, so the result does not depend on how
/// activation rows are grouped. Each weight row is prefetched ahead; `left` is how many bytes of
/// the row lie from `w[r]` on, and a prefetch past them skips `skip` bytes more (to the same row
/// of the next group of rows, which the hardware prefetcher finds only after a few misses on
/// short rows).
///
/// # Safety
/// As [`tile`]: features present, `x[i]` and `w[r]` valid for `pairs` pairs, `sw[r]` and
/// `sx[i]` for one scale per segment.
#[inline(always)]
// Weight row `r` and activation row `i` index a 2-D block of partial sums.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub(crate) unsafe fn rows<V: DotVec, const NV: usize, const CODES: u8, const MX: usize>(
    pairs: usize,
    seg_pairs: usize,
    x: [*const u32; MX],
    w: [*const u8; ROWS],
    sw: [*const f32; ROWS],
    sx: [*const f32; MX],
    (left, skip): (usize, usize),
    fresh: bool,
    out: &mut [Totals; MX],
) {
    let (mut q, mut si) = (0, 0);
    let pair_bytes = if CODES == PAIRS || CODES == PAIRS_X2 { 4 } else { 2 };
    let ahead = PREFETCH_BYTES;
    unsafe {
        let load = |r: usize, q: usize| -> V {
            if CODES == PAIRS || CODES == PAIRS_X2 {
                V::load(w[r].cast::<u32>().add(q))
            } else {
                V::load_fp8(w[r].add(2 * q), CODES == CODES_E4M3)
            }
        };
        // Every weight row's stream `ahead` bytes past pair `q`; past the row's end it goes on
        // in the same row of the next group.
        let prefetch = |q: usize| {
            let off = q * pair_bytes + ahead;
            let off = if off < left { off } else { off + skip };
            for wr in &w {
                V::prefetch(wr.wrapping_add(off));
            }
        };
        let mut total: [[[V; NV]; ROWS]; MX] = std::array::from_fn(|i| {
            std::array::from_fn(|r| {
                std::array::from_fn(|v| {
                    if fresh {
                        V::zero()
                    } else {
                        V::loadf(out[i][r].as_ptr().add(v * V::W))
                    }
                })
            })
        });
        while q < pairs {
            let end = (q + seg_pairs).min(pairs);
            let mut part = [[[V::zero(); NV]; ROWS]; MX];
            // FP8 codes go 64 at a time while the segment has them (fewer shuffles per code
            // where the unit converts by table lookup), then 32.
            while CODES != PAIRS && q + 2 * LANES <= end {
                prefetch(q);
                let xv: [[(V, V); NV]; MX] = std::array::from_fn(|i| {
                    std::array::from_fn(|v| {
                        let p = x[i].add(q + 2 * v * V::W);
                        if CODES == PAIRS_X2 {
                            load_two(p)
                        } else {
                            V::load_pairs_x2(p)
                        }
                    })
                });
                for r in 0..ROWS {
                    for v in 0..NV {
                        let (wa, wb) = if CODES == PAIRS_X2 {
                            load_two(w[r].cast::<u32>().add(q + 2 * v * V::W))
                        } else {
                            V::load_fp8_x2(w[r].add(2 * (q + 2 * v * V::W)), CODES == CODES_E4M3)
                        };
                        for i in 0..MX {
                            let (xa, xb) = xv[i][v];
                            part[i][r][v] = V::dot(V::dot(part[i][r][v], xa, wa), xb, wb);
                        }
                    }
                }
                q += 2 * LANES;
            }
            while q < end {
                prefetch(q);
                let xv: [[V; NV]; MX] =
                    std::array::from_fn(|i| std::array::from_fn(|v| V::load(x[i].add(q + v * V::W))));
                for r in 0..ROWS {
                    for v in 0..NV {
                        let wv = load(r, q + v * V::W);
                        for i in 0..MX {
                            part[i][r][v] = V::dot(part[i][r][v], xv[i][v], wv);
                        }
                    }
                }
                q += LANES;
            }
            for i in 0..MX {
                for r in 0..ROWS {
                    let sv = V::splatf(*sw[r].add(si) * *sx[i].add(si));
                    for v in 0..NV {
                        total[i][r][v] = V::fma(part[i][r][v], sv, total[i][r][v]);
                    }
                }
            }
            si += 1;
        }
        for (o, t) in out.iter_mut().zip(&total) {
            for (o, t) in o.iter_mut().zip(t) {
                for (v, &t) in t.iter().enumerate() {
                    V::storef(o.as_mut_ptr().add(v * V::W), t);
                }
            }
        }
    }
}

/// The `2W` K-pairs at `p` as two vectors, as they lie ([`PAIRS_X2`] rows are already split).
///
/// # Safety
/// As [`DotVec::load`], for `2W` pairs.
#[inline(always)]
unsafe fn load_two<V: DotVec>(p: *const u32) -> (V, V) {
    // SAFETY (caller): 2W pairs readable at `p`.
    unsafe { (V::load(p), V::load(p.add(V::W))) }
}

/// Two vectors of K-pairs stored one after the other at `p` (what [`load_two`] reads back).
///
/// # Safety
/// As [`DotVec::storef`], for `2W` pairs.
#[inline(always)]
unsafe fn store_two<V: DotVec>(p: *mut u32, (a, b): (V, V)) {
    // SAFETY (caller): 2W pairs writable at `p`.
    unsafe {
        V::storef(p.cast(), a);
        V::storef(p.add(V::W).cast(), b);
    }
}

/// The `n` FP8 codes at `codes` (a multiple of `4 · W`; E4M3 when `e4m3`, else E5M2) as K-pairs
/// at `out` in [`PAIRS_X2`] order: each `2 · W` pairs as [`DotVec::load_fp8_x2`] leaves them,
/// the first vector then the second. A skinny product converts a chunk of its weight rows once
/// for all its activation rows instead of once per [`MX_MAX`] of them. The codes are prefetched
/// as the row body prefetches them (`left`, `skip`: see [`rows`]).
///
/// # Safety
/// The caller has the unit's features; `codes` is valid for `n` reads, `out` for `n / 2` writes.
#[inline(always)]
pub(crate) unsafe fn fp8_x2<V: DotVec>(
    codes: *const u8,
    n: usize,
    e4m3: bool,
    out: *mut u32,
    (left, skip): (usize, usize),
) {
    let mut c = 0;
    while c < n {
        let off = c + PREFETCH_BYTES;
        V::prefetch(codes.wrapping_add(if off < left { off } else { off + skip }));
        // SAFETY (caller): 4W codes readable at `codes + c`, 2W pairs writable at `out + c / 2`.
        unsafe { store_two(out.add(c / 2), V::load_fp8_x2(codes.add(c), e4m3)) };
        c += 4 * V::W;
    }
}

/// The `n` K-pairs at `src` (a multiple of `2 · W`) split as [`DotVec::load_pairs_x2`] splits
/// them, into `out` ([`PAIRS_X2`] order for activation rows).
///
/// # Safety
/// The caller has the unit's features; `src` is valid for `n` reads, `out` for `n` writes.
#[inline(always)]
pub(crate) unsafe fn split_x2<V: DotVec>(src: *const u32, n: usize, out: *mut u32) {
    let mut c = 0;
    while c < n {
        // SAFETY (caller): 2W pairs readable at `src + c` and writable at `out + c`.
        unsafe { store_two(out.add(c), V::load_pairs_x2(src.add(c))) };
        c += 2 * V::W;
    }
}

/// Independent chains of the peak loop (enough to cover the dot latency on every port).
pub(crate) const PEAK_CHAINS: usize = 12;

/// The register-only dot loop of the compute-peak calibration: [`PEAK_CHAINS`] chains of
/// `acc = dot(acc, x, y)` with `x = (1, 1)`, `y = (2^-24, -2^-24)`, so values stay put.
/// Returns a checksum over every chain.
///
/// # Safety
/// The caller has the unit's features.
#[inline(always)]
pub(crate) unsafe fn peak_loop<V: DotVec>(iters: u64) -> f32 {
    unsafe {
        let x = V::splat(std::hint::black_box(0x3F80_3F80));
        let y = V::splat(std::hint::black_box(0x3380_B380));
        let mut acc = [V::zero(); PEAK_CHAINS];
        for (j, a) in acc.iter_mut().enumerate() {
            *a = V::splatf(j as f32);
        }
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = V::dot(*a, x, y);
            }
        }
        let mut out = [0f32; LANES];
        let mut sum = 0.0;
        for a in acc {
            V::storef(out.as_mut_ptr(), a);
            sum += out[..V::W].iter().sum::<f32>();
        }
        sum
    }
}

/// Arguments of one GEMM tile call over one K block (slices checked by the unit's wrapper).
pub(crate) struct Tile<'a> {
    pub pairs: usize,
    pub seg_pairs: usize,
    /// C's first K block: the tile writes C without reading it (as if C were zero).
    pub fresh: bool,
    pub a: &'a [u32],
    pub b: &'a [u32],
    pub sa: &'a [f32],
    pub sw: &'a [f32],
}

impl Tile<'_> {
    /// What a unit's tile body relies on; returns the `mr` row pointers of C at `col`.
    pub(crate) fn check<const MR: usize>(
        &self,
        nr: usize,
        c: &mut [&mut [f32]],
        col: usize,
    ) -> [*mut f32; MR] {
        let nseg = self.pairs.div_ceil(self.seg_pairs.max(1));
        assert!(self.seg_pairs > 0 && self.a.len() >= self.pairs * MR && self.b.len() >= self.pairs * nr);
        assert!(self.sa.len() >= nseg * MR && self.sw.len() >= nseg * nr && c.len() >= MR);
        std::array::from_fn(|r| {
            assert!(c[r].len() >= col + nr);
            c[r][col..].as_mut_ptr()
        })
    }
}

/// Most activation rows of one GEMV row-kernel call (`RowArgs::x`).
pub(crate) const MX_MAX: usize = 4;

/// Arguments of one GEMV row-kernel call: 1 to [`MX_MAX`] activation rows against [`ROWS`]
/// weight rows; the weight rows hold K-pairs (`T = u32`) or FP8 codes (`T = u8`, two per pair).
pub(crate) struct RowArgs<'a, T = u32> {
    pub pairs: usize,
    pub seg_pairs: usize,
    /// Activation rows as K-pairs.
    pub x: &'a [&'a [u32]],
    pub w: [&'a [T]; ROWS],
    /// Weight scales per segment of each weight row, activation scales of each activation row.
    pub sw: [&'a [f32]; ROWS],
    pub sx: &'a [&'a [f32]],
    /// Prefetch stream: bytes of each weight row from `w[r]` on, and the bytes a prefetch past
    /// them skips (`usize::MAX` and 0 when the rows are not in a matrix).
    pub left: usize,
    pub skip: usize,
    /// The row's first chunk: the totals start at zero (what the call is given is not read).
    pub fresh: bool,
}

/// The 16 lane totals of each of the [`ROWS`] rows of a GEMV row-kernel call, for one
/// activation row.
pub(crate) type Totals = [[f32; LANES]; ROWS];

impl<T> RowArgs<'_, T> {
    /// What the row body relies on, given the totals it writes.
    pub(crate) fn check(&self, totals: &[Totals]) {
        let nseg = check_activations(self.pairs, self.seg_pairs, self.x, self.sx);
        assert!(totals.len() == self.x.len());
        assert!(
            self.w.iter().all(|w| w.len() >= self.pairs * pair_elems::<T>())
                && self.sw.iter().all(|s| s.len() >= nseg)
        );
    }
}

/// Elements of `T` per K-pair: one u32, or two FP8 codes.
fn pair_elems<T>() -> usize {
    if std::mem::size_of::<T>() == 1 {
        2
    } else {
        1
    }
}

/// What every row-kernel call relies on of its segments and activation rows (1 to [`MX_MAX`],
/// `pairs` K-pairs and one scale per segment each); returns the segments per row.
fn check_activations(pairs: usize, seg_pairs: usize, x: &[&[u32]], sx: &[&[f32]]) -> usize {
    let nseg = pairs.div_ceil(seg_pairs.max(1));
    assert!((seg_pairs > 0 && seg_pairs.is_multiple_of(LANES)) || seg_pairs >= pairs);
    assert!((1..=MX_MAX).contains(&x.len()) && sx.len() == x.len());
    assert!(pairs.is_multiple_of(LANES) && x.iter().all(|x| x.len() >= pairs));
    assert!(sx.iter().all(|s| s.len() >= nseg));
    nseg
}

/// Arguments of a row-kernel call over many groups of [`ROWS`] weight rows, each row in one
/// chunk (the row's first and last: short rows, such as attention scores at k = 128, whose
/// per-group work outside the kernel cost more than the products): 1 to [`MX_MAX`] activation
/// rows against `groups · ROWS` consecutive weight rows, `stride` elements apart, of `pairs`
/// K-pairs each (`T = u32`) or `2 · pairs` FP8 codes (`T = u8`).
pub(crate) struct GroupArgs<'a, T = u32> {
    pub pairs: usize,
    pub seg_pairs: usize,
    /// Activation rows as K-pairs, and their scales per segment.
    pub x: &'a [&'a [u32]],
    pub sx: &'a [&'a [f32]],
    /// The weight rows: row `j` at `w[j · stride..]`.
    pub w: &'a [T],
    pub stride: usize,
    pub groups: usize,
    /// Weight scales: row `j`, segment `s` at `sw[((sw_first + j) / sw_rows) · nseg + s]` —
    /// rows that share their scales (DeepSeek-V3's 128-row blocks) share one row of `sw`, so
    /// the caller need not write a row of scales per weight row on every call.
    pub sw: &'a [f32],
    pub sw_rows: usize,
    pub sw_first: usize,
    /// Output: weight row `j` · activation row `i` goes to `out[j · out_stride + i]`.
    pub out_stride: usize,
}

impl<T> GroupArgs<'_, T> {
    /// Segments per row.
    pub(crate) fn nseg(&self) -> usize {
        self.pairs.div_ceil(self.seg_pairs.max(1))
    }

    /// What the group body relies on, given the outputs it writes.
    pub(crate) fn check(&self, out: &[f32]) {
        let per_pair = pair_elems::<T>();
        let nseg = check_activations(self.pairs, self.seg_pairs, self.x, self.sx);
        let rows = self.groups * ROWS;
        assert!(self.sw_rows > 0);
        assert!(rows == 0 || self.sw.len() >= ((self.sw_first + rows - 1) / self.sw_rows + 1) * nseg);
        assert!(self.stride >= self.pairs * per_pair && self.out_stride >= self.x.len());
        assert!(rows == 0 || self.w.len() >= (rows - 1) * self.stride + self.pairs * per_pair);
        assert!(rows == 0 || out.len() >= (rows - 1) * self.out_stride + self.x.len());
    }
}

/// [`Kernels::fp8_x2`]: codes, E4M3, the pairs, the prefetch stream (`RowArgs::left`, `skip`).
pub(crate) type Fp8X2 = fn(&[u8], bool, &mut [u32], (usize, usize));

/// A unit's entry points and tile size.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub mr: usize,
    pub nr: usize,
    pub tile: fn(&Tile, &mut [&mut [f32]], usize),
    /// The row kernel on K-pairs; `totals` holds one [`Totals`] per activation row.
    pub rows: fn(&RowArgs, &mut [Totals]),
    /// The row kernel on FP8 codes (E4M3 when the flag is set, else E5M2).
    pub rows_fp8: fn(&RowArgs<u8>, bool, &mut [Totals]),
    /// The row kernel over many groups of one-chunk rows, reduced to outputs ([`GroupArgs`]).
    pub groups: fn(&GroupArgs, &mut [f32]),
    /// [`Kernels::groups`] on FP8 codes (E4M3 when the flag is set, else E5M2).
    pub groups_fp8: fn(&GroupArgs<u8>, bool, &mut [f32]),
    /// [`fp8_x2`]: FP8 codes (a multiple of 64; E4M3 when the flag is set) to [`PAIRS_X2`]
    /// pairs, with the row body's prefetch stream.
    pub fp8_x2: Fp8X2,
    /// The row kernel on [`PAIRS_X2`] pairs: the bits of [`Kernels::rows_fp8`] on their codes.
    pub rows_x2: fn(&RowArgs, &mut [Totals]),
    /// [`split_x2`]: K-pairs (a multiple of 32) into [`PAIRS_X2`] order.
    pub split_x2: fn(&[u32], &mut [u32]),
    /// The tile is a tile-matrix unit's ([`super::tiles`]): A panels in its layout, K padded to
    /// whole steps. `false` for the vector units (A panels transposed, as W's).
    pub tiles: bool,
}

/// Instantiate [`tile`] and [`rows`] for one vector type and tile size: `#[target_feature]`
/// bodies behind safe wrappers that check the CPU (`$has`) and the slices first.
#[macro_export]
#[doc(hidden)]
macro_rules! dot_kernels {
    ($v:ty, $mr:expr, $nv:expr, $has:expr $(, $feat:literal)?) => {
        pub(crate) const KERNELS: $crate::kernels::cpu::dot::Kernels = $crate::kernels::cpu::dot::Kernels {
            mr: $mr,
            nr: $nv * <$v as $crate::kernels::cpu::dot::DotVec>::W,
            tile: tile_entry,
            rows: rows_entry,
            rows_fp8: rows_fp8_entry,
            groups: groups_entry,
            groups_fp8: groups_fp8_entry,
            fp8_x2: fp8_x2_entry,
            rows_x2: rows_x2_entry,
            split_x2: split_x2_entry,
            tiles: false,
        };

        $(#[target_feature(enable = $feat)])?
        #[allow(clippy::too_many_arguments)]
        unsafe fn tile_body(
            t: &$crate::kernels::cpu::dot::Tile,
            c: [*mut f32; $mr],
        ) {
            // SAFETY (caller): features present, slices checked by `Tile::check`.
            unsafe {
                $crate::kernels::cpu::dot::tile::<$v, $mr, $nv>(
                    t.pairs,
                    t.seg_pairs,
                    t.a.as_ptr(),
                    t.b.as_ptr(),
                    t.sa.as_ptr(),
                    t.sw.as_ptr(),
                    c,
                    t.fresh,
                )
            }
        }

        fn tile_entry(t: &$crate::kernels::cpu::dot::Tile, c: &mut [&mut [f32]], col: usize) {
            assert!($has, "dot unit not present on this CPU");
            let rows = t.check::<$mr>(KERNELS.nr, c, col);
            // SAFETY: the CPU has the features; every slice checked above.
            unsafe { tile_body(t, rows) }
        }

        $(#[target_feature(enable = $feat)])?
        unsafe fn rows_body<T, const CODES: u8, const MX: usize>(
            r: &$crate::kernels::cpu::dot::RowArgs<T>,
            total: &mut [$crate::kernels::cpu::dot::Totals],
        ) {
            // SAFETY (caller): features present, slices checked by `RowArgs::check`, and
            // `r.x`, `r.sx`, `total` hold MX rows.
            unsafe {
                $crate::kernels::cpu::dot::rows::<$v, { $crate::kernels::cpu::dot::LANES / <$v as $crate::kernels::cpu::dot::DotVec>::W }, CODES, MX>(
                    r.pairs,
                    r.seg_pairs,
                    std::array::from_fn(|i| r.x[i].as_ptr()),
                    r.w.map(|w| w.as_ptr().cast::<u8>()),
                    r.sw.map(|s| s.as_ptr()),
                    std::array::from_fn(|i| r.sx[i].as_ptr()),
                    (r.left, r.skip),
                    r.fresh,
                    total.try_into().expect("MX totals"),
                )
            }
        }

        /// `rows_body` for the number of activation rows of `r` (checked: 1..=MX_MAX).
        unsafe fn rows_mx<T, const CODES: u8>(
            r: &$crate::kernels::cpu::dot::RowArgs<T>,
            total: &mut [$crate::kernels::cpu::dot::Totals],
        ) {
            // SAFETY (caller): as for `rows_body`, with `r.x.len()` rows.
            unsafe {
                match r.x.len() {
                    1 => rows_body::<T, CODES, 1>(r, total),
                    2 => rows_body::<T, CODES, 2>(r, total),
                    3 => rows_body::<T, CODES, 3>(r, total),
                    _ => rows_body::<T, CODES, 4>(r, total),
                }
            }
        }

        $(#[target_feature(enable = $feat)])?
        unsafe fn groups_body<T, const CODES: u8, const MX: usize>(
            g: &$crate::kernels::cpu::dot::GroupArgs<T>,
            out: &mut [f32],
        ) {
            use $crate::kernels::cpu::dot::{LANES, ROWS};
            let nseg = g.nseg();
            let size = std::mem::size_of::<T>();
            // Each row streams on into the next group's.
            let stream = (g.stride * size, (ROWS - 1) * g.stride * size);
            let x = std::array::from_fn(|i| g.x[i].as_ptr());
            let sx = std::array::from_fn(|i| g.sx[i].as_ptr());
            for gi in 0..g.groups {
                let j0 = gi * ROWS;
                let mut t = [[[0f32; LANES]; ROWS]; MX];
                // SAFETY (caller): features present, slices checked by `GroupArgs::check`, and
                // `g.x`, `g.sx` hold MX rows; row `j0 + r` lies within `w`, its scales in `sw`.
                unsafe {
                    $crate::kernels::cpu::dot::rows::<$v, { LANES / <$v as $crate::kernels::cpu::dot::DotVec>::W }, CODES, MX>(
                        g.pairs,
                        g.seg_pairs,
                        x,
                        std::array::from_fn(|r| g.w.as_ptr().add((j0 + r) * g.stride).cast::<u8>()),
                        std::array::from_fn(|r| g.sw.as_ptr().add((g.sw_first + j0 + r) / g.sw_rows * nseg)),
                        sx,
                        stream,
                        true,
                        &mut t,
                    );
                }
                for r in 0..ROWS {
                    for i in 0..MX {
                        // SAFETY (caller): features present.
                        out[(j0 + r) * g.out_stride + i] =
                            unsafe { <$v as $crate::kernels::cpu::dot::DotVec>::reduce(&t[i][r]) };
                    }
                }
            }
        }

        /// `groups_body` for the number of activation rows of `g` (checked: 1..=MX_MAX).
        unsafe fn groups_mx<T, const CODES: u8>(g: &$crate::kernels::cpu::dot::GroupArgs<T>, out: &mut [f32]) {
            // SAFETY (caller): as for `groups_body`, with `g.x.len()` rows.
            unsafe {
                match g.x.len() {
                    1 => groups_body::<T, CODES, 1>(g, out),
                    2 => groups_body::<T, CODES, 2>(g, out),
                    3 => groups_body::<T, CODES, 3>(g, out),
                    _ => groups_body::<T, CODES, 4>(g, out),
                }
            }
        }

        fn groups_entry(g: &$crate::kernels::cpu::dot::GroupArgs, out: &mut [f32]) {
            assert!($has, "dot unit not present on this CPU");
            g.check(out);
            // SAFETY: the CPU has the features; every slice checked above.
            unsafe { groups_mx::<u32, { $crate::kernels::cpu::dot::PAIRS }>(g, out) }
        }

        fn groups_fp8_entry(g: &$crate::kernels::cpu::dot::GroupArgs<u8>, e4m3: bool, out: &mut [f32]) {
            assert!($has, "dot unit not present on this CPU");
            g.check(out);
            // SAFETY: the CPU has the features; every slice checked above.
            unsafe {
                if e4m3 {
                    groups_mx::<u8, { $crate::kernels::cpu::dot::CODES_E4M3 }>(g, out)
                } else {
                    groups_mx::<u8, { $crate::kernels::cpu::dot::CODES_E5M2 }>(g, out)
                }
            }
        }

        $(#[target_feature(enable = $feat)])?
        unsafe fn peak_body(iters: u64) -> f32 {
            // SAFETY (caller): features present.
            unsafe { $crate::kernels::cpu::dot::peak_loop::<$v>(iters) }
        }

        /// The register-only dot loop of the compute-peak calibration: (flops, checksum), or
        /// `None` without the unit. A step is `W` lanes × 2 products × 2 flops per chain.
        #[allow(dead_code)]
        pub(crate) fn dot_loop(iters: u64) -> Option<(f64, f32)> {
            if !$has {
                return None;
            }
            let w = <$v as $crate::kernels::cpu::dot::DotVec>::W;
            let flops = iters as f64 * ($crate::kernels::cpu::dot::PEAK_CHAINS * w * 4) as f64;
            // SAFETY: features checked above.
            Some((flops, unsafe { peak_body(iters) }))
        }

        $(#[target_feature(enable = $feat)])?
        unsafe fn fp8_x2_body(codes: &[u8], e4m3: bool, out: &mut [u32], stream: (usize, usize)) {
            // SAFETY (caller): features present, lengths checked by `fp8_x2_entry`.
            unsafe {
                $crate::kernels::cpu::dot::fp8_x2::<$v>(codes.as_ptr(), codes.len(), e4m3, out.as_mut_ptr(), stream)
            }
        }

        fn fp8_x2_entry(codes: &[u8], e4m3: bool, out: &mut [u32], stream: (usize, usize)) {
            assert!($has, "dot unit not present on this CPU");
            let w = <$v as $crate::kernels::cpu::dot::DotVec>::W;
            assert!(codes.len().is_multiple_of(4 * w) && out.len() >= codes.len() / 2);
            // SAFETY: the CPU has the features; lengths checked above.
            unsafe { fp8_x2_body(codes, e4m3, out, stream) }
        }

        $(#[target_feature(enable = $feat)])?
        unsafe fn split_x2_body(src: &[u32], out: &mut [u32]) {
            // SAFETY (caller): features present, lengths checked by `split_x2_entry`.
            unsafe { $crate::kernels::cpu::dot::split_x2::<$v>(src.as_ptr(), src.len(), out.as_mut_ptr()) }
        }

        fn split_x2_entry(src: &[u32], out: &mut [u32]) {
            assert!($has, "dot unit not present on this CPU");
            assert!(src.len().is_multiple_of(2 * $crate::kernels::cpu::dot::LANES) && out.len() >= src.len());
            // SAFETY: the CPU has the features; lengths checked above.
            unsafe { split_x2_body(src, out) }
        }

        fn rows_x2_entry(r: &$crate::kernels::cpu::dot::RowArgs, total: &mut [$crate::kernels::cpu::dot::Totals]) {
            use $crate::kernels::cpu::dot::LANES;
            assert!($has, "dot unit not present on this CPU");
            r.check(total);
            // Every segment whole steps of the body's two-vector loop (no one-vector tail).
            assert!(r.pairs.is_multiple_of(2 * LANES) && (r.seg_pairs >= r.pairs || r.seg_pairs.is_multiple_of(2 * LANES)));
            // SAFETY: the CPU has the features; every slice checked above.
            unsafe { rows_mx::<u32, { $crate::kernels::cpu::dot::PAIRS_X2 }>(r, total) }
        }

        fn rows_entry(r: &$crate::kernels::cpu::dot::RowArgs, total: &mut [$crate::kernels::cpu::dot::Totals]) {
            assert!($has, "dot unit not present on this CPU");
            r.check(total);
            // SAFETY: the CPU has the features; every slice checked above.
            unsafe { rows_mx::<u32, { $crate::kernels::cpu::dot::PAIRS }>(r, total) }
        }

        fn rows_fp8_entry(
            r: &$crate::kernels::cpu::dot::RowArgs<u8>,
            e4m3: bool,
            total: &mut [$crate::kernels::cpu::dot::Totals],
        ) {
            assert!($has, "dot unit not present on this CPU");
            r.check(total);
            // SAFETY: the CPU has the features; every slice checked above.
            unsafe {
                if e4m3 {
                    rows_mx::<u8, { $crate::kernels::cpu::dot::CODES_E4M3 }>(r, total)
                } else {
                    rows_mx::<u8, { $crate::kernels::cpu::dot::CODES_E5M2 }>(r, total)
                }
            }
        }
    };
}

/// The twin of `vdpbf16ps` (4 × 16 tiles).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(crate) mod soft_x86 {
    crate::dot_kernels!(super::Soft<false>, 4, 1, true);
}

/// The twin of `BFDOT` (4 × 16 tiles).
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(crate) mod soft_arm {
    crate::dot_kernels!(super::Soft<true>, 4, 1, true);
}

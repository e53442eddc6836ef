//! The second compute path: the CPU's BF16 dot-product units (x86 AVX512_BF16 `vdpbf16ps`,
//! aarch64 FEAT_BF16 `BFDOT`), for products whose operands are all exact in BF16 — BF16, E4M3
//! and E5M2 activations times BF16, E4M3 or E5M2 weights.
//!
//! Arithmetic (every unit, and the portable twins, follow it; only the rounding of one dot step
//! differs between vendors, see [`Soft`]):
//! - Codes are decoded *exactly* to BF16, without their scales (an FP8 value is a BF16 value),
//!   and packed as K-pairs: one `u32` holds elements `2q` (low half) and `2q + 1` (high half).
//!   An odd K gets a zero partner.
//! - K is cut into promotion segments of `P = min(block width of A, block width of W, KC)`
//!   elements (32 for MX, 128 for DeepSeek, a whole K block otherwise). Per output element and
//!   segment, a fresh f32 chain of dot steps over the segment's pairs, in K order, gives `part`;
//!   then `c = fma(part, sa · sw, c)` with the two block scales of that segment (DeepSeek-V3 /
//!   DeepGEMM promotion: the scales touch f32 partial sums, never the operands).
//! - GEMM: C starts at +0 and is updated segment after segment in K order, so the result does not
//!   depend on the tile, the thread count or the split. GEMV, and every skinny product (at most
//!   [`crate::kernels::SKINNY_M`] activation rows, each row as its own GEMV): 16 logical lanes
//!   per row, `total[l] = fma(part[l], sw · sa, total[l])` per segment, then [`reduce16`]. With
//!   BF16 weights lane `l` takes pairs `q ≡ l mod 16`; with FP8 weights each segment goes in
//!   steps of 32 pairs while they fit, in the order the unit's conversion leaves them
//!   ([`DotVec::load_fp8_x2`]: two dot steps per lane), then of 16. The steps depend only on
//!   the segment, never on how the row is cut into chunks or padded, so a skinny product gives
//!   the GEMV's bits row by row.
//!
//! Structure: one generic GEMM tile body ([`tile`]) and one GEMV row body ([`rows`]) over a
//! small per-ISA vector layer ([`DotVec`]: load, splat, dot, fma); each unit instantiates them
//! with its tile size through [`dot_kernels!`](crate::dot_kernels). The portable [`Soft`]
//! vector mirrors the instruction lane by lane and is the twin the SIMD units are tested against.

mod layer;
pub(crate) mod tiles;
pub(crate) use layer::*;

use super::gemm::{cut_items, split};
use super::gemv::reduce16;
use super::Pool;
use crate::formats::scaling::ScaleSlice;
use crate::formats::{Element, Format, QuantizedMatrix};
use crate::with_codes;
use rayon::prelude::*;

/// K block of the dot path's GEMM on the vector units (elements): a multiple of every
/// promotion segment (32, 128). A block holds `KC / 2` pairs and at most `KC / 32` segments (MX).
pub(crate) const KC: usize = 256;
/// K chunk of the dot GEMV with more than [`MX_MAX`] activation rows (elements, a multiple of
/// [`KC`]): 4 rows of pairs in 8 KiB of L1 while every block of activation rows takes them.
const GEMV_KC: usize = 1024;

/// Whether the dot path can run this product exactly: both operands hold BF16-exact values.
pub(crate) fn eligible(a: Format, w: Format) -> bool {
    let exact = |f: Format| matches!(f, Format::BF16 | Format::E4M3 | Format::E5M2);
    exact(a) && exact(w)
}

/// The scale of column `col` of a row of `q` whose scales are `rs` (`q.row_scales(row)`): how
/// the dot path maps a column to its scale (the GEMV works the same map out once per K chunk).
/// (`scale_at` per segment cost three divisions each; in the GEMV that capped a core at about 2
/// weights per cycle.)
#[inline]
fn scale(rs: ScaleSlice, q: &QuantizedMatrix, col: usize) -> f32 {
    rs.get(col / q.block.cols)
}

/// BF16 bits of a value that is exact in BF16 (a decoded BF16/E4M3/E5M2 code).
#[inline(always)]
fn bf16_bits(v: f32) -> u32 {
    let b = v.to_bits();
    debug_assert!(b & 0xFFFF == 0 || v.is_nan(), "{v} is not exact in bf16");
    b >> 16
}

/// Promotion segment length for `a · wᵀ`, capped at `cap` (the K block for GEMM).
fn promotion(a: &QuantizedMatrix, w: &QuantizedMatrix, cap: usize) -> usize {
    a.block.cols.min(w.block.cols).min(cap).max(1)
}

// ---------------------------------------------------------------- units

/// A BF16 dot-product unit (or its portable twin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DotUnit {
    /// x86-64 AVX512_BF16 (`vdpbf16ps` on zmm).
    Avx512Bf16,
    /// aarch64 FEAT_BF16 (`BFDOT` on q registers).
    NeonBf16,
    /// Plain Rust mirroring this target's instruction (Intel's order on x86-64, Arm's rounding
    /// on aarch64): for tests, and to exercise the path on a CPU without the units.
    Portable,
}

/// A compute unit of the dot path (vector or tile), as detection and forcing see it.
pub(crate) trait Unit: Copy + PartialEq + Sized {
    /// The portable twin (always available, never detected).
    const PORTABLE: Self;
    /// What the unit is called in errors ("dot unit", "tile unit").
    const WHAT: &'static str;
    /// Every unit this CPU can run, native first, the twin last.
    fn all() -> Vec<Self>;
    fn label(self) -> &'static str;

    /// The first native unit, unless `off` (an environment variable) is `1`.
    fn first_native(off: &str) -> Option<Self> {
        if std::env::var(off).is_ok_and(|v| v == "1") {
            return None;
        }
        Self::all().into_iter().find(|&u| u != Self::PORTABLE)
    }

    /// `unit` if this CPU can run it (or `None`), else an error naming the units it can.
    fn check(unit: Option<Self>) -> crate::Result<Option<Self>> {
        match unit {
            Some(u) if !Self::all().contains(&u) => {
                let allowed: Vec<&str> = Self::all().iter().map(|u| u.label()).collect();
                Err(crate::Error::invalid(Self::WHAT, u.label(), &allowed.join(", ")))
            }
            _ => Ok(unit),
        }
    }
}

impl Unit for DotUnit {
    const PORTABLE: Self = DotUnit::Portable;
    const WHAT: &'static str = "dot unit";
    fn all() -> Vec<Self> {
        Self::available()
    }
    fn label(self) -> &'static str {
        self.name()
    }
}

impl Unit for TileUnit {
    const PORTABLE: Self = TileUnit::Portable;
    const WHAT: &'static str = "tile unit";
    fn all() -> Vec<Self> {
        Self::available()
    }
    fn label(self) -> &'static str {
        self.name()
    }
}

impl DotUnit {
    /// The unit this CPU has, unless `CHIPBENCH_NO_BF16_DOT=1` turns the path off.
    pub fn detect() -> Option<DotUnit> {
        Self::first_native("CHIPBENCH_NO_BF16_DOT")
    }

    /// Every unit this CPU can run, native first (`Portable` is always last).
    pub fn available() -> Vec<DotUnit> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if super::x86_bf16::has_avx512_bf16() {
            v.push(DotUnit::Avx512Bf16);
        }
        #[cfg(target_arch = "aarch64")]
        if super::neon_bf16::has_bf16() {
            v.push(DotUnit::NeonBf16);
        }
        v.push(DotUnit::Portable);
        v
    }

    pub fn name(self) -> &'static str {
        match self {
            DotUnit::Avx512Bf16 => "avx512_bf16",
            DotUnit::NeonBf16 => "neon-bf16",
            DotUnit::Portable => "portable",
        }
    }

    fn kernels(self) -> Kernels {
        match self {
            #[cfg(target_arch = "x86_64")]
            DotUnit::Avx512Bf16 => super::x86_bf16::kernels(),
            #[cfg(target_arch = "aarch64")]
            DotUnit::NeonBf16 => super::neon_bf16::KERNELS,
            #[cfg(target_arch = "aarch64")]
            _ => soft_arm::KERNELS,
            #[cfg(not(target_arch = "aarch64"))]
            _ => soft_x86::KERNELS,
        }
    }
}

impl std::fmt::Display for DotUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A BF16 tile-matrix unit for the dot path's GEMMs (or its portable twin): same inputs, same
/// promotion, 32 × 32 blocks of C per tile ([`tiles`]). GEMVs and skinny products stay on the
/// vector unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileUnit {
    /// x86-64 AMX-BF16 (`tdpbf16ps`, Sapphire Rapids and later).
    Amx,
    /// Plain Rust computing what `tdpbf16ps` computes, output by output (tests; any CPU).
    Portable,
}

impl TileUnit {
    /// The unit this CPU has, unless `CHIPBENCH_NO_AMX=1` turns it off (or
    /// `CHIPBENCH_NO_BF16_DOT=1` the whole dot path).
    pub fn detect() -> Option<TileUnit> {
        Self::first_native("CHIPBENCH_NO_AMX")
    }

    /// Every unit this CPU can run, native first (`Portable` is always last).
    pub fn available() -> Vec<TileUnit> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if super::amx::has_amx() {
            v.push(TileUnit::Amx);
        }
        v.push(TileUnit::Portable);
        v
    }

    pub fn name(self) -> &'static str {
        match self {
            TileUnit::Amx => "amx_bf16",
            TileUnit::Portable => "amx-portable",
        }
    }

    /// `base` (a vector unit's kernels: packing conversions) with this unit's GEMM tile.
    fn kernels(self, base: Kernels) -> Kernels {
        let tile = match self {
            #[cfg(target_arch = "x86_64")]
            TileUnit::Amx => super::amx::tile_entry,
            _ => tiles::tile_soft,
        };
        Kernels { mr: tiles::TM, nr: tiles::TN, tile, tiles: true, ..base }
    }
}

impl std::fmt::Display for TileUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

// ---------------------------------------------------------------- packing

/// The pairs are built as two halves of a `u32` in memory order (BF16 codes are copied as they
/// lie), which is the element order the units read only on a little-endian target.
const _: () = assert!(cfg!(target_endian = "little"), "the dot path packs K-pairs as little-endian u32");

/// `codes` (one row, `kc` codes) as K-pairs in `out[..kc.div_ceil(2)]`; an odd last element gets
/// a zero partner. BF16 codes are copied as they lie (a pair of BF16 codes is a K-pair); FP8 codes
/// go through the unit's SIMD conversion where it has one (AVX-512: 32 codes at a time, exact),
/// and the rest through [`row_pairs_portable`]. `f` is decode scratch of at least `kc + 1` values.
fn row_pairs<E: Element>(codes: &[E], f: &mut [f32], out: &mut [u32]) {
    let kc = codes.len();
    let kcp = kc.div_ceil(2);
    if E::FORMAT == Format::BF16 {
        let halves: &mut [u16] = bytemuck::cast_slice_mut(&mut out[..kcp]);
        halves[..kc].copy_from_slice(bytemuck::cast_slice(codes));
        halves[kc..].fill(0);
        return;
    }
    let done = simd_pairs(codes, &mut out[..kcp]);
    debug_assert!(done.is_multiple_of(2));
    row_pairs_portable(&codes[done..], f, &mut out[done / 2..kcp]);
}

/// FP8 codes to K-pairs with the CPU's SIMD conversion, as many as it takes (a multiple of 32);
/// returns how many codes it converted (0 where there is none).
fn simd_pairs<E: Element>(codes: &[E], out: &mut [u32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if E::FORMAT.is_fp8() {
        return super::x86_bf16::fp8_pairs(E::FORMAT == Format::E4M3, bytemuck::cast_slice(codes), out);
    }
    let _ = (codes, out);
    0
}

/// The portable twin of [`row_pairs`]: the SIMD decode to f32 into `f` (exact values, which are
/// exact in BF16), then each value's top half.
fn row_pairs_portable<E: Element>(codes: &[E], f: &mut [f32], out: &mut [u32]) {
    let kc = codes.len();
    let kcp = kc.div_ceil(2);
    super::gemv::decode_codes(codes, &mut f[..kc]);
    f[kc..2 * kcp].fill(0.0);
    for (p, v) in out[..kcp].iter_mut().zip(f.chunks_exact(2)) {
        *p = bf16_bits(v[0]) | bf16_bits(v[1]) << 16;
    }
}

/// `Some(true)` for E4M3 codes, `Some(false)` for E5M2, `None` for other formats.
fn fp8_kind<E: Element>(_: &[E]) -> Option<bool> {
    E::FORMAT.is_fp8().then_some(E::FORMAT == Format::E4M3)
}

/// BF16 codes read as K-pairs where they lie (`None` for other formats, or a span that is not
/// 4-byte aligned).
fn pairs_in_place<E: Element>(span: &[E]) -> Option<&[u32]> {
    (E::FORMAT == Format::BF16).then(|| bytemuck::try_cast_slice(span).ok()).flatten()
}

/// Scratch values [`pack_pairs`] needs for micro-panels `width` rows wide.
fn pack_scratch_len(width: usize, kc: usize) -> usize {
    kc + 2 + width * kc / 2
}

/// Pack rows `[r0, r0 + width)` × K range `[p0, p0 + kc)` of `q` as K-pairs,
/// `out[pair · width + r]`, and the scales of its promotion segments (`seg` elements each),
/// `scales[s · width + r]`. Rows past the matrix are zero (scale 0). Each row becomes a
/// contiguous run of pairs ([`row_pairs`]), then the block is transposed with the GEMM packing's
/// SIMD transpose (it moves 32-bit lanes, so pairs travel as f32 bit patterns, unchanged).
/// `scratch` holds [`pack_scratch_len`]`(width, kc)` values. With `tiles` (a tile-matrix unit's
/// panel): pairs are zero up to a whole step, and `a_rows` lays the rows out as the unit's A
/// operand ([`tiles::a_index`]) instead of transposing them.
#[allow(clippy::too_many_arguments)]
fn pack_pairs<E: Element>(
    codes: &[E],
    q: &QuantizedMatrix,
    (r0, width): (usize, usize),
    (p0, kc): (usize, usize),
    seg: usize,
    (out, tiles): (&mut [u32], Option<bool>),
    scales: &mut [f32],
    scratch: &mut [f32],
) {
    let kcp = kc.div_ceil(2);
    let nseg = kc.div_ceil(seg);
    let rows = q.rows.saturating_sub(r0).min(width);
    // BF16 rows of whole pairs are read where they lie (`ld` pairs apart); other rows become
    // pairs in `scratch` first.
    let start = r0 * q.cols + p0;
    let in_place = (kc.is_multiple_of(2) && q.cols.is_multiple_of(2) && rows > 0)
        .then(|| pairs_in_place(&codes[start..start + (rows - 1) * q.cols + kc]))
        .flatten();
    let (src, ld): (&[u32], usize) = match in_place {
        Some(src) => (src, q.cols / 2),
        None => {
            let (f, block) = scratch.split_at_mut(kc + 2);
            let block: &mut [u32] = bytemuck::cast_slice_mut(&mut block[..rows * kcp]);
            for (r, pairs) in block.chunks_exact_mut(kcp.max(1)).enumerate() {
                let start = (r0 + r) * q.cols + p0;
                row_pairs(&codes[start..start + kc], f, pairs);
            }
            (block, kcp)
        }
    };
    let padded = if tiles.is_some() { tiles::padded(kcp) } else { kcp };
    let out = &mut out[..padded * width];
    if rows < width || padded > kcp {
        out.fill(0);
    }
    if tiles == Some(true) {
        // Each row's pairs go a step (16 pairs, one 64-byte tile row) at a time.
        for r in 0..rows {
            for (s, step) in src[r * ld..r * ld + kcp].chunks(tiles::STEP).enumerate() {
                let at = tiles::a_index(width, r, s * tiles::STEP);
                out[at..at + step.len()].copy_from_slice(step);
            }
        }
    } else {
        let out = &mut out[..kcp * width];
        super::pack::transpose(
            bytemuck::cast_slice(src),
            ld,
            rows,
            kcp,
            width,
            bytemuck::cast_slice_mut(out),
        );
    }
    for r in 0..width {
        let rs = (r < rows).then(|| q.row_scales(r0 + r));
        for s in 0..nseg {
            scales[s * width + r] = rs.map_or(0.0, |rs| scale(rs, q, p0 + s * seg));
        }
    }
}

// ---------------------------------------------------------------- GEMM

/// Fetch into L2 share `part` of `parts` of rows `[r0, r1)` × K range `[p0, p0 + kc)` of the
/// row-major matrix `codes` (`cols` wide). A work item spreads the next K block's W rows over the
/// A micro-panels of this one, so that packing them does not wait on memory: each row's span is
/// a few lines at a stride the hardware prefetcher does not run ahead of.
fn prefetch_share<E>(
    codes: &[E],
    cols: usize,
    (r0, r1): (usize, usize),
    (p0, kc): (usize, usize),
    (part, parts): (usize, usize),
) {
    let rows = r1 - r0;
    let bytes = kc * std::mem::size_of::<E>();
    for r in r0 + rows * part / parts..r0 + rows * (part + 1) / parts {
        let row = codes[r * cols + p0..].as_ptr().cast::<u8>();
        for off in (0..bytes + 63).step_by(64) {
            super::isa::prefetch(row.wrapping_add(off.min(bytes.saturating_sub(1))));
        }
    }
}

/// Packed panels, 64-byte aligned: a tile unit reads each 64-byte row of a tile as one cache
/// line (the allocator's 16-byte alignment split every row over two lines, and AMX's 2×2 tile
/// step ran at 0.45× its speed on aligned panels).
pub(crate) struct Panels {
    lines: Vec<Line>,
    len: usize,
}

#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Line([u32; 16]);

impl Panels {
    fn zeroed(len: usize) -> Panels {
        Panels { lines: vec![Line([0; 16]); len.div_ceil(16)], len }
    }
}

impl std::ops::Deref for Panels {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

impl std::ops::DerefMut for Panels {
    fn deref_mut(&mut self) -> &mut [u32] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

/// A GEMM on the dot path: its split, tile and packing buffers, fixed at prepare time.
pub(crate) struct DotGemm {
    kernels: Kernels,
    /// The unit whose tile runs (the record's `compute`).
    unit: &'static str,
    seg: usize,
    m_panels: usize,
    row_ranges: Vec<(usize, usize)>,
    col_chunks: Vec<(usize, usize)>,
    /// K block: [`KC`] on the vector units, [`tiles::KC`] on a tile unit.
    kc: usize,
    /// A as K-pairs, all of K: panel `(block, i)` at `(block · m_panels + i) · mr · kc / 2`.
    a_pack: Panels,
    sa_pack: Vec<f32>,
    /// Per work item: packed W chunk (one K block), its scales, decode scratch.
    w_packs: Vec<(Panels, Vec<f32>, Vec<f32>)>,
}

impl DotGemm {
    /// The GEMM on `unit`, its tiles on `tiles` where given and the promotion segments are whole
    /// steps of that unit (every scaling chipbench runs: 32, 128 or a whole K block).
    pub(crate) fn new(
        unit: DotUnit,
        tiles: Option<TileUnit>,
        a: &QuantizedMatrix,
        w: &QuantizedMatrix,
        threads: usize,
    ) -> DotGemm {
        let tile_seg = promotion(a, w, tiles::KC);
        let (kernels, name, kc, seg) = match tiles {
            Some(t) if tile_seg.is_multiple_of(2 * tiles::STEP) || tile_seg >= a.cols => {
                (t.kernels(unit.kernels()), t.name(), tiles::KC, tile_seg)
            }
            _ => (unit.kernels(), unit.name(), KC, promotion(a, w, KC)),
        };
        let (kcp, segs) = (kc / 2, kc / 32);
        let (m, n, k) = (a.rows, w.rows, a.cols);
        let (mr, nr) = (kernels.mr, kernels.nr);
        let (row_ranges, col_chunks) = split(mr, nr, m, n, threads);
        let m_panels = m.div_ceil(mr);
        let blocks = k.div_ceil(kc).max(1);
        let w_packs = row_ranges
            .iter()
            .flat_map(|_| col_chunks.iter())
            .map(|&(c0, c1)| {
                let panels = (c1 - c0).div_ceil(nr);
                (
                    Panels::zeroed(panels * nr * kcp),
                    vec![0f32; panels * nr * segs],
                    vec![0f32; pack_scratch_len(nr, kc)],
                )
            })
            .collect();
        DotGemm {
            kernels,
            unit: name,
            seg,
            m_panels,
            row_ranges,
            col_chunks,
            kc,
            a_pack: Panels::zeroed(blocks * m_panels * mr * kcp),
            sa_pack: vec![0f32; blocks * m_panels * mr * segs],
            w_packs,
        }
    }

    /// The unit whose tile runs this GEMM.
    pub(crate) fn unit_name(&self) -> &'static str {
        self.unit
    }

    pub(crate) fn workspace_bytes(&self) -> u64 {
        let w: usize = self.w_packs.iter().map(|(p, s, t)| p.len() + s.len() + t.len()).sum();
        ((self.a_pack.len() + self.sa_pack.len() + w) * 4) as u64
    }

    /// `c[m×n] = A · Wᵀ`.
    pub(crate) fn run(&mut self, a: &QuantizedMatrix, w: &QuantizedMatrix, c: &mut [f32], pool: &Pool) {
        let (m, n, k) = (a.rows, w.rows, a.cols);
        if m == 0 || n == 0 || k == 0 {
            c.fill(0.0);
            return;
        }
        let Kernels { mr, nr, tile, tiles, .. } = self.kernels;
        // Panel layouts: A as the tile unit's A operand, W as its B operand (the vector units'
        // layout, padded to whole steps); both transposed for the vector units.
        let (a_tiles, w_tiles) = (tiles.then_some(true), tiles.then_some(false));
        let (seg, m_panels) = (self.seg, self.m_panels);
        let kc_max = self.kc;
        let (kcp, segs) = (kc_max / 2, kc_max / 32);
        let blocks: Vec<(usize, usize)> = (0..k).step_by(kc_max).map(|p0| (p0, kc_max.min(k - p0))).collect();
        // A: every (K block, micro-panel) once per run, in parallel.
        let (a_pack, sa_pack) = (&mut self.a_pack, &mut self.sa_pack);
        with_codes!(&a.codes, |codes| pool.install(|| {
            a_pack.par_chunks_mut(mr * kcp).zip(sa_pack.par_chunks_mut(mr * segs)).enumerate().for_each_init(
                || vec![0f32; pack_scratch_len(mr, kc_max)],
                |scratch, (i, (ap, sp))| {
                    let (p0, kc) = blocks[i / m_panels];
                    pack_pairs(codes, a, ((i % m_panels) * mr, mr), (p0, kc), seg, (ap, a_tiles), sp, scratch)
                },
            )
        }));
        let (a_pack, sa_pack) = (&self.a_pack, &self.sa_pack);
        let mut items = cut_items(&self.row_ranges, &self.col_chunks, c, n, self.w_packs.iter_mut());
        pool.install(|| {
            items.par_iter_mut().with_max_len(1).for_each(|it| {
                let (c0, c1) = it.cols;
                let (r0, r1) = it.rows;
                let (wp, sw, scratch) = &mut *it.buf;
                let panels = (c1 - c0).div_ceil(nr);
                // A full-size tile for ragged edges, made once per item.
                let mut edge = vec![0f32; mr * nr];
                for (b, &(p0, kc)) in blocks.iter().enumerate() {
                    with_codes!(&w.codes, |codes| {
                        for (j, (wp, sw)) in wp
                            .chunks_exact_mut(nr * kcp)
                            .zip(sw.chunks_exact_mut(nr * segs))
                            .take(panels)
                            .enumerate()
                        {
                            pack_pairs(
                                codes,
                                w,
                                (c0 + j * nr, nr),
                                (p0, kc),
                                seg,
                                (wp, w_tiles),
                                sw,
                                scratch,
                            );
                        }
                    });
                    let pairs = kc.div_ceil(2);
                    // A tile unit takes whole steps: a segment that is the whole block (a short
                    // last block) runs to its padding.
                    let seg_pairs = match (tiles, seg >= kc) {
                        (true, true) => tiles::padded(pairs),
                        _ => seg.min(kc).div_ceil(2),
                    };
                    let ips = r0 / mr..r1.div_ceil(mr);
                    let nip = ips.len();
                    for ip in ips {
                        // A share of the next K block's W rows on its way to L2 while these tiles
                        // run, so its packing does not wait on memory.
                        if let Some(&next) = blocks.get(b + 1) {
                            with_codes!(&w.codes, |codes| {
                                prefetch_share(codes, w.cols, (c0, c1), next, (ip - r0 / mr, nip))
                            });
                        }
                        let at = (b * m_panels + ip) * mr;
                        let (row0, rv) = (ip * mr, mr.min(r1 - ip * mr));
                        for jp in 0..panels {
                            // The first K block writes C (every element of C is in a tile of
                            // it), so C is never zeroed first, nor read back before it is summed.
                            let t = Tile {
                                pairs,
                                seg_pairs,
                                fresh: b == 0,
                                a: &a_pack[at * kcp..(at + mr) * kcp],
                                b: &wp[jp * nr * kcp..(jp + 1) * nr * kcp],
                                sa: &sa_pack[at * segs..(at + mr) * segs],
                                sw: &sw[jp * nr * segs..(jp + 1) * nr * segs],
                            };
                            let (col, cv) = (jp * nr, nr.min(c1 - c0 - jp * nr));
                            let crows = &mut it.c[row0 - r0..row0 - r0 + rv];
                            if rv == mr && cv == nr {
                                tile(&t, crows, col);
                            } else {
                                // Ragged edge: the valid part of C through a full-size tile (past
                                // the first K block the update reads C, so the tile starts as a
                                // copy of it; what lies outside the valid part is discarded).
                                if !t.fresh {
                                    for (dst, src) in edge.chunks_exact_mut(nr).zip(crows.iter()) {
                                        dst[..cv].copy_from_slice(&src[col..col + cv]);
                                    }
                                }
                                let mut rows: Vec<&mut [f32]> = edge.chunks_exact_mut(nr).collect();
                                tile(&t, &mut rows, 0);
                                for (src, dst) in edge.chunks_exact(nr).zip(crows.iter_mut()) {
                                    dst[col..col + cv].copy_from_slice(&src[..cv]);
                                }
                            }
                        }
                    }
                }
            })
        });
    }
}

// ---------------------------------------------------------------- GEMV

/// Per K chunk of a GEMV, one slice per activation row.
type PerChunk<'a, T> = Vec<Vec<&'a [T]>>;

/// What [`DotGemv::groups`] takes of its call: K, the activation rows (as K-pairs and scales,
/// the call's single chunk), each weight row's scales, and the unit's group kernels.
struct GroupCall<'a, F> {
    k: usize,
    m: usize,
    xr: &'a [&'a [u32]],
    sxr: &'a [&'a [f32]],
    row_scales: &'a F,
    /// Weight rows sharing one row of scales (the scale block's rows).
    block_rows: usize,
    kernels: Kernels,
}

/// One K chunk of a [`DotGemv`] call, the same for every group of weight rows.
struct ChunkPlan {
    /// First column, columns, K-pairs (padded to [`LANES`]), segments.
    c0: usize,
    kc: usize,
    kcp: usize,
    ns: usize,
    /// K-pairs per promotion segment, as the row kernel takes them.
    seg_pairs: usize,
    /// Whole pairs with no padding: read in place.
    whole: bool,
    /// The row kernel's prefetch stream (`RowArgs::left`, `RowArgs::skip`) for rows read in place.
    stream: (usize, usize),
    /// The weight scale block of each segment.
    blocks: Vec<usize>,
}

/// What every row-kernel call of one chunk shares: its pairs, segments, prefetch stream
/// (`RowArgs::left`, `skip`) and whether it is the row's first chunk.
struct RowCall {
    pairs: usize,
    seg_pairs: usize,
    stream: (usize, usize),
    fresh: bool,
}

impl RowCall {
    /// Run `kernel` over the activation rows `x` (scales `sx`) [`MX_MAX`] at a time against the
    /// weight rows `w`, each block's lane totals in `total`: the same loop whatever the weight
    /// rows hold (codes, pairs, converted pairs).
    fn blocks<T>(
        &self,
        (x, sx): (&[&[u32]], &[&[f32]]),
        w: [&[T]; ROWS],
        sw: [&[f32]; ROWS],
        total: &mut [Totals],
        kernel: impl Fn(&RowArgs<T>, &mut [Totals]),
    ) {
        let (left, skip) = self.stream;
        for i in (0..x.len()).step_by(MX_MAX) {
            let b = i..(i + MX_MAX).min(x.len());
            let args = RowArgs {
                pairs: self.pairs,
                seg_pairs: self.seg_pairs,
                x: &x[b.clone()],
                w,
                sw,
                sx: &sx[b.clone()],
                left,
                skip,
                fresh: self.fresh,
            };
            kernel(&args, &mut total[b]);
        }
    }
}

/// A GEMV on the dot path, and every skinny product (`m ≤` [`crate::kernels::SKINNY_M`] activation rows): the
/// activation rows as K-pairs (each padded to [`LANES`]) and their segment scales.
pub(crate) struct DotGemv {
    kernels: Kernels,
    seg: usize,
    m: usize,
    x: Vec<u32>,
    sx: Vec<f32>,
    /// `x` in [`PAIRS_X2`] order, for FP8 weights with more than [`MX_MAX`] activation rows
    /// (empty otherwise).
    xs: Vec<u32>,
}

impl DotGemv {
    pub(crate) fn new(unit: DotUnit, a: &QuantizedMatrix, w: &QuantizedMatrix) -> DotGemv {
        let (m, k) = (a.rows.max(1), a.cols);
        let seg = promotion(a, w, KC);
        DotGemv {
            kernels: unit.kernels(),
            seg,
            m,
            x: vec![0u32; m * Self::pairs(k)],
            sx: vec![0f32; m * Self::segs(k, seg)],
            // Only segments of whole 32-pair steps take that path (not MX's 16 pairs).
            xs: if w.format().is_fp8() && m > MX_MAX && seg.is_multiple_of(4 * LANES) {
                vec![0u32; m * Self::pairs(k)]
            } else {
                Vec::new()
            },
        }
    }

    fn pairs(k: usize) -> usize {
        k.div_ceil(2 * LANES).max(1) * LANES
    }

    fn segs(k: usize, seg: usize) -> usize {
        k.div_ceil(seg).max(1)
    }

    pub(crate) fn workspace_bytes(&self) -> u64 {
        ((self.x.len() + self.sx.len() + self.xs.len()) * 4) as u64
    }

    /// Row `row` of `q` as K-pairs in `pairs` (zero-padded) and its segment scales; `f` is
    /// decode scratch of at least `k + 1` values.
    fn pack_row<E: Element>(
        codes: &[E],
        q: &QuantizedMatrix,
        row: usize,
        seg: usize,
        f: &mut [f32],
        pairs: &mut [u32],
        scales: &mut [f32],
    ) {
        let k = q.cols;
        row_pairs(&codes[row * k..(row + 1) * k], f, pairs);
        pairs[k.div_ceil(2)..].fill(0);
        let rs = q.row_scales(row);
        for (s, v) in scales.iter_mut().enumerate() {
            *v = scale(rs, q, s * seg);
        }
    }

    /// The whole groups of [`ROWS`] among weight rows `[first, first + rows)` through the
    /// unit's group kernel, into `out` (row `j` of the range at `out[j · m..]`), where the rows
    /// are one chunk read in place (FP8 codes, or BF16 pairs 4-byte aligned); returns how many
    /// groups it took (0 where it does not apply: the caller's group loop takes every row).
    fn groups<'s, E: Element, F: Fn(usize) -> ScaleSlice<'s>>(
        codes: &[E],
        (first, rows): (usize, usize),
        plans: &[ChunkPlan],
        call: &GroupCall<F>,
        out: &mut [f32],
    ) -> usize {
        let ([plan], groups) = (plans, rows / ROWS) else { return 0 };
        let GroupCall { k, m, xr, sxr, row_scales, block_rows, kernels } = *call;
        if !plan.whole || groups == 0 {
            return 0;
        }
        let span = &codes[first * k..(first + groups * ROWS) * k];
        let ns = plan.ns;
        // One row of segment scales per block of rows that share them, not per weight row: with
        // DeepSeek-V3's 128-row blocks a call over 9363 rows wrote 2 MiB of scales to a fresh
        // allocation (page faults included) where 74 rows of them hold the same figures.
        let per = block_rows.max(1);
        let (b0, b1) = (first / per, (first + groups * ROWS - 1) / per);
        let mut sw = vec![0f32; (b1 - b0 + 1) * ns];
        for (bi, s) in sw.chunks_exact_mut(ns).enumerate() {
            let rs = row_scales((b0 + bi) * per);
            for (v, &b) in s.iter_mut().zip(&plan.blocks) {
                *v = rs.get(b);
            }
        }
        let (sw_rows, sw_first) = (per, first - b0 * per);
        let blocks = (0..m).step_by(MX_MAX).map(|i| i..(i + MX_MAX).min(m));
        fn args<'a, T>(
            plan: &ChunkPlan,
            (xr, sxr): (&'a [&'a [u32]], &'a [&'a [f32]]),
            (w, stride, groups): (&'a [T], usize, usize),
            (sw, sw_rows, sw_first, m): (&'a [f32], usize, usize, usize),
        ) -> GroupArgs<'a, T> {
            GroupArgs {
                pairs: plan.kcp,
                seg_pairs: plan.seg_pairs,
                x: xr,
                sx: sxr,
                w,
                stride,
                groups,
                sw,
                sw_rows,
                sw_first,
                out_stride: m,
            }
        }
        if let Some(e4m3) = fp8_kind(codes) {
            let w: &[u8] = bytemuck::cast_slice(span);
            for b in blocks {
                let a = args(
                    plan,
                    (&xr[b.clone()], &sxr[b.clone()]),
                    (w, k, groups),
                    (&sw, sw_rows, sw_first, m),
                );
                (kernels.groups_fp8)(&a, e4m3, &mut out[b.start..]);
            }
        } else if let Some(w) = pairs_in_place(span) {
            for b in blocks {
                let a = args(
                    plan,
                    (&xr[b.clone()], &sxr[b.clone()]),
                    (w, k / 2, groups),
                    (&sw, sw_rows, sw_first, m),
                );
                (kernels.groups)(&a, &mut out[b.start..]);
            }
        } else {
            return 0;
        }
        groups
    }

    /// `y = a · Wᵀ` for the `m` rows of `a` (`m = 1`: `y = W · x`), `y` row-major `m × n`. Each
    /// group of [`ROWS`] weight rows is taken one chunk of [`GEMV_KC`] elements (whole segments;
    /// the whole row when there are at most [`MX_MAX`] activation rows) at a time — decoded into
    /// pairs, or read where it lies — and every activation row runs against that chunk while it is in L1, [`MX_MAX`] at a time; the lane totals carry from
    /// chunk to chunk, so neither the chunking nor the grouping of activation rows changes the
    /// sums: every output is the GEMV's chain of its own row.
    pub(crate) fn run(&mut self, a: &QuantizedMatrix, w: &QuantizedMatrix, y: &mut [f32], pool: &Pool) {
        let (n, k, m) = (w.rows, w.cols, self.m);
        if k == 0 {
            y.fill(0.0);
            return;
        }
        let (seg, xp, xs) = (self.seg, Self::pairs(k), Self::segs(k, self.seg));
        let mut f = vec![0f32; 2 * xp + 2];
        with_codes!(&a.codes, |codes| {
            for i in 0..m {
                let (x, sx) = (&mut self.x[i * xp..(i + 1) * xp], &mut self.sx[i * xs..(i + 1) * xs]);
                Self::pack_row(codes, a, i, seg, &mut f, x, sx);
            }
        });
        // Whole groups of 2·LANES pairs of each row split for the PAIRS_X2 path (the chunks it
        // takes start on such a group and hold whole groups).
        let whole = xp - xp % (2 * LANES);
        for (x, xs) in self.x.chunks_exact(xp).zip(self.xs.chunks_exact_mut(xp)) {
            (self.kernels.split_x2)(&x[..whole], &mut xs[..whole]);
        }
        let (x, sx, rows_fn, rows_fp8) = (&self.x, &self.sx, self.kernels.rows, self.kernels.rows_fp8);
        let kernels = self.kernels;
        // K chunks keep a group's rows in L1 while several blocks of activation rows take them;
        // with one block (m ≤ MX_MAX) nothing is reused, so the row is one chunk and its groups
        // run inside the unit (`groups`).
        let ck = if m <= MX_MAX { k.div_ceil(seg).max(1) * seg } else { (GEMV_KC / seg).max(1) * seg };
        let (ckp, segc) = (Self::pairs(ck), ck.div_ceil(seg));
        let chunk = n.div_ceil(pool.threads() * 8).div_ceil(ROWS).max(1) * ROWS;
        let row_scales = w.row_scales_fn();
        // Per K chunk: every activation row's pairs and segment scales in it.
        let (mut xr, mut sxr, mut xsr): (PerChunk<u32>, PerChunk<f32>, PerChunk<u32>) =
            (Vec::new(), Vec::new(), Vec::new());
        for c0 in (0..k).step_by(ck) {
            let (kcp, ns) = (Self::pairs(ck.min(k - c0)), ck.min(k - c0).div_ceil(seg));
            xr.push((0..m).map(|i| &x[i * xp + c0 / 2..][..kcp]).collect());
            if !self.xs.is_empty() {
                xsr.push((0..m).map(|i| &self.xs[i * xp + c0 / 2..][..kcp]).collect());
            }
            sxr.push((0..m).map(|i| &sx[i * xs + c0 / seg..][..ns]).collect());
        }
        // Per K chunk, what every group of rows needs of it, worked out once per call (each
        // division and bound here cost every group of rows its share; on short rows, such as
        // k = 128 attention scores, that share was most of the group's time): the weight scale
        // block of each segment, the chunk's bounds and its prefetch stream.
        let size = with_codes!(&w.codes, |codes| std::mem::size_of_val(&codes[0]));
        let plans: Vec<ChunkPlan> = (0..k)
            .step_by(ck)
            .map(|c0| {
                let kc = ck.min(k - c0);
                let kcp = Self::pairs(kc);
                ChunkPlan {
                    c0,
                    kc,
                    kcp,
                    ns: kc.div_ceil(seg),
                    seg_pairs: if seg >= kc { kcp } else { seg / 2 },
                    whole: kc == 2 * kcp,
                    // In place, each row streams on into the next group's.
                    stream: ((k - c0) * size, (ROWS - 1) * k * size),
                    blocks: (c0..c0 + kc).step_by(seg).map(|col| col / w.block.cols).collect(),
                }
            })
            .collect();
        let (xr, sxr, xsr, plans) = (&xr, &sxr, &xsr, &plans);
        // Per chunk of weight rows: its outputs, weight row by weight row (m each).
        let done: Vec<Vec<f32>> = with_codes!(&w.codes, |codes| pool.install(|| {
            let fp8 = fp8_kind(codes);
            (0..n.div_ceil(chunk))
                .into_par_iter()
                .map_init(
                    || {
                        (
                            vec![0f32; ck + 2],
                            vec![0u32; ROWS * ckp],
                            vec![0f32; ROWS * segc],
                            vec![[[0f32; LANES]; ROWS]; m],
                        )
                    },
                    |(f, wp, sc, total), ci| {
                        let rows_here = chunk.min(n - ci * chunk);
                        let mut out = vec![0f32; rows_here * m];
                        let first = ci * chunk;
                        let whole_groups = Self::groups(
                            codes,
                            (first, rows_here),
                            plans,
                            &GroupCall {
                                k,
                                m,
                                xr: &xr[0],
                                sxr: &sxr[0],
                                row_scales: &row_scales,
                                block_rows: w.block.rows,
                                kernels,
                            },
                            &mut out,
                        );
                        for g0 in (whole_groups * ROWS..rows_here).step_by(ROWS) {
                            let (r0, real) = (ci * chunk + g0, ROWS.min(rows_here - g0));
                            // Rows past the group's end repeat its first row (results dropped).
                            let row = |r: usize| if r < real { r0 + r } else { r0 };
                            let rs: [_; ROWS] = std::array::from_fn(|r| row_scales(row(r)));
                            for (pi, plan) in plans.iter().enumerate() {
                                let ChunkPlan { c0, kc, kcp, ns, seg_pairs, whole, stream, .. } = *plan;
                                let x2 = kc.is_multiple_of(4 * LANES)
                                    && (seg_pairs >= kcp || seg_pairs.is_multiple_of(2 * LANES));
                                let span = |r: usize| &codes[row(r) * k + c0..row(r) * k + c0 + kc];
                                for (r, &rs) in rs.iter().enumerate() {
                                    for (v, &b) in sc[r * segc..r * segc + ns].iter_mut().zip(&plan.blocks) {
                                        *v = rs.get(b);
                                    }
                                }
                                let sw = std::array::from_fn(|r| &sc[r * segc..r * segc + ns]);
                                let (xr, sxr) = (&xr[pi], &sxr[pi]);
                                // A chunk of whole pairs with no padding is read where it lies: FP8
                                // codes converted in registers, BF16 codes (4-byte aligned) as pairs.
                                let (left, skip) = stream;
                                let fresh = pi == 0;
                                // More than one block of activation rows: the chunk's FP8 codes are
                                // converted once, in the order the row body converts them, and every
                                // block reads the pairs (the same bits; E4M3 16×2048×7168 on one core
                                // 78–84 against 70–82 GFLOP/s converting once per block).
                                if let (true, Some(e4m3)) = (x2 && !xsr.is_empty(), fp8) {
                                    for r in 0..ROWS {
                                        let codes = bytemuck::cast_slice::<_, u8>(span(r));
                                        (kernels.fp8_x2)(
                                            codes,
                                            e4m3,
                                            &mut wp[r * ckp..r * ckp + kcp],
                                            stream,
                                        );
                                    }
                                    let w = std::array::from_fn(|r| &wp[r * ckp..r * ckp + kcp]);
                                    let call =
                                        RowCall { pairs: kcp, seg_pairs, stream: (usize::MAX, 0), fresh };
                                    call.blocks((&xsr[pi], sxr), w, sw, total, kernels.rows_x2);
                                    continue;
                                }
                                if let Some(e4m3) = fp8 {
                                    // FP8 codes are converted in registers where they lie, or, for a
                                    // chunk with padding (a row's last, k not a multiple of 32), from
                                    // a zero-padded copy: the row body takes a row's pairs in the same
                                    // steps whatever the chunking, so a skinny product keeps the
                                    // GEMV's bits (converting a padded chunk to pairs first had taken
                                    // them in other lanes).
                                    let (left, skip) = if whole { (left, skip) } else { (usize::MAX, 0) };
                                    let padded: &mut [u8] = bytemuck::cast_slice_mut(&mut wp[..]);
                                    if !whole {
                                        for (r, dst) in
                                            padded.chunks_exact_mut(2 * ckp).take(ROWS).enumerate()
                                        {
                                            dst[..kc].copy_from_slice(bytemuck::cast_slice(span(r)));
                                            dst[kc..2 * kcp].fill(0);
                                        }
                                    }
                                    let padded = &*padded;
                                    let w = std::array::from_fn(|r| {
                                        if whole {
                                            bytemuck::cast_slice::<_, u8>(span(r))
                                        } else {
                                            &padded[r * 2 * ckp..][..2 * kcp]
                                        }
                                    });
                                    let call = RowCall { pairs: kcp, seg_pairs, stream: (left, skip), fresh };
                                    call.blocks((xr, sxr), w, sw, total, |a, t| rows_fp8(a, e4m3, t));
                                    continue;
                                }
                                let direct: [Option<&[u32]>; ROWS] =
                                    std::array::from_fn(
                                        |r| if whole { pairs_in_place(span(r)) } else { None },
                                    );
                                for r in (0..ROWS).filter(|&r| direct[r].is_none()) {
                                    let wr = &mut wp[r * ckp..r * ckp + kcp];
                                    row_pairs(span(r), f, wr);
                                    wr[kc.div_ceil(2)..].fill(0);
                                }
                                let w =
                                    std::array::from_fn(|r| direct[r].unwrap_or(&wp[r * ckp..r * ckp + kcp]));
                                let (left, skip) =
                                    if direct[0].is_some() { (left, skip) } else { (usize::MAX, 0) };
                                let call = RowCall { pairs: kcp, seg_pairs, stream: (left, skip), fresh };
                                call.blocks((xr, sxr), w, sw, total, rows_fn);
                            }
                            for r in 0..real {
                                for (i, t) in total.iter().enumerate() {
                                    out[(g0 + r) * m + i] = reduce16(&t[r]);
                                }
                            }
                        }
                        out
                    },
                )
                .collect()
        }));
        for (ci, out) in done.iter().enumerate() {
            for (r, vals) in out.chunks_exact(m).enumerate() {
                for (i, &v) in vals.iter().enumerate() {
                    y[i * n + ci * chunk + r] = v;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

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
//!   depend on the tile, the thread count or the split. GEMV: 16 logical lanes per row (lane `l`
//!   takes pairs `q ≡ l mod 16`), `total[l] = fma(part[l], sa · sw, total[l])` per segment, then
//!   [`reduce16`].
//!
//! Structure: one generic GEMM tile body ([`tile`]) and one GEMV row body ([`rows`]) over a
//! small per-ISA vector layer ([`DotVec`]: load, splat, dot, fma); each unit instantiates them
//! with its tile size through [`dot_kernels!`](crate::dot_kernels). The portable [`Soft`]
//! vector mirrors the instruction lane by lane and is the twin the SIMD units are tested against.

mod layer;
pub(crate) use layer::*;

use super::gemm::{cut_items, split};
use super::gemv::reduce16;
use super::Pool;
use crate::formats::{Element, Format, QuantizedMatrix};
use crate::with_codes;
use rayon::prelude::*;

/// K block of the dot path (elements): a multiple of every promotion segment (32, 128).
pub(crate) const KC: usize = 256;
/// Pairs per K block.
const KCP: usize = KC / 2;
/// Most promotion segments in one K block (MX: 32 elements).
const SEGS: usize = KC / 32;

/// Whether the dot path can run this product exactly: both operands hold BF16-exact values.
pub(crate) fn eligible(a: Format, w: Format) -> bool {
    let exact = |f: Format| matches!(f, Format::BF16 | Format::E4M3 | Format::E5M2);
    exact(a) && exact(w)
}

/// The scale of element (`row`, `col`) of `q`: the one place the dot path reads scales.
#[inline]
fn scale(q: &QuantizedMatrix, row: usize, col: usize) -> f32 {
    q.scale_at(row, col)
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

impl DotUnit {
    /// The unit this CPU has, unless `CHIPBENCH_NO_BF16_DOT=1` turns the path off.
    pub fn detect() -> Option<DotUnit> {
        if std::env::var("CHIPBENCH_NO_BF16_DOT").is_ok_and(|v| v == "1") {
            return None;
        }
        Self::available().into_iter().find(|&u| u != DotUnit::Portable)
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
            DotUnit::Avx512Bf16 => super::x86_bf16::KERNELS,
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

// ---------------------------------------------------------------- packing

/// Pack rows `[r0, r0 + width)` × K range `[p0, p0 + kc)` of `q` as K-pairs,
/// `out[pair · width + r]`, and the scales of its promotion segments (`seg` elements each),
/// `scales[s · width + r]`. Rows past the matrix are zero (scale 0).
#[allow(clippy::too_many_arguments)]
fn pack_pairs<E: Element>(
    codes: &[E],
    q: &QuantizedMatrix,
    (r0, width): (usize, usize),
    (p0, kc): (usize, usize),
    seg: usize,
    out: &mut [u32],
    scales: &mut [f32],
    scratch: &mut [f32],
) {
    let kcp = kc.div_ceil(2);
    let nseg = kc.div_ceil(seg);
    let rows = q.rows.saturating_sub(r0).min(width);
    for r in 0..width {
        if r >= rows {
            for p in 0..kcp {
                out[p * width + r] = 0;
            }
            for s in 0..nseg {
                scales[s * width + r] = 0.0;
            }
            continue;
        }
        let start = (r0 + r) * q.cols + p0;
        super::gemv::decode_codes(&codes[start..start + kc], &mut scratch[..kc]);
        scratch[kc] = 0.0; // the partner of an odd last element
        for (p, pair) in scratch[..2 * kcp].chunks_exact(2).enumerate() {
            out[p * width + r] = bf16_bits(pair[0]) | bf16_bits(pair[1]) << 16;
        }
        for s in 0..nseg {
            scales[s * width + r] = scale(q, r0 + r, p0 + s * seg);
        }
    }
}

// ---------------------------------------------------------------- GEMM

/// A GEMM on the dot path: its split, tile and packing buffers, fixed at prepare time.
pub(crate) struct DotGemm {
    kernels: Kernels,
    seg: usize,
    m_panels: usize,
    row_ranges: Vec<(usize, usize)>,
    col_chunks: Vec<(usize, usize)>,
    /// A as K-pairs, all of K: panel `(block, i)` at `(block · m_panels + i) · mr · KCP`.
    a_pack: Vec<u32>,
    sa_pack: Vec<f32>,
    /// Per work item: packed W chunk (one K block), its scales, decode scratch.
    w_packs: Vec<(Vec<u32>, Vec<f32>, Vec<f32>)>,
}

impl DotGemm {
    pub(crate) fn new(unit: DotUnit, a: &QuantizedMatrix, w: &QuantizedMatrix, threads: usize) -> DotGemm {
        let kernels = unit.kernels();
        let (m, n, k) = (a.rows, w.rows, a.cols);
        let (mr, nr) = (kernels.mr, kernels.nr);
        let (row_ranges, col_chunks) = split(mr, nr, m, n, threads);
        let m_panels = m.div_ceil(mr);
        let blocks = k.div_ceil(KC).max(1);
        let w_packs = row_ranges
            .iter()
            .flat_map(|_| col_chunks.iter())
            .map(|&(c0, c1)| {
                let panels = (c1 - c0).div_ceil(nr);
                (vec![0u32; panels * nr * KCP], vec![0f32; panels * nr * SEGS], vec![0f32; KC + 1])
            })
            .collect();
        DotGemm {
            kernels,
            seg: promotion(a, w, KC),
            m_panels,
            row_ranges,
            col_chunks,
            a_pack: vec![0u32; blocks * m_panels * mr * KCP],
            sa_pack: vec![0f32; blocks * m_panels * mr * SEGS],
            w_packs,
        }
    }

    pub(crate) fn workspace_bytes(&self) -> u64 {
        let w: usize = self.w_packs.iter().map(|(p, s, t)| p.len() + s.len() + t.len()).sum();
        ((self.a_pack.len() + self.sa_pack.len() + w) * 4) as u64
    }

    /// `c[m×n] = A · Wᵀ`.
    pub(crate) fn run(&mut self, a: &QuantizedMatrix, w: &QuantizedMatrix, c: &mut [f32], pool: &Pool) {
        let (m, n, k) = (a.rows, w.rows, a.cols);
        c.fill(0.0);
        if m == 0 || n == 0 || k == 0 {
            return;
        }
        let Kernels { mr, nr, tile, .. } = self.kernels;
        let (seg, m_panels) = (self.seg, self.m_panels);
        let blocks: Vec<(usize, usize)> = (0..k).step_by(KC).map(|p0| (p0, KC.min(k - p0))).collect();
        // A: every (K block, micro-panel) once per run, in parallel.
        let (a_pack, sa_pack) = (&mut self.a_pack, &mut self.sa_pack);
        with_codes!(&a.codes, |codes| pool.install(|| {
            a_pack.par_chunks_mut(mr * KCP).zip(sa_pack.par_chunks_mut(mr * SEGS)).enumerate().for_each_init(
                || vec![0f32; KC + 1],
                |scratch, (i, (ap, sp))| {
                    let (p0, kc) = blocks[i / m_panels];
                    pack_pairs(codes, a, ((i % m_panels) * mr, mr), (p0, kc), seg, ap, sp, scratch)
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
                for (b, &(p0, kc)) in blocks.iter().enumerate() {
                    with_codes!(&w.codes, |codes| {
                        for (j, (wp, sw)) in wp
                            .chunks_exact_mut(nr * KCP)
                            .zip(sw.chunks_exact_mut(nr * SEGS))
                            .take(panels)
                            .enumerate()
                        {
                            pack_pairs(codes, w, (c0 + j * nr, nr), (p0, kc), seg, wp, sw, scratch);
                        }
                    });
                    let (pairs, seg_pairs) = (kc.div_ceil(2), seg.min(kc).div_ceil(2));
                    for ip in r0 / mr..r1.div_ceil(mr) {
                        let at = (b * m_panels + ip) * mr;
                        let (row0, rv) = (ip * mr, mr.min(r1 - ip * mr));
                        for jp in 0..panels {
                            let t = Tile {
                                pairs,
                                seg_pairs,
                                a: &a_pack[at * KCP..(at + mr) * KCP],
                                b: &wp[jp * nr * KCP..(jp + 1) * nr * KCP],
                                sa: &sa_pack[at * SEGS..(at + mr) * SEGS],
                                sw: &sw[jp * nr * SEGS..(jp + 1) * nr * SEGS],
                            };
                            let (col, cv) = (jp * nr, nr.min(c1 - c0 - jp * nr));
                            let crows = &mut it.c[row0 - r0..row0 - r0 + rv];
                            if rv == mr && cv == nr {
                                tile(&t, crows, col);
                            } else {
                                // Ragged edge: the valid part of C through a full-size tile (the
                                // update reads C, so the tile starts as a copy of it).
                                let mut buf = vec![0f32; mr * nr];
                                for (dst, src) in buf.chunks_exact_mut(nr).zip(crows.iter()) {
                                    dst[..cv].copy_from_slice(&src[col..col + cv]);
                                }
                                let mut rows: Vec<&mut [f32]> = buf.chunks_exact_mut(nr).collect();
                                tile(&t, &mut rows, 0);
                                for (src, dst) in buf.chunks_exact(nr).zip(crows.iter_mut()) {
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

/// A GEMV on the dot path: `x` as K-pairs (padded to [`LANES`]) and its segment scales.
pub(crate) struct DotGemv {
    kernels: Kernels,
    seg: usize,
    x: Vec<u32>,
    sx: Vec<f32>,
}

impl DotGemv {
    pub(crate) fn new(unit: DotUnit, a: &QuantizedMatrix, w: &QuantizedMatrix) -> DotGemv {
        let k = a.cols;
        let seg = promotion(a, w, usize::MAX);
        DotGemv {
            kernels: unit.kernels(),
            seg,
            x: vec![0u32; Self::pairs(k)],
            sx: vec![0f32; k.div_ceil(seg).max(1)],
        }
    }

    fn pairs(k: usize) -> usize {
        k.div_ceil(2 * LANES).max(1) * LANES
    }

    pub(crate) fn workspace_bytes(&self) -> u64 {
        ((self.x.len() + self.sx.len()) * 4) as u64
    }

    /// Decode row `row` of `q` into `pairs` (zero-padded) and its segment scales.
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
        super::gemv::decode_codes(&codes[row * k..(row + 1) * k], &mut f[..k]);
        f[k..].fill(0.0);
        for (p, v) in pairs.iter_mut().zip(f.chunks_exact(2)) {
            *p = bf16_bits(v[0]) | bf16_bits(v[1]) << 16;
        }
        for (s, v) in scales.iter_mut().enumerate() {
            *v = scale(q, row, s * seg);
        }
    }

    /// `y = W · x` for `x = a` (1 × k).
    pub(crate) fn run(&mut self, a: &QuantizedMatrix, w: &QuantizedMatrix, y: &mut [f32], pool: &Pool) {
        let (n, k) = (w.rows, w.cols);
        if k == 0 {
            y.fill(0.0);
            return;
        }
        let (seg, pairs) = (self.seg, Self::pairs(k));
        let seg_pairs = if seg >= k { pairs } else { seg / 2 };
        let nseg = self.sx.len();
        let mut f = vec![0f32; 2 * pairs];
        with_codes!(&a.codes, |codes| Self::pack_row(codes, a, 0, seg, &mut f, &mut self.x, &mut self.sx));
        let (x, sx, rows_fn) = (&self.x, &self.sx, self.kernels.rows);
        let chunk = n.div_ceil(pool.threads() * 8).div_ceil(ROWS).max(1) * ROWS;
        with_codes!(&w.codes, |codes| pool.install(|| {
            y.par_chunks_mut(chunk).enumerate().for_each_init(
                || (vec![0f32; 2 * pairs], vec![0u32; ROWS * pairs], vec![0f32; ROWS * nseg]),
                |(f, wp, sc), (ci, ys)| {
                    for (g, out) in ys.chunks_mut(ROWS).enumerate() {
                        let r0 = ci * chunk + g * ROWS;
                        for r in 0..ROWS {
                            // Rows past the group's end repeat its first row (results dropped).
                            let row = if r < out.len() { r0 + r } else { r0 };
                            let (wr, sr) =
                                (&mut wp[r * pairs..(r + 1) * pairs], &mut sc[r * nseg..(r + 1) * nseg]);
                            Self::pack_row(codes, w, row, seg, f, wr, sr);
                            for (s, &xs) in sr.iter_mut().zip(sx) {
                                *s *= xs;
                            }
                        }
                        let args = RowArgs {
                            pairs,
                            seg_pairs,
                            x,
                            w: std::array::from_fn(|r| &wp[r * pairs..(r + 1) * pairs]),
                            s: std::array::from_fn(|r| &sc[r * nseg..(r + 1) * nseg]),
                        };
                        let lanes = rows_fn(&args);
                        for (o, l) in out.iter_mut().zip(&lanes) {
                            *o = reduce16(l);
                        }
                    }
                },
            )
        }));
    }
}

#[cfg(test)]
pub(crate) mod tests;

//! GEMM driver (BLIS-style) and the portable microkernel.
//!
//! Loop nest, per run: K is cut into blocks of `KC`, and the blocks into groups whose packed A
//! fits `A_BUDGET`. Per group — pack A (the broadcast operand) for all its blocks into `MR`-row
//! micro-panels, shared — then every work item (a rectangle of C: a range of rows × a chunk of
//! at most `NB_MAX` columns) runs the group's K blocks in order: pack its W chunk into
//! `NR`-column micro-panels (which stay in L2) and run the microkernel over its A micro-panels
//! (outer, one stays in L1) × W micro-panels (inner); the microkernel adds its tile straight
//! into C. Two pool passes per group, not per K block, and about `ITEMS_PER_THREAD` column
//! chunks per thread so rayon can balance a thread that runs slower. The rectangles tile C, so
//! threads never share an output, and W is decoded exactly once per run when the columns are
//! split (rows are split only when C has too few column chunks to feed every thread).
//!
//! Determinism: every element of C is computed as `c = 0; for each K block: c += t` where `t`
//! is a fused multiply-add chain over that block in K order. That sequence does not depend on
//! the rectangle split, the thread count or the tile shape, so results are bit-identical across
//! thread counts and across the AVX-512, AVX2 and portable microkernels (all use FMA).

use super::isa::Isa;
use super::pack::{pack_panel, pack_panels};
use super::Pool;
use crate::formats::QuantizedMatrix;
use crate::with_codes;
use rayon::prelude::*;

/// K block: the depth of one microkernel call. Fixed for every ISA (it fixes the rounding order).
pub(crate) const KC: usize = 256;
/// Most W columns one work item packs: `NB_MAX × KC × 4 B` = 512 KiB, half of a 1 MiB L2.
const NB_MAX: usize = 512;
/// Fewest W micro-panels per work item (each A micro-panel is reused over them).
const MIN_PANELS: usize = 4;
/// Work items per thread when C is wide enough: rayon balances them, so a thread that is
/// descheduled (shared machines) or slower does not hold the others at the end of the pass.
const ITEMS_PER_THREAD: usize = 4;
/// Packed A of several K blocks is kept at once up to this size, so that one parallel pass
/// covers several K blocks (fewer pool barriers) while A stays within the last-level cache.
const A_BUDGET: usize = 8 << 20;

pub(crate) const AVX512_MR: usize = 12;
pub(crate) const AVX512_NR: usize = 32;
pub(crate) const AVX2_MR: usize = 6;
pub(crate) const AVX2_NR: usize = 16;
pub(crate) const NEON_MR: usize = 6;
pub(crate) const NEON_NR: usize = 16;
pub(crate) const PORTABLE_MR: usize = 4;
pub(crate) const PORTABLE_NR: usize = 16;
const MAX_TILE: usize = 12 * 32;

/// `c[r][col + j] += Σ_p a[p·MR + r] · b[p·NR + j]` for `r < MR`, `j < NR`: the sum is a fresh
/// FMA chain over `kc` steps, added to C once at the end.
pub(crate) type Microkernel = fn(kc: usize, a: &[f32], b: &[f32], c: &mut [&mut [f32]], col: usize);

fn microkernel(isa: Isa) -> Microkernel {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => super::x86::microkernel_avx512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => super::x86::microkernel_avx2,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => super::neon::microkernel_neon,
        _ => portable_microkernel::<PORTABLE_MR, PORTABLE_NR>,
    }
}

#[cfg(test)]
pub(crate) fn microkernel_for_test(isa: Isa) -> Microkernel {
    microkernel(isa)
}

/// The portable twin of the SIMD microkernels: the same FMA chain per output element.
pub(crate) fn portable_microkernel<const MR: usize, const NR: usize>(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [&mut [f32]],
    col: usize,
) {
    let mut acc = [[0f32; NR]; MR];
    for (ap, bp) in a[..kc * MR].chunks_exact(MR).zip(b[..kc * NR].chunks_exact(NR)) {
        for (row, &av) in acc.iter_mut().zip(ap) {
            for (c, &bv) in row.iter_mut().zip(bp) {
                *c = av.mul_add(bv, *c);
            }
        }
    }
    for (dst, row) in c[..MR].iter_mut().zip(&acc) {
        for (d, s) in dst[col..col + NR].iter_mut().zip(row) {
            *d += *s;
        }
    }
}

/// How a GEMM is cut into work items; fixed at prepare time.
#[derive(Debug, Clone)]
pub(crate) struct GemmPlan {
    mr: usize,
    nr: usize,
    kernel: Microkernel,
    m_panels: usize,
    /// Row ranges (multiples of `mr`) × column chunks (multiples of `nr`) = the work items.
    row_ranges: Vec<(usize, usize)>,
    col_chunks: Vec<(usize, usize)>,
}

/// Packing buffers, allocated once at prepare time.
#[derive(Debug)]
pub(crate) struct GemmWork {
    /// Packed A for `kb_group` consecutive K blocks.
    a_pack: Vec<f32>,
    kb_group: usize,
    /// Per work item: its packed W chunk and its decode scratch.
    w_packs: Vec<(Vec<f32>, Vec<f32>)>,
    threads: usize,
}

impl GemmWork {
    pub(crate) fn bytes(&self, plan: &GemmPlan) -> u64 {
        let w: usize = self.w_packs.iter().map(|(p, s)| p.len() + s.len()).sum();
        // A is packed with one `mr × KC` decode scratch per thread.
        ((self.a_pack.len() + w + self.threads * plan.mr * KC) * 4) as u64
    }
}

impl GemmPlan {
    pub(crate) fn new(isa: Isa, m: usize, n: usize, threads: usize) -> GemmPlan {
        let (mr, nr) = isa.tile();
        let (row_ranges, col_chunks) = split(mr, nr, m, n, threads);
        GemmPlan { mr, nr, kernel: microkernel(isa), m_panels: m.div_ceil(mr), row_ranges, col_chunks }
    }

    pub(crate) fn work(&self, k: usize, threads: usize) -> GemmWork {
        let kc = KC.min(k.max(1));
        let block = self.m_panels * self.mr * kc;
        let kb_group = (A_BUDGET / (block * 4).max(1)).clamp(1, k.div_ceil(kc).max(1));
        let w_packs = self
            .row_ranges
            .iter()
            .flat_map(|_| self.col_chunks.iter())
            .map(|&(c0, c1)| {
                (vec![0f32; (c1 - c0).div_ceil(self.nr) * self.nr * kc], vec![0f32; self.nr * kc])
            })
            .collect();
        GemmWork { a_pack: vec![0f32; block * kb_group], kb_group, w_packs, threads }
    }
}

/// How C is cut into work items for an `mr × nr` tile: row ranges (multiples of `mr`) × column
/// chunks (multiples of `nr`). Columns are split first: at most `NB_MAX` wide, several per thread
/// when each keeps `MIN_PANELS`; rows only when the column chunks alone cannot feed every thread.
/// Ranges `(start, len)` of rows and of columns, one per item of work.
type Cuts = (Vec<(usize, usize)>, Vec<(usize, usize)>);

pub(crate) fn split(mr: usize, nr: usize, m: usize, n: usize, threads: usize) -> Cuts {
    let threads = threads.max(1);
    let m_panels = m.div_ceil(mr);
    let n_panels = n.div_ceil(nr).max(1);
    let most = n_panels.div_ceil(MIN_PANELS).max(1);
    let chunks = (threads * ITEMS_PER_THREAD).min(most).max(n.div_ceil(NB_MAX)).clamp(1, n_panels);
    let per_chunk = n_panels.div_ceil(chunks);
    let col_chunks: Vec<_> = (0..n_panels.div_ceil(per_chunk))
        .map(|c| (c * per_chunk * nr, ((c + 1) * per_chunk * nr).min(n)))
        .collect();
    let row_splits = threads.div_ceil(col_chunks.len()).clamp(1, m_panels.max(1));
    let per_range = m_panels.div_ceil(row_splits).max(1);
    let row_ranges: Vec<_> = (0..m_panels.div_ceil(per_range).max(1))
        .map(|r| (r * per_range * mr, ((r + 1) * per_range * mr).min(m)))
        .collect();
    (row_ranges, col_chunks)
}

/// One rectangle of C and the buffers its thread uses.
pub(crate) struct Item<'c, B> {
    pub rows: (usize, usize),
    pub cols: (usize, usize),
    /// C rows `rows.0..rows.1`, each cut to columns `cols.0..cols.1`.
    pub c: Vec<&'c mut [f32]>,
    pub buf: B,
}

/// Cut the `· × n` matrix C into the work items' rectangles (disjoint mutable slices), one
/// buffer from `bufs` per item, rows outer.
pub(crate) fn cut_items<'c, B>(
    row_ranges: &[(usize, usize)],
    col_chunks: &[(usize, usize)],
    c: &'c mut [f32],
    n: usize,
    mut bufs: impl Iterator<Item = B>,
) -> Vec<Item<'c, B>> {
    let ncc = col_chunks.len();
    let mut items: Vec<Item<B>> = Vec::with_capacity(row_ranges.len() * ncc);
    for &rows in row_ranges {
        for &cols in col_chunks {
            let buf = bufs.next().expect("one buffer per item");
            items.push(Item { rows, cols, c: Vec::with_capacity(rows.1 - rows.0), buf });
        }
    }
    for (i, mut row) in c.chunks_exact_mut(n).enumerate() {
        let ri = row_ranges.iter().position(|&(r0, r1)| i >= r0 && i < r1).expect("rows covered");
        for (ci, &(c0, c1)) in col_chunks.iter().enumerate() {
            let (head, rest) = row.split_at_mut(c1 - c0);
            items[ri * ncc + ci].c.push(head);
            row = rest;
        }
    }
    items
}

/// `c[m×n] = A · Wᵀ`.
pub(crate) fn run(
    a: &QuantizedMatrix,
    w: &QuantizedMatrix,
    plan: &GemmPlan,
    work: &mut GemmWork,
    c: &mut [f32],
    pool: &Pool,
) {
    let (m, n, k) = (a.rows, w.rows, a.cols);
    c.fill(0.0);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let mr = plan.mr;
    let packs = work.w_packs.iter_mut().map(|(p, s)| (p, s));
    let mut items = cut_items(&plan.row_ranges, &plan.col_chunks, c, n, packs);
    // K blocks in groups: pack A for the whole group, then every item runs the group's blocks
    // in K order. Two pool passes per group.
    let kc_max = KC.min(k);
    let block = plan.m_panels * mr * kc_max;
    let group_len = work.kb_group * KC;
    for g0 in (0..k).step_by(group_len) {
        let g1 = (g0 + group_len).min(k);
        let blocks: Vec<(usize, usize)> = (g0..g1).step_by(KC).map(|p0| (p0, KC.min(k - p0))).collect();
        let a_pack = &mut work.a_pack[..block * blocks.len()];
        with_codes!(&a.codes, |codes| pool.install(|| {
            a_pack.par_chunks_mut(block).zip(&blocks).for_each(|(a_block, &(p0, kc))| {
                a_block[..plan.m_panels * mr * kc].par_chunks_mut(mr * kc).enumerate().for_each_init(
                    || vec![0f32; mr * kc],
                    |scratch, (i, panel)| pack_panel(codes, a, i * mr, mr, p0, kc, panel, scratch),
                )
            })
        }));
        let a_pack = &work.a_pack[..block * blocks.len()];
        pool.install(|| {
            items.par_iter_mut().with_max_len(1).for_each(|it| {
                for (bi, &(p0, kc)) in blocks.iter().enumerate() {
                    let a_block = &a_pack[bi * block..bi * block + plan.m_panels * mr * kc];
                    item_block(plan, w, it, a_block, p0, kc);
                }
            })
        });
    }
}

/// One work item over one K block: pack its W chunk, then A micro-panels (outer) × W
/// micro-panels (inner), each product added into C.
fn item_block(
    plan: &GemmPlan,
    w: &QuantizedMatrix,
    it: &mut Item<(&mut Vec<f32>, &mut Vec<f32>)>,
    a_block: &[f32],
    p0: usize,
    kc: usize,
) {
    let (mr, nr) = (plan.mr, plan.nr);
    let (c0, c1) = it.cols;
    let w_panels = (c1 - c0).div_ceil(nr);
    let w_pack = &mut it.buf.0[..w_panels * nr * kc];
    with_codes!(&w.codes, |codes| pack_panels(codes, w, c0, nr, p0, kc, w_pack, it.buf.1));
    let (r0, r1) = it.rows;
    let kernel = plan.kernel;
    for (ip, a_panel) in a_block.chunks_exact(mr * kc).enumerate().take(r1.div_ceil(mr)).skip(r0 / mr) {
        let row0 = ip * mr;
        let rv = mr.min(r1 - row0);
        for (jp, w_panel) in w_pack.chunks_exact(nr * kc).enumerate() {
            let col = jp * nr;
            let cv = nr.min(c1 - c0 - col);
            if rv == mr && cv == nr {
                kernel(kc, a_panel, w_panel, &mut it.c[row0 - r0..row0 - r0 + mr], col);
            } else {
                // Ragged edge: a zero tile, then the valid part added into C. C is never -0
                // (it starts at +0 and x + (-x) = +0), so `c + (0 + t)` equals `c + t` bit
                // for bit and edges agree with full tiles whatever the split.
                let mut tile = [0f32; MAX_TILE];
                let mut rows: Vec<&mut [f32]> = tile[..mr * nr].chunks_exact_mut(nr).collect();
                kernel(kc, a_panel, w_panel, &mut rows, 0);
                for (r, t) in tile.chunks_exact(nr).take(rv).enumerate() {
                    let dst = &mut it.c[row0 + r - r0][col..col + cv];
                    for (d, s) in dst.iter_mut().zip(t) {
                        *d += *s;
                    }
                }
            }
        }
    }
}

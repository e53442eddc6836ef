//! The dot path's tile-matrix unit (Intel AMX-BF16, `tdpbf16ps`): its panel layout, its
//! arithmetic and the portable twin the native unit ([`crate::kernels::cpu::amx`]) is tested
//! against bit for bit. Self-contained, as the vector layer is.
//!
//! A GEMM tile here is a 32 × 32 block of C held in four 16 × 16 f32 tile registers; each step
//! takes 16 K-pairs (32 elements of K) of two 16-row A tiles and two 16-column B tiles.
//! - A panel (32 rows): step `s` holds rows 0..32 × pairs `16s..16s + 16`, row after row, so each
//!   A tile is 1 KiB read at a 64-byte stride ([`a_index`]).
//! - W panel (32 columns): the vector units' layout, pair `q` of column `j` at `q · 32 + j`; a B
//!   tile is 16 pairs × 16 columns read at a 128-byte stride (AMX's "VNNI" B layout).
//! - Both are zero past the K block's pairs up to the next whole step.
//!
//! Arithmetic of one `tdpbf16ps` on an output (measured, not published: Intel's pseudo-code reads
//! as one chain of RNE adds, but on a Sapphire Rapids-class Xeon none of five such orders gave
//! the hardware's bits; this one gave all 51,200 outputs of 200 random 16 × 16 × 32 steps, and the
//! unit test compares every shape): the 16 even products and the 16 odd products of the step's
//! pairs are summed in two separate chains from +0 (each add RNE), `e + o` is rounded, and then
//! added to C (RNE); denormal inputs read as zero, denormal results are flushed. Per promotion
//! segment (as on the vector units): C's tile starts at zero, takes the segment's steps, and
//! `c = fma(part, sa · sw, c)`.

use super::{daz, DotVec, Soft, Tile};

/// Rows and columns of a C block; pairs per step.
pub(crate) const TM: usize = 32;
pub(crate) const TN: usize = 32;
pub(crate) const STEP: usize = 16;
/// K block of a tile unit's GEMM (elements): four times the vector units' [`super::KC`], since
/// each block ends in a round trip of C through memory (the promotion) that the tile products
/// wait on (BF16 512×2048×4096 on 2 threads: 700–731 GFLOP/s with blocks of 256, 1000–1026 with
/// blocks of 1024).
pub(crate) const KC: usize = 1024;

/// Where pair `q` of row `r` of an A panel `width` rows wide lies (the tile layout).
#[inline(always)]
pub(crate) fn a_index(width: usize, r: usize, q: usize) -> usize {
    (q / STEP) * width * STEP + r * STEP + q % STEP
}

/// The pairs a tile call reads: `pairs` rounded up to a whole step.
pub(crate) fn padded(pairs: usize) -> usize {
    pairs.next_multiple_of(STEP)
}

impl Tile<'_> {
    /// What a tile-matrix body relies on: whole steps per segment, panels holding the padded
    /// pairs, one scale per segment and row/column; returns the [`TM`] row pointers of C at `col`.
    pub(crate) fn check_tiles(&self, c: &mut [&mut [f32]], col: usize) -> [*mut f32; TM] {
        assert!(self.seg_pairs > 0 && self.seg_pairs.is_multiple_of(STEP), "segments of whole steps");
        let p = padded(self.pairs);
        assert!(self.a.len() >= p * TM && self.b.len() >= p * TN);
        let nseg = self.pairs.div_ceil(self.seg_pairs);
        assert!(self.sa.len() >= nseg * TM && self.sw.len() >= nseg * TN && c.len() >= TM);
        std::array::from_fn(|r| {
            assert!(c[r].len() >= col + TN);
            c[r][col..].as_mut_ptr()
        })
    }
}

/// One step's even and odd chains of one output, `e + o` rounded (see the module docs).
#[inline(always)]
pub(crate) fn step(a: impl Fn(usize) -> u32, b: impl Fn(usize) -> u32) -> f32 {
    let half = |p: u32, hi: bool| daz(f32::from_bits(if hi { p & 0xFFFF_0000 } else { p << 16 }));
    let (mut e, mut o) = (0f32, 0f32);
    for q in 0..STEP {
        let (x, y) = (a(q), b(q));
        e = daz(e + daz(half(x, false) * half(y, false)));
        o = daz(o + daz(half(x, true) * half(y, true)));
    }
    daz(e + o)
}

/// Promote one segment's 32 × 32 partial sums `part` (row-major) into C: `c = fma(part, sa · sw,
/// c)`, C read as +0 when `first` (C's first K block, first segment).
///
/// # Safety
/// The caller has `V`'s features; `sa` holds [`TM`] and `sw` [`TN`] scales, every `c[r]` [`TN`]
/// floats.
#[inline(always)]
pub(crate) unsafe fn promote<V: DotVec>(
    part: &[f32; TM * TN],
    sa: *const f32,
    sw: *const f32,
    c: &[*mut f32; TM],
    first: bool,
) {
    unsafe {
        let nv = TN / V::W;
        for v in 0..nv {
            let swv = V::loadf(sw.add(v * V::W));
            for (r, &cr) in c.iter().enumerate() {
                let p = cr.add(v * V::W);
                let old = if first { V::zero() } else { V::loadf(p) };
                let s = V::mul(V::splatf(*sa.add(r)), swv);
                V::storef(p, V::fma(V::loadf(part.as_ptr().add(r * TN + v * V::W)), s, old));
            }
        }
    }
}

/// The twin of the native tile body: the same segments, steps and promotion, computed output by
/// output in plain Rust.
pub(crate) fn tile_soft(t: &Tile, c: &mut [&mut [f32]], col: usize) {
    let rows = t.check_tiles(c, col);
    let mut part = [0f32; TM * TN];
    let (mut q, mut s) = (0, 0);
    while q < t.pairs {
        let end = (q + t.seg_pairs).min(t.pairs);
        part.fill(0.0);
        while q < end {
            for (r, row) in part.chunks_exact_mut(TN).enumerate() {
                for (j, acc) in row.iter_mut().enumerate() {
                    let d = step(|i| t.a[a_index(TM, r, q + i)], |i| t.b[(q + i) * TN + j]);
                    *acc = daz(*acc + d);
                }
            }
            q += STEP;
        }
        // SAFETY: `Soft` needs no features; `check_tiles` checked the scales and C.
        unsafe {
            promote::<Soft<false>>(
                &part,
                t.sa[s * TM..].as_ptr(),
                t.sw[s * TN..].as_ptr(),
                &rows,
                t.fresh && s == 0,
            )
        };
        s += 1;
    }
}

//! Packing: decode a block of a [`QuantizedMatrix`] to f32, apply its scales, and lay it out as
//! micro-panels for the microkernel.
//!
//! A micro-panel holds `width` consecutive rows (of A, or of W = columns of C) over `kc` steps of
//! K, K-major: `panel[p * width + r]`, so the microkernel reads one contiguous group per K step.
//! Rows past the end of the matrix are zero, so the microkernel never branches on edges.
//!
//! Packing is where formats differ: the codes are decoded 16 at a time by the row kernels' SIMD
//! decode ([`super::gemv::decode_codes`]: exactly [`Element::decode_slice`]'s values; a table
//! lookup per FP8 code made the E4M3 GEMM of 18 rows 30–40 % slower) and multiplied by their block scale, so
//! everything after packing is plain f32 and format-agnostic. Its cost is O(rows · k) per run,
//! against O(m · n · k) for the products.

use crate::formats::{scaling::Scheme, Element, Format, QuantizedMatrix};

/// Decode row `row`, columns `[p0, p0 + out.len())`, of `q` into `out`, scales applied.
pub(crate) fn decode_row_scaled<E: Element>(
    codes: &[E],
    q: &QuantizedMatrix,
    row: usize,
    p0: usize,
    out: &mut [f32],
) {
    let kc = out.len();
    let start = row * q.cols + p0;
    super::gemv::decode_codes(&codes[start..start + kc], out);
    if q.scaling.scheme == Scheme::None {
        return; // every scale is 1
    }
    let bc = q.block.cols;
    let mut p = p0;
    while p < p0 + kc {
        let end = ((p / bc + 1) * bc).min(p0 + kc);
        let s = q.scale_at(row, p);
        for v in &mut out[p - p0..end - p0] {
            *v *= s;
        }
        p = end;
    }
}

/// Pack rows `[r0, r0 + width)` × K range `[p0, p0 + kc)` of `q` into one micro-panel
/// (`out.len() == kc * width`). `scratch` must hold at least `width * kc` values.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_panel<E: Element>(
    codes: &[E],
    q: &QuantizedMatrix,
    r0: usize,
    width: usize,
    p0: usize,
    kc: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    debug_assert_eq!(out.len(), kc * width);
    let rows = q.rows.saturating_sub(r0).min(width);
    if rows < width {
        out.fill(0.0);
    }
    // Unscaled F32 needs no decode: transpose straight from the matrix.
    if E::FORMAT == Format::F32 && q.scaling.scheme == Scheme::None && rows > 0 {
        let src: &[f32] = bytemuck::cast_slice(&codes[r0 * q.cols + p0..]);
        return transpose(src, q.cols, rows, kc, width, out);
    }
    // Decode row by row (contiguous reads, vectorised decode), then transpose; the scratch block
    // is small enough to stay in L1.
    for r in 0..rows {
        decode_row_scaled(codes, q, r0 + r, p0, &mut scratch[r * kc..(r + 1) * kc]);
    }
    transpose(scratch, kc, rows, kc, width, out);
}

/// `out[p * width + r] = src[r * ld + p]` for `r < rows`, `p < kc`: AVX-512 or AVX2 register
/// blocks where the CPU has them, else the portable loop.
pub(crate) fn transpose(src: &[f32], ld: usize, rows: usize, kc: usize, width: usize, out: &mut [f32]) {
    match super::isa::Isa::detect() {
        #[cfg(target_arch = "x86_64")]
        super::isa::Isa::Avx512 => super::x86::transpose_avx512(src, ld, rows, kc, width, out),
        #[cfg(target_arch = "x86_64")]
        super::isa::Isa::Avx2 => super::x86::transpose_avx2(src, ld, rows, kc, width, out),
        _ => transpose_portable(src, ld, rows, kc, width, out, 0),
    }
}

/// `out[p * width + r] = src[r * ld + p]` for `r < rows`, `p0 ≤ p < kc`: row by row, contiguous
/// reads, stores `width` apart into the L1-resident panel (no per-element branch or bounds
/// check). The portable twin of [`super::x86::transpose_avx512`] and
/// [`super::x86::transpose_avx2`], which finish with it.
pub(crate) fn transpose_portable(
    src: &[f32],
    ld: usize,
    rows: usize,
    kc: usize,
    width: usize,
    out: &mut [f32],
    p0: usize,
) {
    if p0 >= kc {
        return;
    }
    for r in 0..rows {
        let row = &src[r * ld + p0..r * ld + kc];
        for (dst, &v) in out[p0 * width + r..].iter_mut().step_by(width).zip(row) {
            *dst = v;
        }
    }
}

/// Pack rows `[r0, r0 + panels·width)` into consecutive micro-panels of `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_panels<E: Element>(
    codes: &[E],
    q: &QuantizedMatrix,
    r0: usize,
    width: usize,
    p0: usize,
    kc: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    for (i, panel) in out.chunks_exact_mut(kc * width).enumerate() {
        pack_panel(codes, q, r0 + i * width, width, p0, kc, panel, scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::scaling::Role;
    use crate::formats::{Format, Scaling};

    /// The AVX-512 and AVX2 transposes (16 × 16 or 8 × 8 register blocks, masked partial
    /// blocks, portable tail) write exactly what the portable twin writes, for every height and
    /// odd depths.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_transpose_equals_the_portable_twin() {
        use super::super::isa::Isa;
        let isa = Isa::detect();
        let simd_transpose = match isa {
            Isa::Avx512 => super::super::x86::transpose_avx512,
            Isa::Avx2 => super::super::x86::transpose_avx2,
            _ => {
                eprintln!("SKIPPED: no AVX2 on this CPU");
                return;
            }
        };
        // Both when the CPU has AVX-512 (AVX2 then too).
        let mut kernels = vec![simd_transpose as fn(&[f32], usize, usize, usize, usize, &mut [f32])];
        if isa == Isa::Avx512 {
            kernels.push(super::super::x86::transpose_avx2);
        }
        for transpose in kernels {
            for width in [6, 12, 16, 32, 37] {
                for rows in 1..=width {
                    for (kc, ld) in [(1, 1), (15, 15), (16, 20), (17, 17), (48, 64), (71, 75)] {
                        let src: Vec<f32> = (0..(rows - 1) * ld + kc).map(|i| i as f32 + 0.5).collect();
                        let mut simd = vec![-1.0; kc * width];
                        let mut portable = simd.clone();
                        transpose(&src, ld, rows, kc, width, &mut simd);
                        transpose_portable(&src, ld, rows, kc, width, &mut portable, 0);
                        assert_eq!(simd, portable, "width {width} rows {rows} kc {kc} ld {ld}");
                        for (p, r) in [(0, 0), (kc - 1, rows - 1)] {
                            assert_eq!(portable[p * width + r], src[r * ld + p]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn panel_holds_dequantized_values_k_major_with_zero_padding() {
        let (rows, cols) = (5, 70);
        let v: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let q =
            QuantizedMatrix::quantize(&v, rows, cols, Format::E4M3, Scaling::MX32, Role::Weights).unwrap();
        let deq = q.dequantize();
        let (width, p0, kc) = (4, 30, 40);
        let mut out = vec![f32::NAN; 2 * width * kc];
        let mut scratch = vec![0.0; width * kc];
        crate::with_codes!(&q.codes, |c| pack_panels(c, &q, 3, width, p0, kc, &mut out, &mut scratch));
        for panel in 0..2 {
            for p in 0..kc {
                for r in 0..width {
                    let row = 3 + panel * width + r;
                    let want = if row < rows { deq[row * cols + p0 + p] } else { 0.0 };
                    assert_eq!(out[panel * width * kc + p * width + r], want, "row {row} k {}", p0 + p);
                }
            }
        }
    }
}

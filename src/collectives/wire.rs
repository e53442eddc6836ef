//! What a payload chunk looks like on the wire, and the f32 reduction of received chunks.
//!
//! f32/bf16/f16 chunks are their codes. FP8 chunks are sent the way DeepSeek-V3 dispatches MoE
//! activations: E4M3 (or E5M2) codes followed by one f32 scale per 1×128 tile, little-endian —
//! `QuantizedMatrix` with the DeepSeek activation scaling on a `1 × chunk` row, so a partial last
//! tile gets its own scale. Each chunk is quantized on its own, so its scales travel with it
//! and the receiver needs nothing else to decode it.

use crate::formats::scaling::block_scale;
use crate::formats::{E4m3, E5m2, Element, Format, ScaleFormat, Scaling};
use half::{bf16, f16};

/// Elements that share one scale in an FP8 chunk (DeepSeek-V3's 1×128 activation tiles).
pub const TILE: usize = 128;

/// The scaling a payload travels with: DeepSeek 1×128 f32 scales for FP8, none otherwise.
pub fn scaling(format: Format) -> Scaling {
    if format.is_fp8() {
        Scaling::DEEPSEEK
    } else {
        Scaling::NONE
    }
}

/// Bytes of one encoded chunk of `elements` values: codes and scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkBytes {
    pub codes: usize,
    pub scales: usize,
}

impl ChunkBytes {
    pub fn of(format: Format, elements: usize) -> ChunkBytes {
        let scales = if format.is_fp8() { elements.div_ceil(TILE) * 4 } else { 0 };
        ChunkBytes { codes: elements * format.bytes(), scales }
    }
    pub fn total(self) -> usize {
        self.codes + self.scales
    }
}

/// Encode `values` as one chunk into `out` (exactly [`ChunkBytes::total`] bytes): the codes and
/// scales of [`QuantizedMatrix::quantize`] on a `1 × n` row (tested bit for bit), written in place
/// with the formats' own [`block_scale`] and [`Element::encode_slice`], so a timed reduction
/// measures the encoding and not the allocator.
pub fn encode_into(format: Format, values: &[f32], out: &mut [u8]) {
    let sizes = ChunkBytes::of(format, values.len());
    assert_eq!(out.len(), sizes.total(), "chunk buffer of the wrong size");
    let (codes, scales) = out.split_at_mut(sizes.codes);
    match format {
        Format::F32 => encode_codes::<f32>(values, codes, scales),
        Format::BF16 => encode_codes::<bf16>(values, codes, scales),
        Format::F16 => encode_codes::<f16>(values, codes, scales),
        Format::E4M3 => encode_codes::<E4m3>(values, codes, scales),
        Format::E5M2 => encode_codes::<E5m2>(values, codes, scales),
    }
}

fn encode_codes<E: Element>(values: &[f32], codes: &mut [u8], scales: &mut [u8]) {
    match bytemuck::try_cast_slice_mut::<u8, E>(codes) {
        Ok(typed) => encode_typed(values, typed, scales),
        // An unaligned buffer: encode aside and copy once.
        Err(_) => {
            let mut typed = vec![<E as bytemuck::Zeroable>::zeroed(); values.len()];
            encode_typed(values, &mut typed, scales);
            codes.copy_from_slice(bytemuck::cast_slice(&typed));
        }
    }
}

fn encode_typed<E: Element>(values: &[f32], codes: &mut [E], scales: &mut [u8]) {
    if !E::FORMAT.is_fp8() {
        return E::encode_slice(values, codes);
    }
    let mut tile = [0f32; TILE];
    for ((v, c), s) in values.chunks(TILE).zip(codes.chunks_mut(TILE)).zip(scales.chunks_exact_mut(4)) {
        let amax = finite_amax(v);
        let scale = block_scale(amax, E::FORMAT, ScaleFormat::F32);
        for (t, x) in tile.iter_mut().zip(v) {
            *t = x / scale;
        }
        E::encode_slice(&tile[..v.len()], c);
        s.copy_from_slice(&scale.to_le_bytes());
    }
}

/// Largest finite |x| (0 for none), as `QuantizedMatrix::quantize` takes it. Eight running maxima
/// so the compiler vectorises the loop; max is exact, so the order does not change the result.
fn finite_amax(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (m, x) in lanes.iter_mut().zip(c) {
            let a = x.abs();
            let a = if a < f32::INFINITY { a } else { 0.0 }; // NaN and ±inf do not count
            *m = if a > *m { a } else { *m };
        }
    }
    for x in chunks.remainder() {
        let a = x.abs();
        if a < f32::INFINITY && a > lanes[0] {
            lanes[0] = a;
        }
    }
    lanes.into_iter().fold(0f32, |m, a| if a > m { a } else { m })
}

/// Encode `values` as one chunk.
pub fn encode(format: Format, values: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ChunkBytes::of(format, values.len()).total()];
    encode_into(format, values, &mut out);
    out
}

/// Decode one chunk into `out`: `decode(code) · scale`, the same f32 products as
/// `QuantizedMatrix::dequantize` (tested), with the codes decoded a slice at a time.
pub fn decode(format: Format, chunk: &[u8], out: &mut [f32]) {
    let sizes = ChunkBytes::of(format, out.len());
    assert_eq!(chunk.len(), sizes.total(), "chunk of the wrong size");
    let (codes, scales) = chunk.split_at(sizes.codes);
    match format {
        Format::F32 => decode_codes::<f32>(codes, out),
        Format::BF16 => decode_codes::<bf16>(codes, out),
        Format::F16 => decode_codes::<f16>(codes, out),
        Format::E4M3 => decode_codes::<E4m3>(codes, out),
        Format::E5M2 => decode_codes::<E5m2>(codes, out),
    }
    for (tile, s) in out.chunks_mut(TILE).zip(scales.chunks_exact(4)) {
        let s = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        for x in tile {
            *x *= s;
        }
    }
}

fn decode_codes<E: Element>(codes: &[u8], out: &mut [f32]) {
    match bytemuck::try_cast_slice::<u8, E>(codes) {
        Ok(typed) => E::decode_slice(typed, out),
        // An unaligned buffer: copy once rather than refuse.
        Err(_) => E::decode_slice(&bytemuck::pod_collect_to_vec::<u8, E>(codes), out),
    }
}

/// Decode-reduce: `acc = Σ_r decode(chunk_r)` over the chunks laid end to end in `chunks`,
/// accumulated in f32 in rank order (so every rank can reproduce the result bit for bit).
pub fn sum_chunks(format: Format, chunks: &[u8], acc: &mut [f32], scratch: &mut [f32]) {
    let w = ChunkBytes::of(format, acc.len()).total();
    assert!(w > 0 && chunks.chunks_exact(w).remainder().is_empty(), "chunks are not whole");
    acc.fill(0.0);
    for chunk in chunks.chunks_exact(w) {
        decode(format, chunk, scratch);
        for (a, x) in acc.iter_mut().zip(scratch.iter()) {
            *a += *x;
        }
    }
}

/// A byte buffer whose start is 8-byte aligned, so f32/bf16 chunks decode without a copy and
/// f32 reductions can view it as `[f32]`.
#[derive(Debug, Clone)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    pub fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes { words: vec![0; len.div_ceil(8)], len }
    }
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
    pub fn f32s(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.words)[..self.len / 4]
    }
    pub fn f32s_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len / 4]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectives::inputs;
    use crate::formats::scaling::Role;
    use crate::formats::QuantizedMatrix;

    #[test]
    fn encode_is_quantized_matrix_codes_then_scales() {
        for format in Format::ALL {
            for n in [1, 7, 33, 128, 129, 257] {
                let mut v = inputs(1, 50, n);
                v[n / 2] = 0.0;
                if n > 30 {
                    // Non-finite values take no part in the scale.
                    v[3] = f32::INFINITY;
                    v[20] = f32::NAN;
                    v[29] = -1e30;
                }
                let q =
                    QuantizedMatrix::quantize(&v, 1, n, format, scaling(format), Role::Activations).unwrap();
                let mut want = q.codes.as_bytes().to_vec();
                if format.is_fp8() {
                    want.extend(q.stored_scales());
                }
                assert_eq!(encode(format, &v), want, "{format} n={n}");
                // Unaligned output encodes the same.
                let mut shifted = vec![0u8; want.len() + 1];
                encode_into(format, &v, &mut shifted[1..]);
                assert_eq!(&shifted[1..], &want[..], "{format} n={n} unaligned");
            }
        }
    }

    #[test]
    fn fp8_chunks_carry_codes_and_1x128_scales() {
        for n in [1, 7, 128, 129, 257] {
            let b = ChunkBytes::of(Format::E4M3, n);
            assert_eq!(b.codes, n);
            assert_eq!(b.scales, n.div_ceil(128) * 4);
            assert_eq!(ChunkBytes::of(Format::BF16, n), ChunkBytes { codes: 2 * n, scales: 0 });
        }
        // The DeepSeek ratio: (1 + 4/128) / 2 bytes per element against bf16.
        let ratio = ChunkBytes::of(Format::E4M3, 1 << 20).total() as f64 / (2 << 20) as f64;
        assert!((ratio - 0.515625).abs() < 1e-12);
    }

    #[test]
    fn decode_matches_dequantize_bit_for_bit() {
        for format in Format::ALL {
            for n in [1, 7, 33, 129, 257] {
                let v = inputs(2, 100, n);
                let q =
                    QuantizedMatrix::quantize(&v, 1, n, format, scaling(format), Role::Activations).unwrap();
                let mut out = vec![0f32; n];
                decode(format, &encode(format, &v), &mut out);
                let want = q.dequantize();
                assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{format} n={n}");
                // Unaligned input decodes the same.
                let mut shifted = vec![0u8];
                shifted.extend(encode(format, &v));
                let mut again = vec![0f32; n];
                decode(format, &shifted[1..], &mut again);
                assert_eq!(out, again);
            }
        }
    }

    #[test]
    fn f32_chunks_are_lossless_and_sums_are_in_rank_order() {
        let a = inputs(0, 0, 33);
        let b = inputs(1, 0, 33);
        let mut chunks = encode(Format::F32, &a);
        chunks.extend(encode(Format::F32, &b));
        let (mut acc, mut scratch) = (vec![0f32; 33], vec![0f32; 33]);
        sum_chunks(Format::F32, &chunks, &mut acc, &mut scratch);
        for i in 0..33 {
            assert_eq!(acc[i], a[i] + b[i]);
        }
    }
}

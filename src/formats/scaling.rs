//! Scaling schemes and the quantized matrix type.
//!
//! FP8 has too little range to hold raw tensors, so each block of values shares a scale:
//! `value ≈ decode(code) · scale`. Schemes differ in block shape and in how the scale is stored:
//! - per-tensor: one f32 scale, amax / max;
//! - DeepSeek-V3: 1×128 tiles for activations (per token per 128 channels) and 128×128 blocks for
//!   weights, f32 scales (or UE8M0 power-of-two scales rounded up, as in DeepSeek-V3.1);
//! - MX-32 (OCP Microscaling): 32 consecutive elements along K share an E8M0 scale whose exponent
//!   is floor(log2(amax)) - emax_elem (rounding down, so a block max can saturate).
//!
//! Matrices are row-major with K along the columns: activations are `m × k`, weights are `n × k`
//! (out × in, as a Linear layer stores them), so every block scheme runs along K for both operands.

use super::{e8m0, E4m3, E5m2, Element, Format};
use crate::Error;
use half::{bf16, f16};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a block's scale is stored (and therefore rounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScaleFormat {
    /// Full f32 scale: amax / max.
    F32,
    /// UE8M0 power of two rounded up: 2^ceil(log2(amax / max)) (DeepSeek-V3.1 `scale_fmt=ue8m0`).
    Ue8m0Up,
    /// E8M0 power of two from the amax exponent, rounded down: 2^(floor(log2 amax) - emax_elem)
    /// (OCP MX spec). The block max may saturate.
    E8m0Down,
}

impl ScaleFormat {
    pub fn name(self) -> &'static str {
        match self {
            ScaleFormat::F32 => "f32",
            ScaleFormat::Ue8m0Up => "ue8m0",
            ScaleFormat::E8m0Down => "e8m0-floor",
        }
    }
    /// Stored bytes per scale.
    pub fn bytes(self) -> usize {
        match self {
            ScaleFormat::F32 => 4,
            ScaleFormat::Ue8m0Up | ScaleFormat::E8m0Down => 1,
        }
    }
}

/// Which operand a matrix is: decides the block shape of the DeepSeek scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `m × k` activations (1×128 tiles in DeepSeek-V3).
    Activations,
    /// `n × k` weights (128×128 blocks in DeepSeek-V3).
    Weights,
}

/// The block scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// No scale: a plain cast (the only choice for f32/bf16/f16).
    None,
    PerTensor,
    /// DeepSeek-V3: 1×128 activation tiles, 128×128 weight blocks.
    DeepSeek,
    /// OCP MX: 32 elements along K share one scale.
    Mx32,
}

/// A scaling scheme plus the storage of its scales, e.g. `deepseek`, `deepseek:ue8m0`, `mx32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scaling {
    pub scheme: Scheme,
    pub scale_format: ScaleFormat,
}

impl Scaling {
    pub const NONE: Scaling = Scaling { scheme: Scheme::None, scale_format: ScaleFormat::F32 };
    pub const PER_TENSOR: Scaling = Scaling { scheme: Scheme::PerTensor, scale_format: ScaleFormat::F32 };
    pub const DEEPSEEK: Scaling = Scaling { scheme: Scheme::DeepSeek, scale_format: ScaleFormat::F32 };
    pub const DEEPSEEK_UE8M0: Scaling =
        Scaling { scheme: Scheme::DeepSeek, scale_format: ScaleFormat::Ue8m0Up };
    pub const MX32: Scaling = Scaling { scheme: Scheme::Mx32, scale_format: ScaleFormat::E8m0Down };

    pub const ALLOWED: &'static str =
        "none, per-tensor, per-tensor:ue8m0, deepseek, deepseek:ue8m0, mx32, mx32:ue8m0";

    fn default_scale_format(scheme: Scheme) -> ScaleFormat {
        match scheme {
            Scheme::Mx32 => ScaleFormat::E8m0Down,
            _ => ScaleFormat::F32,
        }
    }

    /// The block (rows × cols) that shares one scale, for a `rows × cols` matrix in `role`.
    pub fn block(self, role: Role, rows: usize, cols: usize) -> BlockShape {
        match (self.scheme, role) {
            (Scheme::None | Scheme::PerTensor, _) => BlockShape { rows: rows.max(1), cols: cols.max(1) },
            (Scheme::DeepSeek, Role::Activations) => BlockShape { rows: 1, cols: 128 },
            (Scheme::DeepSeek, Role::Weights) => BlockShape { rows: 128, cols: 128 },
            (Scheme::Mx32, _) => BlockShape { rows: 1, cols: 32 },
        }
    }
}

impl fmt::Display for Scaling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::None => "none",
            Scheme::PerTensor => "per-tensor",
            Scheme::DeepSeek => "deepseek",
            Scheme::Mx32 => "mx32",
        };
        f.write_str(scheme)?;
        if self.scheme != Scheme::None && self.scale_format != Self::default_scale_format(self.scheme) {
            write!(f, ":{}", self.scale_format.name())?;
        }
        Ok(())
    }
}

impl FromStr for Scaling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("scaling", s, Scaling::ALLOWED);
        let (scheme, fmt) = match s.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let scheme = match scheme {
            "none" => Scheme::None,
            "per-tensor" | "tensor" => Scheme::PerTensor,
            "deepseek" | "1x128" | "128x128" | "block" => Scheme::DeepSeek,
            "mx32" | "mx" => Scheme::Mx32,
            _ => return Err(bad()),
        };
        let scale_format = match fmt {
            None => Self::default_scale_format(scheme),
            Some("f32") if scheme != Scheme::Mx32 => ScaleFormat::F32,
            Some("ue8m0") => ScaleFormat::Ue8m0Up,
            Some("e8m0-floor") => ScaleFormat::E8m0Down,
            Some(_) => return Err(bad()),
        };
        if scheme == Scheme::None && fmt.is_some() {
            return Err(bad());
        }
        Ok(Scaling { scheme, scale_format })
    }
}

impl Serialize for Scaling {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scaling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Shape of the block that shares one scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockShape {
    pub rows: usize,
    pub cols: usize,
}

/// Stored element codes, one variant per storage format. Use [`with_codes!`](crate::with_codes)
/// to run generic code on whichever variant is present.
#[derive(Debug, Clone, PartialEq)]
pub enum Codes {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    E4M3(Vec<E4m3>),
    E5M2(Vec<E5m2>),
}

/// Run `$body` with `$codes` bound to the typed slice of a [`Codes`] (so the body is generic over
/// [`Element`] without writing one arm per format).
#[macro_export]
macro_rules! with_codes {
    ($value:expr, |$codes:ident| $body:expr) => {
        match $value {
            $crate::formats::scaling::Codes::F32($codes) => $body,
            $crate::formats::scaling::Codes::BF16($codes) => $body,
            $crate::formats::scaling::Codes::F16($codes) => $body,
            $crate::formats::scaling::Codes::E4M3($codes) => $body,
            $crate::formats::scaling::Codes::E5M2($codes) => $body,
        }
    };
}

impl Codes {
    pub fn format(&self) -> Format {
        match self {
            Codes::F32(_) => Format::F32,
            Codes::BF16(_) => Format::BF16,
            Codes::F16(_) => Format::F16,
            Codes::E4M3(_) => Format::E4M3,
            Codes::E5M2(_) => Format::E5M2,
        }
    }
    pub fn len(&self) -> usize {
        with_codes!(self, |c| c.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw bytes of the codes (for upload to a device).
    pub fn as_bytes(&self) -> &[u8] {
        with_codes!(self, |c| bytemuck::cast_slice(c.as_slice()))
    }
    /// Encode `values` (already divided by their scales) into `format`, saturating.
    pub fn encode(format: Format, values: &[f32]) -> Codes {
        fn enc<E: Element>(v: &[f32]) -> Vec<E> {
            let mut out = vec![<E as bytemuck::Zeroable>::zeroed(); v.len()];
            E::encode_slice(v, &mut out);
            out
        }
        match format {
            Format::F32 => Codes::F32(values.to_vec()),
            Format::BF16 => Codes::BF16(enc(values)),
            Format::F16 => Codes::F16(enc(values)),
            Format::E4M3 => Codes::E4M3(enc(values)),
            Format::E5M2 => Codes::E5M2(enc(values)),
        }
    }
    pub fn decode(&self) -> Vec<f32> {
        with_codes!(self, |c| {
            let mut out = vec![0.0f32; c.len()];
            Element::decode_slice(c.as_slice(), &mut out);
            out
        })
    }
}

/// Logical bytes of a quantized tensor: what a format really costs, scales included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogicalBytes {
    pub codes: u64,
    pub scales: u64,
    pub total: u64,
}

/// The block scales of a matrix as held in memory: f32 values, or one E8M0 code per scale
/// (UE8M0 and MX scales are powers of two), so a matrix holds what its format says it stores.
#[derive(Debug, Clone, PartialEq)]
pub enum Scales {
    F32(Vec<f32>),
    /// E8M0 codes: scale = 2^(code - 127).
    E8M0(Vec<u8>),
}

impl From<Vec<f32>> for Scales {
    fn from(v: Vec<f32>) -> Self {
        Scales::F32(v)
    }
}

impl Scales {
    pub fn len(&self) -> usize {
        self.view().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The value of scale `i`.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        self.view().get(i)
    }
    /// A borrowed view of every scale.
    #[inline]
    pub fn view(&self) -> ScaleSlice<'_> {
        match self {
            Scales::F32(v) => ScaleSlice::F32(v),
            Scales::E8M0(v) => ScaleSlice::E8M0(v),
        }
    }
    /// A borrowed view of scales `range`.
    #[inline]
    pub fn slice(&self, range: std::ops::Range<usize>) -> ScaleSlice<'_> {
        self.view().slice(range)
    }
    /// Every scale's value, in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        let v = self.view();
        (0..v.len()).map(move |i| v.get(i))
    }
    /// Every scale's value as f32 (for devices that take f32 scales).
    pub fn to_f32(&self) -> Vec<f32> {
        self.iter().collect()
    }
    /// Bytes held in memory by the scales.
    pub fn held_bytes(&self) -> u64 {
        match self {
            Scales::F32(v) => (v.len() * 4) as u64,
            Scales::E8M0(v) => v.len() as u64,
        }
    }
}

/// A borrowed run of scales (a row of the scale grid, say), as the kernels read them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleSlice<'a> {
    F32(&'a [f32]),
    E8M0(&'a [u8]),
}

impl<'a> ScaleSlice<'a> {
    #[inline]
    pub fn len(self) -> usize {
        match self {
            ScaleSlice::F32(v) => v.len(),
            ScaleSlice::E8M0(v) => v.len(),
        }
    }
    #[inline]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
    /// The value of scale `i`; an E8M0 code decodes by placing it in the f32 exponent field.
    #[inline]
    pub fn get(self, i: usize) -> f32 {
        match self {
            ScaleSlice::F32(v) => v[i],
            ScaleSlice::E8M0(v) => e8m0::decode(v[i]),
        }
    }
    #[inline]
    pub fn slice(self, range: std::ops::Range<usize>) -> ScaleSlice<'a> {
        match self {
            ScaleSlice::F32(v) => ScaleSlice::F32(&v[range]),
            ScaleSlice::E8M0(v) => ScaleSlice::E8M0(&v[range]),
        }
    }
}

/// A row-major `rows × cols` matrix stored in one format, with the scales of its blocks.
/// `value[r][c] = decode(codes[r*cols + c]) · scales[block(r, c)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedMatrix {
    pub rows: usize,
    pub cols: usize,
    pub codes: Codes,
    pub scaling: Scaling,
    pub block: BlockShape,
    /// One scale per block, row-major over the block grid (`block_rows() × block_cols()`), held
    /// in its scale format: f32, or E8M0 codes for power-of-two scales.
    pub scales: Scales,
}

impl QuantizedMatrix {
    /// Quantize a row-major f32 matrix. Scaling other than `none` applies to FP8 formats only.
    pub fn quantize(
        values: &[f32],
        rows: usize,
        cols: usize,
        format: Format,
        scaling: Scaling,
        role: Role,
    ) -> Result<Self, Error> {
        if values.len() != rows * cols {
            return Err(Error::Shape(format!(
                "matrix data has {} values, expected {rows}×{cols} = {}",
                values.len(),
                rows * cols
            )));
        }
        if !format.is_fp8() && scaling.scheme != Scheme::None {
            return Err(Error::invalid(
                "scaling",
                &scaling.to_string(),
                &format!("none (scaling applies to e4m3/e5m2 only, not {format})"),
            ));
        }
        let block = scaling.block(role, rows, cols);
        let (br, bc) = (rows.div_ceil(block.rows), cols.div_ceil(block.cols));
        if scaling.scheme == Scheme::None {
            return Ok(QuantizedMatrix {
                rows,
                cols,
                codes: Codes::encode(format, values),
                scaling,
                block,
                scales: Scales::F32(vec![1.0; br * bc]),
            });
        }
        let mut values_of_scales = vec![0f32; br * bc];
        let mut scaled = vec![0f32; values.len()];
        for bi in 0..br {
            for bj in 0..bc {
                let (r0, r1) = (bi * block.rows, ((bi + 1) * block.rows).min(rows));
                let (c0, c1) = (bj * block.cols, ((bj + 1) * block.cols).min(cols));
                let mut amax = 0f32;
                for r in r0..r1 {
                    for &v in &values[r * cols + c0..r * cols + c1] {
                        if v.is_finite() {
                            amax = amax.max(v.abs());
                        }
                    }
                }
                let s = block_scale(amax, format, scaling.scale_format);
                values_of_scales[bi * bc + bj] = s;
                for r in r0..r1 {
                    for c in c0..c1 {
                        scaled[r * cols + c] = values[r * cols + c] / s;
                    }
                }
            }
        }
        let scales = match scaling.scale_format {
            ScaleFormat::F32 => Scales::F32(values_of_scales),
            // Power-of-two scales: the code is exact (decode(encode(s)) == s).
            ScaleFormat::Ue8m0Up | ScaleFormat::E8m0Down => {
                Scales::E8M0(values_of_scales.iter().map(|&s| e8m0::encode(s)).collect())
            }
        };
        Ok(QuantizedMatrix { rows, cols, codes: Codes::encode(format, &scaled), scaling, block, scales })
    }

    pub fn format(&self) -> Format {
        self.codes.format()
    }

    /// Number of block rows and block columns of the scale grid.
    pub fn scale_grid(&self) -> (usize, usize) {
        (self.rows.div_ceil(self.block.rows), self.cols.div_ceil(self.block.cols))
    }

    /// Scale of the block holding element (r, c).
    #[inline]
    pub fn scale_at(&self, r: usize, c: usize) -> f32 {
        let (_, bc) = self.scale_grid();
        self.scales.get((r / self.block.rows) * bc + c / self.block.cols)
    }

    /// The scales of block row `r / block.rows` (one per K segment of row `r`).
    #[inline]
    pub fn row_scales(&self, r: usize) -> ScaleSlice<'_> {
        self.row_scales_fn()(r)
    }

    /// [`QuantizedMatrix::row_scales`] with the scale grid worked out once, for a kernel that
    /// asks for every row (one division per row instead of three).
    #[inline]
    pub fn row_scales_fn<'a>(&'a self) -> impl Fn(usize) -> ScaleSlice<'a> + 'a {
        let ((_, bc), block_rows, view) = (self.scale_grid(), self.block.rows, self.scales.view());
        move |r| {
            let b0 = (r / block_rows) * bc;
            view.slice(b0..b0 + bc)
        }
    }

    /// A copy whose block `(bi, bj)` carries the scale of block `source(bi, bj)` of this matrix:
    /// how tests build a kernel that applies a scale to the wrong block (validation must refuse
    /// its output). `source` must return a block inside the grid.
    pub fn with_scales_from(&self, source: impl Fn(usize, usize) -> (usize, usize)) -> QuantizedMatrix {
        let (br, bc) = self.scale_grid();
        let from = |i: usize| {
            let (si, sj) = source(i / bc, i % bc);
            assert!(si < br && sj < bc, "block ({si}, {sj}) outside the {br}×{bc} scale grid");
            si * bc + sj
        };
        let mut q = self.clone();
        q.scales = match &self.scales {
            Scales::F32(v) => Scales::F32((0..br * bc).map(|i| v[from(i)]).collect()),
            Scales::E8M0(v) => Scales::E8M0((0..br * bc).map(|i| v[from(i)]).collect()),
        };
        q
    }

    /// Codes + scales as stored. A `none` scaling stores no scale.
    pub fn logical_bytes(&self) -> LogicalBytes {
        let codes = (self.rows * self.cols * self.format().bytes()) as u64;
        let scales = if self.scaling.scheme == Scheme::None {
            0
        } else {
            (self.scales.len() * self.scaling.scale_format.bytes()) as u64
        };
        LogicalBytes { codes, scales, total: codes + scales }
    }

    /// The scales as stored: f32 little-endian bytes, or one E8M0 code per scale.
    pub fn stored_scales(&self) -> Vec<u8> {
        match (&self.scales, self.scaling.scale_format) {
            (Scales::E8M0(codes), _) => codes.clone(),
            (Scales::F32(v), ScaleFormat::F32) => v.iter().flat_map(|s| s.to_le_bytes()).collect(),
            (Scales::F32(v), _) => v.iter().map(|&s| e8m0::encode(s)).collect(),
        }
    }

    /// Dequantize to f32 (the exact values the kernels multiply).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = self.codes.decode();
        if self.scaling.scheme != Scheme::None {
            for r in 0..self.rows {
                for c in 0..self.cols {
                    out[r * self.cols + c] *= self.scale_at(r, c);
                }
            }
        }
        out
    }

    /// Dequantize to f64, for references.
    pub fn dequantize_f64(&self) -> Vec<f64> {
        use rayon::prelude::*;
        let mut out = vec![0f64; self.rows * self.cols];
        out.par_chunks_mut(self.cols.max(1)).enumerate().for_each(|(r, row)| self.dequantize_row_f64(r, row));
        out
    }

    /// Row `r` of [`dequantize_f64`](Self::dequantize_f64) into `out` (`cols` values).
    pub fn dequantize_row_f64(&self, r: usize, out: &mut [f64]) {
        let cols = self.cols;
        let scales = self.row_scales(r);
        let seg = self.block.cols.max(1);
        crate::with_codes!(&self.codes, |codes| {
            let row = &codes[r * cols..(r + 1) * cols];
            for (s, (o, c)) in out[..cols].chunks_mut(seg).zip(row.chunks(seg)).enumerate() {
                let scale = scales.get(s) as f64;
                for (o, c) in o.iter_mut().zip(c) {
                    *o = c.decode() as f64 * scale;
                }
            }
        })
    }
}

/// DeepSeek-V3's quantizer clamps amax to at least this before `scale = amax / max`, so an
/// all-zero block still gets a usable (finite, non-zero) scale.
pub const DEEPSEEK_AMAX_MIN: f32 = 1e-4;

/// The scale of one block with absolute maximum `amax` (of its finite values).
///
/// - [`ScaleFormat::F32`]: `max(amax, 1e-4) / max` (DeepSeek-V3 `act_quant`/`weight_quant`).
/// - [`ScaleFormat::Ue8m0Up`]: `2^ceil(log2(max(amax, 1e-4) / max))`, the same ratio rounded up to
///   a power of two (DeepSeek-V3.1 `scale_fmt = "ue8m0"`), so `|v| / scale <= max` holds.
/// - [`ScaleFormat::E8m0Down`]: `2^(floor(log2 amax) - emax_elem)` with emax_elem the exponent of
///   the element max (8 for E4M3, 15 for E5M2), clamped to the E8M0 range (OCP MX v1.0,
///   arXiv 2310.10537 Algorithm 1). No 1e-4 clamp here: that is DeepSeek's rule, and it would
///   coarsen blocks whose amax is below 1e-4. An all-zero block (any scale works) takes the
///   exponent of the smallest f32 normal, as Microsoft's microxcaling reference does, which the
///   range clamp turns into 2^-127.
pub fn block_scale(amax: f32, format: Format, scale_format: ScaleFormat) -> f32 {
    let max = format.max();
    match scale_format {
        ScaleFormat::F32 => amax.max(DEEPSEEK_AMAX_MIN) / max,
        ScaleFormat::Ue8m0Up => {
            let ratio = amax.max(DEEPSEEK_AMAX_MIN) / max;
            e8m0::decode(e8m0::encode_ceil(ratio).unwrap_or(if ratio > 1.0 { 0xFE } else { 0 }))
        }
        ScaleFormat::E8m0Down => {
            let amax = if amax > 0.0 && amax.is_finite() {
                amax
            } else if amax == f32::INFINITY {
                f32::MAX
            } else {
                f32::MIN_POSITIVE
            };
            let emax_elem = e8m0::floor_log2(max);
            let e = (e8m0::floor_log2(amax) - emax_elem).clamp(-127, 127);
            e8m0::decode(e8m0::from_exponent(e).expect("clamped"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepseek_weight_bytes_4096() {
        let n = 4096;
        let q = QuantizedMatrix {
            rows: n,
            cols: n,
            codes: Codes::E4M3(vec![E4m3(0); n * n]),
            scaling: Scaling::DEEPSEEK,
            block: Scaling::DEEPSEEK.block(Role::Weights, n, n),
            scales: Scales::F32(vec![1.0; 32 * 32]),
        };
        let b = q.logical_bytes();
        assert_eq!(b.codes, 16 << 20);
        assert_eq!(b.scales, 4096);
        assert_eq!(b.total, (16 << 20) + 4096);
    }

    #[test]
    fn scaling_names_round_trip() {
        for s in
            ["none", "per-tensor", "per-tensor:ue8m0", "deepseek", "deepseek:ue8m0", "mx32", "mx32:ue8m0"]
        {
            let p: Scaling = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert!("bogus".parse::<Scaling>().is_err());
    }
}

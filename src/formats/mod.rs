//! Number formats: the storage formats chipbench measures, their bit-exact codecs, and the
//! scaling schemes that make FP8 usable (per-tensor, DeepSeek-V3 tiles/blocks, MX-32, UE8M0).
//!
//! Every kernel is generic over a [`Element`]: the only thing that differs between formats is
//! how a stored code is decoded to f32 (and encoded from it).

pub mod e8m0;
pub mod fp8;
pub mod scaling;

pub use fp8::{Fp8Spec, Overflow, E4M3, E5M2};
pub use scaling::{BlockShape, QuantizedMatrix, ScaleFormat, ScaleSlice, Scales, Scaling};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A storage format for matrix elements. Accumulation is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    F32,
    BF16,
    F16,
    /// OCP OFP8 E4M3FN: bias 7, max 448, no infinity, NaN = S.1111.111.
    E4M3,
    /// OCP OFP8 E5M2: bias 15, max 57344, IEEE-like infinities and NaNs.
    E5M2,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::F32, Format::BF16, Format::F16, Format::E4M3, Format::E5M2];

    /// Stable lowercase name used on the command line and in results JSON.
    pub fn name(self) -> &'static str {
        match self {
            Format::F32 => "f32",
            Format::BF16 => "bf16",
            Format::F16 => "f16",
            Format::E4M3 => "e4m3",
            Format::E5M2 => "e5m2",
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            Format::F32 => 32,
            Format::BF16 | Format::F16 => 16,
            Format::E4M3 | Format::E5M2 => 8,
        }
    }

    pub fn bytes(self) -> usize {
        (self.bits() / 8) as usize
    }

    pub fn is_fp8(self) -> bool {
        matches!(self, Format::E4M3 | Format::E5M2)
    }

    /// Explicit mantissa bits (precision - 1).
    pub fn mantissa_bits(self) -> u32 {
        match self {
            Format::F32 => 23,
            Format::BF16 => 7,
            Format::F16 => 10,
            Format::E4M3 => 3,
            Format::E5M2 => 2,
        }
    }

    /// Largest finite value.
    pub fn max(self) -> f32 {
        match self {
            Format::F32 => f32::MAX,
            Format::BF16 => half::bf16::MAX.to_f32(),
            Format::F16 => half::f16::MAX.to_f32(),
            Format::E4M3 => E4M3.max,
            Format::E5M2 => E5M2.max,
        }
    }

    /// Smallest positive normal value.
    pub fn min_normal(self) -> f32 {
        match self {
            Format::F32 => f32::MIN_POSITIVE,
            Format::BF16 => half::bf16::MIN_POSITIVE.to_f32(),
            Format::F16 => half::f16::MIN_POSITIVE.to_f32(),
            Format::E4M3 => E4M3.min_normal(),
            Format::E5M2 => E5M2.min_normal(),
        }
    }

    /// Smallest positive subnormal value.
    pub fn min_subnormal(self) -> f32 {
        match self {
            Format::F32 => f32::from_bits(1),
            Format::BF16 => half::bf16::from_bits(1).to_f32(),
            Format::F16 => half::f16::from_bits(1).to_f32(),
            Format::E4M3 => E4M3.min_subnormal(),
            Format::E5M2 => E5M2.min_subnormal(),
        }
    }

    /// Relative half-ulp bound of round-to-nearest for normal values: 2^-(mantissa_bits+1).
    pub fn unit_roundoff(self) -> f64 {
        (2.0f64).powi(-(self.mantissa_bits() as i32 + 1))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Format::F32),
            "bf16" => Ok(Format::BF16),
            "f16" | "fp16" => Ok(Format::F16),
            "e4m3" | "e4m3fn" | "fp8" | "fp8-e4m3" => Ok(Format::E4M3),
            "e5m2" | "fp8-e5m2" => Ok(Format::E5M2),
            _ => Err(crate::Error::invalid("format", s, "f32, bf16, f16, e4m3, e5m2")),
        }
    }
}

/// The decode/encode step of one storage format. Kernels are generic over this trait, so a
/// format never gets its own copy of a kernel.
pub trait Element: Copy + Send + Sync + 'static + bytemuck::Pod {
    const FORMAT: Format;
    fn decode(self) -> f32;
    /// Round to nearest even; out-of-range values saturate to ±max (the training convention).
    fn encode(x: f32) -> Self;

    /// Decode a whole slice. Formats override this with a loop the compiler vectorises.
    fn decode_slice(src: &[Self], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.decode();
        }
    }

    fn encode_slice(src: &[f32], dst: &mut [Self]) {
        assert_eq!(src.len(), dst.len());
        for (d, s) in dst.iter_mut().zip(src) {
            *d = Self::encode(*s);
        }
    }
}

impl Element for f32 {
    const FORMAT: Format = Format::F32;
    #[inline(always)]
    fn decode(self) -> f32 {
        self
    }
    #[inline(always)]
    fn encode(x: f32) -> Self {
        x
    }
}

impl Element for half::bf16 {
    const FORMAT: Format = Format::BF16;
    #[inline(always)]
    fn decode(self) -> f32 {
        // bf16 is the top half of an f32: a shift, no rounding.
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    #[inline(always)]
    fn encode(x: f32) -> Self {
        half::bf16::from_f32(x)
    }
    fn decode_slice(src: &[Self], dst: &mut [f32]) {
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst)
    }
    fn encode_slice(src: &[f32], dst: &mut [Self]) {
        half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src)
    }
}

impl Element for half::f16 {
    const FORMAT: Format = Format::F16;
    #[inline(always)]
    fn decode(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn encode(x: f32) -> Self {
        half::f16::from_f32(x)
    }
    fn decode_slice(src: &[Self], dst: &mut [f32]) {
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst)
    }
    fn encode_slice(src: &[f32], dst: &mut [Self]) {
        half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src)
    }
}

/// An E4M3FN code (OCP OFP8).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct E4m3(pub u8);

/// An E5M2 code (OCP OFP8).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct E5m2(pub u8);

macro_rules! fp8_element {
    ($ty:ty, $spec:expr, $fmt:expr) => {
        impl Element for $ty {
            const FORMAT: Format = $fmt;
            #[inline(always)]
            fn decode(self) -> f32 {
                $spec.decode(self.0)
            }
            #[inline(always)]
            fn encode(x: f32) -> Self {
                Self($spec.encode(x, Overflow::Saturate))
            }
            fn decode_slice(src: &[Self], dst: &mut [f32]) {
                $spec.decode_slice(bytemuck::cast_slice(src), dst)
            }
            fn encode_slice(src: &[f32], dst: &mut [Self]) {
                $spec.encode_slice(src, bytemuck::cast_slice_mut(dst), Overflow::Saturate)
            }
        }
    };
}
fp8_element!(E4m3, E4M3, Format::E4M3);
fp8_element!(E5m2, E5M2, Format::E5M2);

//! An emulated FP8 dot product / GEMM whose accumulator keeps only `w` mantissa bits, with
//! optional promotion into an f32 accumulator every `N_C` elements (the DeepSeek-V3 fix).
//!
//! # What is modelled
//! - **Inputs** are FP8 codes (E4M3 or E5M2) with their block scales, exactly as
//!   [`QuantizedMatrix`] holds them (per-tensor, DeepSeek 1×128 / 128×128, MX-32).
//! - **Products are exact.** An FP8×FP8 product has at most an 8-bit significand and an exponent
//!   well inside f32's range (E4M3: 2^-18..2^17.6, E5M2: 2^-32..2^31.6), so it is an exact f32.
//! - **The accumulator is a float with f32's exponent range and `w` explicit mantissa bits**
//!   (`w` = 23 is f32, `w` = 10 has f16's precision). After every add the *exact* sum of the
//!   running value and the addend is rounded to `w` bits, either toward zero ([`Rounding::Truncate`])
//!   or to nearest, ties to even ([`Rounding::NearestEven`]). Rounding the exact sum toward zero
//!   is what a datapath does that aligns the addend to the larger exponent and drops the bits
//!   shifted out (for addends of the running sum's sign; for the other sign it differs by at most
//!   one unit in the last place).
//! - **Groups.** With `group` > 1, that many products are summed exactly (in f64) before the
//!   rounded add, a stand-in for a tensor core's multi-operand adder that rounds once per
//!   instruction rather than once per product. `group` = 1 is the plain per-add model.
//! - **Promotion** (DeepGEMM's two-level accumulation): every `N_C` elements the limited-precision
//!   partial sum is multiplied by its block scales and added into an f32 accumulator with one
//!   rounding (`fma(partial, s_a·s_b, total)`), then the partial restarts from zero. This needs the
//!   whole interval to share one scale pair; when it does not (`N_C` larger than the scale block,
//!   or no promotion with block scaling), the products are scaled (in f32) before they enter the
//!   limited accumulator, as a tensor core with built-in block scaling would do.
//!
//! # What it cannot model
//! - The real alignment logic of NVIDIA's tensor cores is not public: how many guard bits the
//!   multi-operand adder keeps, whether products are truncated relative to the largest exponent in
//!   the group, where normalisation happens, and whether "about 14 bits" means 14 fraction bits or
//!   14 bits of significand. `w`, [`Rounding`] and `group` are knobs over that uncertainty, not a
//!   description of the silicon.
//! - The order of additions inside an MMA instruction, and the interleaving of K slices across
//!   warps, are fixed here to sequential order along K.
//! - Exponent-range effects of the accumulator (overflow of the partial sum, subnormal flushing)
//!   are not modelled beyond what f32 itself does.
//! - With f32 block scales the scaled-product path rounds each product once to f32; power-of-two
//!   scales (UE8M0, MX) make that step exact.

use crate::formats::{QuantizedMatrix, ScaleSlice};
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// How the accumulator rounds the exact sum to `w` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rounding {
    /// Toward zero: drop the bits below the last kept one.
    Truncate,
    /// To nearest, ties to even (IEEE 754 default).
    NearestEven,
}

impl Rounding {
    pub const ALL: [Rounding; 2] = [Rounding::Truncate, Rounding::NearestEven];
    pub fn name(self) -> &'static str {
        match self {
            Rounding::Truncate => "trunc",
            Rounding::NearestEven => "rne",
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Rounding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "trunc" | "truncate" | "rz" => Ok(Rounding::Truncate),
            "rne" | "nearest" | "nearest-even" => Ok(Rounding::NearestEven),
            _ => Err(Error::invalid("rounding", s, "trunc, rne")),
        }
    }
}

/// When the limited-precision partial sum is promoted into the f32 accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Promotion {
    /// Every `N_C` elements along K.
    Every(usize),
    /// Never: the whole dot product runs in the limited accumulator (`N_C` = ∞).
    Never,
}

impl Promotion {
    /// The sweep the study runs by default: {32, 64, 128, 256, ∞}.
    pub const DEFAULT_SWEEP: [Promotion; 5] = [
        Promotion::Every(32),
        Promotion::Every(64),
        Promotion::Every(128),
        Promotion::Every(256),
        Promotion::Never,
    ];
    /// Interval length for a dot product of length `k`.
    pub fn interval(self, k: usize) -> usize {
        match self {
            Promotion::Every(n) => n,
            Promotion::Never => k.max(1),
        }
    }
}

impl fmt::Display for Promotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Promotion::Every(n) => write!(f, "{n}"),
            Promotion::Never => f.write_str("inf"),
        }
    }
}

impl FromStr for Promotion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "inf" | "none" | "never" => Ok(Promotion::Never),
            _ => match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Promotion::Every(n)),
                _ => Err(Error::invalid("nc", s, "a positive element count (e.g. 32, 64, 128, 256) or inf")),
            },
        }
    }
}

/// The accumulator inside the (emulated) tensor core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accumulator {
    /// A float with f32's exponent range and `width` explicit mantissa bits.
    Limited { width: u32, rounding: Rounding },
    /// Plain f32 additions done by the machine: the yardstick the `width` = 23 model must equal.
    NativeF32,
}

impl Accumulator {
    pub const MIN_WIDTH: u32 = 1;
    pub const MAX_WIDTH: u32 = 23;

    /// A limited accumulator; `width` must be in 1..=23.
    pub fn limited(width: u32, rounding: Rounding) -> Result<Self> {
        if !(Self::MIN_WIDTH..=Self::MAX_WIDTH).contains(&width) {
            return Err(Error::invalid("width", &width.to_string(), "1..=23 mantissa bits (f32 has 23)"));
        }
        Ok(Accumulator::Limited { width, rounding })
    }

    /// Short label, e.g. `w14-trunc` or `f32`.
    pub fn label(self) -> String {
        match self {
            Accumulator::Limited { width, rounding } => format!("w{width}-{rounding}"),
            Accumulator::NativeF32 => "f32".into(),
        }
    }

    /// `acc + x`, rounded as this accumulator rounds. `x` is a sum of products held exactly (an
    /// f32 for `group` = 1).
    #[inline]
    pub fn add(self, acc: f32, x: f64) -> f32 {
        match self {
            Accumulator::NativeF32 => acc + x as f32,
            Accumulator::Limited { width, rounding } => add_rounded(acc, x, width, rounding),
        }
    }
}

/// Round `x` to a float with `width` explicit mantissa bits and f32's exponent range (the
/// subnormal range keeps f32's quantum 2^-149 scaled to `width`). All steps are exact in f64:
/// scaling by a power of two, rounding to an integer, scaling back.
#[inline]
pub fn round_to_width(x: f64, width: u32, rounding: Rounding) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    // floor(log2|x|) from the f64 exponent field (the values here are f64-normal).
    let e = ((x.to_bits() >> 52) & 0x7FF) as i32 - 1023;
    let quantum_exp = e.max(-126) - width as i32;
    let q = pow2(quantum_exp);
    let inv_q = pow2(-quantum_exp);
    let scaled = x * inv_q;
    let n = match rounding {
        Rounding::Truncate => scaled.trunc(),
        Rounding::NearestEven => scaled.round_ties_even(),
    };
    n * q
}

#[inline]
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// `round_w(acc + x)` of the exact sum. The f64 sum `s` may itself be rounded (when the operands'
/// exponents are far apart); TwoSum gives the exact remainder `err = (acc + x) − s`, and the two
/// cases where it matters are fixed: toward zero, `s` landed on a grid point while the exact
/// value lies just inside it; to nearest, `s` landed exactly on a midpoint while the exact value
/// lies to one side. Everywhere else `round_w(s)` = `round_w(acc + x)`, because every grid point
/// and midpoint is itself an f64 and `s` is the f64 nearest to the exact sum.
#[inline]
fn add_rounded(acc: f32, x: f64, width: u32, rounding: Rounding) -> f32 {
    let a = acc as f64;
    let s = a + x;
    let bb = s - a;
    let err = (a - (s - bb)) + (x - bb);
    let t = round_to_width(s, width, rounding);
    if err == 0.0 || s == 0.0 {
        return t as f32;
    }
    // One f64 step from `s` toward the exact value.
    let toward_exact = || {
        if (err > 0.0) == (s > 0.0) {
            f64::from_bits(s.to_bits() + 1)
        } else {
            f64::from_bits(s.to_bits() - 1)
        }
    };
    let r = match rounding {
        Rounding::Truncate if t == s && (err < 0.0) != (s < 0.0) => {
            round_to_width(toward_exact(), width, rounding)
        }
        Rounding::NearestEven if is_midpoint(s, width) => round_to_width(toward_exact(), width, rounding),
        _ => t,
    };
    r as f32
}

/// Whether `x` lies exactly halfway between two neighbours of the `width`-bit grid.
fn is_midpoint(x: f64, width: u32) -> bool {
    let e = ((x.to_bits() >> 52) & 0x7FF) as i32 - 1023;
    let scaled = x * pow2(width as i32 - e.max(-126));
    scaled.fract().abs() == 0.5
}

/// How one dot product is accumulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DotConfig {
    pub accumulator: Accumulator,
    pub promotion: Promotion,
    /// Products summed exactly before each rounded add (1 = round after every product).
    pub group: usize,
}

impl DotConfig {
    pub fn new(accumulator: Accumulator, promotion: Promotion) -> Self {
        DotConfig { accumulator, promotion, group: 1 }
    }
}

/// One row of a quantized operand: the decoded (unscaled) FP8 values and the scales of the row's
/// blocks along K (`scales[c / block]` belongs to element `c`).
#[derive(Debug, Clone, Copy)]
pub struct ScaledRow<'a> {
    pub raw: &'a [f32],
    pub scales: ScaleSlice<'a>,
    pub block: usize,
}

impl<'a> ScaledRow<'a> {
    /// Row `r` of `q`, whose codes were decoded (unscaled) into `raw` (`q.codes.decode()`).
    pub fn of(q: &'a QuantizedMatrix, raw: &'a [f32], r: usize) -> Self {
        ScaledRow { raw: &raw[r * q.cols..(r + 1) * q.cols], scales: q.row_scales(r), block: q.block.cols }
    }

    #[inline]
    fn scale(&self, c: usize) -> f32 {
        self.scales.get(c / self.block)
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// The exact dot product of the dequantized rows, in f64 (each dequantized value is an f32, each
/// product of two is exact in f64; the f64 sum's own error is ~2^-53·Σ|aᵢbᵢ|).
pub fn dot_reference(a: ScaledRow, b: ScaledRow) -> f64 {
    (0..a.len()).map(|c| (a.raw[c] * a.scale(c)) as f64 * (b.raw[c] * b.scale(c)) as f64).sum()
}

/// The emulated dot product of two quantized rows.
pub fn dot(a: ScaledRow, b: ScaledRow, cfg: &DotConfig) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: rows differ in length");
    let k = a.len();
    let interval = cfg.promotion.interval(k);
    let group = cfg.group.max(1);
    let mut total = 0f32;
    let mut start = 0;
    while start < k {
        let end = (start + interval).min(k);
        // DeepGEMM applies the block scales at promotion, which needs one scale pair per interval.
        let one_scale = start / a.block == (end - 1) / a.block && start / b.block == (end - 1) / b.block;
        let mut partial = 0f32;
        let mut c = start;
        while c < end {
            let g_end = (c + group).min(end);
            let mut x = 0f64;
            for i in c..g_end {
                let p = a.raw[i] * b.raw[i]; // exact: FP8 × FP8 fits an f32
                let p = if one_scale { p } else { p * (a.scale(i) * b.scale(i)) };
                x += p as f64;
            }
            partial = cfg.accumulator.add(partial, x);
            c = g_end;
        }
        total =
            if one_scale { partial.mul_add(a.scale(start) * b.scale(start), total) } else { total + partial };
        start = end;
    }
    total
}

/// Emulated `C = A · Wᵀ` (A is `m × k` activations, W is `n × k` weights), row-major `m × n`.
pub fn gemm(a: &QuantizedMatrix, w: &QuantizedMatrix, cfg: &DotConfig) -> Result<Vec<f32>> {
    if a.cols != w.cols {
        return Err(Error::Shape(format!(
            "A is {}×{} but W is {}×{}: K differs",
            a.rows, a.cols, w.rows, w.cols
        )));
    }
    let (ra, rw) = (a.codes.decode(), w.codes.decode());
    let mut c = vec![0f32; a.rows * w.rows];
    for i in 0..a.rows {
        let ar = ScaledRow::of(a, &ra, i);
        for j in 0..w.rows {
            c[i * w.rows + j] = dot(ar, ScaledRow::of(w, &rw, j), cfg);
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_width_examples() {
        // 1 + 2^-11 + 2^-12 at w = 10: truncation drops both, RNE rounds up to 1 + 2^-10.
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-12);
        assert_eq!(round_to_width(x, 10, Rounding::Truncate), 1.0);
        assert_eq!(round_to_width(x, 10, Rounding::NearestEven), 1.0 + 2f64.powi(-10));
        // Tie to even: 1 + 2^-11 → 1.0; 1 + 3·2^-11 → 1 + 2^-9.
        assert_eq!(round_to_width(1.0 + 2f64.powi(-11), 10, Rounding::NearestEven), 1.0);
        assert_eq!(
            round_to_width(1.0 + 3.0 * 2f64.powi(-11), 10, Rounding::NearestEven),
            1.0 + 2f64.powi(-9)
        );
        // Sign-magnitude: truncation goes toward zero for negatives too.
        assert_eq!(round_to_width(-x, 10, Rounding::Truncate), -1.0);
    }

    #[test]
    fn truncated_add_uses_the_exact_sum() {
        // 1 - 2^-60 rounds to 1.0 in f64, but toward zero at w = 14 it is 1 - 2^-15.
        let r = add_rounded(1.0, -(2f64.powi(-60)), 14, Rounding::Truncate);
        assert_eq!(r as f64, 1.0 - 2f64.powi(-15));
        let r = add_rounded(1.0, 2f64.powi(-60), 14, Rounding::Truncate);
        assert_eq!(r, 1.0);
    }

    #[test]
    fn promotion_parses() {
        assert_eq!("inf".parse::<Promotion>().unwrap(), Promotion::Never);
        assert_eq!("128".parse::<Promotion>().unwrap(), Promotion::Every(128));
        assert!("0".parse::<Promotion>().is_err());
        assert!(Accumulator::limited(24, Rounding::Truncate).is_err());
    }
}

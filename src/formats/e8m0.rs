//! E8M0 (UE8M0): an unsigned power-of-two scale, 8 exponent bits, bias 127, 0xFF = NaN,
//! no zero, no infinity. The MX scale type, and DeepSeek-V3.1's "UE8M0 FP8" scale.

/// NaN code.
pub const NAN: u8 = 0xFF;

/// Decode a code to its f32 value 2^(code-127). Code 0 is 2^-127, an f32 subnormal.
#[inline]
pub fn decode(code: u8) -> f32 {
    match code {
        NAN => f32::NAN,
        0 => f32::from_bits(0x0040_0000),
        c => f32::from_bits((c as u32) << 23),
    }
}

/// The code for 2^exp, if exp is representable (-127..=127).
#[inline]
pub fn from_exponent(exp: i32) -> Option<u8> {
    (-127..=127).contains(&exp).then(|| (exp + 127) as u8)
}

/// The exponent a code stands for (None for NaN).
#[inline]
pub fn exponent(code: u8) -> Option<i32> {
    (code != NAN).then(|| code as i32 - 127)
}

/// floor(log2(x)) for a finite positive f32, exact (subnormals included).
pub fn floor_log2(x: f32) -> i32 {
    debug_assert!(x > 0.0 && x.is_finite());
    let bits = x.to_bits();
    let e = (bits >> 23) as i32;
    if e == 0 {
        // Subnormal: position of the leading mantissa bit.
        let m = bits & 0x7F_FFFF;
        -127 - (m.leading_zeros() as i32 - 9)
    } else {
        e - 127
    }
}

/// ceil(log2(x)) for a finite positive f32, exact.
pub fn ceil_log2(x: f32) -> i32 {
    let f = floor_log2(x);
    if is_power_of_two(x) {
        f
    } else {
        f + 1
    }
}

/// Whether a finite positive f32 is an exact power of two: a normal with a zero mantissa, or a
/// subnormal with a single mantissa bit set.
pub fn is_power_of_two(x: f32) -> bool {
    let bits = x.to_bits() & 0x7FFF_FFFF;
    let (exp, man) = (bits >> 23, bits & 0x7F_FFFF);
    match exp {
        0 => man.is_power_of_two(),
        0xFF => false,
        _ => man == 0,
    }
}

/// Encode an f32 to the nearest power of two in linear distance (round to nearest on the f32
/// bits), ties to the even code. E8M0 has no zero, no sign and no infinity, so 0, negative
/// values, ±inf and NaN all give the NaN code 0xFF (a scale of zero is not a scale); finite
/// values beyond the range clamp to the end codes (0 = 2^-127, 0xFE = 2^127).
pub fn encode(x: f32) -> u8 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return NAN;
    }
    let bits = x.to_bits();
    if bits < 0x0080_0000 {
        // Below 2^-126: candidates 2^-127 (code 0) and 2^-126 (code 1); the midpoint
        // 1.5 · 2^-127 is a tie and goes to the even code 0.
        return if bits > 0x0060_0000 { 1 } else { 0 };
    }
    let lsb = (bits >> 23) & 1;
    let rounded = (bits + 0x3F_FFFF + lsb) >> 23;
    rounded.min(0xFE) as u8
}

/// Smallest power of two ≥ x (DeepSeek's UE8M0 rule rounds the scale up so |v|/s never exceeds
/// the element max). None if x is not finite-positive or out of range.
pub fn encode_ceil(x: f32) -> Option<u8> {
    (x > 0.0 && x.is_finite()).then(|| from_exponent(ceil_log2(x))).flatten()
}

/// Largest power of two ≤ x (the OCP MX rule works from the amax exponent, rounding down).
pub fn encode_floor(x: f32) -> Option<u8> {
    (x > 0.0 && x.is_finite()).then(|| from_exponent(floor_log2(x))).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_round_trip() {
        for e in -127..=127 {
            let x = (2.0f64).powi(e) as f32;
            let c = from_exponent(e).unwrap();
            assert_eq!(decode(c), x, "2^{e}");
            assert_eq!(encode(x), c);
            assert_eq!(encode_ceil(x), Some(c));
            assert_eq!(encode_floor(x), Some(c));
        }
    }

    #[test]
    fn ceil_and_floor() {
        assert_eq!(exponent(encode_ceil(3.0).unwrap()), Some(2));
        assert_eq!(exponent(encode_floor(3.0).unwrap()), Some(1));
        assert_eq!(exponent(encode_ceil(0.3).unwrap()), Some(-1));
        assert_eq!(exponent(encode_floor(0.3).unwrap()), Some(-2));
        assert_eq!(encode(1.5), 128); // tie between 2^0 (code 127) and 2^1 (128): even code
        assert_eq!(encode(f32::NAN), NAN);
        assert!(decode(NAN).is_nan());
    }
}

//! Property tests of the FP8 and E8M0 codecs (120k cases in all, well under a second each in a
//! release build). Expected values come from brute force over the 256 decoded codes, not from
//! the encoder's own arithmetic.

use chipbench::formats::{e8m0, E4m3, E5m2, Element, Fp8Spec, Overflow, E4M3, E5M2};
use proptest::prelude::*;

const CASES: u32 = 20_000;
const SPECS: [Fp8Spec; 2] = [E4M3, E5M2];
const POLICIES: [Overflow; 2] = [Overflow::Cast, Overflow::Saturate];

/// f32 inputs: any bit pattern (NaN, inf, f32 subnormals included) half of the time, otherwise
/// values whose exponent lies around the FP8 ranges (2^-30 .. 2^20) so rounding, subnormal and
/// overflow edges are hit often.
fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        (any::<bool>(), 97u32..148, 0u32..(1 << 23))
            .prop_map(|(s, e, m)| f32::from_bits((s as u32) << 31 | e << 23 | m)),
    ]
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// The value RNE must produce: the finite code nearest to |x| (ties to the even code), or the
/// overflow result at and beyond the spec's overflow threshold (max + half an ulp; the cast policy
/// as ml_dtypes defines it), with the sign of x.
fn brute_force(spec: Fp8Spec, x: f32, policy: Overflow) -> f32 {
    assert!(!x.is_nan());
    // Beyond 2·max the nearest finite value is max; clamping keeps the f64 distances exact.
    let a = (x.abs() as f64).min(2.0 * spec.max as f64);
    let mag = if policy == Overflow::Cast && x.abs() >= spec.overflow_threshold() {
        if spec.ieee_specials {
            f32::INFINITY
        } else {
            f32::NAN
        }
    } else {
        let mut best = (f64::INFINITY, 0u8);
        for code in 0..0x80u8 {
            let v = spec.decode(code);
            if !v.is_finite() {
                continue;
            }
            let d = (v as f64 - a).abs();
            if d < best.0 || (d == best.0 && code % 2 == 0) {
                best = (d, code);
            }
        }
        spec.decode(best.1)
    };
    if x.is_sign_negative() {
        -mag
    } else {
        mag
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn round_trip_is_nearest_even(x in any_f32().prop_filter("not NaN", |x| !x.is_nan())) {
        for spec in SPECS {
            for policy in POLICIES {
                let got = spec.decode(spec.encode(x, policy));
                let want = brute_force(spec, x, policy);
                prop_assert!(same(got, want), "{} {policy:?} x={x:e} ({:#010x}): got {got:e}, want {want:e}",
                    spec.name, x.to_bits());
            }
        }
    }

    #[test]
    fn encoding_is_monotone(a in any_f32(), b in any_f32()) {
        prop_assume!(!a.is_nan() && !b.is_nan());
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for spec in SPECS {
            for policy in POLICIES {
                let (l, h) = (spec.decode(spec.encode(lo, policy)), spec.decode(spec.encode(hi, policy)));
                // A cast to E4M3FN turns overflow into NaN, which has no order; everything else
                // (saturated values, E5M2 infinities) must keep the order of the inputs.
                if l.is_nan() || h.is_nan() {
                    prop_assert!(policy == Overflow::Cast && !spec.ieee_specials);
                    continue;
                }
                prop_assert!(l <= h, "{} {policy:?}: {lo:e} -> {l:e} but {hi:e} -> {h:e}", spec.name);
            }
        }
    }

    #[test]
    fn nan_stays_nan(sign in any::<bool>(), payload in 1u32..(1 << 23)) {
        let x = f32::from_bits((sign as u32) << 31 | 0x7F80_0000 | payload);
        for spec in SPECS {
            for policy in POLICIES {
                let code = spec.encode(x, policy);
                prop_assert!(spec.is_nan(code) && spec.decode(code).is_nan());
                let mut out = [0u8; 3];
                spec.encode_slice(&[x, 1.0, x], &mut out, policy);
                prop_assert!(spec.is_nan(out[0]) && spec.is_nan(out[2]) && !spec.is_nan(out[1]));
            }
        }
        prop_assert_eq!(e8m0::encode(x), e8m0::NAN);
    }

    #[test]
    fn satfinite_stays_finite(x in any_f32()) {
        prop_assume!(!x.is_nan());
        for spec in SPECS {
            let v = spec.decode(spec.encode(x, Overflow::Saturate));
            prop_assert!(v.is_finite(), "{} {x:e} -> {v}", spec.name);
            prop_assert!(v.abs() <= spec.max);
            if x.abs() >= spec.max {
                prop_assert_eq!(v, spec.max.copysign(x));
            }
        }
    }

    /// E8M0 encoding is the nearest power of two in linear distance, ties to the even code, with
    /// values beyond the range clamped to the end codes.
    #[test]
    fn e8m0_nearest_power_of_two(bits in 1u32..0x7F80_0000) {
        let x = f32::from_bits(bits);
        let code = e8m0::encode(x);
        let mut best = (f64::INFINITY, 0u8);
        for c in 0..=0xFEu8 {
            let d = (e8m0::decode(c) as f64 - x as f64).abs();
            if d < best.0 || (d == best.0 && c % 2 == 0) {
                best = (d, c);
            }
        }
        prop_assert_eq!(code, best.1, "x = {:e} ({:#010x})", x, bits);
    }

    #[test]
    fn slice_paths_equal_scalar(xs in prop::collection::vec(any_f32(), 0..70),
                                codes in prop::collection::vec(any::<u8>(), 0..70)) {
        for spec in SPECS {
            for policy in POLICIES {
                let mut fast = vec![0u8; xs.len()];
                spec.encode_slice(&xs, &mut fast, policy);
                for (x, f) in xs.iter().zip(&fast) {
                    prop_assert_eq!(*f, spec.encode(*x, policy), "{} {:?} {:#010x}", spec.name, policy, x.to_bits());
                }
            }
            let mut table = vec![0f32; codes.len()];
            let mut arith = vec![0f32; codes.len()];
            spec.decode_slice(&codes, &mut table);
            spec.decode_slice_arithmetic(&codes, &mut arith);
            for ((c, t), a) in codes.iter().zip(&table).zip(&arith) {
                prop_assert!(same(*t, spec.decode(*c)) && same(*a, spec.decode(*c)), "{} code {c:#04x}", spec.name);
            }
        }
        check_element::<E4m3>(&xs)?;
        check_element::<E5m2>(&xs)?;
    }
}

/// The `Element` view kernels use: saturating encode, slice == scalar.
fn check_element<E: Element + PartialEq + std::fmt::Debug>(xs: &[f32]) -> Result<(), TestCaseError> {
    let mut codes = vec![<E as bytemuck::Zeroable>::zeroed(); xs.len()];
    E::encode_slice(xs, &mut codes);
    let mut back = vec![0f32; xs.len()];
    E::decode_slice(&codes, &mut back);
    for ((x, c), b) in xs.iter().zip(&codes).zip(&back) {
        prop_assert_eq!(*c, E::encode(*x));
        prop_assert!(same(*b, c.decode()));
        prop_assert!(x.is_nan() || b.is_finite(), "{:?} saturates", E::FORMAT);
    }
    Ok(())
}

/// Every power of two E8M0 can hold (2^-127 ..= 2^127) round-trips through all its encoders.
#[test]
fn e8m0_round_trips_every_power_of_two() {
    for e in -127i32..=127 {
        let x = (2.0f64).powi(e) as f32;
        let code = e8m0::from_exponent(e).unwrap();
        assert_eq!(e8m0::decode(code), x);
        assert_eq!(e8m0::encode(x), code, "2^{e}");
        assert_eq!(e8m0::encode_ceil(x), Some(code));
        assert_eq!(e8m0::encode_floor(x), Some(code));
        assert_eq!(e8m0::exponent(code), Some(e));
    }
    assert_eq!(e8m0::from_exponent(128), None);
    assert_eq!(e8m0::from_exponent(-128), None);
}

/// The ties below 2^-126 (between codes 0 and 1) and at the top of the range.
#[test]
fn e8m0_edges() {
    let tie = f32::from_bits(0x0060_0000); // 1.5 · 2^-127, halfway between 2^-127 and 2^-126
    assert_eq!(e8m0::encode(tie), 0, "tie goes to the even code");
    assert_eq!(e8m0::encode(f32::from_bits(0x0060_0001)), 1);
    assert_eq!(e8m0::encode(f32::from_bits(1)), 0, "clamps to 2^-127");
    assert_eq!(e8m0::encode(1.5), 128, "tie between 2^0 (127) and 2^1 (128): even code");
    assert_eq!(e8m0::encode(3.0), 128, "tie between 2^1 (128) and 2^2 (129): even code");
    assert_eq!(e8m0::encode(f32::MAX), 0xFE, "clamps to 2^127");
    for bad in [0.0, -0.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        assert_eq!(e8m0::encode(bad), e8m0::NAN, "{bad}");
    }
}

#[test]
fn every_code_decodes_and_re_encodes_to_itself() {
    for spec in SPECS {
        for code in 0..=255u8 {
            let v = spec.decode(code);
            if v.is_nan() {
                continue;
            }
            for policy in POLICIES {
                let back = spec.encode(v, policy);
                // Saturation maps inf to ±max; everything else is its own code.
                let want = if v.is_infinite() && policy == Overflow::Saturate {
                    spec.max_code() | (code & 0x80)
                } else {
                    code
                };
                assert_eq!(back, want, "{} code {code:#04x} ({v})", spec.name);
            }
        }
    }
}

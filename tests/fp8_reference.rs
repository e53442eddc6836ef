//! The FP8/E8M0 codecs agree with the ml_dtypes reference tables on every row.

use chipbench::formats::{e8m0, Fp8Spec, Overflow, E4M3, E5M2};
use std::path::PathBuf;

fn table(name: &str) -> Vec<Vec<String>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fp8").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

fn hex(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn check_decode(spec: Fp8Spec, file: &str) {
    let rows = table(file);
    assert_eq!(rows.len(), 256);
    let codes: Vec<u8> = (0..=255).collect();
    let mut fast = vec![0f32; 256];
    spec.decode_slice(&codes, &mut fast);
    let mut arith = vec![0f32; 256];
    spec.decode_slice_arithmetic(&codes, &mut arith);
    for r in rows {
        let code: u8 = r[0].parse().unwrap();
        let bits = hex(&r[1]);
        let want = f32::from_bits(bits);
        for got in [spec.decode(code), fast[code as usize], arith[code as usize]] {
            if want.is_nan() {
                assert!(got.is_nan(), "{file} code {code}");
            } else {
                assert_eq!(got.to_bits(), bits, "{file} code {code}: got {got}, want {want}");
            }
        }
    }
}

fn check_encode(spec: Fp8Spec, file: &str) {
    let rows = table(file);
    assert!(rows.len() > 10_000);
    let xs: Vec<f32> = rows.iter().map(|r| f32::from_bits(hex(&r[0]))).collect();
    for (policy, col) in [(Overflow::Cast, 1), (Overflow::Saturate, 2)] {
        let mut fast = vec![0u8; xs.len()];
        spec.encode_slice(&xs, &mut fast, policy);
        for (i, r) in rows.iter().enumerate() {
            let want: u8 = r[col].parse().unwrap();
            assert_eq!(spec.encode(xs[i], policy), want, "{file} {policy:?} input {}", r[0]);
            assert_eq!(fast[i], want, "{file} slice {policy:?} input {}", r[0]);
        }
    }
}

#[test]
fn e4m3_decode_table() {
    check_decode(E4M3, "decode_e4m3fn.csv");
}
#[test]
fn e5m2_decode_table() {
    check_decode(E5M2, "decode_e5m2.csv");
}
#[test]
fn e4m3_encode_table() {
    check_encode(E4M3, "encode_e4m3fn.csv");
}
#[test]
fn e5m2_encode_table() {
    check_encode(E5M2, "encode_e5m2.csv");
}
#[test]
fn e8m0_decode_table() {
    for r in table("decode_e8m0fnu.csv") {
        let code: u8 = r[0].parse().unwrap();
        let got = e8m0::decode(code);
        if code == 0xFF {
            assert!(got.is_nan());
        } else {
            assert_eq!(got.to_bits(), hex(&r[1]), "e8m0 code {code}");
        }
    }
}

//! The backend suite on candle-core, the peer backend.
mod common;

backend_suite!(|| Some(
    Box::new(chipbench::kernels::candle::CandleBackend::new(0)) as Box<dyn chipbench::kernels::Backend>
));

/// candle's own F8E4M3 → f32 conversion (the path the candle backend times) against chipbench's
/// codec, which agrees with the ml_dtypes tables on every code. Finite codes must agree exactly;
/// the test prints any code where the two differ.
#[test]
fn candle_f8e4m3_decode_agrees_with_chipbench_on_finite_codes() {
    use candle_core::{DType, Device, Tensor};
    let codes: Vec<float8::F8E4M3> = (0..=255u8).map(float8::F8E4M3::from_bits).collect();
    let t = Tensor::from_vec(codes, 256, &Device::Cpu).unwrap();
    let got: Vec<f32> = t.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
    let mut differ = Vec::new();
    for (c, g) in got.iter().enumerate() {
        let want = chipbench::formats::E4M3.decode(c as u8);
        if !(want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan())) {
            differ.push(format!("{c:#04x}: candle {g}, chipbench {want}"));
        }
    }
    println!("candle F8E4M3 decode differs on {} codes: {:?}", differ.len(), differ);
    let finite_differ = (0..=255u8).filter(|&c| {
        let want = chipbench::formats::E4M3.decode(c);
        want.is_finite() && want.to_bits() != got[c as usize].to_bits()
    });
    assert_eq!(finite_differ.count(), 0);
}

/// The `float8` crate's encoder (candle's `to_dtype(F8E4M3)` uses it) against the ml_dtypes
/// table: the reason chipbench encodes with its own codec. Prints how many rows differ.
#[test]
fn float8_crate_encoder_vs_reference_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fp8/encode_e4m3fn.csv");
    let text = std::fs::read_to_string(path).unwrap();
    let (mut rows, mut differ, mut example) = (0, 0, String::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let x = f32::from_bits(u32::from_str_radix(f[0].trim_start_matches("0x"), 16).unwrap());
        let want: u8 = f[1].parse().unwrap();
        let got = float8::F8E4M3::from_f32(x).to_bits();
        rows += 1;
        if got != want {
            differ += 1;
            if example.is_empty() {
                example = format!("{x:e}: float8 {got:#04x}, ml_dtypes {want:#04x}");
            }
        }
        // chipbench's own codec agrees on every row (asserted in tests/fp8_reference.rs too).
        assert_eq!(chipbench::formats::E4M3.encode(x, chipbench::formats::Overflow::Cast), want);
    }
    println!("float8 crate E4M3 encoder differs from ml_dtypes on {differ} of {rows} rows; e.g. {example}");
    assert!(rows > 10_000);
}

//! The emulated limited-precision accumulator of `chipbench study accumulation`: exact against an
//! integer oracle, equal to f32 at 23 bits and to f16 at 10 bits, and the sweep shows the
//! DeepSeek-V3 effects (error grows with K; promotion every 128 elements cuts it).

use chipbench::formats::scaling::Role;
use chipbench::formats::{Format, QuantizedMatrix, ScaleSlice, Scaling, E4M3};
use chipbench::study::sweep::{self, Dist, Point, StudyConfig};
use chipbench::study::{dot, dot_reference, gemm, Accumulator, DotConfig, Promotion, Rounding, ScaledRow};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random normal f32 with exponent in `lo..=hi`.
fn random_f32(rng: &mut StdRng, lo: i32, hi: i32) -> f32 {
    let e = rng.random_range(lo..=hi);
    let bits =
        ((e + 127) as u32) << 23 | rng.random_range(0..1u32 << 23) | (rng.random::<bool>() as u32) << 31;
    f32::from_bits(bits)
}

/// Exact value of an f32 with exponent in -40..=40 as an integer multiple of 2^-64.
fn to_fixed(x: f32) -> i128 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xFF) as i32 - 127;
    let m = (bits & 0x7F_FFFF | 0x80_0000) as i128;
    let v = m << (e - 23 + 64) as u32;
    if bits >> 31 == 1 {
        -v
    } else {
        v
    }
}

/// Round an exact fixed-point value to `width` mantissa bits, the slow obvious way.
fn oracle_round(s: i128, width: u32, rounding: Rounding) -> f64 {
    if s == 0 {
        return 0.0;
    }
    let mag = s.unsigned_abs();
    let bitlen = 128 - mag.leading_zeros();
    let shift = bitlen.saturating_sub(width + 1);
    let mut kept = mag >> shift;
    if rounding == Rounding::NearestEven && shift > 0 {
        let rem = mag & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        if rem > half || (rem == half && kept & 1 == 1) {
            kept += 1;
        }
    }
    let v = (kept as f64) * 2f64.powi(shift as i32 - 64);
    if s < 0 {
        -v
    } else {
        v
    }
}

#[test]
fn limited_add_matches_an_exact_integer_oracle() {
    let mut rng = StdRng::seed_from_u64(1);
    for width in [1, 10, 13, 14, 17, 23] {
        for rounding in Rounding::ALL {
            let acc = Accumulator::limited(width, rounding).unwrap();
            for i in 0..20_000 {
                let a = random_f32(&mut rng, -20, 20);
                // Half the cases: close exponents (cancellation, carries); half: wide gaps.
                let b = if i % 2 == 0 {
                    let e = ((a.to_bits() >> 23) & 0xFF) as i32 - 127;
                    random_f32(&mut rng, e - 3, e + 3)
                } else {
                    random_f32(&mut rng, -40, 40)
                };
                let got = acc.add(a, b as f64) as f64;
                let want = oracle_round(to_fixed(a) + to_fixed(b), width, rounding);
                assert_eq!(got, want, "w={width} {rounding}: {a:e} + {b:e}");
            }
        }
    }
}

#[test]
fn width_23_nearest_even_is_f32_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(2);
    let acc23 = Accumulator::limited(23, Rounding::NearestEven).unwrap();
    for _ in 0..200 {
        let n = rng.random_range(1..300);
        let xs: Vec<f32> = (0..n).map(|_| random_f32(&mut rng, -30, 30)).collect();
        let (mut plain, mut emulated) = (0f32, 0f32);
        for &x in &xs {
            plain += x;
            emulated = acc23.add(emulated, x as f64);
            assert_eq!(plain.to_bits(), emulated.to_bits());
        }
    }
    // Through the dot product, with every scaling and promotion interval, on odd sizes.
    for scaling in [Scaling::PER_TENSOR, Scaling::DEEPSEEK, Scaling::DEEPSEEK_UE8M0, Scaling::MX32] {
        for k in [1, 7, 33, 129, 257, 1000] {
            let (a, w) = random_rows(&mut rng, 3, k);
            let qa = QuantizedMatrix::quantize(&a, 3, k, Format::E4M3, scaling, Role::Activations).unwrap();
            let qw = QuantizedMatrix::quantize(&w, 3, k, Format::E4M3, scaling, Role::Weights).unwrap();
            for promotion in Promotion::DEFAULT_SWEEP {
                let f32_cfg = DotConfig::new(Accumulator::NativeF32, promotion);
                let c = gemm(&qa, &qw, &f32_cfg).unwrap();
                let e = gemm(&qa, &qw, &DotConfig::new(acc23, promotion)).unwrap();
                for (x, y) in c.iter().zip(&e) {
                    assert_eq!(x.to_bits(), y.to_bits(), "{scaling} k={k} N_C={promotion}");
                }
            }
        }
    }
}

fn random_rows(rng: &mut StdRng, rows: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let g = |rng: &mut StdRng| (0..rows * k).map(|_| rng.random_range(-4.0f32..4.0)).collect::<Vec<_>>();
    (g(rng), g(rng))
}

#[test]
fn width_10_nearest_even_is_f16_accumulation() {
    // E4M3 values with exponents 2^-3..2^3, so every product (2^-6..~2^8, at most 8 significant
    // bits) and every partial sum of 1024 of them stays in f16's normal range: there f16
    // accumulation is exactly a 10-bit round-to-nearest-even accumulator.
    let mut rng = StdRng::seed_from_u64(3);
    let k = 1024;
    let pick = |rng: &mut StdRng| {
        let exp_field = rng.random_range(4u8..=10);
        let code = (rng.random::<bool>() as u8) << 7 | exp_field << 3 | rng.random_range(0u8..8);
        E4M3.decode(code)
    };
    let acc10 = Accumulator::limited(10, Rounding::NearestEven).unwrap();
    for _ in 0..50 {
        let a: Vec<f32> = (0..k).map(|_| pick(&mut rng)).collect();
        let b: Vec<f32> = (0..k).map(|_| pick(&mut rng)).collect();
        let mut half_sum = f16::ZERO;
        for (x, y) in a.iter().zip(&b) {
            let p = x * y;
            assert_eq!(f16::from_f32(p).to_f32(), p, "product must be an f16 value");
            half_sum += f16::from_f32(p);
        }
        let ones = [1.0f32];
        let (ra, rb) = (
            ScaledRow { raw: &a, scales: ScaleSlice::F32(&ones), block: k },
            ScaledRow { raw: &b, scales: ScaleSlice::F32(&ones), block: k },
        );
        let got = dot(ra, rb, &DotConfig::new(acc10, Promotion::Never));
        assert!(half_sum.is_finite());
        assert_eq!(got, half_sum.to_f32());
        // And it is not f32: the 10-bit sum differs from the exact one on such long sums.
        assert_ne!(got as f64, dot_reference(ra, rb));
    }
}

fn sweep(
    rows: usize,
    k_values: Vec<usize>,
    promotions: Vec<Promotion>,
    scalings: Vec<Scaling>,
) -> Vec<Point> {
    let cfg = StudyConfig {
        k_values,
        accumulators: Rounding::ALL.iter().map(|&r| Accumulator::limited(14, r).unwrap()).collect(),
        promotions,
        dists: vec![Dist::Gaussian],
        format: Format::E4M3,
        scalings,
        rows,
        seed: 7,
        group: 1,
    };
    sweep::run(&cfg, &|| {}).unwrap()
}

#[test]
fn error_grows_with_k_without_promotion() {
    let ks = vec![256, 512, 1024, 2048, 4096, 8192];
    let points = sweep(128, ks.clone(), vec![Promotion::Never], vec![Scaling::DEEPSEEK]);
    for rounding in Rounding::ALL {
        let acc = Accumulator::limited(14, rounding).unwrap();
        let series: Vec<&Point> =
            ks.iter().map(|&k| points.iter().find(|p| p.accumulator == acc && p.k == k).unwrap()).collect();
        for pair in series.windows(2) {
            assert!(
                pair[1].mean_rel > pair[0].mean_rel,
                "{rounding}: mean error fell from K={} to K={}",
                pair[0].k,
                pair[1].k
            );
        }
        let (first, last) = (series[0], series[series.len() - 1]);
        assert!(
            last.max_rel > 2.0 * first.max_rel,
            "{rounding}: max error {} -> {}",
            first.max_rel,
            last.max_rel
        );
        assert!(last.max_rel.is_finite() && first.max_rel > 0.0);
    }
    // Truncation is biased, so it grows faster than round-to-nearest.
    let at = |r, k| {
        points
            .iter()
            .find(|p| p.accumulator == Accumulator::limited(14, r).unwrap() && p.k == k)
            .unwrap()
            .mean_rel
    };
    assert!(at(Rounding::Truncate, 8192) > 10.0 * at(Rounding::NearestEven, 8192));
}

#[test]
fn promotion_every_128_cuts_truncation_error_tenfold_at_k_4096() {
    let points = sweep(
        128,
        vec![4096],
        vec![Promotion::Every(128), Promotion::Never],
        vec![Scaling::DEEPSEEK, Scaling::PER_TENSOR],
    );
    let trunc = Accumulator::limited(14, Rounding::Truncate).unwrap();
    let rne = Accumulator::limited(14, Rounding::NearestEven).unwrap();
    for scaling in [Scaling::DEEPSEEK, Scaling::PER_TENSOR] {
        let get = |acc, prom| {
            points
                .iter()
                .find(|p| p.scaling == scaling && p.accumulator == acc && p.promotion == prom)
                .unwrap()
                .max_rel
        };
        let (never, p128) = (get(trunc, Promotion::Never), get(trunc, Promotion::Every(128)));
        assert!(never >= 10.0 * p128, "{scaling}: trunc {never:e} vs {p128:e}");
        assert!(
            get(rne, Promotion::Never) > get(rne, Promotion::Every(128)),
            "{scaling}: promotion must help RNE"
        );
        // f32 accumulation is the floor every limited accumulator sits above.
        assert!(get(Accumulator::NativeF32, Promotion::Never) < get(rne, Promotion::Never) / 10.0);
    }
}

#[test]
fn emulated_gemm_is_close_to_the_reference_on_odd_shapes() {
    let mut rng = StdRng::seed_from_u64(4);
    for (m, n, k) in [(1, 1, 1), (3, 7, 33), (2, 129, 257)] {
        let (a, _) = random_rows(&mut rng, m, k);
        let (w, _) = random_rows(&mut rng, n, k);
        for format in [Format::E4M3, Format::E5M2] {
            let qa =
                QuantizedMatrix::quantize(&a, m, k, format, Scaling::DEEPSEEK, Role::Activations).unwrap();
            let qw = QuantizedMatrix::quantize(&w, n, k, format, Scaling::DEEPSEEK, Role::Weights).unwrap();
            let (ra, rw) = (qa.codes.decode(), qw.codes.decode());
            let (da, dw) = (qa.dequantize(), qw.dequantize());
            let acc = Accumulator::limited(14, Rounding::NearestEven).unwrap();
            let c = gemm(&qa, &qw, &DotConfig::new(acc, Promotion::Every(128))).unwrap();
            assert_eq!(c.len(), m * n);
            for i in 0..m {
                for j in 0..n {
                    let r = dot_reference(ScaledRow::of(&qa, &ra, i), ScaledRow::of(&qw, &rw, j));
                    // Worst case: 128 rounded adds of at most 2^-15 relative each, plus f32 steps.
                    let sum_abs: f64 =
                        (0..k).map(|c| (da[i * k + c] as f64 * dw[j * k + c] as f64).abs()).sum();
                    let bound = sum_abs * 130.0 * 2f64.powi(-15);
                    assert!((c[i * n + j] as f64 - r).abs() <= bound, "{format} {m}x{n}x{k} at ({i},{j})");
                }
            }
        }
    }
}

#[test]
fn cli_writes_a_loadable_results_file_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args([
            "study",
            "accumulation",
            "--k",
            "256..512",
            "--rows",
            "33",
            "--nc",
            "128,inf",
            "--dist",
            "heavy",
        ])
        .args(["--scaling", "mx32", "--format", "e5m2", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("summary at K = 512"), "{stdout}");
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    let json = files.iter().find(|p| p.extension().is_some_and(|e| e == "json")).expect("results JSON");
    assert!(files.iter().any(|p| p.extension().is_some_and(|e| e == "svg")), "SVG plot");
    let run = chipbench::results::Run::load(json).unwrap();
    assert_eq!(run.suite, "study-accumulation");
    // 2 K × 2 N_C × (trunc, rne, f32).
    assert_eq!(run.records.len(), 12);
    for r in &run.records {
        assert_eq!(
            (r.op.as_str(), r.format.as_str(), r.scaling.as_str(), r.m),
            ("study-accumulation", "e5m2", "mx32", 33)
        );
        assert!(r.error.max_rel > 0.0 && r.error.max_rel.is_finite() && r.valid, "{r:?}");
        assert!(r.note.contains("dist=heavy") && r.note.contains("mean_rel="), "{}", r.note);
    }
    // A bad value is one line naming the argument and what is allowed, exit code 2.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["study", "accumulation", "--nc", "0", "--no-write"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("nc") && err.contains("inf") && err.lines().count() == 1, "{err}");
}

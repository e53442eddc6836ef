//! Scaling schemes and `QuantizedMatrix`: block scales against a reference written here from the
//! published rules (not from the library's loops), quantization error against the half-ulp
//! bound, logical bytes, and the bytes ratios FP8 buys.
//!
//! Error bound used below. With u = 2^-(mantissa_bits+1) the unit roundoff of the element format
//! and s the block scale, an element v whose scaled value y = v/s lies in the format's normal
//! range [min_normal, max] is reproduced with
//!     |dequant(v) - v| <= (u / (1 + u) + 2^-22) · |v|
//! (half an ulp is u·2^e and |y| >= 2^e + u·2^e wherever the error is that large, hence
//! u / (1 + u), which is attained; 2^-22 covers the f32 roundings of v/s and of code·s, each
//! at most 2^-24 relative, and their cross terms). Below min_normal the FP8 spacing is fixed, so
//! the bound is absolute: half the smallest subnormal times s, plus the same f32 slack.

use chipbench::formats::scaling::{block_scale, Codes, Role, Scheme};
use chipbench::formats::{E4m3, Format, QuantizedMatrix, ScaleFormat, Scales, Scaling};

const FP8: [Format; 2] = [Format::E4M3, Format::E5M2];
const SCALINGS: [&str; 7] = [
    "per-tensor",
    "per-tensor:ue8m0",
    "deepseek",
    "deepseek:ue8m0",
    "mx32",
    "mx32:ue8m0",
    "deepseek:e8m0-floor",
];
/// Odd shapes: partial blocks on both axes, single rows, more than one 128-block.
const SHAPES: [(usize, usize); 5] = [(1, 300), (7, 33), (33, 129), (129, 257), (257, 130)];

/// Deterministic test data: a signed spread of magnitudes within each row and 2^-24 .. 2^24
/// between rows and column groups, with an all-zero region, a tiny region (amax < 1e-4, where
/// DeepSeek's clamp applies) and one value beyond E4M3's max.
fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut v = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let group = (r * 7 + c / 32 * 3) % 49;
            let mag = (2.0f64).powi(group as i32 - 24);
            let x = (next() * 2.0 - 1.0) * mag;
            v.push(match (r % 11, c / 32 % 5) {
                (3, 2) => 0.0,
                (5, 1) => (x * 1e-6) as f32,
                _ => x as f32,
            });
        }
    }
    if rows * cols > 10 {
        v[rows * cols / 2] = 1000.0;
    }
    v
}

/// The element format's emax_elem (exponent of its largest normal), from the OCP tables.
fn emax_elem(f: Format) -> i32 {
    match f {
        Format::E4M3 => 8,  // 448 = 1.75 · 2^8
        Format::E5M2 => 15, // 57344 = 1.75 · 2^15
        _ => unreachable!(),
    }
}

/// Reference block scales: block shape from the scheme's definition, amax by a per-element
/// scatter, scale by the published formula in f64 (log2 / floor / ceil / powi).
fn reference_scales(
    v: &[f32],
    rows: usize,
    cols: usize,
    f: Format,
    scaling: Scaling,
    role: Role,
) -> Vec<f32> {
    let (br, bc) = match (scaling.scheme, role) {
        (Scheme::PerTensor, _) => (rows, cols),
        (Scheme::DeepSeek, Role::Activations) => (1, 128), // per token per 128 channels
        (Scheme::DeepSeek, Role::Weights) => (128, 128),
        (Scheme::Mx32, _) => (1, 32),
        (Scheme::None, _) => unreachable!(),
    };
    let (nr, nc) = (rows.div_ceil(br), cols.div_ceil(bc));
    let mut amax = vec![0f32; nr * nc];
    for (i, x) in v.iter().enumerate() {
        let b = (i / cols / br) * nc + (i % cols) / bc;
        if x.is_finite() && x.abs() > amax[b] {
            amax[b] = x.abs();
        }
    }
    let max = f.max();
    amax.iter()
        .map(|&a| match scaling.scale_format {
            ScaleFormat::F32 => a.max(1e-4) / max,
            ScaleFormat::Ue8m0Up => {
                let ratio = (a.max(1e-4) / max) as f64; // DeepSeek divides in f32
                (2.0f64).powi(ratio.log2().ceil() as i32) as f32
            }
            ScaleFormat::E8m0Down => {
                let a = if a == 0.0 { f32::MIN_POSITIVE } else { a };
                let e = ((a as f64).log2().floor() as i32 - emax_elem(f)).max(-127);
                (2.0f64).powi(e) as f32
            }
        })
        .collect()
}

fn quantize(v: &[f32], rows: usize, cols: usize, f: Format, scaling: &str, role: Role) -> QuantizedMatrix {
    QuantizedMatrix::quantize(v, rows, cols, f, scaling.parse().unwrap(), role).unwrap()
}

#[test]
fn block_scales_match_reference() {
    let mut checked = 0;
    for (seed, &(rows, cols)) in SHAPES.iter().enumerate() {
        let v = matrix(rows, cols, seed as u64 + 1);
        for f in FP8 {
            for name in SCALINGS {
                for role in [Role::Activations, Role::Weights] {
                    let scaling: Scaling = name.parse().unwrap();
                    let q = quantize(&v, rows, cols, f, name, role);
                    let want = reference_scales(&v, rows, cols, f, scaling, role);
                    assert_eq!(q.scales.len(), want.len(), "{f} {name} {role:?} {rows}x{cols}");
                    for (i, (g, w)) in q.scales.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{f} {name} {role:?} {rows}x{cols} block {i}: {g:e} vs {w:e}"
                        );
                    }
                    checked += want.len();
                }
            }
        }
    }
    println!("{checked} block scales match the reference");
}

#[test]
fn block_shapes() {
    let shape = |s: &str, role| {
        let b = s.parse::<Scaling>().unwrap().block(role, 300, 500);
        (b.rows, b.cols)
    };
    assert_eq!(shape("deepseek", Role::Activations), (1, 128));
    assert_eq!(shape("deepseek", Role::Weights), (128, 128));
    assert_eq!(shape("mx32", Role::Activations), (1, 32));
    assert_eq!(shape("mx32", Role::Weights), (1, 32));
    assert_eq!(shape("per-tensor", Role::Weights), (300, 500));
}

#[test]
fn quantization_error_within_half_ulp() {
    let mut report = Vec::new();
    let mut total_normal = 0;
    for (seed, &(rows, cols)) in SHAPES.iter().enumerate() {
        let v = matrix(rows, cols, 100 + seed as u64);
        for f in FP8 {
            let u = f.unit_roundoff();
            let rel_bound = u / (1.0 + u);
            let slack = (2.0f64).powi(-22);
            for name in SCALINGS {
                for role in [Role::Activations, Role::Weights] {
                    let q = quantize(&v, rows, cols, f, name, role);
                    let d = q.dequantize();
                    let d64 = q.dequantize_f64();
                    let (mut worst_rel, mut normal, mut saturated) = (0f64, 0usize, 0usize);
                    for r in 0..rows {
                        for c in 0..cols {
                            let i = r * cols + c;
                            let (x, s) = (v[i] as f64, q.scale_at(r, c) as f64);
                            // f64 dequantize is exact; f32 rounds code·scale once.
                            assert!((d[i] as f64 - d64[i]).abs() <= d64[i].abs() * (2.0f64).powi(-24));
                            let y = (x / s).abs();
                            let err = (d[i] as f64 - x).abs();
                            if y > f.max() as f64 * (1.0 + slack) {
                                // Only the MX floor rule lets a block max exceed the element max
                                // (beyond the f32 rounding of amax/max);
                                // it saturates to ±max·s (OCP MX: clamp to max representable).
                                assert_eq!(q.scaling.scale_format, ScaleFormat::E8m0Down, "{f} {name}");
                                assert_eq!(d[i], (f.max() * q.scale_at(r, c)).copysign(v[i]));
                                assert!(y < (2.0f64).powi(emax_elem(f) + 1) * (1.0 + slack));
                                saturated += 1;
                            } else if y >= f.min_normal() as f64 {
                                let rel = err / x.abs();
                                assert!(
                                    rel <= rel_bound + slack,
                                    "{f} {name} {role:?} ({r},{c}) {x:e}: rel {rel:e}"
                                );
                                worst_rel = worst_rel.max(rel);
                                normal += 1;
                            } else {
                                let bound =
                                    f.min_subnormal() as f64 / 2.0 * s * (1.0 + slack) + x.abs() * slack;
                                assert!(
                                    err <= bound,
                                    "{f} {name} {role:?} ({r},{c}) {x:e}: abs {err:e} > {bound:e}"
                                );
                            }
                        }
                    }
                    assert!(normal > 0, "{f} {name} {role:?}: some values are in the normal range");
                    total_normal += normal;
                    if q.scaling.scale_format != ScaleFormat::E8m0Down {
                        assert_eq!(saturated, 0);
                    }
                    report.push((f, name, worst_rel * (1.0 + u) / u));
                }
            }
        }
    }
    println!("{total_normal} elements checked against the relative bound");
    assert!(total_normal > 500_000);
    // The bound is reached, not just respected: some element rounds by nearly half an ulp.
    for f in FP8 {
        let best = report.iter().filter(|r| r.0 == f).map(|r| r.2).fold(0.0, f64::max);
        assert!(best > 0.99 && best <= 1.0 + 1e-5, "{f}: worst error / (u / (1 + u)) = {best}");
    }
}

#[test]
fn ue8m0_rounds_up_so_nothing_saturates_and_mx_floor_does() {
    // Block max 480: 480/448 = 1.07, so UE8M0-up picks 2 and stores 240; MX floor picks
    // 2^(8 - 8) = 1 and 480 saturates to 448 (the E4M3 binade [256, 512) tops out at 448).
    let mut v = vec![1.0f32; 32];
    v[5] = 480.0;
    let up = quantize(&v, 1, 32, Format::E4M3, "mx32:ue8m0", Role::Activations);
    assert_eq!(up.scales.to_f32(), [2.0]);
    assert_eq!(up.dequantize()[5], 480.0);
    let down = quantize(&v, 1, 32, Format::E4M3, "mx32", Role::Activations);
    assert_eq!(down.scales.to_f32(), [1.0]);
    assert_eq!(down.dequantize()[5], 448.0);
    assert_eq!(block_scale(500.0, Format::E5M2, ScaleFormat::E8m0Down), (2.0f32).powi(8 - 15));
}

/// Regression: the MX rule used to clamp amax to DeepSeek's 1e-4 as well, which coarsened
/// blocks with small values (scale 2^-22 instead of 2^-28 for amax 1e-6).
#[test]
fn deepseek_clamps_amax_mx_does_not() {
    let amax = 1e-6f32; // floor(log2) = -20
    assert_eq!(block_scale(amax, Format::E4M3, ScaleFormat::F32), 1e-4 / 448.0);
    assert_eq!(block_scale(amax, Format::E4M3, ScaleFormat::Ue8m0Up), (2.0f32).powi(-22)); // ceil(log2(1e-4/448)) = -22
    assert_eq!(block_scale(amax, Format::E4M3, ScaleFormat::E8m0Down), (2.0f32).powi(-28));
    assert_eq!(block_scale(amax, Format::E5M2, ScaleFormat::E8m0Down), (2.0f32).powi(-35));
    // All-zero blocks: a usable scale, zeros back.
    assert_eq!(block_scale(0.0, Format::E4M3, ScaleFormat::F32), 1e-4 / 448.0);
    assert_eq!(block_scale(0.0, Format::E4M3, ScaleFormat::E8m0Down), f32::from_bits(0x0040_0000)); // 2^-127
    for s in SCALINGS {
        let q = quantize(&[0.0; 64], 2, 32, Format::E4M3, s, Role::Weights);
        assert!(q.dequantize().iter().all(|&x| x == 0.0), "{s}");
        assert!(q.scales.iter().all(|x| x > 0.0 && x.is_finite()), "{s}");
    }
}

#[test]
fn stored_scales_round_trip() {
    let v = matrix(33, 129, 9);
    for name in SCALINGS {
        let q = quantize(&v, 33, 129, Format::E4M3, name, Role::Weights);
        let stored = q.stored_scales();
        assert_eq!(stored.len() as u64, q.logical_bytes().scales, "{name}");
        let back: Vec<f32> = match q.scaling.scale_format {
            ScaleFormat::F32 => stored.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            _ => stored.iter().map(|&c| chipbench::formats::e8m0::decode(c)).collect(),
        };
        assert_eq!(back, q.scales.to_f32(), "{name}");
    }
}

fn bytes_of(codes: Codes, n: usize, scaling: Scaling) -> u64 {
    let block = scaling.block(Role::Weights, n, n);
    let grid = n.div_ceil(block.rows) * n.div_ceil(block.cols);
    let q = QuantizedMatrix { rows: n, cols: n, codes, scaling, block, scales: vec![1.0; grid].into() };
    q.logical_bytes().total
}

#[test]
fn logical_bytes_4096_and_ratios() {
    let n = 4096;
    // Built directly (zeroed codes), not quantized: only the accounting is under test here.
    let fp8 = |s: Scaling| bytes_of(Codes::E4M3(vec![E4m3(0); n * n]), n, s);
    let deepseek = fp8(Scaling::DEEPSEEK);
    assert_eq!(deepseek, (16 << 20) + (4 << 10), "16 MiB of codes + 32×32 f32 scales");
    let deepseek_ue8m0 = fp8(Scaling::DEEPSEEK_UE8M0);
    assert_eq!(deepseek_ue8m0, (16 << 20) + 1024);
    let mx = fp8(Scaling::MX32);
    assert_eq!(mx, (16 << 20) + (n * n / 32) as u64, "one byte per 32 elements: 8.25 bits/element");
    let bf16 = bytes_of(Codes::BF16(vec![half::bf16::ZERO; n * n]), n, Scaling::NONE);
    let f32b = bytes_of(Codes::F32(vec![0.0; n * n]), n, Scaling::NONE);
    assert_eq!((bf16, f32b), (32 << 20, 64 << 20));

    println!("logical bytes of a {n}x{n} weight matrix:");
    println!("  {:<24} {:>10} {:>10} {:>10}", "format", "bytes", "/ BF16", "/ F32");
    let table = [
        ("f32", f32b),
        ("bf16", bf16),
        ("e4m3 deepseek (f32)", deepseek),
        ("e4m3 deepseek:ue8m0", deepseek_ue8m0),
        ("e4m3 mx32", mx),
    ];
    for (name, b) in table {
        println!("  {name:<24} {b:>10} {:>10.6} {:>10.6}", b as f64 / bf16 as f64, b as f64 / f32b as f64);
    }
    let (r_bf16, r_f32) = (deepseek as f64 / bf16 as f64, deepseek as f64 / f32b as f64);
    // Exact: the scale overhead is 4 KiB on top of half (a quarter) of the bytes.
    assert_eq!(r_bf16, 0.5 + 4096.0 / (32u64 << 20) as f64);
    assert_eq!(r_f32, 0.25 + 4096.0 / (64u64 << 20) as f64);
    assert_eq!(mx as f64 / bf16 as f64, 8.25 / 16.0);
}

/// A matrix holds its scales in their stored format: the bytes held in memory are the logical
/// scale bytes for every scaling (one byte per E8M0 scale, not an f32), so RSS tracks the
/// logical size.
#[test]
fn held_scale_bytes_are_the_logical_scale_bytes() {
    let (rows, cols) = (67, 300);
    let v = matrix(rows, cols, 5);
    for name in SCALINGS {
        for role in [Role::Activations, Role::Weights] {
            let q = quantize(&v, rows, cols, Format::E4M3, name, role);
            let held = q.scales.held_bytes();
            let logical = q.logical_bytes().scales;
            println!("{name:<18} {role:?}: logical scale bytes {logical:>6}, held {held:>6}");
            assert_eq!(held, logical, "{name} {role:?}");
            let one_byte = q.scaling.scale_format.bytes() == 1;
            assert_eq!(matches!(q.scales, Scales::E8M0(_)), one_byte, "{name}");
        }
    }
    // No scaling: one f32 scale of 1 for the whole matrix, nothing stored.
    let q = quantize(&v, rows, cols, Format::E4M3, "none", Role::Weights);
    assert_eq!((q.scales.held_bytes(), q.logical_bytes().scales), (4, 0));
}

#[test]
fn logical_bytes_of_quantized_odd_shapes() {
    for &(rows, cols) in &SHAPES {
        let v = matrix(rows, cols, 3);
        for name in SCALINGS {
            for role in [Role::Activations, Role::Weights] {
                let q = quantize(&v, rows, cols, Format::E5M2, name, role);
                let (br, bc) = q.scale_grid();
                let b = q.logical_bytes();
                assert_eq!(b.codes, (rows * cols) as u64);
                assert_eq!(b.scales, (br * bc * q.scaling.scale_format.bytes()) as u64, "{name}");
                assert_eq!(b.total, b.codes + b.scales);
            }
        }
    }
    let q = QuantizedMatrix::quantize(&[1.0; 21], 3, 7, Format::BF16, Scaling::NONE, Role::Weights).unwrap();
    assert_eq!(q.logical_bytes().total, 42, "no scale stored without scaling");
    assert!(
        QuantizedMatrix::quantize(&[1.0; 21], 3, 7, Format::BF16, Scaling::DEEPSEEK, Role::Weights).is_err()
    );
    assert!(
        QuantizedMatrix::quantize(&[1.0; 20], 3, 7, Format::E4M3, Scaling::DEEPSEEK, Role::Weights).is_err()
    );
}

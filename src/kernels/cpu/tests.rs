//! Unit tests of the SIMD pieces against their portable twins.

use super::gemm::{microkernel_for_test, portable_microkernel};
use super::gemv::{raw_factor, rows_portable, Rows, FP8_PRESCALE, ROWS};
use super::isa::Isa;
use crate::formats::{E4m3, E5m2, Element, Format, ScaleSlice};
use half::{bf16, f16};

/// `decode16` (a SIMD decode of 16 codes into raw f32 lanes) gives, for every code, the scalar
/// decode divided by the format's raw factor — bit for bit, NaN for NaN. `skip_nan`: codes
/// whose value is NaN are not checked (a path without the NaN fix-up).
#[allow(dead_code)] // each architecture uses it from its own test
fn assert_decodes_like_scalar<E: Element>(
    codes: &[E],
    what: &str,
    skip_nan: bool,
    decode16: impl Fn(&[E; 16]) -> [f32; 16],
) {
    let factor = raw_factor(E::FORMAT);
    for chunk in codes.chunks_exact(16) {
        let got = decode16(chunk.try_into().unwrap());
        for (c, g) in chunk.iter().zip(got) {
            let want = c.decode() / factor;
            if skip_nan && want.is_nan() {
                continue;
            }
            assert!(
                want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan()),
                "{} {what}: code {:?} gives {g:e}, want {want:e}",
                E::FORMAT,
                bytemuck::bytes_of(c)
            );
        }
    }
}

/// Every code (all 2^8, or a spread of 2^16) decodes, through each x86 SIMD path, to the scalar
/// decode divided by the format's raw factor — bit for bit, NaN for NaN.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_decode_matches_scalar_on_every_code() {
    fn check<E: Element>(codes: Vec<E>) {
        for avx512 in [true, false] {
            let isa = if avx512 { Isa::Avx512 } else { Isa::Avx2 };
            if !Isa::available().contains(&isa) {
                continue;
            }
            assert_decodes_like_scalar(&codes, isa.name(), false, |c| {
                super::x86::decode16_raw(avx512, false, c)
            });
            // The path without the NaN fix-up, on the non-NaN codes.
            assert_decodes_like_scalar(&codes, "finite path", true, |c| {
                super::x86::decode16_raw(avx512, true, c)
            });
        }
    }
    check((0..=255u8).map(E4m3).collect());
    check((0..=255u8).map(E5m2).collect());
    check((0..=u16::MAX).step_by(7).take(16 * 500).map(f16::from_bits).collect());
    check((0..=u16::MAX).step_by(7).take(16 * 500).map(bf16::from_bits).collect());
    check((0..4096).map(|i| (i as f32 - 2000.5) * 1.37e-3).collect::<Vec<f32>>());
}

/// The NEON decode: every code, bit for bit against the scalar decode / raw factor.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_decode_matches_scalar_on_every_code() {
    fn check<E: Element>(codes: Vec<E>) {
        assert_decodes_like_scalar(&codes, "neon", false, super::neon::decode16_raw::<E>);
    }
    check((0..=255u8).map(E4m3).collect());
    check((0..=255u8).map(E5m2).collect());
    check((0..=u16::MAX).map(f16::from_bits).collect());
    check((0..=u16::MAX).map(bf16::from_bits).collect());
    check((0..4096).map(|i| (i as f32 - 2000.5) * 1.37e-3).collect::<Vec<f32>>());
}

/// The packing decode (`decode_codes_on`: 16 codes at a time, then the scalar tail) gives
/// exactly `Element::decode_slice`'s values on every ISA this CPU has — every FP8 code, a spread
/// of 16-bit codes, signed zeros, NaN for NaN — for lengths that leave every tail.
#[test]
fn packing_decode_matches_decode_slice_on_every_isa() {
    fn check<E: Element>(codes: Vec<E>) {
        for isa in Isa::available() {
            for len in [codes.len(), codes.len() - 1, 17, 15, 1, 0] {
                let src = &codes[codes.len() - len..];
                let mut want = vec![0f32; len];
                E::decode_slice(src, &mut want);
                let mut got = vec![1f32; len];
                super::gemv::decode_codes_on(isa, src, &mut got);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "{} {isa} len {len} at {i}: {g:e} vs {w:e}",
                        E::FORMAT
                    );
                }
            }
        }
    }
    check((0..=255u8).map(E4m3).collect());
    check((0..=255u8).map(E5m2).collect());
    check((0..=u16::MAX).step_by(7).map(f16::from_bits).collect());
    check((0..=u16::MAX).step_by(7).map(bf16::from_bits).collect());
    check((0..4099).map(|i| (i as f32 - 2000.5) * 1.37e-3).chain([0.0, -0.0]).collect::<Vec<f32>>());
}

#[test]
fn simd_microkernels_match_the_portable_twin_bit_for_bit() {
    for isa in Isa::available() {
        let (mr, nr) = isa.tile();
        for kc in [1, 5, 64, 256] {
            let a: Vec<f32> = (0..kc * mr).map(|i| ((i * 7919) % 1000) as f32 / 333.0 - 1.5).collect();
            let b: Vec<f32> = (0..kc * nr).map(|i| ((i * 104729) % 977) as f32 / 211.0 - 2.3).collect();
            // C starts non-zero: the kernels add their product into it.
            let c0: Vec<f32> = (0..mr * nr).map(|i| (i % 5) as f32 * 0.75 - 1.0).collect();
            let mut got = c0.clone();
            let mut rows: Vec<&mut [f32]> = got.chunks_exact_mut(nr).collect();
            microkernel_for_test(isa)(kc, &a, &b, &mut rows, 0);
            // The portable twin on the same panels, one column group of 16 at a time.
            let mut want = vec![0f32; mr * nr];
            for r in 0..mr {
                let ar: Vec<f32> = (0..kc).map(|p| a[p * mr + r]).collect();
                let mut row = vec![0f32; 16];
                for c0c in (0..nr).step_by(16) {
                    let bc: Vec<f32> =
                        (0..kc).flat_map(|p| b[p * nr + c0c..p * nr + c0c + 16].to_vec()).collect();
                    row.copy_from_slice(&c0[r * nr + c0c..r * nr + c0c + 16]);
                    portable_microkernel::<1, 16>(kc, &ar, &bc, &mut [&mut row[..]], 0);
                    want[r * nr + c0c..r * nr + c0c + 16].copy_from_slice(&row);
                }
            }
            assert_eq!(got, want, "{isa} kc={kc}");
        }
    }
}

#[test]
fn simd_gemv_rows_match_the_portable_twin_bit_for_bit() {
    fn check<E: Element>(codes: &[E], k: usize, seg: usize) {
        let x: Vec<f32> = (0..k).map(|i| ((i * 31) % 17) as f32 * 0.25 - 2.0).collect();
        let nseg = k.div_ceil(seg);
        let scales: Vec<f32> = (0..ROWS * nseg).map(|i| 0.5 + i as f32 * 0.125).collect();
        // E8M0 codes around 2^0 (MX and UE8M0 scales as held), including the extremes 2^-127
        // (a subnormal) and 2^127.
        let codes8: Vec<u8> = (0..ROWS * nseg).map(|i| [120, 127, 130, 0, 254][i % 5]).collect();
        let factor = raw_factor(E::FORMAT);
        let mut want = [0f32; ROWS];
        for (finite, e8m0) in [(false, false), (true, false), (false, true), (true, true)] {
            let seg_scales = |r: usize| match e8m0 {
                false => ScaleSlice::F32(&scales[r * nseg..(r + 1) * nseg]),
                true => ScaleSlice::E8M0(&codes8[r * nseg..(r + 1) * nseg]),
            };
            let rows = Rows {
                w: std::array::from_fn(|r| &codes[r * k..(r + 1) * k]),
                scales: std::array::from_fn(seg_scales),
                count: ROWS,
                finite,
                x_prescaled: false,
            };
            rows_portable(&rows, &x, seg, factor, &mut want);
            for isa in Isa::available() {
                let mut got = [0f32; ROWS];
                super::gemv::rows_kernel(isa, &rows, &x, seg, factor, &mut got);
                let what = format!("{} {isa} k={k} seg={seg} finite={finite} e8m0={e8m0}", E::FORMAT);
                assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{what}");
            }
            // The last group of W may hold fewer real rows: those are the twin's bits.
            for count in 1..ROWS {
                let few = Rows { count, ..rows };
                let mut want_few = [0f32; ROWS];
                rows_portable(&few, &x, seg, factor, &mut want_few);
                let bits = |v: &[f32]| v[..count].iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&want_few), bits(&want), "twin, {count} of {ROWS} rows");
                for isa in Isa::available() {
                    let mut got = [0f32; ROWS];
                    super::gemv::rows_kernel(isa, &few, &x, seg, factor, &mut got);
                    let what = format!("{} {isa} {count} rows k={k} seg={seg} e8m0={e8m0}", E::FORMAT);
                    assert_eq!(bits(&got), bits(&want), "{what}");
                }
            }
            // AVX2's integer FP8 decode on pre-scaled activations: the same bits as the twin.
            if E::FORMAT.is_fp8() && finite && Isa::available().contains(&Isa::Avx2) {
                let xs: Vec<f32> = x.iter().map(|v| v * 2f32.powi(FP8_PRESCALE)).collect();
                let pre = Rows { x_prescaled: true, ..rows };
                let mut got = [0f32; ROWS];
                super::gemv::rows_kernel(Isa::Avx2, &pre, &xs, seg, factor, &mut got);
                let what = format!("{} avx2 integer decode k={k} seg={seg} e8m0={e8m0}", E::FORMAT);
                assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{what}");
            }
            // Several activation rows in one call (a skinny product; 2..4 share each weight
            // decode, 7 = 4 + 3, 9 = 4 + 4 + 1 on AVX-512's 4 × 4 tiles): out[r·m + i] is row
            // r · activation row i, the bits of the one-row call on each, on every path.
            for m in [2, 3, 4, 7, 9] {
                let xm: Vec<f32> =
                    (0..m).flat_map(|i| x.iter().map(move |v| v * (1.0 - 0.75 * i as f32))).collect();
                let mut each = vec![0f32; ROWS * m];
                for (i, xi) in xm.chunks(k).enumerate() {
                    let mut one = [0f32; ROWS];
                    rows_portable(&rows, xi, seg, factor, &mut one);
                    (0..ROWS).for_each(|r| each[r * m + i] = one[r]);
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let mut twin = vec![0f32; ROWS * m];
                rows_portable(&rows, &xm, seg, factor, &mut twin);
                assert_eq!(bits(&twin), bits(&each), "{} twin, {m} activation rows", E::FORMAT);
                for isa in Isa::available() {
                    let mut got = vec![0f32; ROWS * m];
                    super::gemv::rows_kernel(isa, &rows, &xm, seg, factor, &mut got);
                    let what = format!("{} {isa} {m} activation rows k={k} seg={seg} e8m0={e8m0}", E::FORMAT);
                    assert_eq!(bits(&got), bits(&each), "{what}");
                }
                if E::FORMAT.is_fp8() && finite && Isa::available().contains(&Isa::Avx2) {
                    let pre = Rows { x_prescaled: true, ..rows };
                    let xs: Vec<f32> = xm.iter().map(|v| v * 2f32.powi(FP8_PRESCALE)).collect();
                    let mut got = vec![0f32; ROWS * m];
                    super::gemv::rows_kernel(Isa::Avx2, &pre, &xs, seg, factor, &mut got);
                    assert_eq!(
                        bits(&got),
                        bits(&each),
                        "{} avx2 integer decode, {m} activation rows",
                        E::FORMAT
                    );
                }
            }
        }
    }
    // k = 1031: a 2-byte group of 8 KiB, where 4 or more activation rows run in pairs.
    for (k, seg) in [(1, 1), (15, 15), (33, 32), (200, 128), (300, 300), (64, 32), (1031, 128)] {
        let n = ROWS * k;
        // Finite codes only (a NaN weight makes a NaN row in every path, but NaN != NaN).
        check(&(0..n).map(|i| E4m3((i * 37 % 126) as u8 | ((i as u8 & 1) << 7))).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| E5m2((i * 53 % 123) as u8 | ((i as u8 & 2) << 6))).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| f16::from_f32((i as f32 * 0.77).sin())).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| bf16::from_f32((i as f32 * 0.61).cos())).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| (i as f32 * 0.13).sin() * 7.0).collect::<Vec<f32>>(), k, seg);
    }
}

#[test]
fn non_finite_fp8_weights_give_non_finite_rows_and_disable_the_fast_decodes() {
    use crate::formats::scaling::Codes;
    use crate::formats::{Format, Scaling};
    use crate::kernels::{Backend, Op};
    use crate::measure::inputs::ProblemSpec;
    let k = 100;
    // One code of row `row` replaced by `poison`; `bad` tells the row it spoils on every ISA.
    let check = |format: Format, row: usize, poison: u8, bad: fn(f32) -> bool| {
        let mut p = ProblemSpec::new(Op::Gemv, 1, 9, k, format, Scaling::PER_TENSOR).build().unwrap();
        assert!(super::gemv::finite_codes(&p.w), "quantized inputs hold no non-finite code");
        match &mut p.w.codes {
            Codes::E4M3(c) => c[row * k + 37] = E4m3(poison),
            Codes::E5M2(c) => c[row * k + 11] = E5m2(poison),
            _ => unreachable!(),
        }
        assert!(!super::gemv::finite_codes(&p.w));
        for isa in Isa::available() {
            let y = super::CpuBackend::with_isa(2, isa).unwrap().compute(&p).unwrap();
            for (r, v) in y.iter().enumerate() {
                assert_eq!(bad(*v), r == row, "{format} {isa} row {r}: {v}");
            }
        }
    };
    check(Format::E4M3, 5, 0xFF, f32::is_nan);
    // E5M2: an infinite code makes its row infinite (not a large finite number, as the integer
    // decode would read it) and keeps the whole matrix off that decode.
    check(Format::E5M2, 3, 0x7C, |v| !v.is_finite());
}

/// AVX2's integer FP8 decode gives `value · 2^-120` (E4M3) and `value · 2^-112` (E5M2) bit for
/// bit for every finite code (subnormal codes as f32 subnormals, both zeros with their sign).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_integer_fp8_decode_is_exact_on_every_finite_code() {
    fn check<E: Element>(codes: Vec<E>, zero: E, pow: i32) {
        let scale = 2f32.powi(pow);
        for chunk in codes.chunks(16) {
            let mut block = [zero; 16];
            block[..chunk.len()].copy_from_slice(chunk);
            let got = super::x86::decode16_fp8_int(&block);
            for (c, g) in block.iter().zip(got) {
                let want = c.decode() * scale;
                let code = bytemuck::bytes_of(c);
                assert_eq!(g.to_bits(), want.to_bits(), "{} {code:?}: {g:e} vs {want:e}", E::FORMAT);
            }
        }
    }
    if !Isa::available().contains(&Isa::Avx2) {
        return;
    }
    check((0..=255u8).filter(|c| c & 0x7F != 0x7F).map(E4m3).collect(), E4m3(0), -120);
    check((0..=255u8).filter(|c| c & 0x7C != 0x7C).map(E5m2).collect(), E5m2(0), -112);
}

/// An activation too large to pre-scale exactly (|x| ≥ 2^16) keeps AVX2 on the f16 decode: the
/// GEMV still gives the portable twin's bits.
#[test]
fn huge_activations_keep_the_f16_decode_and_the_twins_bits() {
    use crate::formats::Scaling;
    use crate::kernels::{Backend, Op};
    use crate::measure::inputs::ProblemSpec;
    for format in [Format::E4M3, Format::E5M2] {
        let mut p = ProblemSpec::new(Op::Gemv, 1, 13, 300, format, Scaling::DEEPSEEK).build().unwrap();
        if let crate::formats::scaling::Codes::F32(a) = &mut p.a.codes {
            a[7] = 1e6;
            a[8] = -70000.0;
        }
        let twin = super::CpuBackend::with_isa(1, Isa::Portable).unwrap().compute(&p).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for isa in Isa::available() {
            let y = super::CpuBackend::with_isa(2, isa).unwrap().compute(&p).unwrap();
            assert_eq!(bits(&y), bits(&twin), "{format} {isa}");
        }
    }
}

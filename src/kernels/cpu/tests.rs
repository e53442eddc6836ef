//! Unit tests of the SIMD pieces against their portable twins.

use super::gemm::{microkernel_for_test, portable_microkernel};
use super::gemv::{raw_factor, rows_portable, Rows, ROWS};
use super::isa::Isa;
use crate::formats::{E4m3, E5m2, Element};
use half::{bf16, f16};

/// Every code (all 2^8, or a spread of 2^16) decodes, through each SIMD path, to the scalar
/// decode divided by the format's raw factor — bit for bit, NaN for NaN.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_decode_matches_scalar_on_every_code() {
    fn check<E: Element>(codes: Vec<E>) {
        let factor = raw_factor(E::FORMAT);
        for avx512 in [true, false] {
            let isa = if avx512 { Isa::Avx512 } else { Isa::Avx2 };
            if !Isa::available().contains(&isa) {
                continue;
            }
            for chunk in codes.chunks_exact(16) {
                let got = super::x86::decode16_raw(avx512, false, chunk.try_into().unwrap());
                // The path without the NaN fix-up, on the chunk's non-NaN codes.
                let finite = super::x86::decode16_raw(avx512, true, chunk.try_into().unwrap());
                for ((c, g), f) in chunk.iter().zip(got).zip(finite) {
                    let want = c.decode() / factor;
                    assert!(
                        want.is_nan() || want.to_bits() == f.to_bits(),
                        "{} {isa} finite path",
                        E::FORMAT
                    );
                    assert!(
                        want.to_bits() == g.to_bits() || (want.is_nan() && g.is_nan()),
                        "{} {isa}: code {:?} gives {g:e}, want {want:e}",
                        E::FORMAT,
                        bytemuck::bytes_of(c)
                    );
                }
            }
        }
    }
    check((0..=255u8).map(E4m3).collect());
    check((0..=255u8).map(E5m2).collect());
    check((0..=u16::MAX).step_by(7).take(16 * 500).map(f16::from_bits).collect());
    check((0..=u16::MAX).step_by(7).take(16 * 500).map(bf16::from_bits).collect());
    check((0..4096).map(|i| (i as f32 - 2000.5) * 1.37e-3).collect::<Vec<f32>>());
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
        let factor = raw_factor(E::FORMAT);
        let mut want = [0f32; ROWS];
        for nan_free in [false, true] {
            let rows = Rows {
                w: std::array::from_fn(|r| &codes[r * k..(r + 1) * k]),
                scales: std::array::from_fn(|r| &scales[r * nseg..(r + 1) * nseg]),
                count: ROWS,
                nan_free,
            };
            rows_portable(&rows, &x, seg, factor, &mut want);
            for isa in Isa::available() {
                let mut got = [0f32; ROWS];
                super::gemv::rows_kernel(isa, &rows, &x, seg, factor, &mut got);
                let what = format!("{} {isa} k={k} seg={seg} nan_free={nan_free}", E::FORMAT);
                assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{what}");
            }
        }
    }
    for (k, seg) in [(1, 1), (15, 15), (33, 32), (200, 128), (300, 300), (64, 32)] {
        let n = ROWS * k;
        // Finite codes only (a NaN weight makes a NaN row in every path, but NaN != NaN).
        check(&(0..n).map(|i| E4m3((i * 37 % 126) as u8 | ((i as u8 & 1) << 7))).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| E5m2((i * 53 % 123) as u8 | ((i as u8 & 2) << 6))).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| f16::from_f32((i as f32 * 0.77).sin())).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| bf16::from_f32((i as f32 * 0.61).cos())).collect::<Vec<_>>(), k, seg);
        check(&(0..n).map(|i| (i as f32 * 0.13).sin() * 7.0).collect::<Vec<f32>>(), k, seg);
    }
}

#[cfg(target_os = "linux")]
fn thread_cpu_s() -> f64 {
    unsafe extern "C" {
        fn clock_gettime(clk: i32, ts: *mut [i64; 2]) -> i32;
    }
    let mut t = [0i64; 2];
    // SAFETY: CLOCK_THREAD_CPUTIME_ID (3) writes one timespec.
    unsafe { clock_gettime(3, &mut t) };
    t[0] as f64 + t[1] as f64 * 1e-9
}

/// Manual probe (not run in CI): microkernel GFLOP/s on cache-resident panels, and packing cost.
#[test]
#[ignore]
fn probe_microkernel_speed() {
    use crate::formats::scaling::Role;
    use crate::formats::{Format, QuantizedMatrix, Scaling};
    let isa = Isa::detect();
    let (mr, nr) = isa.tile();
    let kc = super::gemm::KC;
    let a: Vec<f32> = (0..kc * mr).map(|i| (i % 13) as f32 * 0.01).collect();
    // Several W panels, like the driver's inner loop (a 512-column chunk).
    let np = 16;
    let b: Vec<f32> = (0..kc * nr * np).map(|i| (i % 7) as f32 * 0.01).collect();
    let mut tile = vec![0f32; mr * nr];
    let k = microkernel_for_test(isa);
    for _ in 0..3 {
        let reps = 2000;
        let t = thread_cpu_s();
        for _ in 0..reps {
            for j in 0..np {
                k(
                    kc,
                    &a,
                    &b[j * kc * nr..(j + 1) * kc * nr],
                    &mut tile.chunks_exact_mut(nr).collect::<Vec<_>>(),
                    0,
                );
            }
        }
        let s = thread_cpu_s() - t;
        println!("{isa} microkernel: {:.1} GFLOP/s", (reps * np * 2 * mr * nr * kc) as f64 / s / 1e9);
    }
    // As in the driver: 86 A panels (1 MB) outer x 16 W panels inner, C update included.
    let na = 86;
    let a_all: Vec<f32> = (0..kc * mr * na).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut c = vec![0f32; na * mr * np * nr];
    for variant in 0..1 {
        let reps = 20;
        let t = thread_cpu_s();
        for _ in 0..reps {
            for i in 0..na {
                for j in 0..np {
                    let ap = &a_all[i * kc * mr..(i + 1) * kc * mr];
                    let mut rows: Vec<&mut [f32]> =
                        c[i * mr * np * nr..(i + 1) * mr * np * nr].chunks_exact_mut(np * nr).collect();
                    k(kc, ap, &b[j * kc * nr..(j + 1) * kc * nr], &mut rows, j * nr);
                }
            }
        }
        let s = thread_cpu_s() - t;
        println!(
            "driver-like (c update {variant}): {:.1} GFLOP/s",
            (reps * na * np * 2 * mr * nr * kc) as f64 / s / 1e9
        );
    }
    std::hint::black_box(&c);
    let (rows, cols) = (1024, 1024);
    let v: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let q = QuantizedMatrix::quantize(&v, rows, cols, Format::F32, Scaling::NONE, Role::Weights).unwrap();
    let mut out = vec![0f32; rows * kc];
    let mut scratch = vec![0f32; nr * kc];
    for _ in 0..3 {
        let t = thread_cpu_s();
        for p0 in (0..cols).step_by(kc) {
            crate::with_codes!(&q.codes, |c| super::pack::pack_panels(
                c,
                &q,
                0,
                nr,
                p0,
                kc,
                &mut out,
                &mut scratch
            ));
        }
        println!("pack 1024x1024 f32: {:.2} ms", (thread_cpu_s() - t) * 1e3);
    }
}

#[test]
fn e4m3_nan_weight_gives_a_nan_row_and_disables_the_fast_decode() {
    use crate::formats::{Format, Scaling};
    use crate::kernels::{Backend, Op};
    use crate::measure::inputs::ProblemSpec;
    let k = 100;
    let mut p = ProblemSpec::new(Op::Gemv, 1, 9, k, Format::E4M3, Scaling::PER_TENSOR).build().unwrap();
    assert!(super::gemv::nan_free(&p.w), "quantized inputs hold no NaN code");
    if let crate::formats::scaling::Codes::E4M3(c) = &mut p.w.codes {
        c[5 * k + 37] = E4m3(0xFF);
    }
    assert!(!super::gemv::nan_free(&p.w));
    for isa in Isa::available() {
        let y = super::CpuBackend::with_isa(2, isa).unwrap().compute(&p).unwrap();
        for (r, v) in y.iter().enumerate() {
            assert_eq!(v.is_nan(), r == 5, "{isa} row {r}: {v}");
        }
    }
}

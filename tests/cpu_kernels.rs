//! CPU-backend specific checks: bit-identical results across thread counts and instruction sets,
//! shapes that exercise every edge of the blocking (several K blocks, several column chunks,
//! row splits, ragged tiles), validated against the f64 reference.

use chipbench::formats::{Format, Scaling};
use chipbench::kernels::cpu::{CpuBackend, Isa};
use chipbench::kernels::{Backend, Op};
use chipbench::measure::inputs::ProblemSpec;
use chipbench::measure::validate::{validate, Reference};

fn cases() -> Vec<(Op, usize, usize, usize, Format, Format, Scaling)> {
    let mut v = Vec::new();
    // (m, n, k): two K blocks with a ragged third; 1100 columns = several column chunks; m = 2
    // forces a row/column split for 3 threads; k = 1 and k = 33 are below any block.
    let gemm = [(37, 1100, 600), (2, 70, 33), (13, 3, 1), (130, 45, 257)];
    let gemv = [(1100, 600), (5, 129), (67, 33), (3, 1)];
    for format in Format::ALL {
        let scalings: Vec<Scaling> = if format.is_fp8() {
            vec![Scaling::PER_TENSOR, Scaling::DEEPSEEK, Scaling::DEEPSEEK_UE8M0, Scaling::MX32]
        } else {
            vec![Scaling::NONE]
        };
        for scaling in scalings {
            let act = if format.is_fp8() { format } else { Format::BF16 };
            for &(m, n, k) in &gemm {
                v.push((Op::Gemm, m, n, k, format, act, scaling));
            }
            for &(n, k) in &gemv {
                v.push((Op::Gemv, 1, n, k, format, Format::F32, scaling));
            }
        }
    }
    v
}

#[test]
fn bit_identical_across_thread_counts_and_isas_and_valid() {
    let isas = Isa::available();
    let backends: Vec<CpuBackend> = [1, 2, 3]
        .into_iter()
        .flat_map(|t| isas.iter().map(move |&isa| CpuBackend::with_isa(t, isa).unwrap()))
        .collect();
    let mut checked = 0;
    for (op, m, n, k, format, act, scaling) in cases() {
        let p = ProblemSpec::new(op, m, n, k, format, scaling)
            .with_act_format(act)
            .with_seed((m * 131 + n * 17 + k) as u64)
            .build()
            .unwrap();
        let reference = Reference::compute(&p);
        let first = backends[0].compute(&p).unwrap();
        let v = validate(&first, &reference, 0.0);
        assert!(v.valid, "{op} {format} a={act} {scaling} {m}x{n}x{k}: {}", v.reason);
        for b in &backends[1..] {
            let out = b.compute(&p).unwrap();
            assert!(
                out.iter().zip(&first).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{op} {format} {scaling} {m}x{n}x{k}: {} threads / {} differs from 1 thread / {}",
                b.threads(),
                b.isa(),
                backends[0].isa()
            );
        }
        checked += 1;
    }
    assert!(checked > 50);
}

#[test]
fn prepared_problem_reports_its_buffers_honestly() {
    let b = CpuBackend::new(2);
    let p = ProblemSpec::new(Op::Gemm, 20, 40, 300, Format::E4M3, Scaling::DEEPSEEK).build().unwrap();
    let prepared = b.prepare(&p).unwrap();
    let bytes = prepared.buffer_bytes();
    assert_eq!(bytes.weights, 40 * 300, "FP8 weights are held as 1-byte codes");
    assert_eq!(bytes.activations, 20 * 300 * 4, "f32 activations");
    assert_eq!(bytes.outputs, 20 * 40 * 4);
    assert!(bytes.workspace >= ((20 + 40) * 256 * 4) as u64, "packed panels of one K block");
    let gemv = ProblemSpec::new(Op::Gemv, 1, 64, 100, Format::BF16, Scaling::NONE).build().unwrap();
    let bytes = b.prepare(&gemv).unwrap().buffer_bytes();
    assert_eq!((bytes.weights, bytes.workspace), (64 * 100 * 2, 100 * 4), "GEMV stages only x");
}

#[test]
fn forcing_an_isa_this_cpu_lacks_is_refused_and_every_format_is_native() {
    let b = CpuBackend::new(0);
    assert_eq!(b.name(), "cpu");
    assert!(b.threads() >= 1);
    assert_eq!(b.capabilities().len(), 10);
    assert!(b.capabilities().iter().all(|c| c.support == chipbench::kernels::Support::Native));
    if !Isa::available().contains(&Isa::Avx512) {
        assert!(CpuBackend::with_isa(1, Isa::Avx512).is_err());
    }
    assert!(CpuBackend::with_isa(1, Isa::Portable).is_ok());
}

/// `p` on the first of `backends`: labelled `compute`, valid against the f64 reference; every
/// other backend (thread count, unit) gives its bits.
fn same_on_every_backend(
    backends: &[CpuBackend],
    p: &chipbench::kernels::Problem,
    compute: &str,
    what: &str,
) {
    let mut prepared = backends[0].prepare(p).unwrap();
    assert_eq!(prepared.compute(), compute, "{what}");
    prepared.run().unwrap();
    let first = prepared.output().unwrap();
    drop(prepared);
    let v = validate(&first, &Reference::compute(p), 0.0);
    assert!(v.valid, "{what}: {}", v.reason);
    for b in &backends[1..] {
        let out = b.compute(p).unwrap();
        assert!(
            out.iter().zip(&first).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{what}: {} threads / {:?} {:?} differs from 1 thread / {:?} {:?}",
            b.threads(),
            b.dot(),
            b.tiles(),
            backends[0].dot(),
            backends[0].tiles()
        );
    }
}

/// Every (op × weight format × activation format × scaling) of the BF16 dot-product path, on
/// every dot unit this CPU has (the portable twin always, the real instruction where present):
/// valid against the f64 reference on odd shapes (K never a multiple of 128), bit-identical
/// across 1..3 threads and across units, labelled `bf16-dot <unit>`.
#[test]
fn dot_path_is_valid_and_bit_identical_across_threads_and_units() {
    use chipbench::kernels::cpu::DotUnit;
    let low = [Format::BF16, Format::E4M3, Format::E5M2];
    let units = DotUnit::available();
    let backends: Vec<CpuBackend> = [1, 2, 3]
        .into_iter()
        .flat_map(|t| {
            units
                .iter()
                .map(move |&u| CpuBackend::new(t).with_dot(Some(u)).unwrap().with_tiles(None).unwrap())
        })
        .collect();
    // m ≤ SKINNY_M runs the GEMV row kernel (7: activation rows in blocks of 4 + 3; 16 over
    // 4-byte aligned rows read in place), m = 17 and 129 the GEMM tiles.
    let gemm = [(7, 129, 1031), (129, 7, 7), (1, 1000, 129), (16, 33, 2080), (17, 65, 257)];
    // k = 1031: two GEMV chunks, rows at odd offsets (BF16 pairs packed); k = 2080: three chunks,
    // every row 4-byte aligned (BF16 pairs read in place, a 32-element last chunk).
    let gemv = [(1031, 129), (7, 1031), (129, 1), (5, 2080)];
    let mut checked = 0;
    for w in low {
        for act in low {
            let scalings = if w.is_fp8() || act.is_fp8() {
                vec![Scaling::PER_TENSOR, Scaling::DEEPSEEK, Scaling::DEEPSEEK_UE8M0, Scaling::MX32]
            } else {
                vec![Scaling::NONE]
            };
            for scaling in scalings {
                let shapes = gemm
                    .iter()
                    .map(|&s| (Op::Gemm, s))
                    .chain(gemv.iter().map(|&(n, k)| (Op::Gemv, (1, n, k))));
                for (op, (m, n, k)) in shapes {
                    let p = ProblemSpec::new(op, m, n, k, w, scaling)
                        .with_act_format(act)
                        .with_seed((m * 7 + n * 3 + k) as u64)
                        .build()
                        .unwrap();
                    let what = format!("{op} w={w} a={act} {scaling} {m}x{n}x{k}");
                    same_on_every_backend(&backends, &p, &format!("bf16-dot {}", units[0]), &what);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, (1 + 8 * 4) * 9);
}

/// With the dot path off (no units, or `CHIPBENCH_NO_BF16_DOT=1`), low-precision activations run
/// the f32 FMA path, say so, and stay valid; the f32-activation path never takes the dot path.
#[test]
fn without_dot_units_low_precision_activations_run_the_f32_path() {
    let off = CpuBackend::new(2).with_dot(None).unwrap();
    let on = CpuBackend::new(2).with_dot(Some(chipbench::kernels::cpu::DotUnit::Portable)).unwrap();
    for (act, w) in [(Format::BF16, Format::BF16), (Format::E4M3, Format::E4M3), (Format::F32, Format::E5M2)]
    {
        let p = ProblemSpec::new(Op::Gemm, 9, 40, 300, w, Scaling::DEEPSEEK)
            .with_act_format(act)
            .build()
            .unwrap();
        let mut prepared = off.prepare(&p).unwrap();
        assert_eq!(prepared.compute(), format!("f32-fma {}", off.isa()));
        prepared.run().unwrap();
        let v = validate(&prepared.output().unwrap(), &Reference::compute(&p), 0.0);
        assert!(v.valid, "{act}: {}", v.reason);
        let label = on.prepare(&p).unwrap().compute();
        assert_eq!(label.starts_with("bf16-dot"), act != Format::F32, "{act}: {label}");
    }
    // The environment switch: read by detection, so every default backend obeys it.
    std::env::set_var("CHIPBENCH_NO_BF16_DOT", "1");
    assert_eq!(chipbench::kernels::cpu::DotUnit::detect(), None);
    assert_eq!(
        CpuBackend::new(1).compute_label(Format::BF16, Format::E4M3, 64),
        format!("f32-fma {}", Isa::detect())
    );
    std::env::remove_var("CHIPBENCH_NO_BF16_DOT");
}

/// The dot path's GEMMs on every tile-matrix unit (the twin always, AMX where present), every
/// weight × activation format and scaling: valid against the f64 reference on odd shapes (K
/// below one step, a ragged last K block, two K blocks, segments of 16, 64 and 512 pairs), bit-identical
/// across 1..3 threads and between AMX and its twin, labelled `bf16-dot <tile unit>`; a GEMV
/// beside them stays on the vector unit.
#[test]
fn tile_units_run_the_dot_gemms_validly_and_identically() {
    use chipbench::kernels::cpu::{DotUnit, TileUnit};
    let low = [Format::BF16, Format::E4M3, Format::E5M2];
    let vector = DotUnit::available()[0];
    let units = TileUnit::available();
    let backends: Vec<CpuBackend> = [1, 2, 3]
        .into_iter()
        .flat_map(|t| {
            units.iter().map(move |&u| {
                CpuBackend::new(t).with_dot(Some(vector)).unwrap().with_tiles(Some(u)).unwrap()
            })
        })
        .collect();
    // K = 1100: two K blocks of the tile path (C read back after the first), a ragged last one.
    let shapes = [(17, 65, 257), (129, 7, 7), (33, 37, 300), (40, 70, 20), (33, 37, 1100)];
    let mut checked = 0;
    for w in low {
        for act in low {
            let scalings = if w.is_fp8() || act.is_fp8() {
                vec![Scaling::PER_TENSOR, Scaling::DEEPSEEK, Scaling::MX32]
            } else {
                vec![Scaling::NONE]
            };
            for scaling in scalings {
                for (m, n, k) in shapes {
                    let p = ProblemSpec::new(Op::Gemm, m, n, k, w, scaling)
                        .with_act_format(act)
                        .with_seed((m * 5 + n * 3 + k) as u64)
                        .build()
                        .unwrap();
                    let what = format!("w={w} a={act} {scaling} {m}x{n}x{k}");
                    same_on_every_backend(&backends, &p, &format!("bf16-dot {}", units[0]), &what);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, (1 + 8 * 3) * shapes.len());
    let gemv = ProblemSpec::new(Op::Gemv, 1, 64, 96, Format::E4M3, Scaling::DEEPSEEK)
        .with_act_format(Format::E4M3)
        .build()
        .unwrap();
    assert_eq!(backends[0].prepare(&gemv).unwrap().compute(), format!("bf16-dot {vector}"));
}

/// A skinny GEMM (m ≤ SKINNY_M activation rows: a decode batch, a GQA group over its KV cache) gives,
/// row by row, the bits of the one-row GEMV on the same weights — it runs the same row kernel —
/// and stays valid against the f64 reference, for every format and scaling, on 1..3 threads: with
/// f32 activations (the FMA row kernel) and, for BF16 and FP8, with activations in the weights'
/// format (the dot path's row kernel, on the best unit this CPU has).
#[test]
fn skinny_gemm_rows_are_the_gemv_bit_for_bit() {
    use chipbench::formats::scaling::{QuantizedMatrix, Role};
    use chipbench::kernels::cpu::DotUnit;
    use chipbench::kernels::Problem;
    let values = |len: usize, seed: u32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 500.0 - 2.0)
            .collect()
    };
    let unit = DotUnit::available()[0];
    let backend = |threads: usize| CpuBackend::new(threads).with_dot(Some(unit)).unwrap();
    // k = 1324: with more than four activation rows the dot path cuts rows into a 1024-code
    // chunk (FP8: converted once for every block of activation rows) and a padded 300-code one
    // (converted per block), where the GEMV takes the row as one padded chunk; every format runs
    // it (FP8 rows once took the padded chunk's pairs in other lanes).
    for (format, (n, k)) in Format::ALL.into_iter().flat_map(|f| [(f, (67, 300)), (f, (21, 1324))]) {
        let scaling = if format.is_fp8() { Scaling::DEEPSEEK } else { Scaling::NONE };
        let w = QuantizedMatrix::quantize(&values(n * k, 7), n, k, format, scaling, Role::Weights).unwrap();
        let acts = if matches!(format, Format::BF16 | Format::E4M3 | Format::E5M2) {
            vec![Format::F32, format]
        } else {
            vec![Format::F32]
        };
        for act in acts {
            let act_scaling = if act.is_fp8() { scaling } else { Scaling::NONE };
            let quantize = |v: &[f32], rows: usize| {
                QuantizedMatrix::quantize(v, rows, k, act, act_scaling, Role::Activations).unwrap()
            };
            for m in [2, 5, chipbench::kernels::SKINNY_M] {
                let av = values(m * k, 11 + m as u32);
                let gemm = Problem::new(Op::Gemm, quantize(&av, m), w.clone()).unwrap();
                let what = format!("{format} a={act} m={m} k={k}");
                let v = validate(&backend(1).compute(&gemm).unwrap(), &Reference::compute(&gemm), 0.0);
                assert!(v.valid, "{what}: {}", v.reason);
                for threads in [1, 2, 3] {
                    let got = backend(threads).compute(&gemm).unwrap();
                    for i in 0..m {
                        let row = quantize(&av[i * k..(i + 1) * k], 1);
                        let gemv = backend(threads)
                            .compute(&Problem::new(Op::Gemv, row, w.clone()).unwrap())
                            .unwrap();
                        let same = got[i * n..(i + 1) * n]
                            .iter()
                            .zip(&gemv)
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{what} row {i}, {threads} threads: differs from the GEMV");
                    }
                }
            }
        }
    }
}

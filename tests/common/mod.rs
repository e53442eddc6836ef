//! The backend test suite, written once and instantiated per backend with
//! `backend_suite!(|| -> Option<Box<dyn Backend>> { ... })` (None = no device: the suite prints
//! why and returns; the wgpu instantiation forbids that in CI).
#![allow(dead_code)]

pub mod mutations;

use chipbench::formats::{Format, Scaling};
use chipbench::kernels::{Backend, Op, Support};
use chipbench::measure::inputs::ProblemSpec;
use chipbench::measure::validate::{validate_rounded, OutputRounding, Reference};

/// Odd shapes: K not a multiple of any block, tiny and ragged dimensions.
pub const GEMM_SHAPES: &[(usize, usize, usize)] =
    &[(1, 1, 1), (7, 13, 129), (33, 65, 257), (130, 3, 300), (5, 131, 64)];
pub const GEMV_SHAPES: &[(usize, usize)] = &[(1, 1), (7, 1), (129, 128), (1000, 259), (67, 1031)];

pub fn scalings(format: Format) -> Vec<Scaling> {
    if format.is_fp8() {
        ["per-tensor", "deepseek", "deepseek:ue8m0", "mx32", "none"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    } else {
        vec![Scaling::NONE]
    }
}

/// Activation formats to pair with a weight format: f32 (weight-only), bf16, and FP8 itself
/// (both operands FP8, as in DeepSeek-V3 training).
pub fn act_formats(format: Format) -> Vec<Format> {
    let mut v = vec![Format::F32, Format::BF16];
    if format.is_fp8() {
        v.push(format);
    }
    v
}

/// Run every (op × format × scaling × activation format × shape) the backend supports and check
/// it against the f64 reference. Returns the number of validated cases.
pub fn check_all(backend: &dyn Backend, ops: &[Op]) -> usize {
    let mut checked = 0;
    let mut unsupported = Vec::new();
    let mut worst = WorstChecks::default();
    for &op in ops {
        let shapes: Vec<(usize, usize, usize)> = match op {
            Op::Gemm => GEMM_SHAPES.to_vec(),
            Op::Gemv => GEMV_SHAPES.iter().map(|&(n, k)| (1, n, k)).collect(),
        };
        for format in Format::ALL {
            for scaling in scalings(format) {
                for act in act_formats(format) {
                    for &(m, n, k) in &shapes {
                        let spec = ProblemSpec::new(op, m, n, k, format, scaling)
                            .with_act_format(act)
                            .with_seed((m * 31 + n * 7 + k) as u64);
                        let problem = spec.build().expect("problem builds");
                        let label = format!(
                            "{} {op} w={format} a={act} scaling={scaling} m={m} n={n} k={k}",
                            backend.name()
                        );
                        if let Support::Unsupported(why) = backend.support(&problem) {
                            unsupported.push(format!("{label}: {why}"));
                            continue;
                        }
                        let out = backend.compute(&problem).unwrap_or_else(|e| panic!("{label}: {e}"));
                        let reference = Reference::compute(&problem);
                        let v = validate_rounded(&out, &reference, OutputRounding::of(backend, &problem));
                        assert!(v.valid, "{label}: {}", v.reason);
                        worst.add(&v.check, m * n, &label);
                        checked += 1;
                    }
                }
            }
        }
    }
    // Every backend must at least run every format unscaled or per-tensor, with f32 activations.
    for &op in ops {
        for format in Format::ALL {
            let scaling = if format.is_fp8() { Scaling::PER_TENSOR } else { Scaling::NONE };
            let p = ProblemSpec::new(op, 3, 5, 7, format, scaling).build().unwrap();
            assert!(
                !matches!(backend.support(&p), Support::Unsupported(_)),
                "{} must run {op} {format} with {scaling}",
                backend.name()
            );
        }
    }
    worst.print(backend.name());
    if !unsupported.is_empty() {
        println!("{}: {} cases not supported, e.g. {}", backend.name(), unsupported.len(), unsupported[0]);
    }
    checked
}

/// The largest ratios validation saw on correct kernels, with the case that showed each: the
/// measurements the statistical check's limits are chosen from.
#[derive(Default)]
pub struct WorstChecks {
    /// (ratio, case) for: bound used, RMS ratio (outputs ≥ SMALL_SAMPLE), RMS ratio (smaller
    /// outputs), aggregate ratio, peak ratio.
    pub worst: [(f64, String); 5],
}

impl WorstChecks {
    pub fn add(&mut self, c: &chipbench::results::ErrorCheck, outputs: usize, label: &str) {
        let big = outputs >= chipbench::measure::validate::SMALL_SAMPLE;
        let values = [
            c.bound_used,
            if big { c.rms_ratio } else { 0.0 },
            if big { 0.0 } else { c.rms_ratio },
            c.aggregate_ratio,
            c.peak_ratio,
        ];
        for (w, v) in self.worst.iter_mut().zip(values) {
            if v > w.0 {
                *w = (v, label.to_string());
            }
        }
    }
    pub fn print(&self, backend: &str) {
        let names = [
            "bound used",
            "rms ratio (>= 32 outputs)",
            "rms ratio (< 32 outputs)",
            "aggregate ratio",
            "peak ratio",
        ];
        for (name, (v, label)) in names.iter().zip(&self.worst) {
            println!("{backend}: worst {name} on a correct kernel: {v:.3} ({label})");
        }
    }
}

/// A deliberately wrong output must fail validation (so the suite can fail).
pub fn check_validation_catches_errors(backend: &dyn Backend) {
    let p = ProblemSpec::new(Op::Gemm, 9, 11, 130, Format::E4M3, Scaling::DEEPSEEK).build().unwrap();
    let mut out = backend.compute(&p).unwrap();
    let reference = Reference::compute(&p);
    assert!(validate_rounded(&out, &reference, OutputRounding::of(backend, &p)).valid);
    out[17] += 0.5 + out[17].abs() * 1e-2;
    assert!(!validate_rounded(&out, &reference, OutputRounding::of(backend, &p)).valid);
}

/// Two runs of the same prepared problem give bit-identical output.
pub fn check_repeatable(backend: &dyn Backend) {
    let p = ProblemSpec::new(Op::Gemm, 37, 41, 300, Format::BF16, Scaling::NONE).build().unwrap();
    let mut prepared = backend.prepare(&p).unwrap();
    prepared.run().unwrap();
    let a = prepared.output().unwrap();
    prepared.run().unwrap();
    let b = prepared.output().unwrap();
    assert_eq!(a, b, "{}: two runs differ", backend.name());
    assert!(prepared.buffer_bytes().total() > 0, "{}: buffer bytes not reported", backend.name());
}

/// Instantiate the suite for one backend. `$make` returns `Option<Box<dyn Backend>>`.
#[macro_export]
macro_rules! backend_suite {
    ($make:expr) => {
        fn backend() -> Option<Box<dyn chipbench::kernels::Backend>> {
            ($make)()
        }
        #[test]
        fn gemm_every_format_and_scaling_matches_f64_reference() {
            let Some(b) = backend() else { return };
            let n = common::check_all(b.as_ref(), &[chipbench::kernels::Op::Gemm]);
            assert!(n > 0);
            println!("{}: {n} GEMM cases validated", b.name());
        }
        #[test]
        fn gemv_every_format_and_scaling_matches_f64_reference() {
            let Some(b) = backend() else { return };
            let n = common::check_all(b.as_ref(), &[chipbench::kernels::Op::Gemv]);
            assert!(n > 0);
            println!("{}: {n} GEMV cases validated", b.name());
        }
        #[test]
        fn a_wrong_output_fails_validation() {
            let Some(b) = backend() else { return };
            common::check_validation_catches_errors(b.as_ref());
        }
        #[test]
        fn runs_are_repeatable_and_report_buffers() {
            let Some(b) = backend() else { return };
            common::check_repeatable(b.as_ref());
        }
        #[test]
        fn capabilities_cover_every_op_and_format() {
            let Some(b) = backend() else { return };
            let caps = b.capabilities();
            for op in [chipbench::kernels::Op::Gemm, chipbench::kernels::Op::Gemv] {
                for f in chipbench::formats::Format::ALL {
                    assert!(
                        caps.iter().any(|c| c.op == op && c.format == f),
                        "{}: no capability for {op} {f}",
                        b.name()
                    );
                }
            }
        }
    };
}

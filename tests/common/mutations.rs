//! Wrong kernels, built on every backend's own path: the backend runs a perturbed copy of a
//! problem (what a kernel with that bug would in effect compute) and its output is validated
//! against the reference of the original problem. Validation must refuse every one.

use chipbench::formats::scaling::{Codes, Role};
use chipbench::formats::{Element, Format, QuantizedMatrix, Scaling};
use chipbench::kernels::{Backend, Op, Problem, Support};
use chipbench::measure::inputs::{random_matrix, Dist};
use chipbench::measure::validate::{validate_rounded, OutputRounding, Reference};
use chipbench::with_codes;
use half::{bf16, f16};

/// A bug a kernel could have that makes it faster or simpler and still looks plausible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mutation {
    /// An "f32" (or f16) operand read as bf16: the fake 2× speed-up. Weights if they are f32/f16,
    /// else the activations.
    RoundToBf16,
    /// The last K column is dropped (a remainder loop that never runs).
    DropLastK,
    /// Two weight blocks swap scales (a scale applied to the wrong block).
    SwapScales,
    /// The weight scale grid read column-major (transposed); changes something only on a grid
    /// of at least 2×2 blocks.
    TransposeScales,
    /// Weight row j read from row j + 1 (an off-by-one row, wrapping at the end).
    RowOffByOne,
}

impl Mutation {
    pub const ALL: [Mutation; 5] = [
        Mutation::RoundToBf16,
        Mutation::DropLastK,
        Mutation::SwapScales,
        Mutation::TransposeScales,
        Mutation::RowOffByOne,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::RoundToBf16 => "operand rounded to bf16",
            Mutation::DropLastK => "last K column dropped",
            Mutation::SwapScales => "two block scales swapped",
            Mutation::TransposeScales => "scale grid transposed",
            Mutation::RowOffByOne => "weight row off by one",
        }
    }

    /// The problem the wrong kernel computes, or `None` where the bug changes nothing for `p`
    /// (no f32/f16 operand, a single block, a 1-wide grid, equal scales, one row).
    pub fn apply(self, p: &Problem) -> Option<Problem> {
        let mut q = p.clone();
        match self {
            Mutation::RoundToBf16 => {
                if !round_to_bf16(&mut q.w.codes) && !round_to_bf16(&mut q.a.codes) {
                    return None;
                }
            }
            Mutation::DropLastK => {
                if p.k() < 2 {
                    return None;
                }
                let (rows, cols) = (q.w.rows, q.w.cols);
                with_codes!(&mut q.w.codes, |c| zero_column(c, rows, cols, cols - 1));
            }
            Mutation::SwapScales => {
                let (br, bc) = p.w.scale_grid();
                let scale = |bi: usize, bj: usize| block_scale(&p.w, bi, bj);
                let other = (0..br)
                    .flat_map(|bi| (0..bc).map(move |bj| (bi, bj)))
                    .find(|&(bi, bj)| scale(bi, bj) != scale(0, 0))?;
                q.w = p.w.with_scales_from(|bi, bj| match (bi, bj) {
                    (0, 0) => other,
                    b if b == other => (0, 0),
                    b => b,
                });
            }
            Mutation::TransposeScales => {
                let (br, bc) = p.w.scale_grid();
                if br < 2 || bc < 2 {
                    return None;
                }
                // Block (bi, bj) reads the scale stored at bj·br + bi, as a kernel that takes the
                // row-major grid for a column-major one does.
                q.w = p.w.with_scales_from(|bi, bj| {
                    let at = bj * br + bi;
                    (at / bc, at % bc)
                });
            }
            Mutation::RowOffByOne => {
                if p.n() < 2 {
                    return None;
                }
                let cols = q.w.cols;
                with_codes!(&mut q.w.codes, |c| c.rotate_left(cols));
            }
        }
        (q.a != p.a || q.w != p.w).then_some(q)
    }
}

fn block_scale(q: &QuantizedMatrix, bi: usize, bj: usize) -> f32 {
    q.scale_at(bi * q.block.rows, bj * q.block.cols)
}

fn zero_column<E: Element>(codes: &mut [E], rows: usize, cols: usize, col: usize) {
    for r in 0..rows {
        codes[r * cols + col] = E::encode(0.0);
    }
}

/// Round f32 or f16 codes to bf16 precision in place; false for other formats.
fn round_to_bf16(codes: &mut Codes) -> bool {
    match codes {
        Codes::F32(c) => c.iter_mut().for_each(|x| *x = bf16::from_f32(*x).to_f32()),
        Codes::F16(c) => c.iter_mut().for_each(|x| *x = f16::from_f32(bf16::from_f32(x.to_f32()).to_f32())),
        _ => return false,
    }
    true
}

/// One problem the mutations run on.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub op: Op,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub format: Format,
    pub act: Format,
    pub scaling: &'static str,
}

impl Case {
    pub fn label(&self) -> String {
        format!(
            "{} w={} a={} {} {}×{}×{}",
            self.op, self.format, self.act, self.scaling, self.m, self.n, self.k
        )
    }

    /// Gaussian operands; the weights carry a factor 2^((3·(r/128) + c/128) mod 4) per 128×128
    /// block so that blocks have different scales even in a power-of-two scale format (with
    /// plain Gaussian weights every DeepSeek UE8M0 block gets the same scale and swapping two
    /// changes nothing).
    pub fn build(&self) -> Problem {
        let scaling: Scaling = self.scaling.parse().unwrap();
        let seed = (self.m * 31 + self.n * 7 + self.k) as u64;
        let a = random_matrix(self.m, self.k, seed, Dist::Gaussian);
        let act_scaling = if self.act.is_fp8() { scaling } else { Scaling::NONE };
        let a =
            QuantizedMatrix::quantize(&a, self.m, self.k, self.act, act_scaling, Role::Activations).unwrap();
        let mut w = random_matrix(self.n, self.k, seed + 1, Dist::Gaussian);
        for (i, v) in w.iter_mut().enumerate() {
            let (r, c) = (i / self.k, i % self.k);
            *v *= (1u32 << ((3 * (r / 128) + c / 128) % 4)) as f32;
        }
        let w_scaling = if self.format.is_fp8() { scaling } else { Scaling::NONE };
        let w = QuantizedMatrix::quantize(&w, self.n, self.k, self.format, w_scaling, Role::Weights).unwrap();
        Problem::new(self.op, a, w).unwrap()
    }
}

/// Shapes where the mutations matter: K of 1031 and 8192 (where the rigorous bound is loosest),
/// N of 384 = three 128-row weight blocks and K ≥ 1280 = ten 128-column blocks, so the DeepSeek
/// scale grid is 3 × 10 or wider (non-square: transposing it misplaces scales) and MX-32 grids
/// are N × K/32.
pub const CASES: &[Case] = &[
    Case { op: Op::Gemv, m: 1, n: 67, k: 8192, format: Format::F32, act: Format::F32, scaling: "none" },
    Case { op: Op::Gemm, m: 5, n: 33, k: 1031, format: Format::F32, act: Format::F32, scaling: "none" },
    Case { op: Op::Gemv, m: 1, n: 67, k: 8192, format: Format::BF16, act: Format::F32, scaling: "none" },
    Case { op: Op::Gemm, m: 5, n: 33, k: 1031, format: Format::F16, act: Format::F16, scaling: "none" },
    Case { op: Op::Gemm, m: 5, n: 33, k: 1031, format: Format::BF16, act: Format::BF16, scaling: "none" },
    Case { op: Op::Gemv, m: 1, n: 384, k: 8192, format: Format::E4M3, act: Format::F32, scaling: "deepseek" },
    Case {
        op: Op::Gemm,
        m: 5,
        n: 384,
        k: 1280,
        format: Format::E4M3,
        act: Format::E4M3,
        scaling: "deepseek",
    },
    Case {
        op: Op::Gemm,
        m: 5,
        n: 384,
        k: 1280,
        format: Format::E4M3,
        act: Format::BF16,
        scaling: "deepseek:ue8m0",
    },
    Case { op: Op::Gemv, m: 1, n: 67, k: 8192, format: Format::E5M2, act: Format::F32, scaling: "mx32" },
    Case { op: Op::Gemm, m: 5, n: 384, k: 1280, format: Format::E5M2, act: Format::E5M2, scaling: "mx32" },
    Case {
        op: Op::Gemv,
        m: 1,
        n: 67,
        k: 8192,
        format: Format::E4M3,
        act: Format::F32,
        scaling: "per-tensor",
    },
];

/// Run every case correct and with every mutation on `backend`: the correct kernel must pass,
/// every mutation that changes the problem must be refused. Prints, per mutation, what the
/// rigorous bound alone said (`bound used` ≤ 1 is a pass) and what the statistical check saw.
/// Returns (mutations refused, of them passed by the rigorous bound alone).
pub fn check_mutations(backend: &dyn Backend) -> (usize, usize) {
    let (mut refused, mut missed_by_bound, mut not_applicable) = (0, 0, 0);
    for case in CASES {
        let problem = case.build();
        let label = format!("{} {}", backend.name(), case.label());
        if let Support::Unsupported(why) = backend.support(&problem) {
            println!("{label}: not supported: {why}");
            continue;
        }
        let reference = Reference::compute(&problem);
        let roundoff = OutputRounding::of(backend, &problem);
        let out = backend.compute(&problem).unwrap_or_else(|e| panic!("{label}: {e}"));
        let v = validate_rounded(&out, &reference, roundoff);
        assert!(v.valid, "{label}: the correct kernel is refused: {}", v.reason);
        for mutation in Mutation::ALL {
            let Some(wrong) = mutation.apply(&problem) else {
                not_applicable += 1;
                continue;
            };
            let out = backend.compute(&wrong).unwrap_or_else(|e| panic!("{label} {}: {e}", mutation.name()));
            let v = validate_rounded(&out, &reference, roundoff);
            let c = v.check;
            println!(
                "{label} | {}: bound used {:.3e}, rms/expected {:.3e} (limit {}), aggregate {:.3e}, peak {:.3e}",
                mutation.name(),
                c.bound_used,
                c.rms_ratio,
                c.rms_limit,
                c.aggregate_ratio,
                c.peak_ratio
            );
            assert!(!v.valid, "{label}: validation passed a wrong kernel ({})", mutation.name());
            refused += 1;
            if c.bound_used <= 1.0 {
                missed_by_bound += 1;
            }
        }
    }
    println!(
        "{}: {refused} wrong kernels refused, {missed_by_bound} of them within the rigorous bound \
         (caught by the statistical check only); {not_applicable} mutations change nothing for their case",
        backend.name()
    );
    (refused, missed_by_bound)
}

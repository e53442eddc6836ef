//! Seeded random inputs. Never all zeros (zeros flatter some hardware), reproducible from a seed.

use crate::formats::scaling::Role;
use crate::formats::{Format, QuantizedMatrix, Scaling};
use crate::kernels::{Op, Problem};
use crate::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, StandardNormal};

/// Distribution of generated values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dist {
    /// N(0, 1).
    #[default]
    Gaussian,
    /// N(0, 1) with 0.1 % outliers ×100, like LLM activations with outlier channels.
    HeavyTailed,
}

/// A row-major `rows × cols` matrix of random values.
pub fn random_matrix(rows: usize, cols: usize, seed: u64, dist: Dist) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    (0..rows * cols)
        .map(|_| {
            let v: f32 = normal.sample(&mut rng);
            match dist {
                Dist::Gaussian => v,
                Dist::HeavyTailed => {
                    if rng.random::<f32>() < 1e-3 {
                        v * 100.0
                    } else {
                        v
                    }
                }
            }
        })
        .collect()
}

/// One standard-normal f64 (for studies that need their own streams).
pub fn standard_normal(rng: &mut StdRng) -> f64 {
    StandardNormal.sample(rng)
}

/// What to build: shapes, formats, scaling, seed. Serialisable, so an RSS child process can
/// rebuild exactly the same problem.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProblemSpec {
    pub op: Op,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Storage format of the weights.
    pub format: Format,
    /// Storage format of the activations: f32/bf16 for weight-only quantization, or the FP8
    /// format itself (both operands FP8, as in DeepSeek-V3 training).
    pub act_format: Format,
    pub scaling: Scaling,
    pub seed: u64,
}

impl ProblemSpec {
    /// Weight-only quantization with f32 activations (the inference case) unless FP8 is asked
    /// for the activations too.
    pub fn new(op: Op, m: usize, n: usize, k: usize, format: Format, scaling: Scaling) -> Self {
        let m = if op == Op::Gemv { 1 } else { m };
        ProblemSpec { op, m, n, k, format, act_format: Format::F32, scaling, seed: 42 }
    }

    pub fn with_act_format(mut self, act_format: Format) -> Self {
        self.act_format = act_format;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Scaling used for the activations: the same scheme when they are FP8, none otherwise.
    pub fn act_scaling(&self) -> Scaling {
        if self.act_format.is_fp8() {
            self.scaling
        } else {
            Scaling::NONE
        }
    }

    /// Weight scaling: none for non-FP8 formats.
    pub fn weight_scaling(&self) -> Scaling {
        if self.format.is_fp8() {
            self.scaling
        } else {
            Scaling::NONE
        }
    }

    /// Generate and quantize the operands.
    pub fn build(&self) -> Result<Problem> {
        let a = random_matrix(self.m, self.k, self.seed, Dist::Gaussian);
        let a = QuantizedMatrix::quantize(
            &a,
            self.m,
            self.k,
            self.act_format,
            self.act_scaling(),
            Role::Activations,
        )?;
        let w = random_matrix(self.n, self.k, self.seed.wrapping_add(1), Dist::Gaussian);
        let w =
            QuantizedMatrix::quantize(&w, self.n, self.k, self.format, self.weight_scaling(), Role::Weights)?;
        Problem::new(self.op, a, w)
    }
}

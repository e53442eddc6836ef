//! Seeded random inputs. Never all zeros (zeros flatter some hardware), reproducible from a seed.

use crate::formats::scaling::Role;
use crate::formats::{Format, QuantizedMatrix, Scaling};
use crate::kernels::{Op, Problem};
use crate::Result;
use rand::rngs::{SmallRng, StdRng};
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

/// Values per independently seeded chunk of [`random_matrix`].
const CHUNK: usize = 1 << 16;

/// A row-major `rows × cols` matrix of random values. Generated in parallel chunks of
/// [`CHUNK`] values, each from its own stream seeded by (`seed`, chunk index), so the values
/// depend on the seed and the size only, never on the number of threads. The streams are
/// rand's small fast generator (benchmark inputs need no cryptographic quality; every RSS
/// child process regenerates its problem, so generation speed sets part of a run's length).
pub fn random_matrix(rows: usize, cols: usize, seed: u64, dist: Dist) -> Vec<f32> {
    use rayon::prelude::*;
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    let mut out = vec![0f32; rows * cols];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, chunk)| {
        let mut rng = SmallRng::seed_from_u64(chunk_seed(seed, i as u64));
        for v in chunk.iter_mut() {
            let x: f32 = normal.sample(&mut rng);
            *v = match dist {
                Dist::HeavyTailed if rng.random::<f32>() < 1e-3 => x * 100.0,
                _ => x,
            };
        }
    });
    out
}

/// The seed of chunk `i` (SplitMix64 of the pair, so neighbouring seeds give unrelated streams).
fn chunk_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
        self.build_with(&mut Values::default())
    }

    /// [`build`](Self::build), drawing the random values from `values`: the cases of one shape
    /// share their seed, so they share the values and differ only in how they are quantized.
    pub fn build_with(&self, values: &mut Values) -> Result<Problem> {
        let a = values.get(self.m, self.k, self.seed);
        let a = QuantizedMatrix::quantize(
            a,
            self.m,
            self.k,
            self.act_format,
            self.act_scaling(),
            Role::Activations,
        )?;
        let w = values.get(self.n, self.k, self.seed.wrapping_add(1));
        let w =
            QuantizedMatrix::quantize(w, self.n, self.k, self.format, self.weight_scaling(), Role::Weights)?;
        Problem::new(self.op, a, w)
    }
}

/// Generated Gaussian matrices by (rows, cols, seed): the same key always gives the same values
/// ([`random_matrix`]), so a run draws them once per shape instead of once per case.
#[derive(Default)]
pub struct Values(std::collections::HashMap<(usize, usize, u64), Vec<f32>>);

impl Values {
    /// The values of `random_matrix(rows, cols, seed, Gaussian)`, generated on first use.
    pub fn get(&mut self, rows: usize, cols: usize, seed: u64) -> &[f32] {
        self.0.entry((rows, cols, seed)).or_insert_with(|| random_matrix(rows, cols, seed, Dist::Gaussian))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_depend_on_seed_and_size_only() {
        let n = 3 * CHUNK + 17;
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let a = one.install(|| random_matrix(1, n, 5, Dist::Gaussian));
        let b = three.install(|| random_matrix(1, n, 5, Dist::Gaussian));
        assert_eq!(a, b);
        let c = random_matrix(1, n, 6, Dist::Gaussian);
        assert!(a.iter().zip(&c).filter(|(x, y)| x == y).count() < 10, "seeds 5 and 6 share values");
        // Chunks are not copies of each other, and the values look standard normal.
        assert_ne!(a[..64], a[CHUNK..CHUNK + 64]);
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean}, variance {var}");
    }

    #[test]
    fn cached_values_build_the_same_problem() {
        let spec = ProblemSpec::new(Op::Gemm, 3, 5, 130, Format::E4M3, Scaling::PER_TENSOR);
        let mut values = Values::default();
        let cached = spec.build_with(&mut values).unwrap();
        let again = spec.with_act_format(Format::E4M3).build_with(&mut values).unwrap();
        let fresh = spec.build().unwrap();
        assert_eq!(cached.w.dequantize_f64(), fresh.w.dequantize_f64());
        assert_eq!(cached.a.dequantize_f64(), fresh.a.dequantize_f64());
        assert_eq!(again.w.dequantize_f64(), fresh.w.dequantize_f64());
        assert_eq!(values.0.len(), 2);
    }
}

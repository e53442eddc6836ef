//! The accumulation sweep: random rows from a seed, quantized once per scaling, accumulated by
//! every (accumulator, promotion interval) pair, errors against the f64 reference gathered per
//! point. The same inputs feed every configuration of one (distribution, K), so differences
//! between configurations are not sampling noise.
//!
//! Error metric: `|ĉ − c| / RMS(c)`, the error of an output relative to the typical size of the
//! outputs. Per-element `|ĉ − c| / |c|` is useless for zero-mean inputs: some exact dot products
//! are arbitrarily close to zero, so its maximum grows without bound with the number of rows.
//! For positive inputs (`uniform`) the two agree closely.

use super::accumulation::{dot, dot_reference, Accumulator, DotConfig, Promotion, ScaledRow};
use crate::formats::scaling::Role;
use crate::formats::{Format, QuantizedMatrix, Scaling};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal, StudentT};
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;

/// Rows per work unit: one DeepSeek 128×128 weight block row, so every unit is a whole tensor
/// for the block schemes (per-tensor scaling takes each unit as its own tensor).
pub const CHUNK_ROWS: usize = 128;

/// Where the random inputs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dist {
    /// Activations and weights N(0, 1).
    Gaussian,
    /// Activations Student-t (3 degrees of freedom) with a few outlier channels ×30, as LLM
    /// activations have; weights N(0, 1).
    Heavy,
    /// Both U[0, 1): no cancellation, the running sum only grows (the worst case for truncation).
    Uniform,
}

impl Dist {
    pub const ALLOWED: &'static str = "gaussian, heavy, uniform";
    pub fn name(self) -> &'static str {
        match self {
            Dist::Gaussian => "gaussian",
            Dist::Heavy => "heavy",
            Dist::Uniform => "uniform",
        }
    }

    /// Fill `a` (activations) and `w` (weights), both `rows × k`.
    pub fn fill(self, rng: &mut StdRng, k: usize, a: &mut [f32], w: &mut [f32]) {
        match self {
            Dist::Gaussian => {
                a.iter_mut().for_each(|x| *x = StandardNormal.sample(rng));
                w.iter_mut().for_each(|x| *x = StandardNormal.sample(rng));
            }
            Dist::Heavy => {
                let t = StudentT::new(3.0f32).expect("nu > 0");
                a.iter_mut().for_each(|x| *x = t.sample(rng));
                let outliers: Vec<usize> = (0..(k / 256).max(1)).map(|_| rng.random_range(0..k)).collect();
                for row in a.chunks_mut(k) {
                    for &c in &outliers {
                        row[c] *= 30.0;
                    }
                }
                w.iter_mut().for_each(|x| *x = StandardNormal.sample(rng));
            }
            Dist::Uniform => {
                a.iter_mut().for_each(|x| *x = rng.random::<f32>());
                w.iter_mut().for_each(|x| *x = rng.random::<f32>());
            }
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Dist {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gaussian" | "normal" => Ok(Dist::Gaussian),
            "heavy" | "heavy-tailed" => Ok(Dist::Heavy),
            "uniform" => Ok(Dist::Uniform),
            _ => Err(Error::invalid("dist", s, Dist::ALLOWED)),
        }
    }
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct StudyConfig {
    pub k_values: Vec<usize>,
    /// Accumulators under study; plain f32 accumulation is always run too, as the yardstick.
    pub accumulators: Vec<Accumulator>,
    pub promotions: Vec<Promotion>,
    pub dists: Vec<Dist>,
    pub format: Format,
    pub scalings: Vec<Scaling>,
    /// Dot products (output elements) per point.
    pub rows: usize,
    pub seed: u64,
    /// Products summed exactly before each rounded add (1 = per-product rounding).
    pub group: usize,
}

impl StudyConfig {
    fn chunks(&self) -> usize {
        self.rows.div_ceil(CHUNK_ROWS)
    }
    /// Work units (progress bar length): one per (distribution, K, chunk of rows).
    pub fn units(&self) -> u64 {
        (self.dists.len() * self.k_values.len() * self.chunks()) as u64
    }
    /// The accumulators actually run: the requested ones plus native f32 (once).
    pub fn all_accumulators(&self) -> Vec<Accumulator> {
        let mut v = self.accumulators.clone();
        if !v.contains(&Accumulator::NativeF32) {
            v.push(Accumulator::NativeF32);
        }
        v
    }
}

/// Errors of one configuration at one K over all rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub dist: Dist,
    pub scaling: Scaling,
    pub accumulator: Accumulator,
    pub promotion: Promotion,
    pub k: usize,
    pub rows: usize,
    pub max_abs: f64,
    /// max |ĉ − c| / RMS(c).
    pub max_rel: f64,
    /// mean |ĉ − c| / RMS(c).
    pub mean_rel: f64,
    /// DeepGEMM's `1 − 2Σĉc / Σ(ĉ² + c²)`.
    pub diff: f64,
    pub rms_ref: f64,
    /// Outputs bit-identical to plain f32 accumulation of the same products in the same order.
    pub same_as_f32: usize,
}

/// Running sums for one point.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    max_abs: f64,
    sum_abs: f64,
    sum_ref2: f64,
    sum_xy: f64,
    sum_x2y2: f64,
    same_as_f32: usize,
    n: usize,
}

impl Stats {
    fn push(&mut self, got: f32, reference: f64, same: bool) {
        let (x, y) = (got as f64, reference);
        let e = (x - y).abs();
        // NaN-safe max: a NaN output must show up as NaN, not vanish.
        self.max_abs = if e.is_nan() || self.max_abs.is_nan() { f64::NAN } else { self.max_abs.max(e) };
        self.sum_abs += e;
        self.sum_ref2 += y * y;
        self.sum_xy += x * y;
        self.sum_x2y2 += x * x + y * y;
        self.same_as_f32 += same as usize;
        self.n += 1;
    }
    fn merge(&mut self, o: &Stats) {
        self.max_abs =
            if o.max_abs.is_nan() || self.max_abs.is_nan() { f64::NAN } else { self.max_abs.max(o.max_abs) };
        self.sum_abs += o.sum_abs;
        self.sum_ref2 += o.sum_ref2;
        self.sum_xy += o.sum_xy;
        self.sum_x2y2 += o.sum_x2y2;
        self.same_as_f32 += o.same_as_f32;
        self.n += o.n;
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser: decorrelates the seeds of neighbouring work units.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Index of a (scaling, accumulator, promotion) triple in a unit's stats vector.
fn slot(si: usize, ai: usize, pi: usize, n_acc: usize, n_pro: usize) -> usize {
    (si * n_acc + ai) * n_pro + pi
}

/// One work unit: `rows` rows of length `k`, every configuration.
fn run_unit(
    cfg: &StudyConfig,
    accs: &[Accumulator],
    dist: Dist,
    k: usize,
    chunk: usize,
) -> Result<Vec<Stats>> {
    let rows = CHUNK_ROWS.min(cfg.rows - chunk * CHUNK_ROWS);
    let seed = mix(cfg.seed ^ mix((dist as u64) << 56 ^ (k as u64) << 24 ^ chunk as u64));
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut a, mut w) = (vec![0f32; rows * k], vec![0f32; rows * k]);
    dist.fill(&mut rng, k, &mut a, &mut w);
    let (n_acc, n_pro) = (accs.len(), cfg.promotions.len());
    let native = accs.iter().position(|&x| x == Accumulator::NativeF32).expect("f32 yardstick present");
    let mut stats = vec![Stats::default(); cfg.scalings.len() * n_acc * n_pro];
    let mut out = vec![0f32; n_acc];
    for (si, &scaling) in cfg.scalings.iter().enumerate() {
        let qa = QuantizedMatrix::quantize(&a, rows, k, cfg.format, scaling, Role::Activations)?;
        let qw = QuantizedMatrix::quantize(&w, rows, k, cfg.format, scaling, Role::Weights)?;
        let (ra, rw) = (qa.codes.decode(), qw.codes.decode());
        for r in 0..rows {
            let (ar, wr) = (ScaledRow::of(&qa, &ra, r), ScaledRow::of(&qw, &rw, r));
            let reference = dot_reference(ar, wr);
            for (pi, &promotion) in cfg.promotions.iter().enumerate() {
                for (ai, &accumulator) in accs.iter().enumerate() {
                    out[ai] = dot(ar, wr, &DotConfig { accumulator, promotion, group: cfg.group });
                }
                for ai in 0..n_acc {
                    let same = out[ai].to_bits() == out[native].to_bits();
                    stats[slot(si, ai, pi, n_acc, n_pro)].push(out[ai], reference, same);
                }
            }
        }
    }
    Ok(stats)
}

/// Run the sweep; `tick` is called once per finished work unit (from worker threads).
pub fn run(cfg: &StudyConfig, tick: &(dyn Fn() + Sync)) -> Result<Vec<Point>> {
    if cfg.rows == 0 || cfg.k_values.is_empty() || cfg.promotions.is_empty() || cfg.scalings.is_empty() {
        return Err(Error::invalid("study", "empty sweep", "at least one row, K, N_C and scaling"));
    }
    let accs = cfg.all_accumulators();
    let units: Vec<(usize, usize, usize)> = (0..cfg.dists.len())
        .flat_map(|d| (0..cfg.k_values.len()).flat_map(move |ki| (0..cfg.chunks()).map(move |c| (d, ki, c))))
        .collect();
    // Largest K first so the long units do not straggle at the end.
    let mut order = units.clone();
    order.sort_by_key(|&(_, ki, _)| std::cmp::Reverse(cfg.k_values[ki]));
    let results: Vec<((usize, usize, usize), Vec<Stats>)> = order
        .par_iter()
        .map(|&(d, ki, c)| {
            let s = run_unit(cfg, &accs, cfg.dists[d], cfg.k_values[ki], c);
            tick();
            s.map(|s| ((d, ki, c), s))
        })
        .collect::<Result<_>>()?;
    let (n_acc, n_pro) = (accs.len(), cfg.promotions.len());
    let per_dk = cfg.scalings.len() * n_acc * n_pro;
    let mut merged = vec![vec![Stats::default(); per_dk]; cfg.dists.len() * cfg.k_values.len()];
    for ((d, ki, _), stats) in &results {
        for (m, s) in merged[d * cfg.k_values.len() + ki].iter_mut().zip(stats) {
            m.merge(s);
        }
    }
    let mut points = Vec::new();
    for (d, &dist) in cfg.dists.iter().enumerate() {
        for (si, &scaling) in cfg.scalings.iter().enumerate() {
            for (ai, &accumulator) in accs.iter().enumerate() {
                for (pi, &promotion) in cfg.promotions.iter().enumerate() {
                    for (ki, &k) in cfg.k_values.iter().enumerate() {
                        let s = merged[d * cfg.k_values.len() + ki][slot(si, ai, pi, n_acc, n_pro)];
                        let n = s.n.max(1) as f64;
                        let rms = (s.sum_ref2 / n).sqrt();
                        points.push(Point {
                            dist,
                            scaling,
                            accumulator,
                            promotion,
                            k,
                            rows: s.n,
                            max_abs: s.max_abs,
                            max_rel: s.max_abs / rms,
                            mean_rel: s.sum_abs / n / rms,
                            diff: if s.sum_x2y2 == 0.0 { 0.0 } else { 1.0 - 2.0 * s.sum_xy / s.sum_x2y2 },
                            rms_ref: rms,
                            same_as_f32: s.same_as_f32,
                        });
                    }
                }
            }
        }
    }
    Ok(points)
}

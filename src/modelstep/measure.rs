//! Measuring a step: each distinct product of the steps asked for becomes one [`Case`] of the
//! suite runner (so it is validated against f64 and timed exactly like any record), run once
//! and shared by every model, phase and step format that contains it.
//!
//! What is measured is a *slice* of each product, scaled back linearly (`ModelStep::scale`):
//! - decode (memory-bound): `n` rows are chosen so the weight operand is `slice_bytes` (past the
//!   last-level cache, as the weights of consecutive layers are): a big matrix is cut, a small one
//!   (kv_a, the router, one layer's KV cache) is stacked — consecutive layers read one after
//!   another, which is what a step does;
//! - prefill (compute-bound): at most `max_m` of the prompt's rows (512: the whole default
//!   prompt), the real `n` up to [`PREFILL_N`], and K cut in whole blocks of [`K_STEP`] to fit
//!   `max_macs`: a GEMM's K loop runs the same blocks whatever its length, so a shorter K keeps
//!   the real product's efficiency, where fewer rows or columns would not (128 × 192 × 16384 ran
//!   at 91 GFLOP/s where the real 512 × 7168 × 16384 runs at 157 and 512 × 2048 × 1024 at 160).
//!   The time scales with `m·n·k`.
//!
//! Every slice is bounded by `max_macs` so validation never dominates the run.

use super::shapes::{self, Operand, Phase, Product, StepShape};
use crate::formats::scaling::Role;
use crate::formats::{Format, Scaling};
use crate::kernels::Op;
use crate::measure::inputs::ProblemSpec;
use crate::measure::memory::MAX_DIM;
use crate::measure::suite::Case;
use crate::measure::timer::TimerConfig;
use crate::profiles::{Model, TensorKind};
use crate::results::ModelStep;
use crate::{Error, Result};
use std::time::Duration;

/// Most columns of a prefill slice: enough work items for every thread, as in the real product.
pub const PREFILL_N: u64 = 2048;
/// A prefill slice's K is a multiple of this (two of DeepSeek-V3's 128-wide scale blocks, eight
/// MX-32 blocks, one CPU GEMM K block), or the whole of K.
pub const K_STEP: u64 = 256;

/// A step's weight format: the format and scaling of its Linear matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepFormat {
    pub format: Format,
    pub scaling: Scaling,
}

impl StepFormat {
    /// FP8 E4M3 with DeepSeek-V3's 128×128 weight blocks, BF16, F32.
    pub const DEFAULTS: [StepFormat; 3] = [
        StepFormat { format: Format::E4M3, scaling: Scaling::DEEPSEEK },
        StepFormat { format: Format::BF16, scaling: Scaling::NONE },
        StepFormat { format: Format::F32, scaling: Scaling::NONE },
    ];
    pub const ALLOWED: &'static str =
        "f32, bf16, f16, e4m3, e5m2, optionally with an FP8 scaling: e4m3:deepseek, e4m3:mx32, ...";

    /// `e4m3` (DeepSeek scaling), `e4m3:mx32`, `bf16`, ...
    pub fn parse(s: &str) -> Result<StepFormat> {
        let bad = || Error::invalid("--format", s, Self::ALLOWED);
        let (f, sc) = match s.trim().split_once(':') {
            Some((f, sc)) => (f, Some(sc)),
            None => (s.trim(), None),
        };
        let format: Format = f.parse().map_err(|_| bad())?;
        let scaling = match (format.is_fp8(), sc) {
            (true, None) => Scaling::DEEPSEEK,
            (true, Some(sc)) => sc.parse().map_err(|_| bad())?,
            (false, None | Some("none")) => Scaling::NONE,
            (false, Some(_)) => return Err(bad()),
        };
        Ok(StepFormat { format, scaling })
    }

    /// `format:scaling`, as `ModelStep::step_format` stores it.
    pub fn label(&self) -> String {
        format!("{}:{}", self.format, self.scaling)
    }

    /// Format and scaling of a product's weight operand in this step: Linear matrices in the step
    /// format; head, router and KV cache in BF16 when the step is FP8 (DeepSeek's recipe, the
    /// planner's convention), otherwise in the step format.
    pub fn operand(&self, op: Operand) -> (Format, Scaling) {
        match op {
            Operand::Linear => (self.format, self.scaling),
            Operand::KeptBf16 | Operand::Kv if self.format.is_fp8() => (Format::BF16, Scaling::NONE),
            Operand::KeptBf16 | Operand::Kv => (self.format, Scaling::NONE),
        }
    }

    /// Format of the activations a product multiplies its `op` weights with in this step: the
    /// weights' own format where it is BF16 or FP8 (FP8 steps quantize activations to E4M3 in
    /// DeepSeek-V3's 1 × 128 tiles, as its recipe does; BF16 steps keep them in BF16), so those
    /// products run on the BF16 dot-product units where the CPU has them; f32 otherwise (F32
    /// steps, and F16, whose kernels take f32 activations).
    pub fn act(&self, op: Operand) -> Format {
        match self.operand(op).0 {
            f @ (Format::BF16 | Format::E4M3 | Format::E5M2) => f,
            Format::F32 | Format::F16 => Format::F32,
        }
    }

    /// Stored bytes of an `rows × cols` weight in `format`/`scaling`: codes plus block scales.
    pub fn weight_bytes(format: Format, scaling: Scaling, rows: u64, cols: u64) -> f64 {
        let codes = (rows * cols) as f64 * format.bytes() as f64;
        if !format.is_fp8() || scaling == Scaling::NONE {
            return codes;
        }
        let b = scaling.block(Role::Weights, rows as usize, cols as usize);
        let blocks = rows.div_ceil(b.rows as u64) * cols.div_ceil(b.cols as u64);
        codes + (blocks * scaling.scale_format.bytes() as u64) as f64
    }

    /// Bytes of the whole model's weights stored this way (embedding and vectors as the head).
    pub fn model_bytes(&self, model: &Model) -> f64 {
        model
            .tensors()
            .iter()
            .map(|t| {
                let op = if t.kind == TensorKind::Linear { Operand::Linear } else { Operand::KeptBf16 };
                let (f, s) = self.operand(op);
                Self::weight_bytes(f, s, t.rows, t.cols) * t.count as f64
            })
            .sum()
    }
}

/// How much of each product to measure, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Weight-operand bytes of a decode slice (past the last-level cache).
    pub slice_bytes: u64,
    /// Most multiply-adds of one slice (bounds the f64 reference).
    pub max_macs: u64,
    /// Most rows (tokens) of one slice.
    pub max_m: u64,
    /// Passes over the whole list of slices; each slice's samples are pooled over them.
    pub passes: usize,
    /// The timing of one slice in one pass.
    pub timing: TimerConfig,
}

impl Sampling {
    /// What `run --model` uses: 64 MiB decode slices (twice a 32 MiB L3), prefill slices of up to
    /// 512 tokens and 2³⁰ multiply-adds, a short time budget per product in each of three passes
    /// over the run (until 2026-12-04 one pass of 150 ms: each product's time was one moment of a
    /// shared host, and the decode FP8/BF16 ratio swung 1.4–2.0× between runs).
    pub fn standard() -> Sampling {
        Sampling {
            slice_bytes: 64 << 20,
            max_macs: 1 << 30,
            max_m: 512,
            passes: 3,
            timing: TimerConfig {
                warmup_runs: 1,
                warmup: Duration::from_millis(20),
                budget: Duration::from_millis(60),
                min_samples: 3,
                max_samples: 200,
                min_sample: crate::measure::timer::MIN_SAMPLE,
            },
        }
    }

    /// `--quick` (and tests): slices of a few hundred KiB, milliseconds of timing. The shapes of
    /// the step are still the real ones; only the measured slices shrink.
    pub fn quick() -> Sampling {
        Sampling {
            slice_bytes: 192 << 10,
            max_macs: 2 << 20,
            max_m: 8,
            passes: 1,
            timing: TimerConfig {
                warmup_runs: 1,
                warmup: Duration::from_millis(1),
                budget: Duration::from_millis(5),
                min_samples: 2,
                max_samples: 20,
                min_sample: crate::measure::timer::MIN_SAMPLE,
            },
        }
    }

    /// The measured `(m, n, k)` of a product whose weight operand is stored in `format`.
    pub fn slice(&self, p: &Product, format: Format, phase: Phase) -> (u64, u64, u64) {
        let m = p.m.min(self.max_m).max(1);
        if phase == Phase::Prefill {
            let n = p.n.clamp(1, PREFILL_N);
            let k = if m * n * p.k <= self.max_macs {
                p.k
            } else {
                (self.max_macs / (m * n) / K_STEP * K_STEP).max(K_STEP).min(p.k)
            };
            let n = n.min((self.max_macs / (m * k)).max(1));
            return (m, n.min(MAX_DIM as u64), k);
        }
        let by_bytes = self.slice_bytes.div_ceil(p.k * format.bytes() as u64);
        let by_macs = self.max_macs / (m * p.k);
        let n = by_bytes.min(by_macs).max(1);
        (m, n.min(MAX_DIM as u64), p.k)
    }
}

/// One product of one step, with the slice that measures it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub step: ModelStep,
    pub spec: ProblemSpec,
    /// Progress label: model, phase, layer kind and product.
    pub label: String,
}

/// Every product of every (model × phase × format) step, with its slice.
pub fn plan(
    models: &[&Model],
    shapes: &[StepShape],
    formats: &[StepFormat],
    sampling: &Sampling,
    seed: u64,
) -> Vec<Planned> {
    let mut out = Vec::new();
    for model in models {
        for s in shapes {
            for sf in formats {
                for p in shapes::products(model, s) {
                    let (format, scaling) = sf.operand(p.operand);
                    let (m, n, k) = sampling.slice(&p, format, s.phase);
                    let op = if m == 1 { Op::Gemv } else { Op::Gemm };
                    let spec = ProblemSpec::new(op, m as usize, n as usize, k as usize, format, scaling)
                        .with_act_format(sf.act(p.operand))
                        .with_seed(seed);
                    let step = ModelStep {
                        model: model.id.clone(),
                        phase: s.phase.name().into(),
                        step_format: sf.label(),
                        layer: p.layer.into(),
                        product: p.name.clone(),
                        part: p.part.name().into(),
                        count: p.count,
                        m: p.m as usize,
                        n: p.n as usize,
                        k: p.k as usize,
                        scale: p.m as f64 * p.n as f64 * p.k as f64 / (m * n * k) as f64,
                        batch: s.batch,
                        prompt: s.prompt,
                        context: s.context,
                        roofs_after: None,
                    };
                    // Unique per product and step format: the runner tells products apart by it.
                    let label = format!("{} {} {} · {}: {}", model.id, s.phase, sf.label(), p.layer, p.name);
                    out.push(Planned { step, spec, label });
                }
            }
        }
    }
    out
}

/// The distinct slices to run, in first-seen order, as runner cases.
pub fn cases(planned: &[Planned]) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    for p in planned {
        if !out.iter().any(|c| c.spec == p.spec) {
            out.push(Case { shape: p.label.clone(), spec: p.spec });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles;

    #[test]
    fn formats_parse_with_deepseek_by_default() {
        assert_eq!(StepFormat::parse("e4m3").unwrap(), StepFormat::DEFAULTS[0]);
        assert_eq!(StepFormat::parse("bf16").unwrap().label(), "bf16:none");
        assert_eq!(StepFormat::parse("e4m3:mx32").unwrap().scaling, Scaling::MX32);
        let e = StepFormat::parse("int4").unwrap_err().to_string();
        assert!(e.contains("--format") && e.contains("e4m3:deepseek"), "{e}");
        assert!(StepFormat::parse("bf16:mx32").is_err());
    }

    #[test]
    fn fp8_weights_match_the_planners_bytes() {
        use crate::project::planner::{weight_bytes, WeightPrecision};
        for id in ["deepseek-v3", "llama-3.1-8b"] {
            let m = profiles::model(id).unwrap();
            for (sf, p) in [
                (StepFormat::DEFAULTS[0], WeightPrecision::Fp8),
                (StepFormat::DEFAULTS[1], WeightPrecision::Bf16),
            ] {
                let want = weight_bytes(&m, p, None).total();
                let got = sf.model_bytes(&m);
                assert!((got / want - 1.0).abs() < 1e-9, "{id} {}: {got} vs {want}", sf.label());
            }
            let f32 = StepFormat::DEFAULTS[2].model_bytes(&m);
            assert_eq!(f32, 4.0 * m.param_counts().total as f64);
        }
    }

    #[test]
    fn slices_are_bounded_and_scale_back_to_the_product() {
        let m = profiles::model("deepseek-v3").unwrap();
        let s = Sampling::standard();
        let decode = StepShape { phase: Phase::Decode, batch: 1, prompt: 512, context: 4096 };
        let prefill = StepShape { phase: Phase::Prefill, ..decode };
        let planned = plan(&[&m], &[decode, prefill], &StepFormat::DEFAULTS, &s, 7);
        for p in &planned {
            let sp = &p.spec;
            assert!((sp.m * sp.n * sp.k) as u64 <= s.max_macs, "{}: {sp:?}", p.label);
            let back = p.step.scale * (sp.m * sp.n * sp.k) as f64;
            assert!((back / (p.step.m * p.step.n * p.step.k) as f64 - 1.0).abs() < 1e-12);
            if p.step.phase == "decode" && sp.m == 1 {
                // Weights of a decode GEMV slice are past a 32 MiB cache.
                assert!(sp.n * sp.k * sp.format.bytes() >= 64 << 20, "{}: {sp:?}", p.label);
            }
            if p.step.phase == "prefill" {
                // All 512 prompt rows, the real n up to PREFILL_N, K in whole 256-blocks (or all).
                assert!(sp.m == p.step.m.min(512) && sp.n <= p.step.n && sp.k <= p.step.k, "{sp:?}");
                assert!(sp.n == p.step.n.min(PREFILL_N as usize), "{}: {sp:?}", p.label);
                assert!(sp.k == p.step.k || sp.k % K_STEP as usize == 0, "{}: {sp:?}", p.label);
            } else {
                assert_eq!(sp.k, p.step.k);
            }
        }
        // FP8 head and router stay BF16 and are measured once for both the FP8 and BF16 steps.
        let cs = cases(&planned);
        assert!(cs.len() < planned.len());
        let heads: Vec<_> = planned.iter().filter(|p| p.step.product == "lm head").collect();
        assert_eq!(heads.len(), 6);
        assert!(heads.iter().all(|p| p.spec.format != Format::E4M3));
        let fp8 = heads.iter().find(|p| p.step.step_format == "e4m3:deepseek" && p.step.phase == "decode");
        let bf16 = heads.iter().find(|p| p.step.step_format == "bf16:none" && p.step.phase == "decode");
        assert_eq!(fp8.unwrap().spec, bf16.unwrap().spec);
        // Decode slices depend on k and the format only: one measurement serves every product
        // with the same k (q_a, kv_a, the FFN's and experts' gate/up all read 7168-wide rows).
        let k7168 = cs.iter().filter(|c| c.spec.k == 7168 && c.spec.m == 1 && c.spec.format == Format::E4M3);
        assert_eq!(k7168.count(), 1);
    }
}

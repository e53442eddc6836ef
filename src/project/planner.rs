//! Model planner: what serving or training a model takes on a chip, from the model's computed
//! tensors and the chip's sourced figures. Every number is a bound a reader can redo by hand;
//! [`Plan`] keeps the inputs next to the results.
//!
//! Conventions and assumptions (printed with the table):
//! - GB = 10⁹ bytes; a chip holds weights + KV cache in `usable_memory` (default 90 %) of its
//!   capacity, the rest left for activations, runtime and fragmentation.
//! - Weights: BF16 = 2 bytes per parameter. FP8 = DeepSeek-V3's checkpoint recipe: Linear
//!   matrices in E4M3 (1 byte) plus one f32 scale per 128×128 block (zero-padded edges count as
//!   whole blocks); embedding, head, router, norms and biases stay BF16.
//! - KV cache in BF16 (2 bytes per element): MLA caches `kv_lora_rank + qk_rope_head_dim` per
//!   token per layer, GQA `2 · n_kv_heads · head_dim`.
//! - Decode: each step reads the active weights once plus every sequence's KV cache; with a
//!   batch of B tokens per step an MoE layer reads E·(1−(1−k/E)^B) distinct routed experts
//!   (uniform routing). Tokens/s ≤ B · n · BW / bytes per step, split ideally over n chips.
//! - Prefill: 2·N_active FLOPs per token plus attention scores at the average causal length
//!   context/2, at the precision's dense peak (FP8 without native support: BF16 rate).
//! - Training: see [`TRAIN_BF16`] and [`TRAIN_FP8`]; 6·N_active FLOPs per token.
//! - Collectives run at the chip's scale-up link, per direction (a bidirectional figure is
//!   halved), on every hop: optimistic beyond one NVLink/HCCS domain.
//! - FP8 MoE dispatch travels as DeepSeek-V3 sends it: E4M3 codes plus one f32 scale per 1×128
//!   tile (7168 + 56·4 bytes per token per expert for DeepSeek-V3: 0.516× the BF16 bytes).

use super::roofline::{peak_for, PeakUsed};
use crate::formats::Format;
use crate::profiles::{Chip, Model, TensorKind};
use crate::{Error, Result};
use std::str::FromStr;

/// Precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightPrecision {
    Bf16,
    /// E4M3 with 128×128 f32 block scales (DeepSeek-V3).
    Fp8,
}

impl FromStr for WeightPrecision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bf16" => Ok(WeightPrecision::Bf16),
            "fp8" | "e4m3" => Ok(WeightPrecision::Fp8),
            _ => Err(Error::invalid("precision", s, "fp8, bf16")),
        }
    }
}

impl WeightPrecision {
    pub fn name(self) -> &'static str {
        match self {
            WeightPrecision::Bf16 => "bf16",
            WeightPrecision::Fp8 => "fp8",
        }
    }
    fn format(self) -> Format {
        match self {
            WeightPrecision::Bf16 => Format::BF16,
            WeightPrecision::Fp8 => Format::E4M3,
        }
    }
}

/// Block edge of DeepSeek-V3's weight scales.
pub const SCALE_BLOCK: u64 = 128;
/// Bytes of one f32 block scale.
pub const SCALE_BYTES: u64 = 4;
/// KV-cache element size (BF16).
pub const KV_BYTES: f64 = 2.0;

/// Training state in bytes per parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingBytes {
    pub name: &'static str,
    pub weights: f64,
    pub gradients: f64,
    pub optimizer: f64,
    pub master: f64,
    pub source: &'static str,
}

impl TrainingBytes {
    pub fn per_param(&self) -> f64 {
        self.weights + self.gradients + self.optimizer + self.master
    }
}

/// BF16 mixed precision with Adam: BF16 weights (2) + BF16 gradients (2) + FP32 Adam m and v (8)
/// + FP32 master weights (4) = 16 bytes per parameter.
pub const TRAIN_BF16: TrainingBytes = TrainingBytes {
    name: "bf16 mixed precision",
    weights: 2.0,
    gradients: 2.0,
    optimizer: 8.0,
    master: 4.0,
    source: "ZeRO (Rajbhandari et al. 2020, arXiv 1910.02054 sec. 3.1): mixed-precision Adam holds 2+2+12 = 16 bytes per parameter",
};

/// DeepSeek-V3 FP8 recipe: FP8 working copy of the weights for the GEMMs (1), FP32 gradients
/// (4), AdamW moments in BF16 (2+2), FP32 master weights (4) = 13 bytes per parameter.
pub const TRAIN_FP8: TrainingBytes = TrainingBytes {
    name: "DeepSeek-V3 FP8 recipe",
    weights: 1.0,
    gradients: 4.0,
    optimizer: 4.0,
    master: 4.0,
    source: "DeepSeek-V3 report arXiv 2412.19437 sec. 3.3: master weights and gradients FP32, AdamW moments BF16, GEMM inputs FP8 (non-Linear tensors' BF16 copies, ~0.3 %, not counted)",
};

/// Activation bytes per token per layer for BF16 training with selective recomputation:
/// 34·hidden (Korthikanti et al. 2022, arXiv 2205.05198, eq. for sbh·34). An estimate for dense
/// blocks, used for MoE too; DeepSeek's FP8 activation caching is not modelled.
pub const ACTIVATION_BYTES_PER_HIDDEN: f64 = 34.0;

/// Planner inputs beyond model and chip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    pub precision: WeightPrecision,
    /// Tokens of context per sequence.
    pub context: u64,
    /// Tokens of the prompt the prefill bound takes (`None`: the context).
    pub prompt: Option<u64>,
    /// Sequences decoded together (and sequences per chip per training micro-batch).
    pub batch: u64,
    /// Fraction of chip memory available to weights + KV cache.
    pub usable_memory: f64,
    /// Chips in the training ring / expert-parallel group; default: chips the training state
    /// needs.
    pub train_chips: Option<u64>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            precision: WeightPrecision::Fp8,
            context: 4096,
            prompt: None,
            batch: 1,
            usable_memory: 0.9,
            train_chips: None,
        }
    }
}

/// Weight bytes split by what they are.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WeightBytes {
    /// Linear matrices (FP8 codes or BF16).
    pub linear: f64,
    /// f32 block scales (FP8 only).
    pub scales: f64,
    /// Embedding, head, router, norms, biases (BF16).
    pub other: f64,
}

impl WeightBytes {
    pub fn total(&self) -> f64 {
        self.linear + self.scales + self.other
    }
}

/// Weight bytes of the whole model, or of what one decode step reads for `batch` tokens when
/// `active_batch` is `Some(batch)`.
pub fn weight_bytes(model: &Model, precision: WeightPrecision, active_batch: Option<u64>) -> WeightBytes {
    let mut w = WeightBytes::default();
    for t in model.tensors() {
        let copies = match active_batch {
            None => t.count as f64,
            Some(b) if t.routed => {
                let moe = model.moe.as_ref().expect("routed tensors only exist with [moe]");
                let (e, k) = (moe.experts as f64, moe.experts_per_token as f64);
                t.count as f64 * (1.0 - (1.0 - k / e).powf(b as f64))
            }
            Some(_) => t.active as f64,
        };
        let numel = t.numel() as f64;
        match (precision, t.kind) {
            (WeightPrecision::Fp8, TensorKind::Linear) => {
                let blocks = t.rows.div_ceil(SCALE_BLOCK) * t.cols.div_ceil(SCALE_BLOCK);
                w.linear += numel * copies;
                w.scales += (blocks * SCALE_BYTES) as f64 * copies;
            }
            (WeightPrecision::Bf16, TensorKind::Linear) => w.linear += 2.0 * numel * copies,
            _ => w.other += 2.0 * numel * copies,
        }
    }
    w
}

/// Bytes per element of one token's hidden vector in the MoE dispatch: BF16 2; FP8 the E4M3
/// code plus its share of the 1×128 f32 tile scales (the collectives' wire format).
pub fn dispatch_bytes_per_element(precision: WeightPrecision, hidden: usize) -> f64 {
    let hidden = hidden.max(1);
    let format = match precision {
        WeightPrecision::Fp8 => Format::E4M3,
        WeightPrecision::Bf16 => Format::BF16,
    };
    crate::collectives::wire::ChunkBytes::of(format, hidden).total() as f64 / hidden as f64
}

/// A bound per chip and over the `n` chips together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_chip: f64,
    pub aggregate: f64,
}

/// Everything the planner derived, with its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub model_id: String,
    pub chip_id: String,
    pub chip_name: String,
    pub options: PlanOptions,
    pub total_params: u64,
    pub active_params: u64,
    pub weights: WeightBytes,
    pub kv_bytes_per_token: f64,
    pub kv_bytes: f64,
    pub chip_memory: f64,
    pub chip_bw: f64,
    /// Chips needed to hold weights + KV cache.
    pub chips_needed: u64,
    pub decode_bytes_per_step: f64,
    /// Attention FLOPs of one decode step (every sequence over its context, MLA absorbed).
    pub decode_attention_flops: f64,
    /// One decode step on one chip: the weights at the longer of their bytes at the bandwidth
    /// and their FLOPs (`2·N_active·batch`) at the precision's peak, plus the attention over the
    /// KV cache at the longer of its bytes and its FLOPs at the BF16 peak (the cache is BF16).
    pub decode_step_s: f64,
    /// Decode tokens/s bound (`batch / decode_step_s`).
    pub decode: Rate,
    pub prefill_peak: PeakUsed,
    pub prefill_flops_per_token: f64,
    /// Weight bytes the prompt ([`PlanOptions::prompt_tokens`]) reads: the routed experts its
    /// tokens touch, as a decode batch of that many tokens would (a 512-token prompt touches all
    /// of DeepSeek-V3's).
    pub prefill_bytes: f64,
    /// The prefill of one prompt on one chip: the longer of its weights at the bandwidth and its
    /// FLOPs at the precision's peak.
    pub prefill_step_s: f64,
    /// Prefill tokens/s bound (`prompt / prefill_step_s`), over `chips_needed`.
    pub prefill: Rate,
    pub train: TrainingBytes,
    pub train_state_bytes: f64,
    pub activation_bytes: f64,
    pub train_chips_needed: u64,
    pub train_flops_per_token: f64,
    /// Training tokens/s bound at the precision's peak, over the training chips.
    pub train_tokens_s: Rate,
    /// Ring size used for the collectives.
    pub ring: u64,
    /// Link bandwidth per direction (bytes/s) and how it was derived; `None` without a link.
    pub link: Option<(f64, &'static str)>,
    pub grad_bytes: f64,
    pub allreduce_s: Option<f64>,
    /// One MoE dispatch all-to-all (one layer, forward) and all of one training step.
    pub alltoall_bytes: f64,
    pub alltoall_s: Option<f64>,
    pub alltoall_step_s: Option<f64>,
}

fn need<T>(v: Option<T>, chip: &Chip, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::Unsupported(format!("chip {}: {what} is not sourced; cannot plan", chip.id)))
}

/// The ranges a real plan's options can take; anything outside is refused with its range (a
/// 10^12-token context would otherwise plan hundreds of thousands of chips for a petabyte cache).
/// Context: the longest any model offers is 10 M tokens.
pub const CONTEXT_MAX: u64 = 10_000_000;
/// Sequences per decode step or per chip per training micro-batch.
pub const BATCH_MAX: u64 = 65_536;
/// Chips in a training ring / expert-parallel group (the largest clusters are ~10^5).
pub const TRAIN_CHIPS_MAX: u64 = 1_000_000;
/// Fraction of chip memory for weights + KV cache.
pub const USABLE_MEMORY_MIN: f64 = 0.01;

impl PlanOptions {
    /// Tokens of the prompt the prefill bound takes: `prompt`, else the context.
    pub fn prompt_tokens(&self) -> u64 {
        self.prompt.unwrap_or(self.context)
    }

    /// Refuse an option outside the range a real plan can have, naming the range.
    pub fn check(&self) -> Result<()> {
        let int = |name: &str, v: u64, max: u64, unit: &str| {
            if (1..=max).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(name, &v.to_string(), &format!("1 to {max} {unit}")))
            }
        };
        int("--context", self.context, CONTEXT_MAX, "tokens")?;
        if let Some(p) = self.prompt {
            int("--prompt", p, CONTEXT_MAX, "tokens")?;
        }
        int("--batch", self.batch, BATCH_MAX, "sequences")?;
        if let Some(n) = self.train_chips {
            int("--train-chips", n, TRAIN_CHIPS_MAX, "chips")?;
        }
        if !(self.usable_memory >= USABLE_MEMORY_MIN && self.usable_memory <= 1.0) {
            return Err(Error::invalid(
                "--usable-memory",
                &self.usable_memory.to_string(),
                &format!("a fraction from {USABLE_MEMORY_MIN} to 1"),
            ));
        }
        Ok(())
    }
}

/// Plan `model` on `chip`.
pub fn plan(model: &Model, chip: &Chip, o: &PlanOptions) -> Result<Plan> {
    o.check()?;
    let counts = model.param_counts();
    let weights = weight_bytes(model, o.precision, None);
    let kv_bytes_per_token = model.kv_elements(1) as f64 * KV_BYTES;
    let kv_seq = model.kv_elements(o.context) as f64 * KV_BYTES;
    let kv_bytes = kv_seq * o.batch as f64;
    let chip_memory = need(chip.memory_bytes(), chip, "memory")?;
    let chip_bw = need(chip.memory_bw_bytes_s(), chip, "memory_bw")?;
    let usable = chip_memory * o.usable_memory;
    let chips_needed = ((weights.total() + kv_bytes) / usable).ceil().max(1.0) as u64;

    let prefill_peak = peak_for(chip, o.precision.format())?;
    // Decode: the weights and the attention over the cache, each at its own bound. Bytes alone
    // miss MLA's absorbed attention, which reads a small latent cache once for all 128 heads:
    // at 4096 tokens DeepSeek-V3 does 70 GFLOP of it per token (FLOP-bound on a CPU, and on an
    // H20 at batch ≥ 8, where its BF16 peak per byte is low).
    let step_weights = weight_bytes(model, o.precision, Some(o.batch)).total();
    let decode_bytes_per_step = step_weights + kv_bytes;
    let batch = o.batch as f64;
    let attention_peak = peak_for(chip, Format::BF16).map_or(prefill_peak.flops_s, |p| p.flops_s);
    let decode_attention_flops = batch * model.decode_attention_flops(o.context);
    let decode_step_s = (step_weights / chip_bw)
        .max(2.0 * counts.active as f64 * batch / prefill_peak.flops_s)
        + (kv_bytes / chip_bw).max(decode_attention_flops / attention_peak);
    let per_chip = batch / decode_step_s;
    let decode = Rate { per_chip, aggregate: per_chip * chips_needed as f64 };

    // Prefill: one prompt (of `context` tokens unless told), at the same roofline as a decode
    // batch of that many tokens. FLOPs alone miss a mixture of experts' short prompts: 512 tokens
    // give each of DeepSeek-V3's 256 experts 16 tokens (32 FLOP per FP8 weight byte), under the
    // H20's ridge (74) and the H800's (590), so reading the experts takes longer than their FLOPs.
    let prompt_tokens = o.prompt_tokens();
    let prompt = prompt_tokens as f64;
    let prefill_flops_per_token =
        2.0 * counts.active as f64 + model.attention_flops_per_token(prompt_tokens / 2);
    let prefill_bytes = weight_bytes(model, o.precision, Some(prompt_tokens)).total();
    let prefill_step_s =
        (prefill_bytes / chip_bw).max(prompt * prefill_flops_per_token / prefill_peak.flops_s);
    let per_chip = prompt / prefill_step_s;
    let prefill = Rate { per_chip, aggregate: per_chip * chips_needed as f64 };

    let train = match o.precision {
        WeightPrecision::Bf16 => TRAIN_BF16,
        WeightPrecision::Fp8 => TRAIN_FP8,
    };
    let train_state_bytes = train.per_param() * counts.total as f64;
    let tokens = (o.batch * o.context) as f64;
    let activation_bytes = ACTIVATION_BYTES_PER_HIDDEN
        * model.architecture.hidden as f64
        * model.architecture.layers as f64
        * tokens;
    let train_chips_needed = ((train_state_bytes + activation_bytes) / usable).ceil().max(1.0) as u64;
    let train_flops_per_token = 6.0 * counts.active as f64;
    let ring = o.train_chips.unwrap_or(train_chips_needed).max(1);
    let per_chip = prefill_peak.flops_s / train_flops_per_token;
    let train_tokens_s = Rate { per_chip, aggregate: per_chip * ring as f64 };

    let link = chip.link_per_direction_bytes_s();
    let n = ring as f64;
    // Gradients all-reduced in BF16 (2 bytes per parameter), whole model, ring algorithm.
    let grad_bytes = 2.0 * counts.total as f64;
    let allreduce_s = link.map(|(bw, _)| 2.0 * (n - 1.0) / n * grad_bytes / bw);
    // MoE dispatch: every token sends its hidden vector to k experts, (n-1)/n of them elsewhere;
    // FP8 dispatch (1 byte) under the FP8 recipe, else BF16; combine and backward in BF16.
    let (alltoall_bytes, alltoall_s, alltoall_step_s) = match &model.moe {
        Some(moe) => {
            let h = model.architecture.hidden as f64;
            let k = moe.experts_per_token as f64;
            let dispatch = dispatch_bytes_per_element(o.precision, model.architecture.hidden as usize);
            let off = (n - 1.0) / n;
            let one = tokens * k * h * dispatch * off;
            // Forward: dispatch + combine (2 B); backward: both directions again in BF16.
            let step = model.moe_layers() as f64 * tokens * k * h * off * (dispatch + 2.0 + 2.0 + 2.0);
            (one, link.map(|(bw, _)| one / bw), link.map(|(bw, _)| step / bw))
        }
        None => (0.0, None, None),
    };
    Ok(Plan {
        model_id: model.id.clone(),
        chip_id: chip.id.clone(),
        chip_name: chip.name.clone(),
        options: *o,
        total_params: counts.total,
        active_params: counts.active,
        weights,
        kv_bytes_per_token,
        kv_bytes,
        chip_memory,
        chip_bw,
        chips_needed,
        decode_bytes_per_step,
        decode_attention_flops,
        decode_step_s,
        decode,
        prefill_peak,
        prefill_flops_per_token,
        prefill_bytes,
        prefill_step_s,
        prefill,
        train,
        train_state_bytes,
        activation_bytes,
        train_chips_needed,
        train_flops_per_token,
        train_tokens_s,
        ring,
        link,
        grad_bytes,
        allreduce_s,
        alltoall_bytes,
        alltoall_s,
        alltoall_step_s,
    })
}

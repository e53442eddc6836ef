//! The matrix products of one decoder step, computed from a model's architecture: every distinct
//! product once, with how many times one step runs it.
//!
//! Conventions (DESIGN.md's problem: `C[m×n] = A[m×k] · Wᵀ`, W stored n × k):
//! - Linear layers: `m` = tokens of the step (decode: the batch; prefill: the prompt), `n` = out,
//!   `k` = in. Identical shapes are one product with a count (Llama's k and v: 2 per layer).
//! - MoE: the shared experts see every token; the routed experts of one layer are the distinct
//!   experts a uniformly routed batch of T tokens touches, `E·(1−(1−k/E)^T)`, each with
//!   `T·k / distinct` tokens (rounded up). Counts are therefore fractional.
//! - Attention over the KV cache (decode): per sequence and layer, `q·Kᵀ` and `p·V` as small
//!   GEMMs whose "weights" are the cache. GQA: per KV head, the `n_heads/n_kv_heads` query heads
//!   of its group against `context × head_dim`. MLA (absorbed, as DeepSeek decodes): all heads
//!   against the cached latent, `context × (kv_lora_rank + rope)` for the scores and
//!   `context × kv_lora_rank` for the values.
//! - Attention in prefill: per head, `prompt × prompt` scores over `qk` dims and `prompt × v`
//!   outputs, half of them counted (causal masking: the average query sees half the prompt, as
//!   the planner counts it). MLA prefill is not absorbed (DeepSeek expands k and v per head).
//! - LM head: every token of the step (prefill too, as the planner's 2·N_active FLOPs count it).
//! - Left out: norms, RoPE, softmax, activation functions, the embedding lookup (one row per
//!   token), sampling. See docs/model-step.md.

use crate::profiles::Model;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// One new token per sequence of the batch, attending to `context` cached tokens.
    Decode,
    /// The whole prompt at once.
    Prefill,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Decode => "decode",
            Phase::Prefill => "prefill",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What part of the model a product belongs to (the columns of the step table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// q/k/v/o (GQA) or q_a/q_b/kv_a/kv_b/o (MLA).
    AttnProj,
    /// q·Kᵀ and p·V over the KV cache (decode) or the prompt (prefill).
    AttnKv,
    /// Dense FFN, shared and routed experts, router.
    Ffn,
    /// The LM head.
    Head,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::AttnProj, Part::AttnKv, Part::Ffn, Part::Head];

    pub fn name(self) -> &'static str {
        match self {
            Part::AttnProj => "attn-proj",
            Part::AttnKv => "attn-kv",
            Part::Ffn => "ffn",
            Part::Head => "head",
        }
    }
}

/// What the "weight" operand of a product is: it decides its storage format in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operand {
    /// A Linear weight matrix: stored in the step's format (FP8 with block scales, BF16, F32).
    Linear,
    /// LM head and router: kept in BF16 by DeepSeek's FP8 recipe (the planner's convention).
    KeptBf16,
    /// The KV cache (decode) or the prompt's K/V (prefill): BF16, as the planner counts it.
    Kv,
}

/// One distinct matrix product of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    /// The layer kind it belongs to: "all layers", "dense layers", "moe layers", "output".
    pub layer: &'static str,
    /// What it is, e.g. "kv_a (wkv_a)".
    pub name: String,
    pub part: Part,
    pub operand: Operand,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    /// Times one step runs it (fractional for routed experts and causal attention).
    pub count: f64,
}

impl Product {
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.count
    }
    /// Weight-operand elements read per step (each copy once).
    pub fn weight_elements(&self) -> f64 {
        self.n as f64 * self.k as f64 * self.count
    }
}

/// Expected number of distinct experts `tokens` uniformly routed tokens touch (top-`k` of `e`).
pub fn distinct_experts(e: u64, k: u64, tokens: u64) -> f64 {
    let (e, k) = (e as f64, k as f64);
    e * (1.0 - (1.0 - k / e).powf(tokens as f64))
}

/// What to build a step for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    pub phase: Phase,
    /// Sequences decoded together (decode).
    pub batch: u64,
    /// Prompt tokens (prefill).
    pub prompt: u64,
    /// Cached tokens each decoded token attends to (decode).
    pub context: u64,
}

impl StepShape {
    /// Tokens whose activations go through the Linear layers in one step.
    pub fn tokens(&self) -> u64 {
        match self.phase {
            Phase::Decode => self.batch,
            Phase::Prefill => self.prompt,
        }
    }
}

/// The distinct products of one step of `model`, in the order a layer runs them.
pub fn products(model: &Model, s: &StepShape) -> Vec<Product> {
    let t = s.tokens().max(1);
    let h = model.architecture.hidden;
    let l = model.architecture.layers as f64;
    let at = &model.attention;
    let mut out = Vec::new();
    let mut push = |layer, name: &str, part, operand, m: u64, n: u64, k: u64, count: f64| {
        if n * k > 0 && count > 0.0 && m > 0 {
            out.push(Product { layer, name: name.to_string(), part, operand, m, n, k, count });
        }
    };
    use Operand::*;
    use Part::*;
    let all = "all layers";
    if at.kind == "mla" {
        let nh = at.n_heads;
        let (nope, rope) = (at.qk_nope_head_dim.unwrap_or(0), at.qk_rope_head_dim.unwrap_or(0));
        let (rank, vd) = (at.kv_lora_rank.unwrap_or(0), at.v_head_dim.unwrap_or(0));
        match at.q_lora_rank.filter(|&r| r > 0) {
            Some(qr) => {
                push(all, "q_a (wq_a)", AttnProj, Linear, t, qr, h, l);
                push(all, "q_b (wq_b)", AttnProj, Linear, t, nh * (nope + rope), qr, l);
            }
            None => push(all, "q (wq)", AttnProj, Linear, t, nh * (nope + rope), h, l),
        }
        push(all, "kv_a (wkv_a)", AttnProj, Linear, t, rank + rope, h, l);
        push(all, "kv_b (wkv_b)", AttnProj, Linear, t, nh * (nope + vd), rank, l);
        push(all, "o (wo)", AttnProj, Linear, t, h, nh * vd, l);
        match s.phase {
            Phase::Decode => {
                let c = s.context.max(1);
                let per = l * s.batch as f64;
                push(all, "scores q·Kᵀ (latent)", AttnKv, Kv, nh, c, rank + rope, per);
                push(all, "p·V (latent)", AttnKv, Kv, nh, rank, c, per);
            }
            Phase::Prefill => {
                let p = s.prompt.max(1);
                let per = 0.5 * l * nh as f64;
                push(all, "scores q·Kᵀ (per head)", AttnKv, Kv, p, p, nope + rope, per);
                push(all, "p·V (per head)", AttnKv, Kv, p, vd, p, per);
            }
        }
    } else {
        let nh = at.n_heads;
        let kvh = at.n_kv_heads.unwrap_or(nh);
        let hd = at.head_dim.unwrap_or(h / nh);
        push(all, "q", AttnProj, Linear, t, nh * hd, h, l);
        push(all, "k, v", AttnProj, Linear, t, kvh * hd, h, 2.0 * l);
        push(all, "o", AttnProj, Linear, t, h, nh * hd, l);
        match s.phase {
            Phase::Decode => {
                let c = s.context.max(1);
                let group = nh / kvh.max(1);
                let per = l * (kvh * s.batch) as f64;
                push(all, "scores q·Kᵀ (per kv head)", AttnKv, Kv, group, c, hd, per);
                push(all, "p·V (per kv head)", AttnKv, Kv, group, hd, c, per);
            }
            Phase::Prefill => {
                let p = s.prompt.max(1);
                let per = 0.5 * l * nh as f64;
                push(all, "scores q·Kᵀ (per head)", AttnKv, Kv, p, p, hd, per);
                push(all, "p·V (per head)", AttnKv, Kv, p, hd, p, per);
            }
        }
    }
    let dense = model.dense_layers() as f64;
    if let Some(ffn) = &model.ffn {
        push("dense layers", "ffn gate, up", Ffn, Linear, t, ffn.dim, h, 2.0 * dense);
        push("dense layers", "ffn down", Ffn, Linear, t, h, ffn.dim, dense);
    }
    if let Some(moe) = &model.moe {
        let ml = model.moe_layers() as f64;
        let (e, k, d) = (moe.experts, moe.experts_per_token, moe.expert_dim);
        let s_ = moe.shared_experts as f64;
        push("moe layers", "router", Ffn, KeptBf16, t, e, h, ml);
        push("moe layers", "shared expert gate, up", Ffn, Linear, t, d, h, 2.0 * s_ * ml);
        push("moe layers", "shared expert down", Ffn, Linear, t, h, d, s_ * ml);
        let distinct = distinct_experts(e, k, t);
        // Rounded up, but 4096 picks over 255.99998 experts is 16 tokens each, not 17.
        let x = (t * k) as f64 / distinct;
        let per_expert = if (x - x.round()).abs() < 1e-3 { x.round() } else { x.ceil() }.max(1.0) as u64;
        push("moe layers", "routed expert gate, up", Ffn, Linear, per_expert, d, h, 2.0 * distinct * ml);
        push("moe layers", "routed expert down", Ffn, Linear, per_expert, h, d, distinct * ml);
    }
    // Tied or not, the head multiplies with a vocab × hidden matrix.
    push("output", "lm head", Head, KeptBf16, t, model.architecture.vocab, h, 1.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles;

    fn find<'a>(ps: &'a [Product], name: &str) -> &'a Product {
        ps.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} not in {ps:?}"))
    }

    fn decode(batch: u64, context: u64) -> StepShape {
        StepShape { phase: Phase::Decode, batch, prompt: 512, context }
    }

    #[test]
    fn deepseek_v3_decode_shapes_by_hand() {
        let m = profiles::model("deepseek-v3").unwrap();
        let ps = products(&m, &decode(1, 4096));
        let dims = |n: &str| {
            let p = find(&ps, n);
            (p.m, p.n, p.k, p.count)
        };
        // config_671B.json: dim 7168, q_lora_rank 1536, kv_lora_rank 512, rope 64, nope 128,
        // v 128, 128 heads, 61 layers of which 3 dense (inter 18432) and 58 MoE (moe_inter 2048).
        assert_eq!(dims("q_a (wq_a)"), (1, 1536, 7168, 61.0));
        assert_eq!(dims("q_b (wq_b)"), (1, 128 * 192, 1536, 61.0));
        assert_eq!(dims("kv_a (wkv_a)"), (1, 576, 7168, 61.0));
        assert_eq!(dims("kv_b (wkv_b)"), (1, 128 * 256, 512, 61.0));
        assert_eq!(dims("o (wo)"), (1, 7168, 128 * 128, 61.0));
        assert_eq!(dims("ffn gate, up"), (1, 18432, 7168, 6.0));
        assert_eq!(dims("ffn down"), (1, 7168, 18432, 3.0));
        assert_eq!(dims("shared expert gate, up"), (1, 2048, 7168, 2.0 * 58.0));
        assert_eq!(dims("router"), (1, 256, 7168, 58.0));
        // One token activates exactly 8 routed experts.
        let r = find(&ps, "routed expert down");
        assert_eq!((r.m, r.n, r.k), (1, 7168, 2048));
        assert!((r.count - 8.0 * 58.0).abs() < 1e-9, "{}", r.count);
        assert_eq!(dims("scores q·Kᵀ (latent)"), (128, 4096, 576, 61.0));
        assert_eq!(dims("p·V (latent)"), (128, 512, 4096, 61.0));
        assert_eq!(dims("lm head"), (1, 129280, 7168, 1.0));
        // The Linear weights one token reads: the computed active parameters minus head, router,
        // norms (all BF16 or vectors) — i.e. the MoE/attention matrices of the profile.
        let linear: f64 =
            ps.iter().filter(|p| p.operand == Operand::Linear).map(Product::weight_elements).sum();
        let active = m.param_counts().active as f64;
        let head = 129280.0 * 7168.0;
        let router = 256.0 * 7168.0 * 58.0;
        assert!((active - head - router - linear) / active < 1e-3, "{linear} vs {active}");
    }

    #[test]
    fn batch_touches_the_expected_distinct_experts() {
        assert!((distinct_experts(256, 8, 1) - 8.0).abs() < 1e-9);
        // 32 tokens × 8 = 256 picks over 256 experts: 256·(1 − (31/32)^32) = 256·(1 − 0.36206).
        assert!((distinct_experts(256, 8, 32) - 163.31).abs() < 0.01, "{}", distinct_experts(256, 8, 32));
        assert!(distinct_experts(256, 8, 100_000) <= 256.0);
        let m = profiles::model("deepseek-v3").unwrap();
        let ps = products(&m, &decode(32, 128));
        let r = find(&ps, "routed expert gate, up");
        // 256 picks over ~163.3 experts: 2 tokens each (rounded up).
        assert_eq!(r.m, 2);
        let p = products(&m, &StepShape { phase: Phase::Prefill, batch: 1, prompt: 512, context: 1 });
        // 512 tokens × 8 picks over (all but 1e-7 of) 256 experts: 16 tokens each.
        assert_eq!(find(&p, "routed expert down").m, 16);
        assert!((r.count - 2.0 * 58.0 * 163.31).abs() < 1.0);
        // Every sequence has its own cache.
        assert_eq!(find(&ps, "p·V (latent)").count, 61.0 * 32.0);
    }

    #[test]
    fn llama_3_1_8b_shapes_by_hand() {
        let m = profiles::model("llama-3.1-8b").unwrap();
        let ps = products(&m, &decode(1, 2048));
        let dims = |n: &str| {
            let p = find(&ps, n);
            (p.m, p.n, p.k, p.count)
        };
        // 32 layers, hidden 4096, 32 heads of 128, GQA with 8 KV heads, FFN 14336, vocab 128256.
        assert_eq!(dims("q"), (1, 4096, 4096, 32.0));
        assert_eq!(dims("k, v"), (1, 1024, 4096, 64.0));
        assert_eq!(dims("o"), (1, 4096, 4096, 32.0));
        assert_eq!(dims("ffn gate, up"), (1, 14336, 4096, 64.0));
        assert_eq!(dims("ffn down"), (1, 4096, 14336, 32.0));
        assert_eq!(dims("scores q·Kᵀ (per kv head)"), (4, 2048, 128, 32.0 * 8.0));
        assert_eq!(dims("p·V (per kv head)"), (4, 128, 2048, 32.0 * 8.0));
        assert_eq!(dims("lm head"), (1, 128256, 4096, 1.0));
        assert!(ps.iter().all(|p| p.name != "router"));
        // Weights read per token = the computed active parameters, less norms (vectors).
        let read: f64 = ps.iter().filter(|p| p.operand != Operand::Kv).map(Product::weight_elements).sum();
        let active = m.param_counts().active as f64;
        assert!((active - read) / active < 1e-4 && read <= active, "{read} vs {active}");
        // KV elements read per token = the profile's KV cache for that context.
        let kv: f64 = ps.iter().filter(|p| p.operand == Operand::Kv).map(Product::weight_elements).sum();
        assert_eq!(kv, m.kv_elements(2048) as f64);
    }

    #[test]
    fn prefill_counts_the_planners_flops() {
        for id in ["llama-3.1-8b", "deepseek-v3", "mixtral-8x7b"] {
            let m = profiles::model(id).unwrap();
            let p = 512;
            let s = StepShape { phase: Phase::Prefill, batch: 1, prompt: p, context: 4096 };
            let ps = products(&m, &s);
            let flops: f64 = ps.iter().map(Product::flops).sum();
            // The planner: 2·N_active per token plus attention at the average causal length.
            let want = p as f64 * (2.0 * m.param_counts().active as f64 + m.attention_flops_per_token(p / 2));
            // Vectors (norms) left out: within 0.5 %.
            assert!((flops / want - 1.0).abs() < 0.005, "{id}: {flops:.4e} vs {want:.4e}");
            assert!(ps.iter().all(|x| x.m >= 1 && x.count > 0.0));
        }
    }
}

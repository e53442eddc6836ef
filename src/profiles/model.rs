//! Model profiles: architecture fields from which chipbench *computes* the parameter counts
//! (total and active per token), the weight tensors the planner sizes, and the KV cache.
//!
//! Schema (see `configs/models/deepseek-v3.toml`): top-level `id`, `name`, `aliases`,
//! `native_precision`, `architecture_source`; `[params]` with the publisher's `total_b` and
//! `active_b` figures (value + source + alternatives) and the publisher's counting convention
//! `active_includes_input_embedding`; `[architecture]` (layers, hidden, vocab, ...),
//! `[attention]` (`kind = "mla"` with DeepSeek's low-rank dims, or `"gqa"`), `[ffn]` (dense
//! SwiGLU width) and `[moe]` (experts, shared experts, top-k, expert width, router).

use super::figure::Figure;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub native_precision: String,
    #[serde(default)]
    pub native_precision_source: String,
    /// Where the architecture fields come from (config file, paper).
    pub architecture_source: String,
    #[serde(default)]
    pub notes: Vec<String>,
    pub params: Published,
    pub architecture: Architecture,
    pub attention: Attention,
    #[serde(default)]
    pub ffn: Option<DenseFfn>,
    #[serde(default)]
    pub moe: Option<Moe>,
    #[serde(skip)]
    pub origin: String,
}

/// The publisher's parameter counts (billions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub total_b: Figure,
    pub active_b: Figure,
    /// Whether the publisher's active count includes the input-embedding table. chipbench's own
    /// [`ParamCounts::active`] never does (a token reads one row of it, not the matrix).
    pub active_includes_input_embedding: bool,
    pub active_convention_source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub layers: u64,
    /// Layers with a dense FFN; the rest are MoE layers (0 for all-MoE, `layers` for dense).
    #[serde(default)]
    pub dense_layers: Option<u64>,
    pub hidden: u64,
    pub vocab: u64,
    #[serde(default)]
    pub tied_embeddings: bool,
    #[serde(default)]
    pub context_len: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attention {
    /// "mla" (DeepSeek multi-head latent attention) or "gqa" (grouped-query, incl. MHA).
    pub kind: String,
    pub n_heads: u64,
    // GQA
    #[serde(default)]
    pub n_kv_heads: Option<u64>,
    #[serde(default)]
    pub head_dim: Option<u64>,
    #[serde(default)]
    pub qkv_bias: bool,
    #[serde(default)]
    pub o_bias: bool,
    /// Learned attention-sink logits, one per head per layer (gpt-oss).
    #[serde(default)]
    pub sinks: bool,
    /// Sliding-window attention: window length and how many layers use it.
    #[serde(default)]
    pub sliding_window: Option<u64>,
    #[serde(default)]
    pub sliding_layers: Option<u64>,
    // MLA
    #[serde(default)]
    pub q_lora_rank: Option<u64>,
    #[serde(default)]
    pub kv_lora_rank: Option<u64>,
    #[serde(default)]
    pub qk_nope_head_dim: Option<u64>,
    #[serde(default)]
    pub qk_rope_head_dim: Option<u64>,
    #[serde(default)]
    pub v_head_dim: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseFfn {
    /// SwiGLU intermediate width (gate, up, down: 3 matrices).
    pub dim: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moe {
    pub experts: u64,
    #[serde(default)]
    pub shared_experts: u64,
    pub experts_per_token: u64,
    /// SwiGLU width of one expert.
    pub expert_dim: u64,
    #[serde(default)]
    pub router_bias: bool,
    /// Biases on the expert matrices (gpt-oss).
    #[serde(default)]
    pub expert_bias: bool,
}

/// What a tensor is, for precision decisions (DeepSeek's FP8 recipe keeps embedding, head,
/// router and vectors in BF16 and quantizes the Linear matrices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    Embedding,
    Head,
    /// A Linear weight matrix (attention projections, FFN, experts): quantizable.
    Linear,
    Router,
    /// Norm weights, biases, sinks.
    Vector,
}

/// A group of identical weight tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: &'static str,
    pub kind: TensorKind,
    /// Out × in for matrices; 1 × len for vectors.
    pub rows: u64,
    pub cols: u64,
    /// How many copies the model holds.
    pub count: u64,
    /// How many copies one token's forward pass multiplies with (0 for the input embedding).
    pub active: u64,
    /// Routed experts: with a batch of tokens, more distinct copies are read than one token uses.
    pub routed: bool,
}

impl Tensor {
    pub fn numel(&self) -> u64 {
        self.rows * self.cols
    }
}

/// Computed parameter counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamCounts {
    pub total: u64,
    /// Parameters one token multiplies with (excludes the input-embedding table).
    pub active: u64,
    pub embedding: u64,
}

impl ParamCounts {
    /// Active count in the publisher's convention, for comparison with `params.active_b`.
    pub fn active_as_published(&self, m: &Model) -> u64 {
        self.active + if m.params.active_includes_input_embedding { self.embedding } else { 0 }
    }
}

impl Model {
    pub fn parse(path: &Path, text: &str) -> Result<Model> {
        let mut m: Model = super::parse_toml(path, text)?;
        m.origin = path.display().to_string();
        m.validate(path)?;
        Ok(m)
    }

    pub fn validate(&self, path: &Path) -> Result<()> {
        let bil = super::figure::Rule { unit: "B", min: 0.1, max: 100_000.0, may_be_absent: false };
        self.params.total_b.validate(path, "params.total_b", bil)?;
        self.params.active_b.validate(path, "params.active_b", bil)?;
        let a = &self.architecture;
        for (f, v) in [
            ("architecture.layers", a.layers),
            ("architecture.hidden", a.hidden),
            ("architecture.vocab", a.vocab),
            ("attention.n_heads", self.attention.n_heads),
        ] {
            if v == 0 {
                return Err(Error::config(path, f, "must be positive"));
            }
        }
        // Every tensor has at most W × W elements (W the widest dimension) and at most
        // 3 · experts · 2 · layers copies; bounding that (in f64) keeps the u64 counts from
        // overflowing on absurd values.
        let at = &self.attention;
        let o = |v: Option<u64>| v.unwrap_or(0) as f64;
        let heads = at.n_heads as f64 + 2.0 * o(at.n_kv_heads);
        let head_dims = o(at.head_dim).max(a.hidden as f64)
            + o(at.qk_nope_head_dim)
            + o(at.qk_rope_head_dim)
            + o(at.v_head_dim);
        let (experts, expert_dim) = self
            .moe
            .as_ref()
            .map_or((1.0, 0.0), |m| ((m.experts.max(m.shared_experts).max(1)) as f64, m.expert_dim as f64));
        let widest = [
            a.vocab as f64,
            heads * head_dims,
            o(at.q_lora_rank) + o(at.kv_lora_rank) + o(at.qk_rope_head_dim),
            self.ffn.as_ref().map_or(0.0, |f| f.dim as f64),
            2.0 * expert_dim + a.hidden as f64,
        ]
        .into_iter()
        .fold(0.0, f64::max);
        let bound = 32.0 * widest * widest * 6.0 * experts * a.layers as f64;
        if bound >= 2f64.powi(63) {
            return Err(Error::config(
                path,
                "architecture",
                format!("dimensions too large to count (up to {bound:.1e} parameters): implausible"),
            ));
        }
        let dense = self.dense_layers();
        if dense > a.layers {
            return Err(Error::config(path, "architecture.dense_layers", "exceeds layers"));
        }
        if dense > 0 && self.ffn.is_none() {
            return Err(Error::config(path, "ffn", "missing: dense layers need [ffn] dim"));
        }
        if dense < a.layers && self.moe.is_none() {
            return Err(Error::config(path, "moe", "missing: MoE layers need [moe]"));
        }
        if let Some(moe) = &self.moe {
            if moe.experts_per_token == 0 || moe.experts_per_token > moe.experts {
                return Err(Error::config(path, "moe.experts_per_token", "must be 1..=experts"));
            }
        }
        let at = &self.attention;
        let need = |v: Option<u64>, f: &str| -> Result<u64> {
            v.filter(|&x| x > 0)
                .ok_or_else(|| Error::config(path, format!("attention.{f}"), "missing (required)"))
        };
        match at.kind.as_str() {
            "mla" => {
                need(at.kv_lora_rank, "kv_lora_rank")?;
                need(at.qk_nope_head_dim, "qk_nope_head_dim")?;
                need(at.qk_rope_head_dim, "qk_rope_head_dim")?;
                need(at.v_head_dim, "v_head_dim")?;
            }
            "gqa" => {
                let kv = need(at.n_kv_heads, "n_kv_heads")?;
                if !at.n_heads.is_multiple_of(kv) {
                    return Err(Error::config(path, "attention.n_kv_heads", "must divide n_heads"));
                }
            }
            other => {
                return Err(Error::invalid(&format!("{}: attention.kind", path.display()), other, "mla, gqa"))
            }
        }
        Ok(())
    }

    pub fn matches(&self, key: &str) -> bool {
        let key = key.trim().to_ascii_lowercase();
        self.id == key || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(&key))
    }

    pub fn dense_layers(&self) -> u64 {
        self.architecture.dense_layers.unwrap_or(if self.moe.is_some() {
            0
        } else {
            self.architecture.layers
        })
    }

    pub fn moe_layers(&self) -> u64 {
        self.architecture.layers - self.dense_layers()
    }

    fn head_dim(&self) -> u64 {
        let at = &self.attention;
        at.head_dim.unwrap_or(self.architecture.hidden / at.n_heads)
    }

    /// Every weight tensor group of the model (MTP modules excluded, as in published totals).
    pub fn tensors(&self) -> Vec<Tensor> {
        use TensorKind::*;
        let h = self.architecture.hidden;
        let l = self.architecture.layers;
        let at = &self.attention;
        let mut t = Vec::new();
        let mut push = |name, kind, rows, cols, count, active| {
            if rows * cols * count > 0 {
                t.push(Tensor { name, kind, rows, cols, count, active, routed: name.starts_with("routed") });
            }
        };
        let v = self.architecture.vocab;
        push("embedding", Embedding, v, h, 1, 0);
        if !self.architecture.tied_embeddings {
            push("lm head", Head, v, h, 1, 1);
        }
        push("final norm", Vector, 1, h, 1, 1);
        push("layer norms", Vector, 1, h, 2 * l, 2 * l);
        if at.kind == "mla" {
            let nh = at.n_heads;
            let (nope, rope) = (at.qk_nope_head_dim.unwrap_or(0), at.qk_rope_head_dim.unwrap_or(0));
            let (kv_rank, vd) = (at.kv_lora_rank.unwrap_or(0), at.v_head_dim.unwrap_or(0));
            match at.q_lora_rank.filter(|&r| r > 0) {
                Some(qr) => {
                    push("attn q down (wq_a)", Linear, qr, h, l, l);
                    push("attn q norm", Vector, 1, qr, l, l);
                    push("attn q up (wq_b)", Linear, nh * (nope + rope), qr, l, l);
                }
                None => push("attn q (wq)", Linear, nh * (nope + rope), h, l, l),
            }
            push("attn kv down (wkv_a)", Linear, kv_rank + rope, h, l, l);
            push("attn kv norm", Vector, 1, kv_rank, l, l);
            push("attn kv up (wkv_b)", Linear, nh * (nope + vd), kv_rank, l, l);
            push("attn out (wo)", Linear, h, nh * vd, l, l);
        } else {
            let (nh, kv, hd) = (at.n_heads, at.n_kv_heads.unwrap_or(at.n_heads), self.head_dim());
            push("attn q", Linear, nh * hd, h, l, l);
            push("attn k, v", Linear, kv * hd, h, 2 * l, 2 * l);
            push("attn out", Linear, h, nh * hd, l, l);
            if at.qkv_bias {
                push("attn qkv bias", Vector, 1, (nh + 2 * kv) * hd, l, l);
            }
            if at.o_bias {
                push("attn out bias", Vector, 1, h, l, l);
            }
            if at.sinks {
                push("attn sinks", Vector, 1, nh, l, l);
            }
        }
        let dense = self.dense_layers();
        if let Some(ffn) = &self.ffn {
            push("dense ffn (gate, up, down)", Linear, ffn.dim, h, 3 * dense, 3 * dense);
        }
        if let Some(moe) = &self.moe {
            let ml = self.moe_layers();
            let (e, s, k, d) = (moe.experts, moe.shared_experts, moe.experts_per_token, moe.expert_dim);
            push("routed experts (gate, up, down)", Linear, d, h, 3 * e * ml, 3 * k * ml);
            push("shared experts (gate, up, down)", Linear, d, h, 3 * s * ml, 3 * s * ml);
            if moe.expert_bias {
                push("routed expert biases", Vector, 1, 2 * d + h, e * ml, k * ml);
            }
            push("router", Router, e, h, ml, ml);
            if moe.router_bias {
                push("router bias", Vector, 1, e, ml, ml);
            }
        }
        t
    }

    /// Total and active parameters computed from the architecture.
    pub fn param_counts(&self) -> ParamCounts {
        let ts = self.tensors();
        let total = ts.iter().map(|t| t.numel() * t.count).sum();
        let active = ts.iter().map(|t| t.numel() * t.active).sum();
        let embedding =
            ts.iter().filter(|t| t.kind == TensorKind::Embedding).map(|t| t.numel() * t.count).sum();
        ParamCounts { total, active, embedding }
    }

    /// KV-cache elements per token per layer: MLA caches the compressed latent plus the shared
    /// RoPE key (`kv_lora_rank + qk_rope_head_dim`); GQA caches K and V for every KV head.
    pub fn kv_elements_per_token_layer(&self) -> u64 {
        let at = &self.attention;
        if at.kind == "mla" {
            at.kv_lora_rank.unwrap_or(0) + at.qk_rope_head_dim.unwrap_or(0)
        } else {
            2 * at.n_kv_heads.unwrap_or(at.n_heads) * self.head_dim()
        }
    }

    /// KV-cache elements for one sequence of `context` tokens (sliding-window layers cap at the
    /// window).
    pub fn kv_elements(&self, context: u64) -> u64 {
        self.kv_elements_per_token_layer() * self.attended(context)
    }

    /// Cached tokens attended over all layers by one token with `ctx` earlier tokens:
    /// `layers × ctx`, sliding-window layers capped at their window.
    fn attended(&self, ctx: u64) -> u64 {
        let at = &self.attention;
        let l = self.architecture.layers;
        let (sliding, window) = match (at.sliding_layers, at.sliding_window) {
            (Some(s), Some(w)) => (s.min(l), w),
            _ => (0, ctx),
        };
        (l - sliding) * ctx + sliding * ctx.min(window)
    }

    /// Attention-score FLOPs (QKᵀ and PV) for one token attending to `ctx` earlier tokens, per
    /// head as trained (MLA: the 192-wide query-key and 128-wide value heads; what prefill runs).
    pub fn attention_flops_per_token(&self, ctx: u64) -> f64 {
        let at = &self.attention;
        let (qk, v) = if at.kind == "mla" {
            (at.qk_nope_head_dim.unwrap_or(0) + at.qk_rope_head_dim.unwrap_or(0), at.v_head_dim.unwrap_or(0))
        } else {
            (self.head_dim(), self.head_dim())
        };
        2.0 * at.n_heads as f64 * (qk + v) as f64 * self.attended(ctx) as f64
    }

    /// Attention FLOPs of one *decoded* token over `ctx` cached tokens, in the form decode
    /// kernels run: GQA as [`Model::attention_flops_per_token`]; MLA absorbed (FlashMLA,
    /// `run --model`): every head's query against the cached latent and RoPE key
    /// (`kv_lora_rank + qk_rope_head_dim`, 576 for DeepSeek-V3) and its output in the latent
    /// (`kv_lora_rank`, 512), which reads the small cache once for all heads at 3.4× the FLOPs.
    pub fn decode_attention_flops(&self, ctx: u64) -> f64 {
        let at = &self.attention;
        if at.kind != "mla" {
            return self.attention_flops_per_token(ctx);
        }
        let (rank, rope) = (at.kv_lora_rank.unwrap_or(0), at.qk_rope_head_dim.unwrap_or(0));
        2.0 * at.n_heads as f64 * (2 * rank + rope) as f64 * self.attended(ctx) as f64
    }
}

//! The planner's table: one column per chip, one row per quantity, with the formula in the
//! second column so a reader can redo every number from the inputs shown above it.

use super::planner::Plan;
use super::text::{secs, sig3, table_from};

fn gb(b: f64) -> String {
    sig3(b / 1e9)
}

/// Render one or more plans (same model and options) side by side.
pub fn render(plans: &[Plan]) -> String {
    let Some(first) = plans.first() else { return String::new() };
    let o = &first.options;
    let mut out = format!(
        "model {}: {:.2} B parameters computed, {:.2} B active per token (excl. input embedding); \
         precision {}, context {}, prompt {}, batch {}, usable memory {:.0} %\n\n",
        first.model_id,
        first.total_params as f64 / 1e9,
        first.active_params as f64 / 1e9,
        o.precision.name(),
        o.context,
        o.prompt_tokens(),
        o.batch,
        o.usable_memory * 100.0
    );
    let col = |f: &dyn Fn(&Plan) -> String| plans.iter().map(f).collect::<Vec<String>>();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |label: &str, formula: &str, cells: Vec<String>| {
        let mut r = vec![label.to_string(), formula.to_string()];
        r.extend(cells);
        rows.push(r);
    };
    let w = &first.weights;
    row("INPUTS", "", col(&|_| String::new()));
    row("memory (GB)", "M", col(&|p| gb(p.chip_memory)));
    row("memory bandwidth (TB/s)", "BW", col(&|p| sig3(p.chip_bw / 1e12)));
    row(
        "peak used (TFLOPS)",
        "P",
        col(&|p| {
            format!(
                "{}{}",
                sig3(p.prefill_peak.flops_s / 1e12),
                if p.prefill_peak.emulated { "*" } else { "" }
            )
        }),
    );
    row(
        "link per direction (GB/s)",
        "L",
        col(&|p| p.link.map(|(b, _)| sig3(b / 1e9)).unwrap_or("none".into())),
    );
    row("WEIGHTS AND KV", "", col(&|_| String::new()));
    row("Linear weights (GB)", "codes", col(&|_| gb(w.linear)));
    row("block scales (GB)", "f32 per 128x128", col(&|_| gb(w.scales)));
    row("embedding/head/router/norms (GB)", "BF16", col(&|_| gb(w.other)));
    row("weights total (GB)", "W", col(&|_| gb(w.total())));
    row("KV cache per token (KiB)", "BF16", col(&|p| sig3(p.kv_bytes_per_token / 1024.0)));
    row("KV cache (GB)", "KV = per token x context x batch", col(&|p| gb(p.kv_bytes)));
    row("chips needed", "n = ceil((W+KV) / (M x usable))", col(&|p| p.chips_needed.to_string()));
    row("DECODE (each half at its bound)", "", col(&|_| String::new()));
    row("bytes per step (GB)", "S = active W(batch) + KV", col(&|p| gb(p.decode_bytes_per_step)));
    row(
        "attention FLOPs per step (GFLOP)",
        "A = batch x over context (MLA absorbed)",
        col(&|p| sig3(p.decode_attention_flops / 1e9)),
    );
    row(
        "decode step (ms)",
        "T = max(W/BW, 2 N batch/P) + max(KV/BW, A/P_bf16)",
        col(&|p| sig3(p.decode_step_s * 1e3)),
    );
    row("decode tok/s per chip", "batch / T", col(&|p| sig3(p.decode.per_chip)));
    row("decode tok/s, n chips", "x n", col(&|p| sig3(p.decode.aggregate)));
    row("PREFILL (one prompt)", "", col(&|_| String::new()));
    row(
        "FLOPs per token (GFLOP)",
        "F = 2 N_active + attention",
        col(&|p| sig3(p.prefill_flops_per_token / 1e9)),
    );
    row("weight bytes per prompt (GB)", "W(prompt): experts touched", col(&|p| gb(p.prefill_bytes)));
    row("prefill of the prompt (ms)", "T = max(W/BW, prompt x F/P)", col(&|p| sig3(p.prefill_step_s * 1e3)));
    row("prefill tok/s per chip", "prompt / T", col(&|p| sig3(p.prefill.per_chip)));
    row("prefill tok/s, n chips", "x n", col(&|p| sig3(p.prefill.aggregate)));
    row("TRAINING", "", col(&|_| String::new()));
    row(
        "state bytes/param",
        "weights+grads+optimizer+master",
        col(&|p| {
            let t = &p.train;
            format!("{}+{}+{}+{} = {}", t.weights, t.gradients, t.optimizer, t.master, t.per_param())
        }),
    );
    row("training state (TB)", "T = bytes/param x N", col(&|p| sig3(p.train_state_bytes / 1e12)));
    row("activations (GB)", "A = 34 h L x context x batch", col(&|p| gb(p.activation_bytes)));
    row("chips for training state", "ceil((T+A) / (M x usable))", col(&|p| p.train_chips_needed.to_string()));
    row("FLOPs per token (GFLOP)", "6 N_active", col(&|p| sig3(p.train_flops_per_token / 1e9)));
    row("train tok/s per chip", "P / 6 N_active", col(&|p| sig3(p.train_tokens_s.per_chip)));
    row("ring size", "r", col(&|p| p.ring.to_string()));
    row("gradient bytes (GB)", "G = 2 N (BF16)", col(&|p| gb(p.grad_bytes)));
    row("all-reduce time", "2(r-1)/r x G / L", col(&|p| p.allreduce_s.map(secs).unwrap_or("n/a".into())));
    if first.alltoall_bytes > 0.0 {
        row(
            "all-to-all bytes per chip (MB)",
            "D = ctx x batch x k x h x B x (r-1)/r",
            col(&|p| sig3(p.alltoall_bytes / 1e6)),
        );
        row("one all-to-all (dispatch)", "D / L", col(&|p| p.alltoall_s.map(secs).unwrap_or("n/a".into())));
        row(
            "all-to-all per step",
            "MoE layers x fwd+bwd",
            col(&|p| p.alltoall_step_s.map(secs).unwrap_or("n/a".into())),
        );
    }
    let mut header = vec!["quantity", "formula"];
    let names: Vec<String> = plans.iter().map(|p| p.chip_id.clone()).collect();
    header.extend(names.iter().map(String::as_str));
    out.push_str(&table_from(&header, &rows, 2));
    out.push('\n');
    for p in plans {
        out.push_str(&format!("{}: peak = {}", p.chip_id, p.prefill_peak.label));
        if let Some((_, how)) = p.link {
            out.push_str(&format!("; link = {how}"));
        }
        out.push('\n');
    }
    if plans.iter().any(|p| p.prefill_peak.emulated) {
        out.push_str("* no native FP8: weights stored in FP8, compute at the BF16 rate (weight-only FP8, emulated compute)\n");
    }
    out.push_str(&format!(
        "training bytes/param source: {}\n\
         assumptions: GB = 1e9 B; KV cache BF16; decode reads active weights once per step plus KV, split ideally \
         over n chips; MoE batch (or prompt) reads E(1-(1-k/E)^tokens) routed experts; prefill is one prompt (default: \
         context tokens), attention at average length prompt/2; collectives at the chip's scale-up link per direction on every hop (optimistic beyond one \
         node); gradients all-reduced in BF16 over the whole model (pure data parallel, an upper bound); \
         all-to-all dispatch FP8 (1 B + one f32 scale per 128: 1.03 B) under the FP8 recipe else BF16, combine and backward BF16.\n",
        first.train.source
    ));
    out
}

/// The collective rows again, calibrated with the local fits (`plan --collectives FILE`), plus the
/// FP8 vs BF16 all-to-all byte and time ratios. `cals` is parallel to `plans`.
pub fn render_calibrated(
    plans: &[Plan],
    cals: &[super::plan_collectives::Calibrated],
    link: &super::plan_collectives::LocalLink,
) -> String {
    let pct = |v: f64| format!("{:.0} %", v * 100.0);
    let t = |v: Option<f64>| v.map(secs).unwrap_or("n/a".into());
    let ratio = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or("n/a".into());
    let col =
        |f: &dyn Fn(&super::plan_collectives::Calibrated) -> String| cals.iter().map(f).collect::<Vec<_>>();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row = |label: &str, formula: &str, cells: Vec<String>| {
        let mut r = vec![label.to_string(), formula.to_string()];
        r.extend(cells);
        rows.push(r);
    };
    let (ar, b, f) = (&link.allreduce, &link.alltoall_bf16, &link.alltoall_fp8);
    row("CALIBRATED (local MPI fit)", "", col(&|_| String::new()));
    row(
        "all-reduce efficiency",
        &format!("eta = beta({} all-reduce) / memcpy", ar.payload),
        col(&|c| pct(c.allreduce_eta)),
    );
    row("all-reduce time, calibrated", "alpha + 2(r-1)/r x G / (eta L)", col(&|c| t(c.allreduce_s)));
    let moe = plans.iter().any(|p| p.alltoall_bytes > 0.0);
    if moe {
        row(
            "all-to-all bytes BF16 (MB)",
            "ctx x batch x k x h x 2 x (r-1)/r",
            col(&|c| sig3(c.a2a_bytes_bf16 / 1e6)),
        );
        row(
            "all-to-all bytes FP8 (MB)",
            "... x (1 + 4/128) x (r-1)/r",
            col(&|c| sig3(c.a2a_bytes_fp8 / 1e6)),
        );
        row("FP8/BF16 bytes", "", col(&|c| format!("{:.3}", c.bytes_ratio())));
        row("all-to-all BF16, spec", "D_bf16 / L", col(&|c| t(c.a2a_spec_bf16_s)));
        row("all-to-all FP8, spec", "D_fp8 / L", col(&|c| t(c.a2a_spec_fp8_s)));
        row("FP8/BF16 time, spec", "", col(&|c| ratio(c.spec_time_ratio())));
        row(
            &format!("all-to-all efficiency {}", b.payload),
            "eta = beta / memcpy",
            col(&|c| pct(c.a2a_eta_bf16)),
        );
        row(
            &format!("all-to-all efficiency {}", f.payload),
            "eta = beta / memcpy",
            col(&|c| pct(c.a2a_eta_fp8)),
        );
        row("all-to-all BF16, calibrated", "alpha + D_bf16 / (eta L)", col(&|c| t(c.a2a_cal_bf16_s)));
        row("all-to-all FP8, calibrated", "alpha + D_fp8 / (eta L)", col(&|c| t(c.a2a_cal_fp8_s)));
        row("FP8/BF16 time, calibrated", "", col(&|c| ratio(c.cal_time_ratio())));
    }
    let mut header = vec!["quantity", "formula"];
    let names: Vec<String> = plans.iter().map(|p| p.chip_id.clone()).collect();
    header.extend(names.iter().map(String::as_str));
    let mut out = format!(
        "\ncollectives calibrated with this machine's MPI curves (labelled estimates, not specs): local link = one \
         core's memcpy, {} GB/s; fits t = alpha + bus bytes / beta:\n",
        sig3(link.memcpy / 1e9)
    );
    for a in [ar, b, f] {
        out += &format!(
            "  {} {} ({} ranks, {} sizes): alpha {}, beta {} GB/s, eta {}\n",
            a.op,
            a.payload,
            a.ranks,
            a.points,
            secs(a.alpha_s),
            sig3(a.beta / 1e9),
            pct(link.eta(a))
        );
    }
    out.push_str(&table_from(&header, &rows, 2));
    out
}

//! Model planner: DeepSeek-V3 weight bytes at FP8 vs BF16 (with the scale overhead), KV cache,
//! chips needed, bounds and collective times redone by hand, and `plan --compare`.

use chipbench::profiles;
use chipbench::project::planner::{self, weight_bytes, PlanOptions, WeightPrecision, TRAIN_BF16, TRAIN_FP8};
use std::process::Command;

#[test]
fn deepseek_v3_weight_bytes_fp8_vs_bf16() {
    let m = profiles::model("deepseek-v3").unwrap();
    let bf16 = weight_bytes(&m, WeightPrecision::Bf16, None);
    let fp8 = weight_bytes(&m, WeightPrecision::Fp8, None);
    // BF16: 2 bytes × 671.03 B parameters = 1342.05 GB.
    assert_eq!(bf16.total(), 2.0 * 671_026_419_200.0);
    assert_eq!(bf16.scales, 0.0);
    // FP8: ≈ 671 GB of codes + BF16 embedding/head/router/norms + f32 scales per 128×128 block.
    let gb = fp8.total() / 1e9;
    assert!((gb - 671.0).abs() / 671.0 < 0.01, "fp8 weights {gb:.1} GB");
    assert!((fp8.scales / 1e9 - 0.163).abs() < 0.002, "scales {:.4} GB", fp8.scales / 1e9);
    // One f32 per 16384 codes: scales are ~1/4096 of the codes.
    assert!((fp8.scales / fp8.linear - 4.0 / 16384.0).abs() < 2e-5);
    // Non-Linear tensors (2 × 0.93 B embedding/head + router + norms) stay BF16.
    assert!((fp8.other / 1e9 - 3.92).abs() < 0.01, "{}", fp8.other / 1e9);
    assert!((bf16.total() / fp8.total() - 2.0).abs() < 0.02);
}

#[test]
fn deepseek_v3_on_h20_by_hand() {
    let m = profiles::model("deepseek-v3").unwrap();
    let h20 = profiles::chip("h20").unwrap();
    let o = PlanOptions { context: 4096, batch: 1, ..Default::default() };
    let p = planner::plan(&m, &h20, &o).unwrap();
    let w = weight_bytes(&m, WeightPrecision::Fp8, None).total();
    // KV: (512 + 64) × 61 layers × 2 bytes = 70,272 B per token.
    assert_eq!(p.kv_bytes_per_token, 70_272.0);
    assert_eq!(p.kv_bytes, 70_272.0 * 4096.0);
    // Chips: ceil((W + KV) / (96 GB × 0.9)) = ceil(673.4 / 86.4) = 8.
    assert_eq!(p.chips_needed, ((w + p.kv_bytes) / 86.4e9).ceil() as u64);
    assert_eq!(p.chips_needed, 8);
    // Decode: the active FP8 weights at 4 TB/s (their 2·N_active FLOPs at 296 TFLOPS take 40×
    // less), plus MLA's absorbed attention: 128 heads × (512 + 64 + 512) × 2 FLOPs per cached
    // token and layer, 69.6 GFLOP at 4096 tokens, 0.47 ms at the BF16 peak of 148 TFLOPS, where
    // its 0.29 GB of cache take 0.07 ms at 4 TB/s.
    let active = weight_bytes(&m, WeightPrecision::Fp8, Some(1)).total();
    assert!((active / 1e9 - 38.0).abs() < 0.5, "{}", active / 1e9);
    let attention = 2.0 * 128.0 * (512.0 + 64.0 + 512.0) * 61.0 * 4096.0;
    assert_eq!(p.decode_attention_flops, attention);
    assert!(attention / 148e12 > p.kv_bytes / 4e12);
    assert_eq!(p.decode_step_s, active / 4e12 + attention / 148e12);
    assert_eq!(p.decode.per_chip, 1.0 / p.decode_step_s);
    assert_eq!(p.decode.aggregate, p.decode.per_chip * 8.0);
    // At batch 64 the attention (64 sequences' caches, FLOP-bound) adds 30 ms to the 146 ms of
    // the distinct experts' bytes: a fifth of the step that bytes alone would not see.
    let b64 = planner::plan(&m, &h20, &PlanOptions { batch: 64, ..o }).unwrap();
    let weights_s = weight_bytes(&m, WeightPrecision::Fp8, Some(64)).total() / 4e12;
    assert_eq!(b64.decode_step_s, weights_s + 64.0 * attention / 148e12);
    assert!(64.0 * attention / 148e12 > 0.15 * weights_s, "{weights_s}");
    // Llama-3.1-8B (GQA): its attention over the cache is bytes-bound (4 query heads per KV
    // head: 2 FLOPs per cached byte), so decode is all bytes.
    let l = profiles::model("llama-3.1-8b").unwrap();
    let pl = planner::plan(&l, &h20, &o).unwrap();
    assert_eq!(pl.decode_attention_flops, l.attention_flops_per_token(4096));
    assert!((pl.decode.per_chip / (4e12 / pl.decode_bytes_per_step) - 1.0).abs() < 1e-12);
    // Prefill of a 4096-token prompt: native FP8 at 296 TFLOPS over 2·N_active + attention
    // (its 4096 tokens give each expert 128: FLOP-bound on the H20).
    assert!(!p.prefill_peak.emulated);
    assert!((p.prefill.per_chip / (296e12 / p.prefill_flops_per_token) - 1.0).abs() < 1e-12);
    assert!(p.prefill_flops_per_token > 2.0 * p.active_params as f64);
    assert!(p.prefill_bytes / 4e12 < p.prefill_step_s);
    // A 512-token prompt gives each of the 256 experts 16 tokens: all of them are read (673 GB,
    // 168 ms at 4 TB/s) in more time than the prompt's FLOPs take (~130 ms), so the prefill is
    // bytes-bound on the H20, and more so on the H800 (ridge 590 FLOP/B against 74).
    let short = PlanOptions { context: 512, ..o };
    for chip in ["h20", "h800"] {
        let c = profiles::chip(chip).unwrap();
        let p512 = planner::plan(&m, &c, &short).unwrap();
        assert!(p512.prefill_bytes > 0.99 * w, "{chip}: {}", p512.prefill_bytes);
        let bw = c.memory_bw_bytes_s().unwrap();
        assert_eq!(p512.prefill_step_s, p512.prefill_bytes / bw, "{chip}");
        assert!(512.0 * p512.prefill_flops_per_token / p512.prefill_peak.flops_s < p512.prefill_step_s);
        assert_eq!(p512.prefill.per_chip, 512.0 / p512.prefill_step_s);
    }
    // `--prompt` sets the prefill's prompt apart from the decode's context: the prefill of the
    // 512-token plan, the decode of the 4096-token one.
    let apart = planner::plan(&m, &h20, &PlanOptions { prompt: Some(512), ..o }).unwrap();
    let p512 = planner::plan(&m, &h20, &short).unwrap();
    assert_eq!((apart.prefill_step_s, apart.prefill.per_chip), (p512.prefill_step_s, p512.prefill.per_chip));
    assert_eq!((apart.decode_step_s, apart.kv_bytes), (p.decode_step_s, p.kv_bytes));
    assert!(apart.prefill.per_chip < p.prefill.per_chip);
    // A dense model's prompt stays FLOP-bound: Llama-3.1-8B reads 8 GB in 2 ms, computes 14 ms.
    let l512 = planner::plan(&profiles::model("llama-3.1-8b").unwrap(), &h20, &short).unwrap();
    assert!((l512.prefill.per_chip / (296e12 / l512.prefill_flops_per_token) - 1.0).abs() < 1e-12);
    // Training: 13 B/param (FP8 recipe), 6·N_active FLOPs per token.
    assert_eq!(TRAIN_FP8.per_param(), 13.0);
    assert_eq!(TRAIN_BF16.per_param(), 16.0);
    assert_eq!(p.train_state_bytes, 13.0 * p.total_params as f64);
    assert_eq!(p.train_flops_per_token, 6.0 * p.active_params as f64);
    // All-reduce: 2(r−1)/r · 2N bytes / 450 GB/s per direction.
    let r = p.ring as f64;
    assert_eq!(p.link.unwrap().0, 450e9);
    assert!(
        (p.allreduce_s.unwrap() - 2.0 * (r - 1.0) / r * 2.0 * p.total_params as f64 / 450e9).abs() < 1e-9
    );
    // All-to-all: 4096 tokens × 8 experts × (7168 E4M3 codes + 56 f32 tile scales) × (r−1)/r.
    assert!((p.alltoall_bytes - 4096.0 * 8.0 * (7168.0 + 56.0 * 4.0) * (r - 1.0) / r).abs() < 1.0);
    assert!((p.alltoall_s.unwrap() - p.alltoall_bytes / 450e9).abs() < 1e-12);
}

#[test]
fn emulated_fp8_and_bf16_on_910c_and_dense_models() {
    let m = profiles::model("deepseek-v3").unwrap();
    let c = profiles::chip("910c").unwrap();
    let p = planner::plan(&m, &c, &PlanOptions::default()).unwrap();
    assert!(p.prefill_peak.emulated && p.prefill_peak.flops_s == 780e12);
    // Direction unstated: 784 GB/s taken as a total.
    assert_eq!(p.link.unwrap().0, 392e9);
    let b = planner::plan(&m, &c, &PlanOptions { precision: WeightPrecision::Bf16, ..Default::default() })
        .unwrap();
    assert!(b.chips_needed > p.chips_needed);
    assert_eq!(b.train.per_param(), 16.0);
    // MoE batch: more distinct experts are read per step, but less than batch × one token.
    let b8 = planner::plan(&m, &c, &PlanOptions { batch: 8, ..Default::default() }).unwrap();
    assert!(b8.decode_bytes_per_step > p.decode_bytes_per_step);
    assert!(b8.decode.per_chip > p.decode.per_chip);
    // Dense GQA model: no all-to-all; KV 2·8·128·32·2 B per token for Llama-3.1-8B.
    let l = profiles::model("llama-3.1-8b").unwrap();
    let pl = planner::plan(&l, &profiles::chip("rtx-4090").unwrap(), &PlanOptions::default()).unwrap();
    assert_eq!(pl.kv_bytes_per_token, 131_072.0);
    assert_eq!(pl.alltoall_s, None);
    assert_eq!(pl.allreduce_s, None, "RTX 4090 has no scale-up link");
    // Unsourced bandwidth: one-line error.
    let e = planner::plan(&m, &profiles::chip("910b").unwrap(), &PlanOptions::default()).unwrap_err();
    assert!(e.to_string().contains("memory_bw"));
    assert!("fp4".parse::<WeightPrecision>().is_err());
}

#[test]
fn cli_plan_compare() {
    let out = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["plan", "--model", "deepseek-v3", "--compare", "h20,ascend-910c,h800"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for s in [
        "nvidia-h20",
        "huawei-ascend-910c",
        "nvidia-h800-sxm",
        "chips needed",
        "decode tok/s",
        "all-reduce time",
    ] {
        assert!(text.contains(s), "{s} missing:\n{text}");
    }
    assert!(text.contains("weight-only FP8, emulated compute"));
    let out = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["plan", "--model", "deepseek-v3", "--chip", "h20", "--precision", "bf16", "--context", "8192"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1342"));
    let out = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["plan", "--model", "gpt-5", "--chip", "h20"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("deepseek-v3"));
}

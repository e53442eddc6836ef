//! Whole model steps (`run --model`): the products of real models measured end to end with the
//! quick sampling (every slice validated against f64 before it is timed), summed back into steps,
//! written to the results JSON and read back, projected onto chips by `plan --from-results`;
//! model files with unknown or inconsistent fields refused with one line naming the field.

use chipbench::kernels::registry::BackendKind;
use chipbench::measure::calibration;
use chipbench::measure::runner::RunOptions;
use chipbench::modelstep::{self, steps, Phase, Sampling, StepFormat, StepShape};
use chipbench::profiles;
use chipbench::results::{Calibration, ComputePeak, RoofsNow, Run, Stream, ThreadPeak};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn run_of(records: Vec<chipbench::results::Record>) -> Run {
    Run {
        schema_version: chipbench::results::SCHEMA_VERSION,
        run_id: "t".into(),
        created: "2026-01-01T00:00:00Z".into(),
        tool: "test".into(),
        suite: "model-step".into(),
        env: Default::default(),
        calibration: Some(Calibration {
            fma_peak_gflops: vec![ThreadPeak { threads: 1, gflops: 20.0 }],
            // The BF16 dot-product roof, whatever this CPU has: the planner takes it for BF16
            // and FP8 products because the calibration lists it.
            compute_peaks: vec![
                ComputePeak { unit: "f32-fma test".into(), threads: 1, gflops: 20.0 },
                ComputePeak { unit: "bf16-dot test".into(), threads: 1, gflops: 80.0 },
                ComputePeak { unit: "bf16-dot amx_bf16".into(), threads: 1, gflops: 80.0 },
            ],
            stream_gbs: Stream::default(),
            read_gbs: 10.0,
            threads: 1,
            ..Default::default()
        }),
        records,
        complete: true,
        notes: vec![],
    }
}

#[test]
fn llama_and_deepseek_steps_measure_validate_and_read_back() {
    let all = profiles::models().unwrap();
    let models: Vec<_> =
        ["llama-3.1-8b", "deepseek-v3"].iter().map(|id| profiles::find_model(&all, id).unwrap()).collect();
    let decode = StepShape { phase: Phase::Decode, batch: 1, prompt: 24, context: 40 };
    let prefill = StepShape { phase: Phase::Prefill, ..decode };
    let sampling = Sampling::quick();
    let planned = modelstep::measure::plan(&models, &[decode, prefill], &StepFormat::DEFAULTS, &sampling, 3);
    let backends = vec![BackendKind::Cpu.open(1).unwrap()];
    // Two passes over the products, their samples pooled.
    let mut opts = RunOptions::new(sampling.timing, None, Arc::new(AtomicBool::new(false)));
    opts.repeat = 2;
    opts.rounds = 1;
    let ncases = modelstep::measure::cases(&planned).len();
    let mut shapes: Vec<String> = Vec::new();
    // Roofs "re-measured" after each product: fixed FMA and dot-product peaks, and a read figure
    // of 8 GB/s in the first pass and 12 in the second, so each product's figure is their median,
    // 10, and the paired planner below can be checked by hand.
    let (read_gbs, fma_gflops, dot_gflops) = (10.0, 50.0, 150.0);
    let mut calls = 0;
    let mut roofs_now = || {
        calls += 1;
        Some(calibration::RoofsNow {
            read_gbs: Some(if calls <= ncases { 8.0 } else { 12.0 }),
            fma: vec![ThreadPeak { threads: 1, gflops: fma_gflops }],
            dot: vec![ThreadPeak { threads: 1, gflops: dot_gflops }],
            // The tile unit's roof equal to the vector units' here, so the hand figures below
            // hold whichever unit this CPU runs the prefill GEMMs on (the choice of roof by
            // unit is tested in project::roofline).
            tile: vec![ThreadPeak { threads: 1, gflops: dot_gflops }],
        })
    };
    let mut on_event = |ev: chipbench::measure::runner::Event<'_>| {
        if let chipbench::measure::runner::Event::Measuring { shape, .. } = ev {
            shapes.push(shape.to_string());
        }
    };
    let out = modelstep::measure(&planned, &backends, &opts, &mut on_event, &mut roofs_now);
    assert!(!out.interrupted && out.skipped.is_empty(), "{:?}", out.skipped);
    assert_eq!(out.records.len(), planned.len());
    assert_eq!(calls, 2 * ncases, "roofs re-measured after every product in every pass");
    for r in &out.records {
        assert!(r.valid, "{} {} {}×{}×{}: {}", r.format, r.scaling, r.m, r.n, r.k, r.note);
        assert_eq!(r.time.repeats, 2, "samples of both passes pooled");
        let step = r.model_step.as_ref().unwrap();
        let want =
            RoofsNow { read_gbs, fma_gflops, dot_gflops: Some(dot_gflops), tile_gflops: Some(dot_gflops) };
        assert_eq!(step.roofs_after, Some(want));
        // Activations in the step's format: E4M3 against the FP8 step's E4M3 matrices, BF16
        // against BF16 ones (the FP8 step's head, router and KV cache, and the BF16 step), f32 in
        // the F32 step.
        let want = match (step.step_format.as_str(), r.format.as_str()) {
            ("f32:none", _) => "f32",
            (_, f) => f,
        };
        assert_eq!(r.act_format, want, "{step:?}");
    }
    // Progress named every distinct product once per pass, with its model, phase, step format
    // and layer kind, the whole list in one pass before the next.
    assert_eq!(shapes.len(), 2 * ncases);
    assert_eq!(shapes[..ncases], shapes[ncases..]);
    let mut distinct = shapes[..ncases].to_vec();
    distinct.dedup();
    assert_eq!(distinct.len(), ncases, "{shapes:?}");
    assert!(
        shapes.iter().any(|l| l == "deepseek-v3 prefill e4m3:deepseek · moe layers: routed expert gate, up"),
        "{shapes:?}"
    );

    let run = run_of(out.records);
    let back = Run::parse(run.to_json().as_bytes(), Path::new("t.json")).unwrap();
    let st = steps::steps(&back);
    assert_eq!(st.len(), 2 * 2 * 3, "{st:?}");
    for s in &st {
        assert!(s.complete(), "{s:?}");
        assert!(s.seconds() > 0.0 && s.tokens_s().is_finite());
        assert!(s.parts.iter().all(|p| p.seconds > 0.0), "{s:?}");
        let planner = s.predicted_s(steps::planner_read_gbs(&back).unwrap().0).unwrap();
        assert!(planner > 0.0);
        // Product by product, each at the longer of its two bounds, can never beat the planner's
        // one bound for the whole step (Σ max(bᵢ/B, fᵢ/P) ≥ Σ bᵢ/B and ≥ Σ fᵢ/P), nor exceed
        // both bounds taken in full.
        let roof = s.roofline_s().unwrap();
        let cal = back.calibration.as_ref().unwrap();
        let (bw, peak) = (cal.read_gbs * 1e9, cal.fma_peak_gflops[0].gflops * 1e9);
        assert!(roof >= planner * (1.0 - 1e-12), "{roof} < {planner}: {s:?}");
        assert!(roof <= (s.bytes() / bw + s.flops() / peak) * (1.0 + 1e-12), "{roof}: {s:?}");
        // The paired planner: the planner's rule at the roofs each product carries (fixed here).
        let paired = s.paired_planner_s().unwrap();
        // BF16 and FP8 products at the dot-product roof, f32 ones at the FMA peak.
        let low = s.step_format != "f32:none";
        let at_peak = |flops: f64| flops / (if low { dot_gflops } else { fma_gflops } * 1e9);
        // Each part at the longer of its bytes and its FLOPs, as the planner does, in both phases.
        let want: f64 = s.parts.iter().map(|p| (p.bytes / (read_gbs * 1e9)).max(at_peak(p.flops))).sum();
        assert!((paired / want - 1.0).abs() < 1e-9, "{paired} vs {want}: {s:?}");
        if s.phase == Phase::Prefill {
            // FLOPs at the calibration's peaks, except where a part's bytes take longer: the
            // routed experts of DeepSeek-V3's prompt (24 tokens here: 1 each) read all of their
            // weights for a few FLOPs per byte.
            let at_cal = |flops: f64| flops / (if low { 80.0 } else { 20.0 } * 1e9);
            let want: f64 = s.parts.iter().map(|p| (p.bytes / (read_gbs * 1e9)).max(at_cal(p.flops))).sum();
            assert!((planner / want - 1.0).abs() < 1e-9, "{planner} vs {want}: {s:?}");
            let ffn = &s.parts[2];
            let bytes_bound = ffn.bytes / (read_gbs * 1e9) > at_cal(ffn.flops);
            assert_eq!(bytes_bound, s.model == "deepseek-v3", "{s:?}");
        } else {
            // Decode: bytes at the read bandwidth, except DeepSeek-V3's absorbed attention over
            // the cache (128 heads × 1088 FLOPs per cached element pair), which its FLOPs bound.
            let bytes_s = s.bytes() / (read_gbs * 1e9);
            let kv = &s.parts[1];
            if s.model == "deepseek-v3" {
                assert!(kv.compute_s > kv.bytes / (read_gbs * 1e9), "{s:?}");
                let want = bytes_s - kv.bytes / (read_gbs * 1e9) + kv.compute_s;
                assert!((planner / want - 1.0).abs() < 1e-9, "{planner} vs {want}: {s:?}");
            } else {
                assert!((planner / bytes_s - 1.0).abs() < 1e-9, "{planner} vs {bytes_s}: {s:?}");
            }
        }
    }
    // The merged report (`chipbench report`) carries the run's steps as its own Markdown does.
    let loaded = chipbench::claims::LoadedRun { path: "dir/steps.json".into(), run: back.clone() };
    let report = chipbench::report::merge::build(&[loaded], &[], "r").unwrap().markdown;
    let own = steps::render(&back);
    let table = own.strip_prefix("## Model steps\n\n").unwrap();
    assert!(report.contains("## Model steps\n\n### steps.json (") && report.contains(table), "{report}");
    // The planner predicts decode at the median of the read figures re-measured after each
    // product (the calibration's ceiling only where no record carries one).
    let (gbs, why) = steps::planner_read_gbs(&back).unwrap();
    assert!(gbs == read_gbs && why.contains(&format!("median of {}", back.records.len())), "{why}");
    let mut varied = back.clone();
    for (i, r) in varied.records.iter_mut().enumerate() {
        let at = r.model_step.as_mut().unwrap().roofs_after.as_mut().unwrap();
        at.read_gbs = [4.0, 40.0, 20.0][i % 3];
    }
    assert_eq!(steps::planner_read_gbs(&varied).unwrap().0, 20.0);
    for r in varied.records.iter_mut() {
        r.model_step.as_mut().unwrap().roofs_after = None;
    }
    let (gbs, why) = steps::planner_read_gbs(&varied).unwrap();
    assert!(gbs == 10.0 && why.contains("calibration"), "{why}");

    // FP8 decode reads about half the BF16 bytes (head and KV stay BF16).
    let bytes = |f: &str| {
        st.iter()
            .find(|s| s.model == "llama-3.1-8b" && s.phase == Phase::Decode && s.step_format == f)
            .unwrap()
            .bytes()
    };
    let r = bytes("e4m3:deepseek") / bytes("bf16:none");
    assert!(r > 0.5 && r < 0.6, "{r}");
    assert!((bytes("f32:none") / bytes("bf16:none") - 2.0).abs() < 1e-9);

    let table = steps::render(&back);
    for want in [
        "## Model steps",
        "pp24",
        "tg1 @ d40",
        "e4m3:deepseek",
        "planner t/s",
        "measured/roofline",
        "paired",
        "decode t/s e4m3:deepseek / bf16:none",
    ] {
        assert!(table.contains(want), "{want} not in\n{table}");
    }
    let md = chipbench::report::markdown::render(&back);
    assert!(md.contains("## Model steps"));
    // The detail tables: one row per measurement, however many products share its slice, and
    // every product named under the table of the slice that measured it.
    let tables = chipbench::report::markdown::tables(&back);
    let rows: usize = tables
        .split("\n## ")
        .filter(|sec| sec.starts_with("gemv ") || sec.starts_with("gemm "))
        .map(|sec| {
            sec.lines()
                .filter(|l| l.starts_with("| ") && !l.starts_with("| format") && !l.starts_with("| ---"))
                .count()
        })
        .sum();
    let measurements = {
        let mut seen: Vec<_> = Vec::new();
        for r in &back.records {
            let key =
                (r.op.clone(), r.m, r.n, r.k, r.format.clone(), r.scaling.clone(), r.act_format.clone());
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
        seen.len()
    };
    assert!(measurements < back.records.len(), "no slice shared: the check below would be empty");
    assert_eq!(rows, measurements, "{tables}");
    for r in &back.records {
        let ms = r.model_step.as_ref().unwrap();
        let what = format!("{} {} ({}) · {}: {}", ms.model, ms.phase, ms.step_format, ms.layer, ms.product);
        assert!(tables.contains(&what), "{what} not in\n{tables}");
    }

    // Projection onto chips, each part scaled by its own bound, beside the paper plan.
    let ds = profiles::find_model(&all, "deepseek-v3").unwrap();
    let chips: Vec<_> = ["h20", "h800", "910c"].iter().map(|c| profiles::chip(c).unwrap()).collect();
    let refs: Vec<_> = chips.iter().collect();
    let text = modelstep::project::render(&back, ds, &refs).unwrap();
    assert!(text.contains("nvidia-h20") || text.contains("h20"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("e4m3:deepseek")).count(), 6, "{text}");
    // The 910C has no sourced FP32 peak: its F32 rows say so in a short cell, and the reason
    // comes once under the table.
    let short = text.lines().filter(|l| l.contains("| not projected (below) |")).count();
    assert_eq!(short, 2, "{text}");
    let why: Vec<&str> =
        text.lines().filter(|l| l.starts_with("- huawei-ascend-910c f32:none: not projected:")).collect();
    assert!(why.len() == 1 && why[0].contains("fp32"), "{text}");

    // The same steps as if a GPU had run them through wgpu: the host's CPU calibration says
    // nothing about that device, so no planner, paired or roofline figure, and no projection.
    let mut gpu = back.clone();
    for r in &mut gpu.records {
        r.backend = "wgpu".into();
    }
    let table = steps::render(&gpu);
    assert!(table.contains("wgpu rows have no planner"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| llama-3.1-8b")).collect();
    assert_eq!(rows.len(), 6, "{table}");
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells[6].ends_with('s') && cells[7] != "-", "{row}");
        assert_eq!(&cells[12..16], ["-", "-", "-", "-"], "{row}");
    }
    let e = modelstep::project::render(&gpu, ds, &refs).unwrap_err().to_string();
    assert!(e.contains("ran on wgpu") && e.contains("cpu or candle"), "{e}");
}

#[test]
fn run_model_cli_writes_records_and_plan_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["run", "--model", "llama-3.1-8b", "--quick", "--context", "32", "--prompt", "16"])
        .args(["--format", "e4m3,bf16", "--threads", "1", "--out"])
        .arg(dir.path())
        .env_remove("CHIPBENCH_FULL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("tg1 @ d32") && stdout.contains("pp16"), "{stdout}");
    let json = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let run = Run::load(&json).unwrap();
    assert!(run.records.iter().all(|r| r.model_step.is_some()));
    let out = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["plan", "--model", "llama-3.1-8b", "--compare", "h20,ascend-910c", "--from-results"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("scaled part by part") && stdout.contains("paper plan"), "{stdout}");
    // A model the file has no step for: one line naming the file.
    let out = Command::new(env!("CARGO_BIN_EXE_chipbench"))
        .args(["plan", "--model", "deepseek-v3", "--chip", "h20", "--from-results"])
        .arg(&json)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&*json.to_string_lossy()) && err.contains("deepseek-v3"), "{err}");
}

#[test]
fn bad_model_options_are_one_line_errors() {
    for (args, want) in [
        (vec!["run", "--model", "gpt-5"], "deepseek-v3"),
        (vec!["run", "--model", "llama-3.1-8b", "--format", "int4"], "--format"),
        (vec!["run", "--model", "llama-3.1-8b", "--batch", "0"], "--batch"),
        (vec!["run", "--batch", "4"], "--model"),
        (vec!["run", "--model", "llama-3.1-8b", "--scaling", "mx32"], "--scaling"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chipbench")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn model_files_with_unknown_or_inconsistent_fields_are_refused_naming_the_field() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/models/qwen3-30b-a3b.toml"),
    )
    .unwrap();
    assert!(profiles::Model::parse(Path::new("q.toml"), &text).is_ok());
    for (from, to, field) in [
        ("expert_dim = 768", "expert_dims = 768", "expert_dims"),
        ("n_kv_heads = 4", "n_kv_heads = 5", "attention.n_kv_heads"),
        ("experts_per_token = 8", "experts_per_token = 129", "moe.experts_per_token"),
        ("dense_layers = 0", "dense_layers = 49", "architecture.dense_layers"),
        ("dense_layers = 0", "dense_layers = 1", "ffn"),
        ("kind = \"gqa\"", "kind = \"mqa\"", "attention.kind"),
    ] {
        assert!(text.contains(from), "{from}");
        let e =
            profiles::Model::parse(Path::new("q.toml"), &text.replacen(from, to, 1)).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("q.toml") && e.contains(field), "{field}: {e}");
    }
}

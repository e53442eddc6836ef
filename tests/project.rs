//! Roofline projection: hand-computed cases, the emulation rule, the local-machine check, the
//! ridge analysis and its SVG, and the `project`/`chips`/`models` commands on a fixture.

use chipbench::formats::Format;
use chipbench::profiles::{self, Precision};
use chipbench::project::check::{check_local, median};
use chipbench::project::ridge;
use chipbench::project::roofline::{self, local_chip, project, Bound};
use chipbench::project::roofline_plot::render_svg;
use chipbench::results::{Bytes, Calibration, ComputePeak, ErrorStats, Record, Run, ThreadPeak, Time};
use std::path::Path;
use std::process::Command;

fn record(op: &str, format: &str, m: usize, n: usize, k: usize, total_bytes: u64, time_s: f64) -> Record {
    Record {
        backend: "native".into(),
        device: "cpu".into(),
        op: op.into(),
        format: format.into(),
        act_format: "f32".into(),
        scaling: "none".into(),
        m,
        n,
        k,
        threads: 2,
        bytes: Bytes { total: total_bytes, ..Default::default() },
        time: Time { median_s: time_s, min_s: time_s, max_s: time_s, samples: 5, ..Default::default() },
        gflops: 2.0 * (m * n * k) as f64 / time_s / 1e9,
        gbs: total_bytes as f64 / time_s / 1e9,
        error: ErrorStats::default(),
        valid: true,
        note: String::new(),
        timing: String::new(),
        memory: None,
        ranks: None,
        algbw_gbs: None,
        busbw_gbs: None,
        payload: None,
        ..Default::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn hand_computed_projection_on_h20() {
    let h20 = profiles::chip("h20").unwrap();
    // GEMM 4096³ in BF16: 2·4096³ = 137.4 GFLOP at 148 TFLOPS = 928.6 µs; bytes 3·4096²·2 =
    // 100.7 MB at 4 TB/s = 25.2 µs → compute bound.
    let n = 4096usize;
    let bytes = 3 * (n * n * 2) as u64;
    let p = project(&record("gemm", "bf16", n, n, n, bytes, 1.0), &h20).unwrap();
    assert!(close(p.compute_s, 2.0 * (n as f64).powi(3) / 148e12));
    assert!(close(p.memory_s, bytes as f64 / 4e12));
    assert_eq!(p.bound, Bound::Compute);
    assert!(close(p.time_s, p.compute_s));
    assert_eq!(p.peak.precision, Precision::Bf16);
    // GEMV 1×8192×8192 in FP8: 8192² bytes of weights dominate → memory bound.
    let gemv_bytes = (8192 * 8192 + 8192 * 4 + 8192 * 4) as u64;
    let p = project(&record("gemv", "e4m3", 1, 8192, 8192, gemv_bytes, 1.0), &h20).unwrap();
    assert_eq!(p.bound, Bound::Memory);
    assert!(close(p.time_s, gemv_bytes as f64 / 4e12));
    assert!(!p.peak.emulated && p.peak.flops_s == 296e12);
    // FP32 uses the non-tensor FP32 peak (44), not TF32 (74).
    let p = project(&record("gemm", "f32", n, n, n, bytes * 2, 1.0), &h20).unwrap();
    assert!(close(p.compute_s, 2.0 * (n as f64).powi(3) / 44e12));
    assert!(p.peak.label.contains("fp32"));
}

#[test]
fn fp8_without_native_support_is_weight_only_emulated() {
    let c = profiles::chip("ascend-910c").unwrap();
    let r = record("gemm", "e4m3", 2048, 2048, 2048, 3 * 2048 * 2048, 1.0);
    let p = project(&r, &c).unwrap();
    assert!(p.peak.emulated);
    assert_eq!(p.peak.precision, Precision::Bf16);
    assert!(p.peak.label.contains("weight-only FP8, emulated compute"), "{}", p.peak.label);
    assert!(close(p.compute_s, 2.0 * 2048f64.powi(3) / 780e12));
    // Bytes stay the FP8 record's (stored in FP8).
    assert!(close(p.memory_s, (3 * 2048 * 2048) as f64 / 3.2e12));
    // 910B has no sourced BF16: falls back to its FP16 figure, and no bandwidth → a clear error.
    let b = profiles::chip("910b").unwrap();
    assert_eq!(roofline::peak_for(&b, chipbench::formats::Format::E4M3).unwrap().precision, Precision::Fp16);
    let err = project(&r, &b).unwrap_err().to_string();
    assert!(err.contains("memory_bw") && !err.contains('\n'), "{err}");
    // Collectives are not projected.
    assert!(project(&record("all-reduce", "bf16", 1, 1, 1, 8, 1.0), &c).is_err());
}

fn calibration() -> Calibration {
    Calibration {
        fma_peak_gflops: vec![
            ThreadPeak { threads: 1, gflops: 50.0 },
            ThreadPeak { threads: 2, gflops: 100.0 },
        ],
        read_gbs: 20.0,
        threads: 2,
        ..Default::default()
    }
}

fn run_with(records: Vec<Record>) -> Run {
    Run {
        schema_version: chipbench::results::SCHEMA_VERSION,
        run_id: "t".into(),
        created: String::new(),
        tool: "chipbench".into(),
        suite: "test".into(),
        env: Default::default(),
        calibration: Some(calibration()),
        records,
        complete: true,
        notes: vec![],
    }
}

/// Where the calibration measured BF16 dot-product units, the local chip's BF16 and FP8 roofs
/// are theirs (FP8 runs on them, decoded exactly to BF16); FP32 and FP16 keep the FMA roof.
#[test]
fn local_chip_takes_bf16_and_fp8_roofs_from_the_dot_units() {
    let mut cal = calibration();
    let fma = roofline::local_chip(&cal, 2).unwrap();
    assert_eq!(fma.peak_flops(Precision::Bf16), Some(100e9), "no dot units: the FMA roof");
    cal.compute_peaks = vec![
        ComputePeak { unit: "f32-fma avx512".into(), threads: 2, gflops: 100.0 },
        ComputePeak { unit: "bf16-dot avx512_bf16".into(), threads: 1, gflops: 95.0 },
        ComputePeak { unit: "bf16-dot avx512_bf16".into(), threads: 2, gflops: 190.0 },
    ];
    let local = local_chip(&cal, 2).unwrap();
    assert_eq!(local.peak_flops(Precision::Bf16), Some(190e9));
    assert_eq!(local.peak_flops(Precision::Fp8), Some(190e9));
    assert_eq!(local.peak_flops(Precision::Fp32), Some(100e9));
    assert_eq!(local.peak_flops(Precision::Fp16), Some(100e9));
    assert_eq!(cal.unit_peak("bf16-dot avx512_bf16", 1), Some(95.0));
    assert_eq!(cal.unit_peak("bf16-dot neon-bf16", 2), None);
    // A tile-matrix unit (AMX) runs the GEMMs: the local chip's BF16/FP8 roof is its roof, and
    // each product is graded at the roof of the unit its record says ran it.
    cal.compute_peaks.push(ComputePeak { unit: "bf16-dot amx_bf16".into(), threads: 2, gflops: 700.0 });
    let local = local_chip(&cal, 2).unwrap();
    assert_eq!(local.peak_flops(Precision::Bf16), Some(700e9));
    assert_eq!(local.peak_flops(Precision::Fp8), Some(700e9));
    assert_eq!(local.peak_flops(Precision::Fp32), Some(100e9));
    let roof = |compute: &str, act: Format| roofline::calibration_roof(&cal, 2, compute, act, Format::E4M3);
    assert_eq!(roof("bf16-dot amx_bf16", Format::E4M3), Some(700.0));
    assert_eq!(roof("bf16-dot avx512_bf16", Format::E4M3), Some(190.0));
    assert_eq!(roof("", Format::BF16), Some(190.0), "no compute key: the operands decide");
    assert_eq!(roof("f32-fma avx512", Format::F32), Some(100.0));
    assert_eq!(roofline::dot_peak(&cal, 2).map(|p| p.1), Some(190.0), "the vector units' roof is not AMX's");
}

#[test]
fn local_chip_and_error_report() {
    let cal = calibration();
    let local = local_chip(&cal, 2).unwrap();
    assert_eq!(local.peak_flops(Precision::Fp8), Some(100e9));
    assert_eq!(local.memory_bw_bytes_s(), Some(20e9));
    assert_eq!(roofline::calibration_peak(&cal, 1), Some((1, 50.0)));
    // 2·33·257·257 FLOP = 4.36 MFLOP at 100 GFLOP/s = 43.6 µs; measured twice that → −50 %.
    let flops = 2.0 * 33.0 * 257.0 * 257.0;
    let slow = record("gemm", "bf16", 33, 257, 257, 1000, 2.0 * flops / 100e9);
    // A GEMV of 1 MB at 20 GB/s = 50 µs; measured 40 µs → +25 %.
    let fast = record("gemv", "f32", 1, 512, 512, 1_000_000, 40e-6);
    let mut bad = record("gemm", "f32", 7, 7, 7, 100, 1e-6);
    bad.valid = false;
    let check = check_local(&run_with(vec![slow, fast, bad])).unwrap();
    assert_eq!(check.rows.len(), 2);
    assert!((check.rows[0].error + 0.5).abs() < 1e-9);
    assert!((check.rows[1].error - 0.25).abs() < 1e-9);
    assert_eq!(check.groups.len(), 2);
    assert!((check.median_abs_error - 0.375).abs() < 1e-9);
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    // No calibration → one-line error.
    let mut run = run_with(vec![]);
    run.calibration = None;
    assert!(check_local(&run).unwrap_err().to_string().contains("calibration"));
}

#[test]
fn ridge_located_and_svg_rendered() {
    // A machine reaching 60 GFLOP/s and 12 GB/s: ridge at 5 FLOP/B.
    let mut recs = Vec::new();
    for m in [1usize, 7, 33, 129, 257] {
        let (n, k) = (257usize, 257usize);
        let bytes = (n * k * 2 + m * k * 4 + m * n * 4) as u64;
        let flops = 2.0 * (m * n * k) as f64;
        recs.push(record(
            if m == 1 { "gemv" } else { "gemm" },
            "bf16",
            m,
            n,
            k,
            bytes,
            (flops / 60e9).max(bytes as f64 / 12e9),
        ));
    }
    let series = ridge::locate(&recs);
    assert_eq!(series.len(), 1);
    let s = &series[0];
    assert!((s.measured_peak_gflops - 60.0).abs() < 1e-6);
    assert!((s.measured_bw_gbs - 12.0).abs() < 1e-6);
    assert!((s.measured_ridge - 5.0).abs() < 1e-6);
    assert!(s.points.windows(2).all(|w| w[0].intensity <= w[1].intensity));
    assert_eq!(ridge::calibration_ridge(&calibration(), 2), Some(5.0));
    let svg = render_svg(&ridge::plot_data("test roofline", &series, Some(&calibration()))).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("native bf16") && svg.contains("calibration") && svg.contains("<circle"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chipbench"))
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-project.json").display().to_string()
}

#[test]
fn cli_project_on_fixture() {
    let out = bin().args(["project", "--chip", "h20", "--results", &fixture()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("measured here") && text.contains("fp8 tensor peak") && text.contains("257x257x257")
    );
    let out = bin().args(["project", "--chip", "910c", "--results", &fixture()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("weight-only FP8, emulated compute"));
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("r.svg");
    let out = bin()
        .args([
            "project",
            "--chip",
            "local",
            "--results",
            &fixture(),
            "--roofline-svg",
            svg.to_str().unwrap(),
            "--statistic",
            "median",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The fixture's kernels run at 60 % of the calibrated ceilings: −40 % everywhere.
    assert!(text.contains("median |error| over 15 records: 40 %"), "{text}");
    assert!(text.contains("ridge native bf16: measured 5.0 FLOP/B"), "{text}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let out = bin()
        .args(["project", "--chip", "local", "--results", &fixture(), "--statistic", "mean"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.lines().count() == 1 && err.contains("--statistic") && err.contains("median, min"), "{err}");
    let out = bin().args(["project", "--chip", "h30", "--results", &fixture()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.lines().count() == 1 && err.contains("h20"), "{err}");
}

#[test]
fn cli_chips_and_models() {
    let out = bin().args(["chips"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for id in ["h20", "h800", "910c", "mi300x", "no native"] {
        assert!(text.contains(id), "{id} missing:\n{text}");
    }
    let out = bin().args(["chips", "show", "h20"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("source:") && text.contains("willitrunai") && text.contains("bidirectional"));
    let out = bin().args(["chips", "show", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["models", "show", "deepseek-v3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("671.026") && text.contains("routed experts"), "{text}");
    // --config-dir replaces the embedded profiles.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("chips")).unwrap();
    let h20 = include_str!("../configs/chips/h20.toml").replace("value = 96.0", "value = -96.0");
    std::fs::write(dir.path().join("chips/h20.toml"), h20).unwrap();
    let out = bin().args(["chips", "--config-dir", dir.path().to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.lines().count() == 1 && err.contains("h20.toml") && err.contains("memory"), "{err}");
}

/// `project` without `--results` picks the newest *run* in results/: newer JSON that is not one
/// (a `study accumulation` run, a foreign file) is skipped and named, and the file used is said.
#[test]
fn cli_project_picks_the_newest_run_and_skips_study_and_foreign_json() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    std::fs::create_dir(&results).unwrap();
    std::fs::copy(fixture(), results.join("run-project.json")).unwrap();
    let study = bin()
        .current_dir(dir.path())
        .args(["study", "accumulation", "--k", "64", "--rows", "4", "--nc", "inf", "--rounding", "rne"])
        .args(["--dist", "gaussian", "--threads", "1"])
        .output()
        .unwrap();
    assert!(study.status.success(), "{}", String::from_utf8_lossy(&study.stderr));
    std::fs::write(results.join("zz-notes.json"), "{\"hello\": 1}").unwrap();
    let study_json: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "run-project.json" && n != "zz-notes.json")
        .collect();
    assert_eq!(study_json.len(), 1, "{study_json:?}");
    let out = bin().current_dir(dir.path()).args(["project", "--chip", "h20"]).output().unwrap();
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert!(text.contains("run-project.json") && text.contains("newest run"), "{text}");
    assert!(err.contains(&study_json[0]) && err.contains("no valid gemm/gemv"), "{err}");
    assert!(err.contains("zz-notes.json") && err.contains("schema_version"), "{err}");
    assert!(!err.contains("error"), "{err}");
    // Nothing to project at all: a one-line config error, exit 2.
    std::fs::remove_file(results.join("run-project.json")).unwrap();
    let out = bin().current_dir(dir.path()).args(["project", "--chip", "h20"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "{err}");
    assert!(err.contains("no *.json file holds a run"), "{err}");
}

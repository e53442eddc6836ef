//! Collectives in projection and planning: the α–β fit of a synthetic curve (known α, β), the
//! projection of collective records onto a chip link, `plan --collectives` with the FP8/BF16
//! all-to-all ratios, and the measured kernel ceilings of the local check on a CPU record.
//! The collectives fixture is built in code (an exact α + bytes/β curve) and written to a
//! temporary results file for the CLI.

use chipbench::collectives::Op;
use chipbench::profiles;
use chipbench::project::check::{check_local_with, Method};
use chipbench::project::collective::{fits, link_time, project_record, HOP_LATENCY_S};
use chipbench::project::kernel_roofs::{self, LocalRoofs, Statistic};
use chipbench::project::plan_collectives::{calibrate, local_link};
use chipbench::project::planner::{self, dispatch_bytes_per_element, PlanOptions, WeightPrecision};
use chipbench::results::{Bytes, Calibration, Env, ErrorStats, Record, Run, ThreadPeak, Time};
use std::path::PathBuf;
use std::process::Command;

/// (op, payload, α, β) of the synthetic curves.
const CURVES: [(&str, &str, f64, f64); 4] = [
    ("all-reduce", "f32", 3e-6, 4e9),
    ("all-to-all", "bf16", 2e-6, 8e9),
    ("all-to-all", "e4m3", 2e-6, 6e9),
    ("all-gather", "f32", 1e-6, 5e9),
];
const RANKS: usize = 2;

fn coll_record(op: &str, payload: &str, bytes: u64, time_s: f64) -> Record {
    let factor = op.parse::<Op>().unwrap().bus_factor(RANKS);
    let algbw = bytes as f64 / time_s / 1e9;
    Record {
        backend: "mpi".into(),
        device: "cpu".into(),
        op: op.into(),
        format: payload.into(),
        act_format: payload.into(),
        scaling: "none".into(),
        m: bytes as usize,
        n: 1,
        k: 1,
        threads: 1,
        bytes: Bytes { activations: bytes, total: bytes, ..Default::default() },
        time: Time { median_s: time_s, min_s: time_s, max_s: time_s, samples: 20, ..Default::default() },
        gflops: 0.0,
        gbs: algbw,
        error: ErrorStats::default(),
        valid: true,
        note: String::new(),
        timing: "wall-clock".into(),
        memory: None,
        ranks: Some(RANKS),
        algbw_gbs: Some(algbw),
        busbw_gbs: Some(algbw * factor),
        payload: Some(payload.into()),
        ..Default::default()
    }
}

fn run_of(records: Vec<Record>, calibration: Option<Calibration>) -> Run {
    Run {
        schema_version: chipbench::results::SCHEMA_VERSION,
        run_id: "fixture".into(),
        created: "2026-01-01T00:00:00Z".into(),
        tool: "chipbench".into(),
        suite: "collectives".into(),
        env: Env::default(),
        calibration,
        records,
        complete: true,
        notes: vec![],
    }
}

/// Exact `t = α + f·B/β` curves from 1 KiB to 16 MiB (the 64 KiB all-reduce marked invalid: it
/// must be left out of the fit).
fn collectives_run() -> Run {
    let mut records = Vec::new();
    for (op, payload, alpha, beta) in CURVES {
        let f = op.parse::<Op>().unwrap().bus_factor(RANKS);
        for e in 10..=24 {
            let bytes = 1u64 << e;
            let mut r = coll_record(op, payload, bytes, alpha + f * bytes as f64 / beta);
            if op == "all-reduce" && e == 16 {
                r.valid = false;
                r.time.median_s *= 100.0;
            }
            records.push(r);
        }
    }
    run_of(records, None)
}

/// The fixture as a results file in a fresh temporary directory (kept alive by the guard).
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collectives-alpha-beta.json");
    chipbench::results::write_atomic(&path, collectives_run().to_json().as_bytes(), false).unwrap();
    (dir, path)
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chipbench"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

#[test]
fn fit_recovers_alpha_beta_of_each_curve() {
    let (_dir, path) = fixture();
    let run = chipbench::results::Run::load(&path).unwrap();
    let fs = fits(&run);
    assert_eq!(fs.len(), CURVES.len());
    for (op, payload, alpha, beta) in CURVES {
        let f = fs.iter().find(|f| f.op == op && f.payload == payload).unwrap();
        assert!(close(f.alpha_s, alpha, 1e-6) && close(f.beta, beta, 1e-6), "{f:?}");
        let expect = if op == "all-reduce" { 14 } else { 15 };
        assert_eq!((f.points, f.ranks), (expect, RANKS));
        assert!(f.median_rel_residual < 1e-9);
    }
}

#[test]
fn collective_record_on_h20_link() {
    let h20 = profiles::chip("h20").unwrap();
    // 16 MiB all-reduce over 2 ranks: bus bytes 2·(1/2)·16 MiB = 16 MiB; 2 ring steps × 2 µs;
    // H20 NVLink 900 GB/s bidirectional → 450 GB/s per direction.
    let r = coll_record("all-reduce", "f32", 16 << 20, 1e-3);
    let p = project_record(&r, &h20, HOP_LATENCY_S).unwrap();
    assert_eq!(p.bus_bytes, (16u64 << 20) as f64);
    assert_eq!(p.latency_s, 4e-6);
    assert!(close(p.time_s, 4e-6 + (16u64 << 20) as f64 / 450e9, 1e-12));
    // All-to-all over 3 ranks: (n−1)/n, n−1 steps.
    let t = link_time(Op::AllToAll, 3, 3e9, 450e9, 1e-6);
    assert!(close(t.bus_bytes, 2e9, 1e-12) && close(t.latency_s, 2e-6, 1e-12));
    // No scale-up link: a one-line refusal.
    let e = project_record(&r, &profiles::chip("rtx-4090").unwrap(), HOP_LATENCY_S).unwrap_err();
    assert!(e.to_string().contains("interconnect"), "{e}");
}

#[test]
fn cli_project_collectives() {
    let (_dir, path) = fixture();
    let out = bin().args(["project", "--chip", "h20", "--results", path.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("collectives projected onto") && text.contains("450 GB/s") && text.contains("16MiB")
    );
    let out =
        bin().args(["project", "--chip", "local", "--results", path.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // all-reduce f32: α 3 µs, β 4 GB/s.
    assert!(
        text.lines().any(|l| l.starts_with("all-reduce") && l.contains("3.00 µs") && l.contains("4.00")),
        "{text}"
    );
}

#[test]
fn plan_calibrated_collectives_and_fp8_ratio() {
    let run = collectives_run();
    let link = local_link(&run, 10e9).unwrap();
    // η = β / memcpy.
    assert!(close(link.eta(&link.allreduce), 0.4, 1e-9));
    assert!(close(link.eta(&link.alltoall_bf16), 0.8, 1e-9));
    assert!(close(link.eta(&link.alltoall_fp8), 0.6, 1e-9));
    let m = profiles::model("deepseek-v3").unwrap();
    let h = m.architecture.hidden as usize;
    // DeepSeek-V3 dispatch in FP8 with 1×128 scales: (1 + 4/128) / 2 of BF16.
    let ratio = dispatch_bytes_per_element(WeightPrecision::Fp8, h)
        / dispatch_bytes_per_element(WeightPrecision::Bf16, h);
    assert!(close(ratio, 0.515625, 1e-12), "{ratio}");
    let p = planner::plan(&m, &profiles::chip("h20").unwrap(), &PlanOptions::default()).unwrap();
    let c = calibrate(&p, h, &link);
    assert!(close(c.bytes_ratio(), 0.515625, 1e-9));
    assert!(close(c.spec_time_ratio().unwrap(), 0.515625, 1e-9));
    // Calibrated: α + D / (η L), per payload.
    let l = 450e9;
    assert!(close(c.a2a_cal_bf16_s.unwrap(), 2e-6 + c.a2a_bytes_bf16 / (0.8 * l), 1e-9));
    assert!(close(c.a2a_cal_fp8_s.unwrap(), 2e-6 + c.a2a_bytes_fp8 / (0.6 * l), 1e-9));
    let r = p.ring as f64;
    assert!(close(c.allreduce_s.unwrap(), 3e-6 + 2.0 * (r - 1.0) / r * p.grad_bytes / (0.4 * l), 1e-9));
    assert!(c.allreduce_s.unwrap() > p.allreduce_s.unwrap());
    // A file without an all-to-all curve: one-line error naming what is missing.
    let only_ar =
        run_of(collectives_run().records.into_iter().filter(|r| r.op == "all-reduce").collect(), None);
    let e = local_link(&only_ar, 10e9).unwrap_err().to_string();
    assert!(e.contains("all-to-all") && e.lines().count() == 1, "{e}");
    // The CLI prints both figures side by side.
    let (_dir, path) = fixture();
    let out = bin()
        .args(["plan", "--compare", "h20,ascend-910c,h800", "--collectives", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for s in [
        "all-reduce time, calibrated",
        "FP8/BF16 bytes",
        "0.516",
        "FP8/BF16 time, calibrated",
        "huawei-ascend-910c",
    ] {
        assert!(text.contains(s), "{s} missing:\n{text}");
    }
}

#[test]
fn measured_kernel_ceiling_replaces_the_bytes_only_roofline() {
    // One CPU GEMV record in E4M3 at an odd shape; the ceiling is measured on the calibration
    // shape, so the projection differs from the bytes-only roofline and is finite.
    let (n, k) = (257usize, 129usize);
    let bytes = (n * k + 4 * (k + n) + 4) as u64;
    let mut r = coll_record("all-reduce", "f32", 0, 1.0);
    r.op = "gemv".into();
    r.backend = "cpu".into();
    r.format = "e4m3".into();
    r.act_format = "f32".into();
    r.scaling = "per-tensor".into();
    (r.m, r.n, r.k, r.threads) = (1, n, k, 1);
    r.bytes = Bytes { total: bytes, ..Default::default() };
    r.time = Time { median_s: 1e-4, min_s: 5e-5, max_s: 2e-4, samples: 9, ..Default::default() };
    r.ranks = None;
    let cal = Calibration {
        fma_peak_gflops: vec![ThreadPeak { threads: 1, gflops: 1e6 }],
        read_gbs: 1e6,
        threads: 1,
        ..Default::default()
    };
    let run = run_of(vec![r], Some(cal));
    let timer = kernel_roofs::calibration_timer(std::time::Duration::from_millis(5));
    let records: Vec<&Record> = run.records.iter().collect();
    let key = kernel_roofs::Key::of(records[0]);
    let roof = kernel_roofs::calibrate(&key, &timer, Statistic::Min).unwrap();
    let roofs = LocalRoofs { kernels: vec![(key, roof)] };
    let before = check_local_with(&run, Method::Roofline, Statistic::Min).unwrap();
    let after = check_local_with(&run, Method::Measured(&roofs), Statistic::Min).unwrap();
    // Absurd calibration peaks make the bytes-only roofline predict almost no time.
    assert!(before.rows[0].error < -0.99);
    assert_eq!(after.rows[0].measured_s, 5e-5);
    assert!(close(after.rows[0].projected_s, roof.time(1, n, k), 1e-12));
    assert_eq!(after.rows[0].bound.to_string(), "kernel");
    let median = check_local_with(&run, Method::Measured(&roofs), Statistic::Median).unwrap();
    assert_eq!(median.rows[0].measured_s, 1e-4);
}

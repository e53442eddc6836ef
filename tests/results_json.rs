//! The results file and what users read: the JSON carries every contract key, records are valid
//! for a correct backend and invalid (and untimed) for a deliberately wrong one, and the Markdown
//! report renders exactly as the checked-in snapshot.
//!
//! The backends here are tiny naive ones defined in this test, so the runner is tested
//! independently of the real kernels.

use chipbench::kernels::{Backend, BufferBytes, Capability, DeviceInfo, Prepared, Problem, Support};
use chipbench::measure::runner::{run_cases, RunOptions};
use chipbench::measure::suite::Suite;
use chipbench::report::{json::Json, markdown, Exporter};
use chipbench::results::*;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Dequantize once, multiply in f32. `wrong` perturbs one output far beyond rounding.
struct Naive {
    name: &'static str,
    wrong: bool,
}

struct NaivePrepared {
    a: Vec<f32>,
    w: Vec<f32>,
    m: usize,
    n: usize,
    k: usize,
    c: Vec<f32>,
    wrong: bool,
}

impl Prepared for NaivePrepared {
    fn run(&mut self) -> chipbench::Result<Option<f64>> {
        for i in 0..self.m {
            for j in 0..self.n {
                let mut s = 0f32;
                for p in 0..self.k {
                    s += self.a[i * self.k + p] * self.w[j * self.k + p];
                }
                self.c[i * self.n + j] = s;
            }
        }
        if self.wrong {
            self.c[0] += 1.0 + self.c[0].abs() * 0.01;
        }
        Ok(None)
    }
    fn output(&mut self) -> chipbench::Result<Vec<f32>> {
        Ok(self.c.clone())
    }
    fn buffer_bytes(&self) -> BufferBytes {
        BufferBytes {
            weights: (self.w.len() * 4) as u64,
            activations: (self.a.len() * 4) as u64,
            outputs: (self.c.len() * 4) as u64,
            ..Default::default()
        }
    }
}

impl Backend for Naive {
    fn name(&self) -> &'static str {
        self.name
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo { name: "test device".into(), kind: "cpu".into(), ..Default::default() }
    }
    fn threads(&self) -> usize {
        1
    }
    fn capabilities(&self) -> Vec<Capability> {
        Vec::new()
    }
    fn support(&self, _p: &Problem) -> Support {
        Support::Native
    }
    fn prepare<'a>(&'a self, p: &'a Problem) -> chipbench::Result<Box<dyn Prepared + 'a>> {
        Ok(Box::new(NaivePrepared {
            a: p.a.dequantize(),
            w: p.w.dequantize(),
            m: p.m(),
            n: p.n(),
            k: p.k(),
            c: vec![0.0; p.m() * p.n()],
            wrong: self.wrong,
        }))
    }
}

const SUITE: &str = r#"
name = "tiny"
formats = ["f32", "bf16", "e4m3"]
scalings = ["per-tensor", "deepseek"]
[timing]
warmup_s = 0.0
budget_s = 0.01
min_samples = 3
max_samples = 50
[[shapes]]
op = "gemv"
n = 33
k = 129
[[shapes]]
op = "gemm"
m = 7
n = 13
k = 257
"#;

fn run_tiny() -> Run {
    let suite = Suite::parse(SUITE, Path::new("tiny.toml")).unwrap();
    let backends: Vec<Box<dyn Backend>> = vec![
        Box::new(Naive { name: "naive", wrong: false }),
        Box::new(Naive { name: "broken", wrong: true }),
    ];
    let opts = RunOptions::new(suite.timing, None, Arc::new(AtomicBool::new(false)));
    let out = run_cases(&suite.cases, &backends, &opts, &mut |_| {});
    assert!(!out.interrupted);
    Run {
        schema_version: SCHEMA_VERSION,
        run_id: "test".into(),
        created: "2025-01-01T00:00:00Z".into(),
        tool: "chipbench test".into(),
        suite: suite.name,
        env: chipbench::measure::env::collect(1, backends.iter().map(|b| b.device()).collect()),
        calibration: Some(Calibration {
            fma_peak_gflops: vec![ThreadPeak { threads: 1, gflops: 1.0 }],
            stream_gbs: Stream { copy: 1.0, scale: 1.0, add: 1.0, triad: 1.0 },
            read_gbs: 1.0,
            threads: 1,
            ..Default::default()
        }),
        records: out.records,
        complete: true,
        notes: Vec::new(),
    }
}

/// Every key DESIGN.md's contract names, at its place.
fn assert_contract(v: &serde_json::Value) {
    let has = |v: &serde_json::Value, keys: &[&str], at: &str| {
        for k in keys {
            assert!(v.get(k).is_some(), "missing key {at}.{k} in {v}");
        }
    };
    has(
        v,
        &[
            "schema_version",
            "run_id",
            "created",
            "tool",
            "suite",
            "env",
            "calibration",
            "records",
            "complete",
        ],
        "",
    );
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    has(
        &v["env"],
        &[
            "host",
            "os",
            "arch",
            "cpu_model",
            "cpu_features",
            "cores",
            "threads",
            "memory_bytes",
            "rustc",
            "git_revision",
            "chipbench_version",
            "devices",
        ],
        "env",
    );
    has(&v["calibration"], &["fma_peak_gflops", "stream_gbs", "read_gbs", "threads"], "calibration");
    has(&v["calibration"]["stream_gbs"], &["copy", "scale", "add", "triad"], "calibration.stream_gbs");
    let records = v["records"].as_array().expect("records is an array");
    assert!(!records.is_empty());
    for r in records {
        has(
            r,
            &[
                "backend", "device", "op", "format", "scaling", "m", "n", "k", "threads", "bytes", "time",
                "gflops", "gbs", "error", "valid",
            ],
            "record",
        );
        has(&r["bytes"], &["weights", "scales", "activations", "outputs", "total"], "record.bytes");
        has(&r["time"], &["median_s", "min_s", "max_s", "samples"], "record.time");
        has(&r["error"], &["max_abs", "max_rel", "diff"], "record.error");
    }
}

#[test]
fn json_has_every_contract_key_and_round_trips() {
    let run = run_tiny();
    let text = Json.render(&run).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_contract(&v);
    let dir = tempfile::tempdir().unwrap();
    let paths = chipbench::report::write_run(&run, dir.path(), &[&Json, &markdown::Markdown], false).unwrap();
    let back = Run::load(&paths[0]).unwrap();
    assert_eq!(back.records.len(), run.records.len());
    // Never overwritten without force.
    let again = chipbench::report::write_run(&run, dir.path(), &[&Json], false).unwrap_err().to_string();
    assert!(again.contains("--force"), "{again}");
    chipbench::report::write_run(&run, dir.path(), &[&Json], true).unwrap();
}

#[test]
fn correct_backend_is_valid_and_timed_wrong_one_is_invalid_and_not_timed() {
    let run = run_tiny();
    // 2 shapes × (f32, bf16, e4m3 per-tensor, e4m3 deepseek) × 2 backends.
    assert_eq!(run.records.len(), 16);
    for r in &run.records {
        let label = format!("{} {} {} {}", r.backend, r.op, r.format, r.scaling);
        if r.backend == "naive" {
            assert!(r.valid, "{label}: {}", r.note);
            assert!(r.time.samples >= 3 && r.time.min_s > 0.0, "{label}");
            assert!(r.time.min_s <= r.time.median_s && r.time.median_s <= r.time.max_s, "{label}");
            assert!(r.gflops > 0.0 && r.gbs > 0.0 && r.error.diff.abs() < 1e-6, "{label}");
            assert_eq!(r.timing, "wall-clock");
            let m = r.memory.expect("memory");
            assert!(
                m.logical_weight_bytes >= r.bytes.weights
                    && m.logical_weight_bytes <= r.bytes.weights + r.bytes.scales
            );
            assert!(m.buffers.weights > 0);
        } else {
            assert!(!r.valid, "{label} must be invalid");
            assert_eq!(r.time, Time::default(), "{label}: an invalid output is never timed");
            assert_eq!((r.gflops, r.gbs), (0.0, 0.0));
            assert!(r.note.contains("invalid, not timed"), "{label}: {}", r.note);
            assert!(r.error.max_abs >= 1.0, "{label}");
        }
    }
    // FP8 weights: half the bytes of bf16 plus the scales.
    let w = |f: &str, s: &str| {
        run.records
            .iter()
            .find(|r| r.backend == "naive" && r.op == "gemv" && r.format == f && r.scaling == s)
            .unwrap()
            .memory
            .unwrap()
            .logical_weight_bytes
    };
    assert_eq!(w("bf16", "none"), 33 * 129 * 2);
    assert_eq!(w("e4m3", "per-tensor"), 33 * 129 + 4);
    assert_eq!(w("e4m3", "deepseek"), 33 * 129 + 2 * 4); // 1 × 2 blocks of 128×128
}

fn fixed_run() -> Run {
    let rec = |backend: &str, format: &str, scaling: &str, median: f64, valid: bool| {
        let (n, k) = (4096usize, 4096usize);
        let bytes_w = (n * k * if format == "bf16" { 2 } else { 1 }) as u64;
        let scales = if scaling == "none" { 0 } else { 4 };
        Record {
            backend: backend.into(),
            device: "Test CPU".into(),
            op: "gemv".into(),
            format: format.into(),
            act_format: "f32".into(),
            scaling: scaling.into(),
            m: 1,
            n,
            k,
            threads: 2,
            bytes: Bytes {
                weights: bytes_w,
                scales,
                activations: (k * 4) as u64,
                outputs: (n * 4) as u64,
                total: bytes_w + scales + (k * 4 + n * 4) as u64,
            },
            time: if valid {
                Time {
                    median_s: median,
                    min_s: median * 0.9,
                    max_s: median * 1.5,
                    samples: 40,
                    ..Default::default()
                }
            } else {
                Time::default()
            },
            gflops: if valid { 2.0 * (n * k) as f64 / median / 1e9 } else { 0.0 },
            gbs: if valid { (bytes_w + scales) as f64 / median / 1e9 } else { 0.0 },
            error: ErrorStats { max_abs: 1e-5, max_rel: if valid { 2.5e-7 } else { 0.5 }, diff: 1e-12 },
            valid,
            note: if valid {
                String::new()
            } else {
                "invalid, not timed: output[0] = 1e0, reference 0e0".into()
            },
            timing: "wall-clock".into(),
            memory: Some(Memory {
                logical_weight_bytes: bytes_w + scales,
                buffers: Default::default(),
                rss_peak_bytes: Some(10 * (1 << 20) + bytes_w),
                rss_baseline_bytes: Some(10 * (1 << 20)),
            }),
            ranks: None,
            algbw_gbs: None,
            busbw_gbs: None,
            payload: None,
            ..Default::default()
        }
    };
    Run {
        schema_version: SCHEMA_VERSION,
        run_id: "20250101-000000-snapshot".into(),
        created: "2025-01-01T00:00:00Z".into(),
        tool: "chipbench 0.0.0".into(),
        suite: "snapshot".into(),
        env: Env {
            host: "testhost".into(),
            os: "TestOS".into(),
            arch: "x86_64".into(),
            cpu_model: "Test CPU".into(),
            cpu_features: vec!["avx2".into(), "fma".into()],
            cores: 2,
            threads: 2,
            memory_bytes: 8 << 30,
            rustc: "rustc 1.0.0".into(),
            git_revision: "abc123".into(),
            chipbench_version: "0.0.0".into(),
            devices: vec![],
            cpu_vendor: "AuthenticAMD".into(),
            cpu_family: Some(25),
            cpu_model_number: Some(1),
            cpu_stepping: Some(1),
            base_clock_mhz: Some(2445.4),
            base_clock_source: "cpuinfo cpu MHz".into(),
            measured_clock_mhz: Some(3501.0),
            load_before: Some(HostLoad {
                loadavg: [0.5, 0.25, 0.125],
                steal_ticks: 100,
                total_ticks: 10_000,
            }),
            load_after: Some(HostLoad { loadavg: [2.0, 1.0, 0.5], steal_ticks: 150, total_ticks: 11_000 }),
        },
        calibration: Some(Calibration {
            fma_peak_gflops: vec![
                ThreadPeak { threads: 1, gflops: 50.0 },
                ThreadPeak { threads: 2, gflops: 100.0 },
            ],
            stream_gbs: Stream { copy: 10.0, scale: 10.5, add: 11.0, triad: 11.5 },
            read_gbs: 12.0,
            threads: 2,
            read_variant: "avx2-4s".into(),
            read_variants: vec![
                ReadVariantGbs { variant: "portable-1s".into(), gbs: 9.0 },
                ReadVariantGbs { variant: "avx2-4s".into(), gbs: 12.0 },
            ],
            read_gbs_range: Some([11.0, 12.0]),
            read_remeasures: 3,
            read_buffer_bytes: 128 << 20,
            llc_bytes: Some(32 << 20),
            read_pinned: true,
            ..Default::default()
        }),
        records: vec![
            // 16 MiB in 1 ms = 16.8 GB/s, 40 % above the 12 GB/s read ceiling: flagged.
            rec("cpu", "e4m3", "deepseek", 1e-3, true),
            rec("cpu", "bf16", "none", 4e-3, true),
            rec("cpu", "e4m3", "per-tensor", 2e-3, true),
            rec("cpu", "e5m2", "per-tensor", 0.0, false),
            rec("candle", "bf16", "none", 8e-3, true),
            rec("candle", "e4m3", "per-tensor", 3e-2, true),
        ],
        complete: false,
        notes: vec!["wgpu: skipped: no adapter".into()],
    }
}

#[test]
fn markdown_report_matches_snapshot() {
    let got = markdown::render(&fixed_run());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/run_report.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(got, want, "Markdown changed; review and rerun with UPDATE_SNAPSHOTS=1");
    // And it says what matters: the halving, the comparison, the invalid row, the interruption.
    assert!(got.contains("| e4m3   | per-tensor |      1.0000 |"), "{got}");
    assert!(got.contains("2.00×") && got.contains("15.00×"), "{got}");
    assert!(got.contains("| NO ") && got.contains("Incomplete run"), "{got}");
    // The record above the read ceiling, the ceiling's provenance and the host identification.
    assert!(
        got.contains("| FLAGGED |") && got.contains("16.8 GB/s is above the 12.0 GB/s read ceiling"),
        "{got}"
    );
    assert!(
        got.contains("read ceiling: 12.0 GB/s (avx2-4s, best of 2") && got.contains("11.0–12.0 GB/s"),
        "{got}"
    );
    assert!(
        got.contains("family 25 model 1 stepping 1") && got.contains("steal time during the run 5.0 %"),
        "{got}"
    );
}

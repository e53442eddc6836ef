//! Bad input to every subcommand, run as a user runs it: unknown names, bad numbers, zero and
//! absurd shapes, missing files, a directory where a file belongs, foreign JSON, invalid UTF-8.
//!
//! Each refusal must: exit with the documented code (2 usage/config, 3 runtime: file system or
//! device), print exactly one line on stderr ("chipbench: error: ..."), name the argument or the
//! file and field, never panic, and write nothing (the working directory, where outputs default
//! to, is compared before and after). A shape beyond the memory is refused before anything large
//! is allocated: the child's peak RSS (wait4) stays small.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn chipbench(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chipbench"));
    c.current_dir(cwd).env_remove("CHIPBENCH_FULL").stdin(Stdio::null());
    c
}

/// Every path under `dir`, sorted (what a refusal must leave unchanged).
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Run `args` in `dir` (with `stdin` bytes if given); check it is refused with `code` and one
/// stderr line containing every `want`, and that `dir` is unchanged. Returns the line.
fn refused(dir: &Path, args: &[&str], stdin: Option<&[u8]>, code: i32, want: &[&str]) -> String {
    let before = tree(dir);
    let mut cmd = chipbench(dir);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {err}");
    assert!(lines[0].starts_with("chipbench: error: "), "{args:?}: {err}");
    for w in want {
        assert!(lines[0].contains(w), "{args:?}: '{w}' missing in: {err}");
    }
    assert_eq!(tree(dir), before, "{args:?} wrote files on refusal");
    lines[0].to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

const SUITE: &str =
    "name = \"t\"\nformats = [\"bf16\"]\nthreads = [1]\n[[shapes]]\nop = \"gemv\"\nn = 33\nk = 65\n";

/// A small valid results file, for the subcommands that read one.
fn results_file(dir: &Path) -> String {
    use chipbench::results::*;
    let run = Run {
        schema_version: SCHEMA_VERSION,
        run_id: "r".into(),
        created: "2026-01-01T00:00:00Z".into(),
        tool: "chipbench".into(),
        suite: "t".into(),
        env: Env::default(),
        calibration: None,
        records: vec![],
        complete: true,
        notes: vec![],
    };
    write(dir, "ok.json", run.to_json().as_bytes())
}

#[test]
fn run_refuses_bad_arguments_and_suites() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = ["--out", "out", "--no-rss", "--no-calibration"];
    let run = |extra: &[&str], code: i32, want: &[&str]| {
        let args: Vec<&str> = ["run"].iter().chain(extra).chain(&out).copied().collect();
        refused(d, &args, None, code, want)
    };
    run(&["--backend", "tpu"], 2, &["--backend", "'tpu'", "cpu, candle, wgpu, all"]);
    run(&["--format", "e3m4"], 2, &["--format", "'e3m4'", "e4m3"]);
    run(&["--scaling", "mx64"], 2, &["--scaling", "'mx64'", "deepseek"]);
    run(&["--threads", "two"], 2, &["--threads", "'two'"]);
    run(&["--threads=-1"], 2, &["--threads", "'-1'"]);
    run(&["--bogus"], 2, &["'--bogus'", "usage: chipbench run"]);
    run(&["--suite", "missing.toml"], 3, &["missing.toml", "No such file"]);
    run(&["--suite", "."], 3, &["directory"]);
    let json = write(d, "foreign.json", br#"{"name": "t", "shapes": []}"#);
    run(&["--suite", &json], 2, &["foreign.json", "(line 1)"]);
    let utf8 = write(d, "latin1.toml", b"name = \"caf\xe9\"\n");
    run(&["--suite", &utf8], 2, &["latin1.toml", "not UTF-8"]);
    for (name, text, field) in [
        ("zero.toml", SUITE.replace("n = 33", "n = 0"), "shapes[0].n"),
        ("negative.toml", SUITE.replace("k = 65", "k = -1"), "k"),
        ("absurd.toml", SUITE.replace("k = 65", "k = 1099511627776"), "shapes[0].k"),
        ("float.toml", SUITE.replace("n = 33", "n = 1e308"), "n"),
        ("nan.toml", SUITE.replace("[[shapes]]", "[timing]\nbudget_s = nan\n[[shapes]]"), "timing.budget_s"),
        ("empty.toml", SUITE.replace("[\"bf16\"]", "[]"), "formats"),
        ("unknown.toml", format!("{SUITE}colour = 1\n"), "colour: unknown field"),
    ] {
        let p = write(d, name, text.as_bytes());
        run(&["--suite", &p], 2, &[name, field]);
    }
}

/// Peak resident set of a child that ran to completion, from wait4(2) (kB on Linux).
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std cannot see
fn run_with_peak_rss(cmd: &mut Command) -> (i32, String, u64) {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child; both out-pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status));
    (libc::WEXITSTATUS(status), err, usage.ru_maxrss as u64 * 1024)
}

#[cfg(target_os = "linux")]
#[test]
fn a_shape_beyond_memory_is_refused_before_any_large_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 2^17 × 2^17 f32 weights are 64 GiB: beyond most machines, within MAX_DIM.
    let suite = write(d, "big.toml", SUITE.replace("n = 33\nk = 65", "n = 131072\nk = 131072").as_bytes());
    let available = chipbench::measure::memory::mem_available_bytes().unwrap();
    let absurd =
        write(d, "huge.toml", SUITE.replace("n = 33\nk = 65", "n = 16000000\nk = 16000000").as_bytes());
    let suites = if available > 80 << 30 { vec![absurd] } else { vec![suite, absurd] };
    for s in suites {
        let (code, err, peak) =
            run_with_peak_rss(chipbench(d).args(["run", "--suite", &s, "--out", "out", "--no-calibration"]));
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("needs") && err.contains("GiB available") && err.contains("gemv"), "{err}");
        assert!(peak < 64 << 20, "peak RSS {} MiB before the refusal", peak >> 20);
        assert!(!d.join("out").exists());
    }
}

#[test]
fn convert_refuses_bad_values() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    refused(d, &["convert", "--to", "e3m4", "1"], None, 2, &["--to", "'e3m4'", "e4m3fn"]);
    refused(d, &["convert", "1"], None, 2, &["--to", "(missing)"]);
    for bad in ["abc", "0x123456789", "0x", "1,5", "1e"] {
        refused(d, &["convert", "--to", "e4m3", "1", bad], None, 2, &["value", bad]);
    }
    refused(d, &["convert", "--to", "e5m2"], Some(b""), 2, &["stdin", "(empty)"]);
    refused(d, &["convert", "--to", "e5m2"], Some(b"1 2 \xff\xfe 3"), 2, &["value"]);
    refused(d, &["convert", "--to", "e4m3", "a\nb"], None, 2, &["'a\\nb'"]);
}

#[test]
fn profile_commands_refuse_unknown_names_and_broken_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    refused(d, &["plan", "--model", "gpt-5", "--chip", "h20"], None, 2, &["model", "'gpt-5'", "deepseek-v3"]);
    refused(d, &["plan", "--chip", "h30"], None, 2, &["chip", "'h30'", "h20"]);
    refused(d, &["plan", "--chip", "h20", "--batch", "0"], None, 2, &["--batch", "'0'"]);
    refused(d, &["plan", "--chip", "h20", "--context", "0"], None, 2, &["--context", "'0'"]);
    refused(d, &["plan", "--chip", "h20", "--usable-memory", "nan"], None, 2, &["--usable-memory"]);
    // Every numeric option is bounded to what a real plan can have; the refusal names the range.
    let plan = |opt: &str, v: &str, range: &str| {
        refused(d, &["plan", "--chip", "h20", opt, v], None, 2, &[opt, &format!("'{v}'"), range]);
    };
    plan("--context", "1000000000000", "1 to 10000000 tokens");
    plan("--context", "10000001", "1 to 10000000 tokens");
    plan("--batch", "65537", "1 to 65536 sequences");
    plan("--prompt", "0", "1 to 10000000 tokens");
    plan("--prompt", "10000001", "1 to 10000000 tokens");
    plan("--train-chips", "0", "1 to 1000000 chips");
    plan("--train-chips", "1000001", "1 to 1000000 chips");
    plan("--usable-memory", "0.001", "from 0.01 to 1");
    plan("--usable-memory", "1.5", "from 0.01 to 1");
    plan("--usable-memory", "inf", "from 0.01 to 1");
    refused(d, &["plan", "--chip", "h20", "--precision", "int4"], None, 2, &["precision", "'int4'"]);
    refused(d, &["chips", "--config-dir", "missing"], None, 3, &["missing"]);
    refused(d, &["models", "bogus"], None, 2, &["'bogus'", "usage: chipbench models"]);

    let cfg = d.join("cfg");
    std::fs::create_dir_all(cfg.join("models")).unwrap();
    std::fs::create_dir_all(cfg.join("chips")).unwrap();
    let h20 = include_str!("../configs/chips/h20.toml");
    let llama = include_str!("../configs/models/llama-3.1-8b.toml");
    let cases: [(&str, String, &str); 5] = [
        ("chips", h20.replace("value = 96.0", "value = \"96\""), "memory.value"),
        ("chips", h20.replace("value = 96.0", "value = -1.0"), "memory"),
        ("chips", h20.replace("[memory]", "[memory]\ncolour = 1"), "memory.colour"),
        ("models", llama.replace("n_heads = 32", "n_heads = 0"), "attention.n_heads"),
        ("models", llama.replace("layers = 32", "layers = 9223372036854775807"), "architecture"),
    ];
    for (kind, text, field) in cases {
        let sub = cfg.join(kind);
        let file = sub.join("broken.toml");
        std::fs::write(&file, text).unwrap();
        refused(d, &[kind, "--config-dir", cfg.to_str().unwrap()], None, 2, &["broken.toml", field]);
        std::fs::remove_file(file).unwrap();
    }
    std::fs::write(cfg.join("chips/latin1.toml"), b"id = \"caf\xe9\"\n").unwrap();
    refused(d, &["chips", "--config-dir", cfg.to_str().unwrap()], None, 2, &["latin1.toml", "not UTF-8"]);
}

#[test]
fn result_readers_refuse_missing_foreign_and_directory_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ok = results_file(d);
    let foreign = write(d, "foreign.json", br#"{"name": "not a chipbench file"}"#);
    let newer = write(d, "newer.json", br#"{"schema_version": 99}"#);
    let broken = write(d, "broken.json", b"{\"schema_version\": 1, \"records\": [");
    let project = |file: &str, code: i32, want: &[&str]| {
        refused(d, &["project", "--chip", "h20", "--results", file], None, code, want)
    };
    project("missing.json", 3, &["missing.json"]);
    project(".", 3, &["directory"]);
    project(&foreign, 2, &["foreign.json", "schema_version", "not a chipbench results file"]);
    project(&newer, 2, &["newer.json", "schema_version", "99"]);
    project(&broken, 2, &["broken.json", "json"]);
    refused(d, &["project", "--chip", "h30", "--results", &ok], None, 2, &["chip", "'h30'"]);
    refused(d, &["report", "missing-dir", "--out", "r.md"], None, 2, &["report inputs", "missing-dir"]);
    // A missing input is exit 3 for claims too (it used to warn and exit 0).
    refused(d, &["claims", "--results", "/missing"], None, 3, &["/missing", "not found"]);
    refused(d, &["claims", "--results", &ok, "--results", "missing-dir"], None, 3, &["missing-dir"]);
    // An existing output is never overwritten without --force.
    std::fs::write(d.join("r.md"), "mine").unwrap();
    refused(d, &["report", &ok, "--out", "r.md"], None, 2, &["r.md", "--force"]);
    assert_eq!(std::fs::read_to_string(d.join("r.md")).unwrap(), "mine");
}

#[test]
fn study_and_collectives_refuse_bad_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let study = |extra: &[&str], want: &[&str]| {
        let args: Vec<&str> = ["study", "accumulation"].iter().chain(extra).copied().collect();
        refused(d, &args, None, 2, want)
    };
    study(&["--k", "0..8"], &["k", "'0..8'"]);
    study(&["--k", "1..99999999999999"], &["needs", "GiB available"]);
    study(&["--rows", "0"], &["rows", "'0'"]);
    study(&["--rows", "99999999999999"], &["rows"]);
    study(&["--width", "0"], &["width", "'0'"]);
    study(&["--nc", "-3"], &["nc"]);
    study(&["--format", "e3m4"], &["format", "'e3m4'"]);
    let coll = |extra: &[&str], want: &[&str]| {
        let args: Vec<&str> = ["collectives"].iter().chain(extra).copied().collect();
        refused(d, &args, None, 2, want)
    };
    coll(&["--sizes", "1X"], &["--sizes", "'1X'"]);
    coll(&["--sizes", "0"], &["--sizes", "'0'"]);
    coll(&["--sizes", "99999999999999999999G"], &["--sizes"]);
    coll(&["--sizes", "1M..1K"], &["--sizes", "a ≤ b"]);
    coll(&["--op", "broadcast"], &["--op", "'broadcast'", "all-reduce"]);
    coll(&["--payload", "int4"], &["--payload", "'int4'"]);
    coll(&["--iters", "0"], &["--iters", "'0'"]);
}

// ---------------------------------------------------------------------------------------------
// Numerics: NaN, inf and subnormal inputs through quantization, the CPU kernels and validation.

mod numerics {
    use chipbench::formats::scaling::Role;
    use chipbench::formats::{Format, QuantizedMatrix, Scaling};
    use chipbench::kernels::cpu::CpuBackend;
    use chipbench::kernels::{Op, Problem, Support};
    use chipbench::measure::runner::measure_one;
    use chipbench::measure::timer::TimerConfig;
    use chipbench::measure::validate::Reference;
    use chipbench::results::Record;
    use std::time::Duration;

    const TIMING: TimerConfig = TimerConfig {
        warmup_runs: 1,
        warmup: Duration::ZERO,
        budget: Duration::from_millis(1),
        min_samples: 2,
        max_samples: 5,
        min_sample: Duration::ZERO,
    };

    /// Seeded values in ±[lo, hi), never zero.
    fn values(n: usize, lo: f32, hi: f32, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let u = (s >> 8) as f32 / (1u32 << 24) as f32;
                let v = lo + (hi - lo) * u;
                if i % 2 == 0 {
                    v
                } else {
                    -v
                }
            })
            .collect()
    }

    /// GEMM (m = 7) or GEMV of weights `w` (n × k) with seeded activations, measured on the CPU
    /// backend exactly as `chipbench run` measures: validate, then time only if valid.
    pub fn measure(
        op: Op,
        w: &[f32],
        n: usize,
        k: usize,
        format: Format,
        scaling: Scaling,
    ) -> (Record, QuantizedMatrix) {
        let m = if op == Op::Gemv { 1 } else { 7 };
        let a = QuantizedMatrix::quantize(
            &values(m * k, 0.5, 2.0, 7),
            m,
            k,
            Format::F32,
            Scaling::NONE,
            Role::Activations,
        )
        .unwrap();
        let wq = QuantizedMatrix::quantize(w, n, k, format, scaling, Role::Weights).unwrap();
        let problem = Problem::new(op, a, wq.clone()).unwrap();
        let reference = Reference::compute(&problem);
        let backend = CpuBackend::new(1);
        (measure_one(&backend, &problem, &reference, &TIMING, &Support::Native), wq)
    }

    const FP8_SCALED: [(Format, &str); 5] = [
        (Format::F32, "none"),
        (Format::BF16, "none"),
        (Format::F16, "none"),
        (Format::E4M3, "per-tensor"),
        (Format::E5M2, "deepseek"),
    ];

    #[test]
    fn a_nan_input_gives_an_invalid_untimed_record_in_every_format() {
        let (n, k) = (33, 257);
        for op in [Op::Gemv, Op::Gemm] {
            for (format, scaling) in FP8_SCALED {
                let mut w = values(n * k, 0.5, 2.0, 3);
                w[5 * k + 17] = f32::NAN;
                let (rec, wq) = measure(op, &w, n, k, format, scaling.parse().unwrap());
                assert!(wq.dequantize()[5 * k + 17].is_nan(), "{format}: NaN must stay NaN when quantized");
                assert!(!rec.valid, "{op:?} {format}: a NaN output was accepted");
                assert_eq!(rec.time.samples, 0, "{op:?} {format}: an invalid output was timed");
                assert_eq!((rec.gflops, rec.gbs), (0.0, 0.0));
                assert!(rec.note.contains("invalid, not timed") && rec.note.contains("NaN"), "{}", rec.note);
                assert!(rec.error.max_abs.is_nan(), "{format}: {:?}", rec.error);
                // The invalid record round-trips through the results JSON (NaN as null).
                let json = serde_json::to_string(&rec).unwrap();
                assert!(json.contains("\"max_abs\":null"), "{json}");
            }
        }
    }

    /// The policy for ±inf inputs, chosen and recorded: quantizing for a benchmark saturates
    /// (CUDA satfinite, the training convention). E4M3FN has no inf and E5M2's inf would poison
    /// every sum, so ±inf becomes ±(format max) × the block scale, and the scale comes from the
    /// finite values (the block's finite amax). The kernels then run on finite codes and the
    /// record is valid against the reference on the same quantized inputs. f32/bf16/f16 keep
    /// inf, and an output holding inf is invalid and not timed, like NaN.
    /// (`chipbench convert` shows the plain cast too: without --saturate, E4M3FN gives NaN from
    /// 464 up and E5M2 gives inf.)
    #[test]
    fn infinite_inputs_saturate_in_fp8_and_invalidate_wider_formats() {
        let (n, k) = (33, 257);
        let (at, big) = (5 * k + 17, 6 * k + 1);
        for op in [Op::Gemv, Op::Gemm] {
            for (format, scaling) in
                FP8_SCALED.iter().chain(&[(Format::E4M3, "none"), (Format::E5M2, "none")])
            {
                let mut w = values(n * k, 0.5, 2.0, 11);
                w[at] = f32::INFINITY;
                w[big] = -1e6;
                let (rec, wq) = measure(op, &w, n, k, *format, scaling.parse().unwrap());
                let d = wq.dequantize();
                if format.is_fp8() {
                    let expect = if *scaling == "none" { Format::max(*format) } else { 1e6 };
                    assert_eq!(d[at], expect, "{format} {scaling}: +inf saturates");
                    assert_eq!(d[big], -expect, "{format} {scaling}");
                    assert!(rec.valid && rec.time.samples >= 2, "{op:?} {format} {scaling}: {}", rec.note);
                } else {
                    assert_eq!(d[at], f32::INFINITY, "{format} keeps inf");
                    assert!(!rec.valid && rec.time.samples == 0, "{op:?} {format}: {}", rec.note);
                }
            }
        }
    }

    /// Values around the FP8 subnormal range (and f32 denormals) quantize to subnormal codes and
    /// run valid on the CPU kernels, whose decode tables and FMA paths must not flush them.
    #[test]
    fn subnormal_heavy_inputs_are_computed_exactly_enough() {
        let (n, k) = (17, 129);
        for op in [Op::Gemv, Op::Gemm] {
            for format in [Format::E4M3, Format::E5M2, Format::F16, Format::BF16, Format::F32] {
                let lo = format.min_subnormal();
                let w = values(n * k, lo, format.min_normal() * 2.0, 5);
                let (rec, wq) = measure(op, &w, n, k, format, Scaling::NONE);
                let d = wq.dequantize();
                let sub = d.iter().filter(|v| **v != 0.0 && v.abs() < format.min_normal()).count();
                assert!(sub * 3 > d.len(), "{format}: only {sub} of {} subnormal", d.len());
                assert!(rec.valid && rec.time.samples >= 2, "{op:?} {format}: {}", rec.note);
                assert!(rec.error.max_rel < 1e-5, "{op:?} {format}: {:?}", rec.error);
            }
        }
    }
}

/// A backend that cannot open (here wgpu with its adapters hidden: `WGPU_BACKEND=metal` on Linux
/// offers none) is reported on one line and recorded in the run's notes; the run goes on with
/// the other backends and succeeds. (A device loss or timeout during a run becomes an invalid
/// record "failed: wgpu: ..." in the runner, and the next case runs.)
#[cfg(target_os = "linux")]
#[test]
fn backend_all_without_a_gpu_adapter_runs_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let suite = write(d, "s.toml", SUITE.as_bytes());
    let out = chipbench(d)
        .env("WGPU_BACKEND", "metal")
        .args(["run", "--backend", "all", "--quick", "--no-rss", "--no-calibration", "--suite", &suite])
        .args(["--out", "out"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("wgpu: skipped:") && err.contains("no GPU adapter"), "{err}");
    let json = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let run = chipbench::results::Run::load(&json).unwrap();
    assert!(run.complete);
    assert!(run.notes.iter().any(|n| n.contains("wgpu: skipped")), "{:?}", run.notes);
    let backends: std::collections::BTreeSet<&str> = run.records.iter().map(|r| r.backend.as_str()).collect();
    assert_eq!(backends.into_iter().collect::<Vec<_>>(), ["candle", "cpu"]);
    assert!(
        run.records.iter().all(|r| r.valid),
        "{:?}",
        run.records.iter().map(|r| &r.note).collect::<Vec<_>>()
    );
}

//! `chipbench run` and `chipbench info` end to end, as a user runs them: results written
//! atomically, one-line errors for bad suites, refusal of sizes that do not fit, and runs that
//! are killed or interrupted midway.

use chipbench::results::Run;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn chipbench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chipbench"));
    c.env_remove("CHIPBENCH_FULL");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

const TINY: &str = r#"
name = "tiny"
backends = ["cpu"]
threads = [1]
formats = ["bf16", "e4m3"]
scalings = ["per-tensor"]
[timing]
warmup_s = 0.0
budget_s = 0.01
min_samples = 2
max_samples = 20
[[shapes]]
op = "gemv"
n = 129
k = 257
[[shapes]]
op = "gemm"
m = 7
n = 33
k = 65
"#;

/// A suite long enough to be killed in the middle: 10 records of about half a second each.
const SLOW: &str = r#"
name = "slow"
backends = ["cpu"]
threads = [1]
formats = ["f32", "bf16", "f16", "e4m3", "e5m2"]
scalings = ["per-tensor"]
[timing]
warmup_s = 0.0
budget_s = 0.5
min_samples = 2
max_samples = 100000
[[shapes]]
op = "gemm"
m = 33
n = 65
k = 129
[[shapes]]
op = "gemv"
n = 257
k = 513
"#;

fn run_ok(args: &[&str]) -> Output {
    let out = chipbench().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn run_writes_json_and_markdown_and_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write(dir.path(), "tiny.toml", TINY);
    let out_dir = dir.path().join("results");
    let out =
        run_ok(&["run", "--suite", suite.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--quick"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| format") && stdout.contains("bytes/param") && stdout.contains("e4m3"),
        "{stdout}"
    );
    let names = files(&out_dir);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("-tiny-quick.json") && names[1].ends_with("-tiny-quick.md"), "{names:?}");
    let run = Run::load(&out_dir.join(&names[0])).unwrap();
    assert!(run.complete);
    assert_eq!(run.suite, "tiny");
    assert!(run.calibration.as_ref().is_some_and(|c| !c.fma_peak_gflops.is_empty()));
    assert_eq!(run.records.len(), 4, "2 shapes × (bf16, e4m3 per-tensor)");
    for r in &run.records {
        assert!(r.valid, "{} {} {}: {}", r.op, r.format, r.scaling, r.note);
        assert!(r.time.samples >= 2 && r.time.median_s > 0.0);
        if cfg!(target_os = "linux") {
            let m = r.memory.unwrap();
            assert!(m.rss_peak_bytes.is_some() && m.rss_baseline_bytes.is_some(), "{}", r.note);
        }
    }
    let md = std::fs::read_to_string(out_dir.join(&names[1])).unwrap();
    assert!(md.starts_with("# chipbench run ") && md.contains("| e4m3"), "{md}");
}

#[test]
fn unknown_field_or_value_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    for (text, field, allowed) in [
        (TINY.replace("threads = [1]", "threads = [1]\nwarmup = 3"), "warmup", "allowed fields"),
        (TINY.replace("\"e4m3\"]", "\"fp4\"]"), "formats[1]", "f32, bf16, f16, e4m3, e5m2"),
        (TINY.replace("[\"cpu\"]", "[\"tpu\"]"), "backends[0]", "cpu, candle, wgpu, all"),
    ] {
        let suite = write(dir.path(), "bad.toml", &text);
        let out = chipbench()
            .args(["run", "--suite", suite.to_str().unwrap(), "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].contains("bad.toml")
                && lines[0].contains(&format!("{field}:"))
                && lines[0].contains(allowed),
            "{err}"
        );
    }
    let out = chipbench().args(["run", "--format", "int3", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--format") && err.contains("'int3'") && err.contains("e4m3"), "{err}");
}

#[test]
fn a_shape_that_does_not_fit_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let text = TINY.replace("n = 129\nk = 257", "n = 16000000\nk = 16000000");
    let suite = write(dir.path(), "huge.toml", &text);
    let out_dir = dir.path().join("results");
    let t0 = Instant::now();
    let out = chipbench()
        .args(["run", "--suite", suite.to_str().unwrap(), "--out", out_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs") && err.contains("GiB available") && err.contains("gemv"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(files(&out_dir).is_empty());
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("chipbench did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_slow(dir: &Path, out_dir: &Path) -> Child {
    let suite = write(dir, "slow.toml", SLOW);
    chipbench()
        .args(["run", "--no-rss", "--no-calibration", "--suite", suite.to_str().unwrap(), "--out"])
        .arg(out_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn a_killed_run_leaves_no_partial_json_and_earlier_results_intact() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("results");
    std::fs::create_dir_all(&out_dir).unwrap();
    let earlier = write(&out_dir, "20000101-000000-earlier.json", "{\"schema_version\": 1}\n");
    let mut child = spawn_slow(dir.path(), &out_dir);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    wait(&mut child, Duration::from_secs(10));
    assert_eq!(files(&out_dir), vec!["20000101-000000-earlier.json".to_string()]);
    assert_eq!(std::fs::read_to_string(earlier).unwrap(), "{\"schema_version\": 1}\n");
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_keeps_completed_records_marked_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("results");
    let mut child = spawn_slow(dir.path(), &out_dir);
    std::thread::sleep(Duration::from_millis(1500));
    let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let status = wait(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130));
    let names = files(&out_dir);
    assert_eq!(names.len(), 2, "{names:?}");
    let run = Run::load(&out_dir.join(names.iter().find(|n| n.ends_with(".json")).unwrap())).unwrap();
    assert!(!run.complete);
    assert!(run.records.len() < 10, "stopped early: {} records", run.records.len());
    assert!(run.records.iter().all(|r| r.valid && r.time.samples >= 2));
    let md =
        std::fs::read_to_string(out_dir.join(names.iter().find(|n| n.ends_with(".md")).unwrap())).unwrap();
    assert!(md.contains("Incomplete run"));
}

#[test]
fn info_lists_backends_devices_and_capabilities() {
    let out = run_ok(&["info"]);
    let s = String::from_utf8_lossy(&out.stdout);
    for want in ["CPU:", "Backends:", "cpu", "candle", "wgpu", "Capabilities", "e4m3", "gemv"] {
        assert!(s.contains(want), "missing {want}: {s}");
    }
    let out = run_ok(&["info", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["backends"].as_array().is_some_and(|b| b.len() == 3), "{v}");
    assert!(v["env"]["cpu_model"].is_string());
}

/// On a headless machine (no XDG_RUNTIME_DIR, no display) `info` and a wgpu `run` succeed
/// without a single "error" line on stderr: GL (whose EGL probe prints "error:
/// XDG_RUNTIME_DIR is invalid ...") is only probed when no Vulkan/Metal/DX12 adapter exists.
/// `info` says "1 thread", not "1 threads".
#[test]
fn headless_info_and_run_print_no_error_lines() {
    let headless = |args: &[&str]| {
        let mut c = chipbench();
        for v in ["XDG_RUNTIME_DIR", "WAYLAND_DISPLAY", "DISPLAY", "WGPU_BACKEND"] {
            c.env_remove(v);
        }
        let out = c.args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        let bad: Vec<&str> = err.lines().filter(|l| l.to_lowercase().contains("error")).collect();
        assert!(bad.is_empty(), "{args:?} printed error lines on success: {bad:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = headless(&["info"]);
    assert!(!info.contains(" 1 threads"), "{info}");
    let dir = tempfile::tempdir().unwrap();
    let suite = TINY
        .replace("backends = [\"cpu\"]", "backends = [\"cpu\", \"wgpu\"]")
        .replace("[[shapes]]\nop = \"gemm\"\nm = 7\nn = 33\nk = 65\n", "");
    let suite = write(dir.path(), "tiny.toml", &suite);
    let out_dir = dir.path().join("results");
    let args = ["run", "--suite", suite.to_str().unwrap(), "--out", out_dir.to_str().unwrap()];
    headless(&[&args[..], &["--quick", "--no-calibration", "--no-rss"]].concat());
}

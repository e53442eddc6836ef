//! Measurement machinery on its own: the timer's statistics on a synthetic sleep, the
//! child-process peak-RSS method against a known allocation, and the size refusal before any
//! large allocation.

use chipbench::formats::{Format, Scaling};
use chipbench::kernels::registry::BackendKind;
use chipbench::kernels::Op;
use chipbench::measure::inputs::ProblemSpec;
use chipbench::measure::memory::{self, ChildJob, ChildLauncher};
use chipbench::measure::suite::Suite;
use chipbench::measure::timer::{time, TimerConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: u64 = 1 << 20;

fn launcher() -> ChildLauncher {
    ChildLauncher { exe: PathBuf::from(env!("CARGO_BIN_EXE_chipbench")), prefix: vec!["run".into()] }
}

#[test]
fn timer_statistics_on_a_synthetic_sleep() {
    let cfg = TimerConfig {
        warmup_runs: 1,
        warmup: Duration::ZERO,
        budget: Duration::from_millis(40),
        min_samples: 5,
        max_samples: 1000,
        min_sample: Duration::from_millis(1),
    };
    let mut calls = 0;
    let t = time(&cfg, || {
        calls += 1;
        std::thread::sleep(Duration::from_millis(2));
        Ok(None)
    })
    .unwrap();
    assert_eq!(t.method, "wall-clock");
    let s = t.time;
    // A sleep never returns early; the upper bounds are loose (a shared machine can stall).
    assert!(s.min_s >= 0.002, "{s:?}");
    assert!(s.min_s <= s.median_s && s.median_s <= s.max_s, "{s:?}");
    assert!(s.median_s < 0.5, "{s:?}");
    assert!(s.samples >= 5 && s.samples <= 1000, "{s:?}");
    assert_eq!(calls, s.samples + 1, "one warm-up run, then the samples");
}

#[test]
fn timer_stops_at_max_samples() {
    let cfg = TimerConfig {
        warmup_runs: 2,
        warmup: Duration::ZERO,
        budget: Duration::from_secs(60),
        min_samples: 1,
        max_samples: 9,
        min_sample: Duration::ZERO,
    };
    let t = time(&cfg, || Ok(None)).unwrap();
    assert_eq!(t.time.samples, 9);
}

#[cfg(target_os = "linux")]
#[test]
fn child_rss_detects_a_known_allocation_within_5_percent() {
    let bytes = 256 * MIB;
    let net = launcher().measure_net(&ChildJob::Alloc { bytes }, &ChildJob::Alloc { bytes: 0 }).unwrap();
    assert!(net.hwm_reset, "clear_refs reset of the high-water mark");
    let got = net.net() as f64;
    let err = (got - bytes as f64).abs() / bytes as f64;
    assert!(
        err < 0.05,
        "measured {:.1} MiB for a 256 MiB allocation ({:.1} % off)",
        got / MIB as f64,
        err * 100.0
    );
}

#[cfg(target_os = "linux")]
#[test]
fn child_rss_of_fp8_weights_is_about_half_of_bf16() {
    // Operands only (no backend): what the process holds for the same problem in each format.
    let base = ChildJob::Baseline { backend: None, threads: 1 };
    let net = |format, scaling| {
        // 64 MiB of BF16: the allocator's ~1 MiB of slack stays small beside it (at 16 MiB it
        // moved the ratio past 0.55 about once in a dozen runs).
        let spec = ProblemSpec::new(Op::Gemv, 1, 4096, 8192, format, scaling);
        launcher().measure_net(&ChildJob::Workload { backend: None, threads: 1, spec }, &base).unwrap().net()
            as f64
    };
    let bf16 = net(Format::BF16, Scaling::NONE);
    let e4m3 = net(Format::E4M3, Scaling::PER_TENSOR);
    assert!((bf16 - 64.0 * MIB as f64).abs() < 2.0 * MIB as f64, "bf16 net {bf16}");
    let ratio = e4m3 / bf16;
    assert!((0.45..0.55).contains(&ratio), "e4m3/bf16 RSS ratio {ratio} ({e4m3} / {bf16})");
}

#[cfg(target_os = "linux")]
#[test]
fn child_reports_a_backend_that_fails_to_open_or_a_bad_job() {
    let e = launcher().measure(&ChildJob::Alloc { bytes: u64::MAX }).unwrap_err().to_string();
    assert!(e.contains("child RSS measurement failed"), "{e}");
    let base =
        launcher().measure(&ChildJob::Baseline { backend: Some(BackendKind::Cpu), threads: 1 }).unwrap();
    assert!(base.vmhwm_bytes > MIB);
}

#[test]
fn too_large_shape_is_refused_before_allocating() {
    let before = memory::vmhwm_bytes();
    let text = "name = \"huge\"\nformats = [\"f32\"]\n[[shapes]]\nop = \"gemm\"\nm = 1000000\nn = 1000000\nk = 1000000\n";
    let suite = Suite::parse(text, Path::new("huge.toml")).unwrap();
    let spec = suite.cases[0].spec;
    let e =
        memory::check_fits("huge", &spec, 1, memory::mem_available_bytes().or(Some(64 << 30))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("needs") && msg.contains("GiB available"), "{msg}");
    assert_eq!(e.exit_code(), 2);
    // Nothing large was touched on the way to the refusal.
    if let (Some(b), Some(a)) = (before, memory::vmhwm_bytes()) {
        assert!(a < b + 64 * MIB, "peak grew from {b} to {a}");
    }
    // And a shape of zero is refused by the suite itself.
    let zero = text.replace("k = 1000000", "k = 0");
    let e = Suite::parse(&zero, Path::new("huge.toml")).unwrap_err().to_string();
    assert!(e.contains("huge.toml: shapes[0].k:") && e.contains("1 ..="), "{e}");
}

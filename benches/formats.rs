//! `cargo bench --bench formats`: every storage format on the same shapes, then the FP8
//! memory-halving verdict.
//!
//! Part 1 (criterion): the matrix of formats × scalings × shapes is declared once (`FORMATS`,
//! `shapes()`), every case is validated against the f64 reference before criterion times it
//! (an invalid case is reported and skipped, never timed). HTML under target/criterion.
//!
//! Part 2 (summary): the default suite's GEMV shape (8192 × 8192) in every format through the
//! same runner as `chipbench run`: logical weight bytes (codes + scales), buffer bytes, and the
//! peak RSS of each format in a fresh child process (this bench binary re-run with
//! `--child-rss`) minus a baseline child that opened the backend and built nothing. Prints the
//! verdict (FP8/BF16 and FP8/F32 memory, logical and RSS; GEMV throughput ratios) and writes the
//! run as results/<run-id>.json and .md.
//!
//! Default: criterion on a 4096² GEMV and a 256×512×1024 GEMM, about two minutes on 2 cores.
//! `CHIPBENCH_FULL=1` adds the 8192², 4096 × 14336 GEMVs and the 2048³ GEMM and samples longer.

use chipbench::formats::{Format, Scaling};
use chipbench::kernels::cpu::CpuBackend;
use chipbench::kernels::{Backend, Op, Support};
use chipbench::measure::calibration::{calibrate, CalibrationConfig};
use chipbench::measure::inputs::ProblemSpec;
use chipbench::measure::memory::{self, ChildJob, ChildLauncher};
use chipbench::measure::runner::{self, RunOptions};
use chipbench::measure::suite::Case;
use chipbench::measure::timer::TimerConfig;
use chipbench::measure::validate::{validate, Reference};
use chipbench::report::{json::Json, markdown::Markdown};
use chipbench::results::{Record, Run, SCHEMA_VERSION};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The format matrix, declared once: weight format × scaling (f32 activations, weight-only).
const FORMATS: &[(Format, &str)] = &[
    (Format::F32, "none"),
    (Format::BF16, "none"),
    (Format::F16, "none"),
    (Format::E4M3, "per-tensor"),
    (Format::E4M3, "deepseek"),
    (Format::E4M3, "deepseek:ue8m0"),
    (Format::E4M3, "mx32"),
    (Format::E5M2, "per-tensor"),
];

/// The GEMV shape of the verdict: the default suite's 8192 × 8192 decode projection.
const VERDICT_GEMV: (usize, usize) = (8192, 8192);

fn full() -> bool {
    std::env::var("CHIPBENCH_FULL").is_ok_and(|v| v == "1")
}

/// (op, m, n, k) for the criterion part.
fn shapes() -> Vec<(Op, usize, usize, usize)> {
    // The verdict shape itself is measured by the summary; criterion gets a smaller GEMV by
    // default so plain `cargo bench` stays within minutes on 2 cores.
    let mut v = vec![(Op::Gemv, 1, 4096, 4096), (Op::Gemm, 256, 512, 1024)];
    if full() {
        v.extend([
            (Op::Gemv, 1, VERDICT_GEMV.0, VERDICT_GEMV.1),
            (Op::Gemv, 1, 4096, 14336),
            (Op::Gemm, 2048, 2048, 2048),
        ]);
    }
    v
}

fn spec(op: Op, m: usize, n: usize, k: usize, format: Format, scaling: &str) -> ProblemSpec {
    ProblemSpec::new(op, m, n, k, format, scaling.parse::<Scaling>().expect("scaling in the matrix"))
}

fn criterion_part(c: &mut Criterion, backend: &dyn Backend) {
    // Short by default so plain `cargo bench` (both benches) stays within 5 minutes on 2 cores.
    let (warm, measure) = if full() { (1.0, 5.0) } else { (0.2, 0.6) };
    for (op, m, n, k) in shapes() {
        let mut group = c.benchmark_group(format!("formats/{}/{op}/{m}x{n}x{k}", backend.name()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs_f64(warm))
            .measurement_time(Duration::from_secs_f64(measure));
        for &(format, scaling) in FORMATS {
            let id = format!("{format}-{scaling}");
            let problem = spec(op, m, n, k, format, scaling).build().expect("inputs build");
            if let Support::Unsupported(why) = backend.support(&problem) {
                println!("formats: {id} {op} {m}x{n}x{k}: skipped: {why}");
                continue;
            }
            let mut prepared = match backend.prepare(&problem) {
                Ok(p) => p,
                Err(e) => {
                    println!("formats: {id} {op} {m}x{n}x{k}: skipped: {e}");
                    continue;
                }
            };
            // Validate before timing: an invalid kernel is reported, never timed.
            let ok = prepared
                .run()
                .and_then(|_| prepared.output())
                .map(|out| validate(&out, &Reference::compute(&problem), backend.output_roundoff(&problem)));
            match ok {
                Ok(v) if v.valid => {}
                Ok(v) => {
                    println!("formats: {id} {op} {m}x{n}x{k}: INVALID, not timed: {}", v.reason);
                    continue;
                }
                Err(e) => {
                    println!("formats: {id} {op} {m}x{n}x{k}: failed, not timed: {e}");
                    continue;
                }
            }
            group.throughput(Throughput::Bytes(runner::logical_bytes(&problem).total));
            group.bench_function(BenchmarkId::from_parameter(&id), |b| {
                b.iter(|| prepared.run().expect("validated kernel runs"))
            });
        }
        group.finish();
    }
}

fn summary(backend: Box<dyn Backend>) {
    let (n, k) = VERDICT_GEMV;
    let cases: Vec<Case> = FORMATS
        .iter()
        .map(|&(f, s)| Case { shape: format!("gemv-{n}x{k}"), spec: spec(Op::Gemv, 1, n, k, f, s) })
        .collect();
    for c in &cases {
        if let Err(e) = memory::check_fits("bench", &c.spec, 1, memory::mem_available_bytes()) {
            println!("formats: summary skipped: {e}");
            return;
        }
    }
    let timing = TimerConfig {
        warmup_runs: 2,
        warmup: Duration::from_millis(100),
        budget: Duration::from_secs_f64(if full() { 2.0 } else { 0.5 }),
        min_samples: 5,
        max_samples: 10_000,
        min_sample: chipbench::measure::timer::MIN_SAMPLE,
    };
    let rss = ChildLauncher::current_exe().ok().filter(|_| cfg!(target_os = "linux"));
    let opts = RunOptions::new(timing, rss, Arc::new(AtomicBool::new(false)));
    let threads = backend.threads();
    let backends = vec![backend];
    println!(
        "\nformats: measuring the verdict shape (gemv {n}×{k}) in every format, RSS in child processes ..."
    );
    let outcome = runner::run_cases(&cases, &backends, &opts, &mut |_| {});
    for s in &outcome.skipped {
        println!("formats: {s}");
    }
    let calibration = calibrate(&CalibrationConfig::quick(threads));
    let chipbench::results::UtcTime { stamp, rfc3339: created } = chipbench::results::utc_now();
    let run = Run {
        schema_version: SCHEMA_VERSION,
        run_id: format!("{stamp}-bench-formats"),
        created,
        tool: format!("chipbench {} (cargo bench --bench formats)", env!("CARGO_PKG_VERSION")),
        suite: "bench-formats".into(),
        env: chipbench::measure::env::collect(threads, backends.iter().map(|b| b.device()).collect()),
        calibration: Some(calibration),
        records: outcome.records,
        complete: true,
        notes: vec![
            "rss: VmHWM of a fresh child per format, reset after its inputs are built, minus a baseline \
             child that opened the same backend and built nothing"
                .into(),
        ],
    };
    print_verdict(&run);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    match chipbench::report::write_run(&run, &dir, &[&Json, &Markdown], false) {
        Ok(p) => println!(
            "formats: wrote {}",
            p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
        ),
        Err(e) => println!("formats: results not written: {e}"),
    }
}

fn print_verdict(run: &Run) {
    let find = |f: &str, s: &str| run.records.iter().find(|r| r.format == f && r.scaling == s && r.valid);
    let logical = |r: &Record| r.memory.map_or(0, |m| m.logical_weight_bytes) as f64;
    let rss = |r: &Record| {
        r.memory.and_then(|m| Some(m.rss_peak_bytes?.saturating_sub(m.rss_baseline_bytes?) as f64))
    };
    let gws = |r: &Record| (r.n * r.k) as f64 / r.time.median_s / 1e9;
    let (Some(bf16), Some(f32r)) = (find("bf16", "none"), find("f32", "none")) else {
        println!("formats: no valid BF16/F32 GEMV record: no verdict");
        return;
    };
    let mib = |b: f64| b / (1u64 << 20) as f64;
    let base = bf16.memory.and_then(|m| m.rss_baseline_bytes).unwrap_or(0);
    println!(
        "\nFP8 memory-halving verdict: GEMV {}×{} weights on {} ({} threads); RSS = child peak − baseline child ({:.1} MiB: runtime + backend, nothing built)\n",
        bf16.n, bf16.k, bf16.backend, bf16.threads, mib(base as f64)
    );
    println!(
        "{:<22} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "weights",
        "logical MiB",
        "RSS MiB",
        "×BF16 log",
        "×BF16 RSS",
        "×F32 log",
        "×F32 RSS",
        "Gweights/s",
        "×BF16 w/s"
    );
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.4}", a / b),
        _ => "-".into(),
    };
    for &(f, s) in FORMATS {
        let Some(r) = find(f.name(), &s.parse::<Scaling>().unwrap().to_string()) else {
            println!("{:<22} (no valid record)", format!("{f} {s}"));
            continue;
        };
        println!(
            "{:<22} {:>12.3} {:>10} {:>9.5} {:>9} {:>9.5} {:>9} {:>10.2} {:>9.2}",
            format!("{f} {s}"),
            mib(logical(r)),
            rss(r).map_or("-".into(), |b| format!("{:.1}", mib(b))),
            logical(r) / logical(bf16),
            ratio(rss(r), rss(bf16)),
            logical(r) / logical(f32r),
            ratio(rss(r), rss(f32r)),
            gws(r),
            gws(r) / gws(bf16),
        );
    }
    if let Some(e) = find("e4m3", "per-tensor") {
        let scales = logical(e) - e.bytes.weights as f64;
        println!(
            "\nVerdict: E4M3 weights take {:.4}× the BF16 bytes logically ({:.0} B of scales per tensor; 128×128 \
             f32 blocks {}, MX-32 {}), {} by peak RSS in child processes, {:.4}× F32; GEMV reads them {:.2}× as fast as BF16.",
            logical(e) / logical(bf16),
            scales,
            find("e4m3", "deepseek").map_or("-".into(), |d| format!("{:.4}×", logical(d) / logical(bf16))),
            find("e4m3", "mx32").map_or("-".into(), |d| format!("{:.4}×", logical(d) / logical(bf16))),
            match (rss(e), rss(bf16)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.3}×", a / b),
                _ => "unmeasured".into(),
            },
            logical(e) / logical(f32r),
            gws(e) / gws(bf16),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-rss") {
        let job: ChildJob =
            serde_json::from_str(args.get(i + 1).map_or("", String::as_str)).expect("child job JSON");
        if let Err(e) = memory::child_main(&job) {
            eprintln!("child: {e}");
            std::process::exit(3);
        }
        return;
    }
    let backend = CpuBackend::new(0);
    let mut c = Criterion::default().configure_from_args();
    criterion_part(&mut c, &backend);
    c.final_summary();
    // The summary belongs to `cargo bench`, not to `cargo test --benches` (which runs each case once).
    if args.iter().any(|a| a == "--bench") {
        summary(Box::new(backend));
    }
}

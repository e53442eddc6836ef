//! The runner's measurement rules, checked with a backend that logs what it is asked to do:
//! records of one shape take turns (round-robin), memory-bound operands rotate through copies
//! past 4× the last-level cache and say so, repeats pool their samples with a confidence interval,
//! and an interrupted run keeps only what it measured.

use chipbench::kernels::{
    Backend, BufferBytes, Capability, DeviceInfo, Op, Prepared, Problem, Support, SKINNY_M,
};
use chipbench::measure::runner::{residency, run_cases, Event, RunOptions, MAX_COPIES};
use chipbench::measure::suite::Suite;
use chipbench::measure::timer::TimerConfig;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Exact f64 products rounded once to f32 (always valid); logs (format, address of the weight
/// codes) at every run.
struct Logger {
    log: Arc<Mutex<Vec<(String, usize)>>>,
}

struct LoggerPrepared {
    out: Vec<f32>,
    tag: (String, usize),
    log: Arc<Mutex<Vec<(String, usize)>>>,
}

impl Prepared for LoggerPrepared {
    fn run(&mut self) -> chipbench::Result<Option<f64>> {
        self.log.lock().unwrap().push(self.tag.clone());
        std::thread::sleep(Duration::from_micros(200));
        Ok(None)
    }
    fn output(&mut self) -> chipbench::Result<Vec<f32>> {
        Ok(self.out.clone())
    }
    fn buffer_bytes(&self) -> BufferBytes {
        BufferBytes::default()
    }
}

impl Backend for Logger {
    fn name(&self) -> &'static str {
        "logger"
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo { name: "test".into(), kind: "cpu".into(), ..Default::default() }
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
        let out = p.reference().into_iter().map(|v| v as f32).collect();
        let addr = &p.w.codes as *const _ as usize;
        let tag = (format!("{}", p.format()), addr);
        Ok(Box::new(LoggerPrepared { out, tag, log: self.log.clone() }))
    }
}

const SUITE: &str = r#"
name = "order"
backends = ["cpu"]
formats = ["f32", "bf16", "e4m3"]
scalings = ["per-tensor"]
[timing]
warmup_s = 0.0
budget_s = 0.006
min_samples = 3
max_samples = 3
[[shapes]]
name = "v"
op = "gemv"
n = 16
k = 64
"#;

fn options(llc: u64, cold: bool, repeat: usize) -> RunOptions {
    let suite = Suite::parse(SUITE, Path::new("order.toml")).unwrap();
    let mut o = RunOptions::new(
        TimerConfig { min_sample: Duration::ZERO, ..suite.timing },
        None,
        Arc::new(AtomicBool::new(false)),
    );
    o.llc_bytes = llc;
    o.cold = cold;
    o.repeat = repeat;
    o
}

fn run(opts: &RunOptions) -> (Vec<chipbench::results::Record>, Vec<(String, usize)>) {
    let suite = Suite::parse(SUITE, Path::new("order.toml")).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(Logger { log: log.clone() })];
    let out = run_cases(&suite.cases, &backends, opts, &mut |_| {});
    let log = log.lock().unwrap().clone();
    (out.records, log)
}

#[test]
fn formats_of_one_shape_take_turns() {
    let opts = options(1 << 30, true, 1); // a huge LLC: nothing rotates
    let (records, log) = run(&opts);
    assert_eq!(records.len(), 3);
    // Collapse consecutive runs of the same format: round-robin gives 3 formats × 3 rounds blocks,
    // a blocked order would give 3.
    let mut blocks: Vec<&str> = log.iter().map(|(f, _)| f.as_str()).collect();
    blocks.dedup();
    assert_eq!(blocks.len(), 3 * opts.rounds, "{blocks:?}");
    // Each round starts one further along.
    assert_ne!(blocks[0], blocks[3], "{blocks:?}");
    for r in &records {
        assert!(r.valid, "{r:?}");
        // The budget's 3 samples are split over the rounds: one per round.
        assert_eq!(r.time.samples, opts.rounds * 3usize.div_ceil(opts.rounds));
        assert_eq!(r.residency, "cache-resident");
    }
}

#[test]
fn memory_bound_operands_rotate_past_four_times_the_llc() {
    // An LLC of 4 KiB: the 16×64 f32 GEMV touches 4.4 KB, so 4×LLC needs 4 copies.
    let opts = options(4096, true, 1);
    let (records, log) = run(&opts);
    let f32_addresses: std::collections::BTreeSet<usize> =
        log.iter().filter(|(f, _)| f == "f32").map(|(_, a)| *a).collect();
    let f32 = records.iter().find(|r| r.format == "f32").unwrap();
    let want = residency(Op::Gemv, 1, f32.bytes.total, 4096, true);
    assert!(want.copies >= 4 && want.copies <= MAX_COPIES, "{want:?}");
    assert_eq!(f32.residency, "cold");
    assert_eq!(f32.working_set_bytes, Some(want.working_set_bytes));
    assert!(f32.working_set_bytes.unwrap() > 4 * 4096);
    // Copies are re-made per round, so count distinct addresses within one round's worth of runs:
    // at least as many as the copies.
    assert!(f32_addresses.len() >= want.copies, "{} addresses, {want:?}", f32_addresses.len());
    // --warm: one buffer, labelled by where it fits.
    let (records, _) = run(&options(4096, false, 1));
    let f32 = records.iter().find(|r| r.format == "f32").unwrap();
    assert_eq!((f32.residency.as_str(), f32.working_set_bytes), ("warm", Some(f32.bytes.total)));
}

#[test]
fn residency_labels() {
    let mib = 1u64 << 20;
    let llc = 32 * mib;
    // FP8 8192² (64 MiB): rotated to 3 copies (192 MiB > 128 MiB).
    let r = residency(Op::Gemv, 1, 64 * mib, llc, true);
    assert_eq!((r.copies, r.label), (3, "cold"));
    // F32 8192² (256 MiB): one copy is already past 4× the LLC.
    assert_eq!(residency(Op::Gemv, 1, 256 * mib, llc, true).copies, 1);
    assert_eq!(residency(Op::Gemv, 1, 256 * mib, llc, true).label, "cold");
    // GEMMs never rotate, skinny ones (a decode batch: memory-bound) do like a GEMV; quick GEMVs
    // (--warm) fit and say so.
    assert_eq!(
        residency(Op::Gemm, 2048, 48 * mib, llc, true),
        chipbench::measure::runner::Residency { copies: 1, working_set_bytes: 48 * mib, label: "warm" }
    );
    assert_eq!(residency(Op::Gemm, SKINNY_M + 1, 48 * mib, llc, true).copies, 1);
    assert_eq!(
        residency(Op::Gemm, SKINNY_M, 64 * mib, llc, true),
        residency(Op::Gemv, 1, 64 * mib, llc, true)
    );
    assert_eq!(residency(Op::Gemv, 1, 4 * mib, llc, false).label, "cache-resident");
    // A tiny GEMV is capped at MAX_COPIES and then honestly cache-resident.
    let tiny = residency(Op::Gemv, 1, 4096, llc, true);
    assert_eq!((tiny.copies, tiny.label), (MAX_COPIES, "cache-resident"));
    // Unknown LLC: no rotation, no label.
    assert_eq!(residency(Op::Gemv, 1, 4096, 0, true).label, "");
}

/// A 480 MiB last-level cache asks for ~2 GiB of copies per GEMV: where memory holds fewer, a
/// shape gets as many as fit, labelled by the working set they give, instead of refusing the run.
#[test]
fn rotation_copies_shrink_to_what_memory_holds() {
    use chipbench::formats::{Format, Scaling};
    use chipbench::measure::inputs::ProblemSpec;
    use chipbench::measure::runner::{copies_that_fit, group_bytes_needed, residency_capped};
    let mib = 1u64 << 20;
    let llc = 480 * mib;
    // FP8 8192² (64 MiB): 31 copies uncapped; 4 copies (256 MiB) are past the cache but not 4×.
    assert_eq!(residency_capped(Op::Gemv, 1, 64 * mib, llc, MAX_COPIES).copies, 31);
    let four = residency_capped(Op::Gemv, 1, 64 * mib, llc, 4);
    assert_eq!((four.copies, four.working_set_bytes, four.label), (4, 256 * mib, "cache-resident"));
    let nine = residency_capped(Op::Gemv, 1, 64 * mib, llc, 9);
    assert_eq!((nine.copies, nine.label), (9, "warm"));
    assert_eq!(residency_capped(Op::Gemv, 1, 64 * mib, llc, 1).label, "cache-resident");
    // The default suite's GEMV 8192² in every format on two backends.
    let specs: Vec<_> = [Format::F32, Format::BF16, Format::E4M3]
        .into_iter()
        .map(|f| {
            let s = if f == Format::E4M3 { Scaling::PER_TENSOR } else { Scaling::NONE };
            ProblemSpec::new(Op::Gemv, 1, 8192, 8192, f, s)
        })
        .collect();
    let gib = 1u64 << 30;
    let full = group_bytes_needed(&specs, 2, llc, MAX_COPIES).unwrap();
    assert!(full > 24 * gib as u128, "{full}");
    let fit = copies_that_fit(&specs, 2, llc, 24 * gib).unwrap();
    assert!(fit > 1 && fit < MAX_COPIES, "{fit}");
    assert!(group_bytes_needed(&specs, 2, llc, fit).unwrap() <= 24 * gib as u128);
    assert!(group_bytes_needed(&specs, 2, llc, fit + 1).unwrap() > 24 * gib as u128);
    // Not even one copy fits: refused.
    assert_eq!(copies_that_fit(&specs, 2, llc, gib), None);
}

#[test]
fn repeats_pool_samples_and_give_an_interval() {
    let opts = options(1 << 30, true, 2);
    let (records, _) = run(&opts);
    for r in &records {
        assert_eq!(r.time.repeats, 2, "{r:?}");
        assert_eq!(r.time.samples, 2 * opts.rounds * 3usize.div_ceil(opts.rounds));
        let (lo, hi) = (r.time.ci_low_s.unwrap(), r.time.ci_high_s.unwrap());
        assert!(lo <= r.time.median_s && r.time.median_s <= hi, "{:?}", r.time);
        assert!(r.time.call_overhead_s.is_some());
    }
}

#[test]
fn an_interrupted_run_keeps_only_measured_records() {
    let suite = Suite::parse(SUITE, Path::new("order.toml")).unwrap();
    let opts = options(1 << 30, true, 1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let backends: Vec<Box<dyn Backend>> = vec![Box::new(Logger { log })];
    let stop = opts.stop.clone();
    let mut turns = 0;
    let out = run_cases(&suite.cases, &backends, &opts, &mut |e| {
        if let Event::Measuring { .. } = e {
            turns += 1;
            if turns == 2 {
                stop.store(true, Ordering::SeqCst);
            }
        }
    });
    assert!(out.interrupted);
    // Two turns ran (two formats, one round each); the third format was never measured.
    assert_eq!(out.records.len(), 2, "{:?}", out.records.iter().map(|r| &r.format).collect::<Vec<_>>());
    assert!(out.records.iter().all(|r| r.valid && r.time.samples > 0));
}

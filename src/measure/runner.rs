//! The suite runner: for each case build the inputs once, compute the f64 reference once, then on
//! every backend validate, time (only if valid) and account bytes; afterwards measure the peak
//! resident set of the same workload in fresh child processes.
//!
//! Order matters for memory: the parent drops the problem and its reference before the RSS
//! children start, so parent and child never hold a large problem at the same time.

use super::memory::{ChildJob, ChildLauncher, NetRss};
use super::suite::Case;
use super::timer::{self, TimerConfig};
use super::validate::{validate_rounded, OutputRounding, Reference};
use crate::kernels::registry::BackendKind;
use crate::kernels::{Backend, Problem, Support};
use crate::results::{Bytes, ErrorStats, Memory, Record, Time};
use crate::Result;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    pub timing: TimerConfig,
    /// Launcher of RSS child processes; `None` skips the RSS measurement (`--no-rss`).
    pub rss: Option<ChildLauncher>,
    /// Set (by a SIGINT handler) to stop after the current record.
    pub stop: Arc<AtomicBool>,
}

/// What the runner reports as it goes (for progress bars and logs).
pub enum Event<'a> {
    /// A case × backend is about to be measured.
    Measuring { label: &'a str },
    /// One record finished (valid or not).
    Record(&'a Record),
    /// A case × backend did not run; one line saying why.
    Skipped(&'a str),
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub skipped: Vec<String>,
    /// True when the stop flag ended the run early.
    pub interrupted: bool,
}

/// A short label for a case on a backend.
pub fn label(backend: &dyn Backend, case: &Case) -> String {
    let s = &case.spec;
    let act = if s.act_format == crate::formats::Format::F32 {
        String::new()
    } else {
        format!(" a={}", s.act_format)
    };
    format!(
        "{}/{}t {} {} {}{act} {}×{}×{}",
        backend.name(),
        backend.threads(),
        s.op,
        s.format,
        s.scaling,
        s.m,
        s.n,
        s.k
    )
}

/// Logical bytes a kernel reads and writes: weight codes, all scales, activation codes, f32
/// outputs.
pub fn logical_bytes(problem: &Problem) -> Bytes {
    let w = problem.w.logical_bytes();
    let a = problem.a.logical_bytes();
    let outputs = (problem.m() * problem.n() * 4) as u64;
    let scales = w.scales + a.scales;
    Bytes {
        weights: w.codes,
        scales,
        activations: a.codes,
        outputs,
        total: w.codes + scales + a.codes + outputs,
    }
}

/// A record with everything but the measurements filled in.
fn blank_record(backend: &dyn Backend, problem: &Problem) -> Record {
    Record {
        backend: backend.name().to_string(),
        device: backend.device().name,
        op: problem.op.name().to_string(),
        format: problem.format().name().to_string(),
        act_format: problem.a.format().name().to_string(),
        scaling: problem.scaling().to_string(),
        m: problem.m(),
        n: problem.n(),
        k: problem.k(),
        threads: backend.threads(),
        bytes: logical_bytes(problem),
        time: Time::default(),
        gflops: 0.0,
        gbs: 0.0,
        error: ErrorStats::default(),
        valid: false,
        note: String::new(),
        timing: String::new(),
        memory: Some(Memory { logical_weight_bytes: problem.w.logical_bytes().total, ..Default::default() }),
        ranks: None,
        algbw_gbs: None,
        busbw_gbs: None,
        payload: None,
        ..Default::default()
    }
}

fn join_note(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}; {b}"),
    }
}

/// Validate, then (only if valid) time one prepared problem. Never returns a timed record for an
/// output that failed validation; a failure of the backend itself becomes an invalid record.
pub fn measure_one(
    backend: &dyn Backend,
    problem: &Problem,
    reference: &Reference,
    timing: &TimerConfig,
    how: &Support,
) -> Record {
    let mut rec = blank_record(backend, problem);
    if let Support::Emulated(why) = how {
        rec.note = format!("emulated: {why}");
    }
    let result = (|| -> Result<()> {
        let mut prepared = backend.prepare(problem)?;
        if let Some(m) = rec.memory.as_mut() {
            m.buffers = prepared.buffer_bytes();
        }
        rec.compute = prepared.compute();
        let roundoff = OutputRounding::of(backend, problem);
        prepared.run()?;
        let v = validate_rounded(&prepared.output()?, reference, roundoff);
        rec.error = v.error;
        rec.error_check = Some(v.check);
        if !v.valid {
            rec.note = join_note(&rec.note, &format!("invalid, not timed: {}", v.reason));
            return Ok(());
        }
        let t = timer::time(timing, || prepared.run())?;
        // The last timed run must still be right (a kernel that corrupts state on re-runs).
        let v = validate_rounded(&prepared.output()?, reference, roundoff);
        if !v.valid {
            rec.error = v.error;
            rec.error_check = Some(v.check);
            rec.note = join_note(&rec.note, &format!("invalid after timing, time discarded: {}", v.reason));
            return Ok(());
        }
        rec.valid = true;
        rec.time = t.time;
        rec.timing = t.method.to_string();
        let median = t.time.median_s.max(1e-12);
        rec.gflops = problem.flops() / median / 1e9;
        rec.gbs = rec.bytes.total as f64 / median / 1e9;
        if let Some(m) = rec.memory.as_mut() {
            m.buffers = prepared.buffer_bytes();
        }
        Ok(())
    })();
    if let Err(e) = result {
        rec.valid = false;
        rec.time = Time::default();
        rec.note = join_note(&rec.note, &format!("failed: {e}"));
    }
    rec
}

/// Run every case on every backend.
pub fn run_cases(
    cases: &[Case],
    backends: &[Box<dyn Backend>],
    opts: &RunOptions,
    on_event: &mut dyn FnMut(Event),
) -> Outcome {
    let mut out = Outcome::default();
    let mut baselines: HashMap<(String, usize), std::result::Result<u64, String>> = HashMap::new();
    'cases: for case in cases {
        if opts.stop.load(Ordering::SeqCst) {
            out.interrupted = true;
            break;
        }
        let problem = match case.spec.build() {
            Ok(p) => p,
            Err(e) => {
                let line = format!("{} {}: inputs not built: {e}", case.shape, case.spec.format);
                on_event(Event::Skipped(&line));
                out.skipped.push(line);
                continue;
            }
        };
        let runnable: Vec<(&dyn Backend, Support)> = backends
            .iter()
            .filter_map(|b| match b.support(&problem) {
                Support::Unsupported(why) => {
                    let line = format!("{}: skipped: {why}", label(b.as_ref(), case));
                    on_event(Event::Skipped(&line));
                    out.skipped.push(line);
                    None
                }
                how => Some((b.as_ref(), how)),
            })
            .collect();
        if runnable.is_empty() {
            continue;
        }
        let reference = Reference::compute(&problem);
        let first = out.records.len();
        for (backend, how) in &runnable {
            if opts.stop.load(Ordering::SeqCst) {
                out.interrupted = true;
                break 'cases;
            }
            let l = label(*backend, case);
            on_event(Event::Measuring { label: &l });
            let mut rec = measure_one(*backend, &problem, &reference, &opts.timing, how);
            rec.note = join_note(&rec.note, "");
            out.records.push(rec);
        }
        drop(reference);
        drop(problem);
        // Peak RSS of the same workloads, each in a fresh child (the parent now holds nothing big).
        for (i, (backend, _)) in runnable.iter().enumerate() {
            let rec = &mut out.records[first + i];
            if let Some(launcher) = &opts.rss {
                if !opts.stop.load(Ordering::SeqCst) {
                    attach_rss(launcher, *backend, case, rec, &mut baselines);
                }
            }
            on_event(Event::Record(rec));
        }
    }
    out
}

fn attach_rss(
    launcher: &ChildLauncher,
    backend: &dyn Backend,
    case: &Case,
    rec: &mut Record,
    baselines: &mut HashMap<(String, usize), std::result::Result<u64, String>>,
) {
    let Ok(kind) = backend.name().parse::<BackendKind>() else {
        rec.note = join_note(&rec.note, "rss: not measured (backend cannot be opened in a child)");
        return;
    };
    let threads = backend.threads();
    let key = (kind.name().to_string(), threads);
    let base = baselines
        .entry(key)
        .or_insert_with(|| {
            launcher
                .measure(&ChildJob::Baseline { backend: Some(kind), threads })
                .map(|r| r.vmhwm_bytes)
                .map_err(|e| e.to_string())
        })
        .clone();
    // A workload whose backend failed in the parent would fail in the child too.
    let backend_arg = if rec.valid { Some(kind) } else { None };
    let job = ChildJob::Workload { backend: backend_arg, threads, spec: case.spec };
    match (base, launcher.measure(&job)) {
        (Ok(baseline), Ok(r)) => {
            let net = NetRss { peak: r.vmhwm_bytes, baseline, hwm_reset: r.hwm_reset };
            if let Some(m) = rec.memory.as_mut() {
                m.rss_peak_bytes = Some(net.peak);
                m.rss_baseline_bytes = Some(net.baseline);
            }
            if !r.hwm_reset {
                rec.note = join_note(&rec.note, "rss: peak includes input generation (no clear_refs)");
            }
            if backend_arg.is_none() {
                rec.note = join_note(&rec.note, "rss: operands only (kernel did not run)");
            }
        }
        (Err(e), _) | (_, Err(crate::Error::Other(e))) => {
            rec.note = join_note(&rec.note, &format!("rss: unavailable: {e}"));
        }
        (_, Err(e)) => rec.note = join_note(&rec.note, &format!("rss: unavailable: {e}")),
    }
}

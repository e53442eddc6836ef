//! The suite runner: for each shape build the inputs of all its cases once, compute their f64
//! references once, then validate, time (only if valid) and account bytes on every backend;
//! afterwards measure the peak resident set of the same workloads in fresh child processes.
//!
//! Measurement rules it enforces (DESIGN.md, "Measurement rules"):
//! - **Round-robin.** The records of one shape (every format × scaling × backend) take turns:
//!   the time budget of each is split into rounds, and each round visits every record once,
//!   starting one further along each round. Slow drift of the machine (bandwidth moving between
//!   minutes, another tenant) then spreads over all formats instead of landing on one block.
//! - **Cold operands.** A memory-bound problem (GEMV) whose bytes fit in 4× the last-level cache
//!   is copied until the copies exceed it, and the samples rotate through the copies, so every
//!   call reads weights that no cache holds. Each record says its `working_set_bytes` and
//!   `residency` (cold, warm, cache-resident).
//! - **Repeats.** `repeat > 1` runs the whole suite again; samples are kept per repeat and the
//!   record carries a two-level bootstrap confidence interval of the median.
//! - **Batched samples** and the **empty-call overhead** come from [`timer`]: each sample lasts
//!   at least ~1 ms, and a near-empty call of each backend × op is timed the same way.
//!
//! Order matters for memory: the parent drops a shape's problems and references before the RSS
//! children start, so parent and child never hold a large problem at the same time.

use super::inputs::{ProblemSpec, Values};
use super::memory::{ChildJob, ChildLauncher, NetRss};
use super::suite::Case;
use super::timer::{self, TimerConfig};
use super::validate::{validate_rounded, OutputRounding, Reference};
use crate::formats::{Format, Scaling};
use crate::kernels::registry::BackendKind;
use crate::kernels::{Backend, Op, Prepared, Problem, Support};
use crate::results::{Bytes, ErrorStats, Memory, Record, Time};
use crate::Result;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    pub timing: TimerConfig,
    /// Launcher of RSS child processes; `None` skips the RSS measurement (`--no-rss`).
    pub rss: Option<ChildLauncher>,
    /// Set (by a SIGINT handler) to stop after the current record.
    pub stop: Arc<AtomicBool>,
    /// Rotate copies of memory-bound operands past 4× the last-level cache (see the module
    /// docs). Off: they are reused between samples and labelled cache-resident where they fit.
    pub cold: bool,
    /// Last-level cache size in bytes (0 = unknown: no rotation, no residency label).
    pub llc_bytes: u64,
    /// Repeats of the whole suite, at least 1.
    pub repeat: usize,
    /// Rounds per record and repeat (the round-robin turns), at least 1.
    pub rounds: usize,
    /// Most rotation copies per record of a shape, where memory holds fewer than [`residency`]
    /// asks for (`run` fills it: a 480 MiB last-level cache asks for 2 GiB per GEMV). Shapes not
    /// listed get up to [`MAX_COPIES`].
    pub max_copies: std::collections::BTreeMap<String, usize>,
}

impl RunOptions {
    /// Defaults: cold operands, this machine's LLC, one repeat, three rounds.
    pub fn new(timing: TimerConfig, rss: Option<ChildLauncher>, stop: Arc<AtomicBool>) -> Self {
        RunOptions {
            timing,
            rss,
            stop,
            cold: true,
            llc_bytes: super::read_bw::llc_bytes().unwrap_or(0),
            repeat: 1,
            rounds: 3,
            max_copies: Default::default(),
        }
    }
}

/// What the runner reports as it goes (for progress bars and logs).
pub enum Event<'a> {
    /// A case × backend is about to be measured (`shape`: the case's shape label).
    Measuring { label: &'a str, shape: &'a str },
    /// One record finished (valid or not).
    Record(&'a Record),
    /// A case × backend did not run; one line saying why.
    Skipped(&'a str),
    /// The records of one shape finished a repeat: a moment to re-measure ceilings.
    BlockDone { shape: &'a str, repeat: usize },
}

/// Everything a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    /// The index (into the cases run) of each record's case, parallel to `records`.
    pub cases: Vec<usize>,
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

/// How many copies of a problem the samples rotate through, the bytes they span, and the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    pub copies: usize,
    pub working_set_bytes: u64,
    /// "cold", "warm", "cache-resident", or "" when the LLC size is unknown.
    pub label: &'static str,
}

/// A call this slow gets no rotation copies: whatever it streams per call dwarfs any cache, and
/// each copy would cost a preparation and a validation run.
pub const SLOW_CALL: Duration = Duration::from_millis(100);

/// Most copies the runner makes of one problem (a tiny GEMV then stays cache-resident, labelled).
pub const MAX_COPIES: usize = 64;

/// Copies and label for a problem of `m` activation rows that touches `bytes` per call. Only
/// products that stream their weights once per call ([`Op::streams_weights`]: GEMV, skinny
/// GEMM) are rotated; a GEMM reuses its operands from cache inside every call anyway.
pub fn residency(op: Op, m: usize, bytes: u64, llc: u64, cold: bool) -> Residency {
    residency_capped(op, m, bytes, llc, if cold { MAX_COPIES } else { 1 })
}

/// [`residency`] with at most `max_copies` copies (1: no rotation). The label follows the working
/// set the copies give: past 4× the cache `cold`, past the cache `warm`, else `cache-resident`.
pub fn residency_capped(op: Op, m: usize, bytes: u64, llc: u64, max_copies: usize) -> Residency {
    let bytes = bytes.max(1);
    if llc == 0 {
        return Residency { copies: 1, working_set_bytes: bytes, label: "" };
    }
    let limit = 4 * llc;
    let copies = if op.streams_weights(m) && bytes <= limit {
        ((limit / bytes) as usize + 1).min(max_copies.clamp(1, MAX_COPIES))
    } else {
        1
    };
    let ws = bytes * copies as u64;
    let label = if ws > limit {
        "cold"
    } else if ws > llc {
        "warm"
    } else {
        "cache-resident"
    };
    Residency { copies, working_set_bytes: ws, label }
}

/// Bytes a shape's cases need at once, with the copies of [`residency_capped`] (for the size
/// check).
pub fn group_bytes_needed(
    specs: &[ProblemSpec],
    backends: usize,
    llc: u64,
    max_copies: usize,
) -> Option<u128> {
    specs.iter().try_fold(0u128, |acc, spec| {
        let once = super::memory::bytes_needed(spec, 1)?;
        let p = spec_bytes(spec);
        let copies = residency_capped(spec.op, spec.m, p, llc, max_copies).copies as u128;
        acc.checked_add(super::memory::bytes_needed(spec, backends.max(1) * copies as usize)?.max(once))
    })
}

/// The most rotation copies (at most [`MAX_COPIES`], at least 1) with which a shape's cases fit
/// in `available` bytes at once, or `None` when they do not fit even without copies.
pub fn copies_that_fit(specs: &[ProblemSpec], backends: usize, llc: u64, available: u64) -> Option<usize> {
    (1..=MAX_COPIES)
        .rev()
        .find(|&c| group_bytes_needed(specs, backends, llc, c).is_some_and(|n| n <= available as u128))
}

/// Logical bytes of a spec's codes and output, before it is built (scales left out).
fn spec_bytes(spec: &ProblemSpec) -> u64 {
    let (m, n, k) = (spec.m as u64, spec.n as u64, spec.k as u64);
    n * k * spec.format.bytes() as u64 + m * k * spec.act_format.bytes() as u64 + m * n * 4
}

/// The timer of one round: the budget, warm-up and sample counts split over `rounds`.
fn round_timer(t: &TimerConfig, rounds: usize) -> TimerConfig {
    let r = rounds.max(1);
    TimerConfig {
        warmup_runs: t.warmup_runs.max(1),
        warmup: t.warmup / r as u32,
        budget: t.budget / r as u32,
        min_samples: t.min_samples.div_ceil(r).max(1),
        max_samples: t.max_samples.div_ceil(r).max(1),
        min_sample: t.min_sample,
    }
}

/// What one measurement of a record (one round) produced.
enum Measured {
    /// Valid before and after timing; the samples, seconds per call.
    Timed(timer::Timing),
    /// Invalid output (before or after timing): the reason, and the error it saw.
    Invalid(String, ErrorStats),
}

/// The prepared copies of one record, kept across its rounds.
type Copies<'a> = Vec<Box<dyn Prepared + 'a>>;

/// Prepare every copy and validate each; `Err((why, error))` when one is wrong.
fn prepare_copies<'a>(
    backend: &'a dyn Backend,
    problems: &[&'a Problem],
    reference: &Reference,
    rec: &mut Record,
) -> Result<std::result::Result<Copies<'a>, (String, ErrorStats)>> {
    let roundoff = OutputRounding::of(backend, problems[0]);
    let mut prepared: Copies<'a> = Vec::with_capacity(problems.len());
    for (i, problem) in problems.iter().enumerate() {
        let mut p = backend.prepare(problem)?;
        if i == 0 {
            if let Some(m) = rec.memory.as_mut() {
                m.buffers = p.buffer_bytes();
            }
            rec.compute = p.compute();
        }
        let started = std::time::Instant::now();
        p.run()?;
        let took = started.elapsed();
        let v = validate_rounded(&p.output()?, reference, roundoff);
        prepared.push(p);
        rec.error_check = Some(v.check);
        if !v.valid {
            return Ok(Err((format!("invalid, not timed: {}", v.reason), v.error)));
        }
        rec.error = v.error;
        if i == 0 && took >= SLOW_CALL && problems.len() > 1 {
            // The call itself streams far more than the cache holds (an emulated decode, say):
            // copies would only cost memory and preparation time.
            break;
        }
    }
    Ok(Ok(prepared))
}

/// Time the rotation through validated copies, then validate the last output of every copy.
fn time_copies(
    backend: &dyn Backend,
    problem: &Problem,
    prepared: &mut Copies<'_>,
    reference: &Reference,
    timing: &TimerConfig,
    rec: &mut Record,
) -> Result<Measured> {
    let roundoff = OutputRounding::of(backend, problem);
    let n = prepared.len();
    let mut next = 0usize;
    let t = timer::time(timing, || {
        let r = prepared[next].run();
        next = (next + 1) % n;
        r
    })?;
    // The last timed run of every copy must still be right (a kernel that corrupts state).
    for p in prepared.iter_mut() {
        let v = validate_rounded(&p.output()?, reference, roundoff);
        if !v.valid {
            rec.error_check = Some(v.check);
            return Ok(Measured::Invalid(
                format!("invalid after timing, time discarded: {}", v.reason),
                v.error,
            ));
        }
    }
    if let Some(m) = rec.memory.as_mut() {
        m.buffers = prepared[0].buffer_bytes();
    }
    Ok(Measured::Timed(t))
}

/// Prepare and validate every copy, time the rotation through them, validate again.
fn measure_rotating(
    backend: &dyn Backend,
    problems: &[&Problem],
    reference: &Reference,
    timing: &TimerConfig,
    rec: &mut Record,
) -> Result<Measured> {
    match prepare_copies(backend, problems, reference, rec)? {
        Ok(mut prepared) => time_copies(backend, problems[0], &mut prepared, reference, timing, rec),
        Err((why, err)) => Ok(Measured::Invalid(why, err)),
    }
}

/// Fill the time, rates and validity of `rec` from its samples (one group per repeat).
fn finish_record(rec: &mut Record, problem_flops: f64, groups: &[Vec<f64>], method: &str, calls: usize) {
    let t = if groups.len() > 1 {
        timer::summarize_repeats(groups)
    } else {
        let mut t = timer::summarize(groups.first().map_or(&[][..], |g| g.as_slice()));
        if let Some((lo, hi)) = timer::bootstrap_median_ci(groups) {
            t.ci_low_s = Some(lo);
            t.ci_high_s = Some(hi);
        }
        t.repeats = 1;
        t
    };
    if t.samples == 0 {
        return;
    }
    rec.valid = true;
    rec.time = Time { calls_per_sample: calls, call_overhead_s: rec.time.call_overhead_s, ..t };
    rec.timing = method.to_string();
    let median = rec.time.median_s.max(1e-12);
    rec.gflops = problem_flops / median / 1e9;
    rec.gbs = rec.bytes.total as f64 / median / 1e9;
}

/// Validate, then (only if valid) time one prepared problem, with no rotation and one round.
/// Never returns a timed record for an output that failed validation; a failure of the backend
/// itself becomes an invalid record.
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
    match measure_rotating(backend, &[problem], reference, timing, &mut rec) {
        Ok(Measured::Timed(t)) => {
            finish_record(&mut rec, problem.flops(), &[t.samples], t.method, t.time.calls_per_sample)
        }
        Ok(Measured::Invalid(why, err)) => {
            rec.error = err;
            rec.note = join_note(&rec.note, &why);
        }
        Err(e) => rec.note = join_note(&rec.note, &format!("failed: {e}")),
    }
    rec
}

/// Median time of a near-empty call (a 64×32 product, f32) of `backend` for `op`, timed as the
/// records are: what dispatch and thread wake-up cost before any work.
pub fn call_overhead(backend: &dyn Backend, op: Op, timing: &TimerConfig) -> Option<f64> {
    let m = if op == Op::Gemv { 1 } else { 4 };
    let problem = ProblemSpec::new(op, m, 64, 32, Format::F32, Scaling::NONE).with_seed(3).build().ok()?;
    let mut prepared = backend.prepare(&problem).ok()?;
    let cfg = TimerConfig {
        warmup: Duration::from_millis(10),
        budget: Duration::from_millis(50).min(timing.budget.max(Duration::from_millis(5))),
        min_samples: 3,
        ..*timing
    };
    timer::time(&cfg, || prepared.run()).ok().map(|t| t.time.median_s)
}

/// One record in the making: the record, its samples per repeat, how they were timed.
struct Slot {
    rec: Record,
    samples: Vec<Vec<f64>>,
    method: &'static str,
    calls: usize,
    failed: bool,
    flops: f64,
}

impl Slot {
    /// The record failed (invalid output or a backend error): no more rounds, no time.
    fn fail(&mut self, why: String, error: Option<ErrorStats>) {
        self.failed = true;
        if let Some(e) = error {
            self.rec.error = e;
        }
        self.rec.note = join_note(&self.rec.note, &why);
    }
}

/// Consecutive cases of the same shape, as ranges of `cases`.
fn shape_groups(cases: &[Case]) -> Vec<Range<usize>> {
    let mut groups: Vec<Range<usize>> = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if cases[g.start].shape == c.shape => g.end = i + 1,
            _ => groups.push(i..i + 1),
        }
    }
    groups
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
    let mut overheads: HashMap<(usize, Op), Option<f64>> = HashMap::new();
    // (case index, backend index) → slot, filled in the first repeat.
    let mut slots: HashMap<(usize, usize), Slot> = HashMap::new();
    let repeat = opts.repeat.max(1);
    let groups = shape_groups(cases);
    let mut finished = vec![false; groups.len()];
    'repeats: for rep in 0..repeat {
        for (gi, g) in groups.iter().enumerate() {
            if opts.stop.load(Ordering::SeqCst) {
                out.interrupted = true;
                break 'repeats;
            }
            run_block(cases, g.clone(), backends, opts, rep, &mut slots, &mut overheads, &mut out, on_event);
            if opts.stop.load(Ordering::SeqCst) {
                out.interrupted = true;
                break 'repeats;
            }
            on_event(Event::BlockDone { shape: &cases[g.start].shape, repeat: rep });
            if rep == 0 {
                if let Some(launcher) = &opts.rss {
                    for ci in g.clone() {
                        for (bi, backend) in backends.iter().enumerate() {
                            if opts.stop.load(Ordering::SeqCst) {
                                break;
                            }
                            if let Some(slot) = slots.get_mut(&(ci, bi)) {
                                let valid = !slot.failed;
                                attach_rss(
                                    launcher,
                                    backend.as_ref(),
                                    &cases[ci],
                                    &mut slot.rec,
                                    valid,
                                    &mut baselines,
                                );
                            }
                        }
                    }
                }
            }
            if rep + 1 == repeat {
                emit_group(g.clone(), backends.len(), &mut slots, &mut out, on_event);
                finished[gi] = true;
            }
        }
    }
    // An interrupted run still reports every record it finished measuring.
    for (gi, g) in groups.iter().enumerate() {
        if !finished[gi] {
            emit_group(g.clone(), backends.len(), &mut slots, &mut out, on_event);
        }
    }
    out
}

/// Finish the records of one shape group, in case order then backend order.
fn emit_group(
    g: Range<usize>,
    nb: usize,
    slots: &mut HashMap<(usize, usize), Slot>,
    out: &mut Outcome,
    on_event: &mut dyn FnMut(Event),
) {
    for ci in g {
        for bi in 0..nb {
            let Some(mut slot) = slots.remove(&(ci, bi)) else { continue };
            if !slot.failed && slot.samples.iter().all(|s| s.is_empty()) {
                continue; // never measured: the run was interrupted before its turn
            }
            if !slot.failed && slot.samples.iter().any(|s| !s.is_empty()) {
                finish_record(&mut slot.rec, slot.flops, &slot.samples, slot.method, slot.calls);
            } else {
                slot.rec.valid = false;
                slot.rec.time = Time::default();
            }
            out.records.push(slot.rec);
            out.cases.push(ci);
            on_event(Event::Record(out.records.last().expect("just pushed")));
        }
    }
}

/// One repeat of one shape: build its cases, validate and time every (case, backend) in rounds.
#[allow(clippy::too_many_arguments)]
fn run_block(
    cases: &[Case],
    g: Range<usize>,
    backends: &[Box<dyn Backend>],
    opts: &RunOptions,
    rep: usize,
    slots: &mut HashMap<(usize, usize), Slot>,
    overheads: &mut HashMap<(usize, Op), Option<f64>>,
    out: &mut Outcome,
    on_event: &mut dyn FnMut(Event),
) {
    // Build every case of the shape, its reference and its rotation copies.
    struct Built {
        ci: usize,
        problem: Problem,
        copies: Vec<Problem>,
        reference: Reference,
        residency: Residency,
        backends: Vec<usize>,
    }
    let mut built: Vec<Built> = Vec::new();
    let mut values = Values::default();
    for ci in g {
        let case = &cases[ci];
        let problem = match case.spec.build_with(&mut values) {
            Ok(p) => p,
            Err(e) => {
                if rep == 0 {
                    let line = format!("{} {}: inputs not built: {e}", case.shape, case.spec.format);
                    on_event(Event::Skipped(&line));
                    out.skipped.push(line);
                }
                continue;
            }
        };
        let mut runnable = Vec::new();
        for (bi, b) in backends.iter().enumerate() {
            if rep > 0 {
                if slots.get(&(ci, bi)).is_some_and(|s| !s.failed) {
                    runnable.push(bi);
                }
                continue;
            }
            match b.support(&problem) {
                Support::Unsupported(why) => {
                    let line = format!("{}: skipped: {why}", label(b.as_ref(), case));
                    on_event(Event::Skipped(&line));
                    out.skipped.push(line);
                }
                how => {
                    let mut rec = blank_record(b.as_ref(), &problem);
                    if let Support::Emulated(why) = how {
                        rec.note = format!("emulated: {why}");
                    }
                    let overhead = *overheads
                        .entry((bi, problem.op))
                        .or_insert_with(|| call_overhead(b.as_ref(), problem.op, &opts.timing));
                    rec.time.call_overhead_s = overhead;
                    let flops = problem.flops();
                    slots.insert(
                        (ci, bi),
                        Slot { rec, samples: Vec::new(), method: "", calls: 0, failed: false, flops },
                    );
                    runnable.push(bi);
                }
            }
        }
        if runnable.is_empty() {
            continue;
        }
        let bytes = logical_bytes(&problem).total;
        let cap =
            if opts.cold { opts.max_copies.get(&cases[ci].shape).copied().unwrap_or(MAX_COPIES) } else { 1 };
        let residency = residency_capped(problem.op, problem.m(), bytes, opts.llc_bytes, cap);
        let copies = (1..residency.copies).map(|_| problem.clone()).collect();
        let reference = Reference::compute(&problem);
        built.push(Built { ci, problem, copies, reference, residency, backends: runnable });
    }
    drop(values);
    let entries: Vec<(usize, usize)> =
        built.iter().enumerate().flat_map(|(i, b)| b.backends.iter().map(move |&bi| (i, bi))).collect();
    if entries.is_empty() {
        return;
    }
    let rounds = opts.rounds.max(1);
    let timing = round_timer(&opts.timing, rounds);
    let mut sets: Vec<Option<Copies<'_>>> = entries.iter().map(|_| None).collect();
    for round in 0..rounds {
        for e in 0..entries.len() {
            if opts.stop.load(Ordering::SeqCst) {
                return;
            }
            let (i, bi) = entries[(e + round) % entries.len()];
            let b = &built[i];
            let backend = backends[bi].as_ref();
            let Some(slot) = slots.get_mut(&(b.ci, bi)) else { continue };
            if slot.failed {
                continue;
            }
            let l = label(backend, &cases[b.ci]);
            on_event(Event::Measuring { label: &l, shape: &cases[b.ci].shape });
            // Prepared and validated in the first round, kept for the others.
            let set = (e + round) % entries.len();
            if sets[set].is_none() {
                slot.rec.working_set_bytes = Some(b.residency.working_set_bytes);
                slot.rec.residency = b.residency.label.to_string();
                let problems: Vec<&Problem> = std::iter::once(&b.problem).chain(b.copies.iter()).collect();
                match prepare_copies(backend, &problems, &b.reference, &mut slot.rec) {
                    Ok(Ok(prepared)) => {
                        // A slow call keeps one copy: its residency is that copy's.
                        if prepared.len() < 1 + b.copies.len() {
                            let why = format!(
                                "one copy: a call takes ≥ {} ms, rotation cannot matter",
                                SLOW_CALL.as_millis()
                            );
                            if !slot.rec.note.contains(&why) {
                                slot.rec.note = join_note(&slot.rec.note, &why);
                            }
                            let one = residency(
                                b.problem.op,
                                b.problem.m(),
                                logical_bytes(&b.problem).total,
                                opts.llc_bytes,
                                false,
                            );
                            slot.rec.working_set_bytes = Some(one.working_set_bytes);
                            slot.rec.residency = one.label.to_string();
                        }
                        sets[set] = Some(prepared);
                    }
                    Ok(Err((why, err))) => {
                        slot.fail(why, Some(err));
                        continue;
                    }
                    Err(e) => {
                        slot.fail(format!("failed: {e}"), None);
                        continue;
                    }
                }
            }
            let prepared = sets[set].as_mut().expect("prepared above");
            // A slow call warmed up in an earlier round needs no warm-up run again: that would
            // only double its cost (an emulated 1 s conversion, say).
            let slow =
                slot.samples.get(rep).and_then(|s| s.first()).is_some_and(|&t| t >= SLOW_CALL.as_secs_f64());
            let timing =
                if slow { TimerConfig { warmup_runs: 0, warmup: Duration::ZERO, ..timing } } else { timing };
            match time_copies(backend, &b.problem, prepared, &b.reference, &timing, &mut slot.rec) {
                Ok(Measured::Timed(t)) => {
                    while slot.samples.len() <= rep {
                        slot.samples.push(Vec::new());
                    }
                    slot.samples[rep].extend_from_slice(&t.samples);
                    slot.method =
                        if slot.method.is_empty() || slot.method == t.method { t.method } else { "mixed" };
                    slot.calls = slot.calls.max(t.time.calls_per_sample);
                }
                Ok(Measured::Invalid(why, err)) => slot.fail(why, Some(err)),
                Err(e) => slot.fail(format!("failed: {e}"), None),
            }
            if slot.failed {
                sets[set] = None;
            }
        }
    }
}

fn attach_rss(
    launcher: &ChildLauncher,
    backend: &dyn Backend,
    case: &Case,
    rec: &mut Record,
    valid: bool,
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
    let backend_arg = if valid { Some(kind) } else { None };
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

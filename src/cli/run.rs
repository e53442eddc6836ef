//! `chipbench run`: the main job. Loads a suite (the embedded default unless `--suite`), opens
//! the backends, refuses sizes that would not fit before allocating anything, calibrates, runs
//! every case (validate, then time, then bytes and child-process RSS), prints the tables and
//! writes `<out>/<run-id>.json` and `.md` atomically.
//!
//! Ctrl-C stops after the current record: the completed records are written with
//! `complete: false` and the process exits with 130. A second Ctrl-C exits at once, writing
//! nothing (never half a file).

use crate::formats::{Format, Scaling};
use crate::kernels::registry::{self, BackendKind};
use crate::measure::calibration::{self, CalibrationConfig};
use crate::measure::memory::{self, ChildJob, ChildLauncher};
use crate::measure::runner::{self, Event, RunOptions};
use crate::measure::suite::{Overrides, Suite};
use crate::measure::{env, fma};
use crate::report::{self, json::Json, markdown::Markdown, Exporter};
use crate::results::{Run, SCHEMA_VERSION};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, the shell convention).
pub const EXIT_INTERRUPTED: i32 = 130;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite file (TOML, see configs/suites/); the embedded default suite when absent.
    #[arg(long, value_name = "FILE")]
    pub suite: Option<PathBuf>,
    /// Backends, comma-separated: cpu, candle, wgpu, all. Default: the suite's list.
    #[arg(long, value_name = "LIST")]
    pub backend: Option<String>,
    /// Weight formats, comma-separated: f32, bf16, f16, e4m3, e5m2. Default: the suite's.
    #[arg(long, value_name = "LIST")]
    pub format: Option<String>,
    /// FP8 scalings, comma-separated: none, per-tensor, deepseek, deepseek:ue8m0, mx32, ...
    #[arg(long, value_name = "LIST")]
    pub scaling: Option<String>,
    /// Threads, comma-separated (0 = all cores). Default: the suite's.
    #[arg(long, value_name = "N")]
    pub threads: Option<String>,
    /// wgpu adapter index, as listed by `chipbench info` (default: the best one).
    #[arg(long, value_name = "N")]
    pub adapter: Option<usize>,
    /// Shrink shapes and time budgets (seconds instead of minutes).
    #[arg(long)]
    pub quick: bool,
    /// Directory for the results files.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Overwrite result files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Skip the peak-RSS measurement in child processes.
    #[arg(long)]
    pub no_rss: bool,
    /// Skip the FMA/bandwidth calibration.
    #[arg(long)]
    pub no_calibration: bool,
    /// Repeat the whole suite N times (1..=100); records pool the samples and carry a bootstrap
    /// 95 % confidence interval of the median that includes the drift between repeats. With
    /// `--model`, each repeat is three passes over the step's products.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub repeat: u16,
    /// Reuse the same operands between samples instead of rotating copies past 4× the last-level
    /// cache (GEMVs that fit in cache are then labelled cache-resident). Default in --quick.
    #[arg(long)]
    pub warm: bool,
    /// Measure whole model steps instead of a suite: model ids of configs/models, comma-separated
    /// (see docs/model-step.md). `--format` then takes step formats (e4m3 = e4m3:deepseek, bf16,
    /// f32, e4m3:mx32, ...).
    #[arg(long, value_name = "ID[,ID...]", conflicts_with_all = ["suite", "scaling"])]
    pub model: Option<String>,
    /// Model steps: sequences per decode step.
    #[arg(long, default_value_t = 1, requires = "model")]
    pub batch: u64,
    /// Model steps: prompt tokens of the prefill step.
    #[arg(long, default_value_t = 512, requires = "model")]
    pub prompt: u64,
    /// Model steps: cached tokens each decoded token attends to.
    #[arg(long, default_value_t = 4096, requires = "model")]
    pub context: u64,
    /// Internal: run one RSS measurement job (JSON) and report the peak.
    #[arg(long, hide = true, value_name = "JOB")]
    pub child_rss: Option<String>,
}

fn list<T>(arg: &Option<String>, parse: impl Fn(&str) -> Result<T>) -> Result<Option<Vec<T>>> {
    arg.as_deref()
        .map(|s| {
            s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(&parse).collect::<Result<Vec<T>>>()
        })
        .transpose()
}

pub fn exec(args: Args) -> Result<()> {
    if let Some(job) = &args.child_rss {
        let job: ChildJob = serde_json::from_str(job)
            .map_err(|e| Error::invalid("--child-rss", job, &format!("a measurement job in JSON ({e})")))?;
        memory::child_main(&job)?;
        return Ok(());
    }
    if args.model.is_some() {
        return super::model_step::exec(&args);
    }
    if let Some(n) = args.adapter {
        // An environment variable, so the child processes that measure RSS open the same adapter.
        std::env::set_var(registry::ADAPTER_ENV, n.to_string());
    }
    let mut suite = match &args.suite {
        Some(p) => Suite::load(p)?,
        None => Suite::default_suite()?,
    };
    let threads = list(&args.threads, |s| {
        s.parse::<usize>().map_err(|_| Error::invalid("--threads", s, "0 (all cores) or a thread count"))
    })?;
    let overrides = Overrides {
        formats: list(&args.format, |s| {
            s.parse::<Format>().map_err(|_| Error::invalid("--format", s, "f32, bf16, f16, e4m3, e5m2"))
        })?,
        scalings: list(&args.scaling, |s| {
            s.parse::<Scaling>().map_err(|_| Error::invalid("--scaling", s, Scaling::ALLOWED))
        })?,
        backends: args.backend.as_deref().map(BackendKind::parse_list).transpose().map_err(|_| {
            Error::invalid("--backend", args.backend.as_deref().unwrap_or(""), BackendKind::ALLOWED)
        })?,
        threads,
    };
    suite.apply(&overrides);
    if args.quick {
        suite.make_quick();
    }

    // Sizes first: nothing large is allocated before every case is known to fit, alone and with
    // the other cases of its shape (they are held together for the round-robin) and their
    // rotation copies.
    let available = memory::mem_available_bytes();
    let per_case_backends = suite.backends.len() * suite.threads.len();
    let cold = !(args.warm || args.quick);
    let llc = crate::measure::llc_bytes().unwrap_or(0);
    for c in &suite.cases {
        let what = format!("{} ({} {} {})", c.shape, c.spec.op, c.spec.format, c.spec.scaling);
        memory::check_fits(&what, &c.spec, per_case_backends, available)?;
    }
    // Rotation copies past 4× a large last-level cache may not all fit: a shape then gets as many
    // as fit (its records are labelled by the working set they had), and is refused only if it
    // does not fit without copies.
    let mut max_copies = std::collections::BTreeMap::new();
    let mut capped = Vec::new();
    if let Some(avail) = available {
        let mut shapes: Vec<&str> = suite.cases.iter().map(|c| c.shape.as_str()).collect();
        shapes.dedup();
        for shape in shapes {
            let specs: Vec<_> = suite.cases.iter().filter(|c| c.shape == shape).map(|c| c.spec).collect();
            let full = if cold { runner::MAX_COPIES } else { 1 };
            let needed =
                runner::group_bytes_needed(&specs, per_case_backends, llc, full).unwrap_or(u128::MAX);
            if needed <= avail as u128 {
                continue;
            }
            // Without rotation (--warm, --quick) there are no copies to drop.
            let fit =
                if cold { runner::copies_that_fit(&specs, per_case_backends, llc, avail) } else { None };
            let Some(fit) = fit else {
                return Err(Error::TooLarge {
                    what: format!("{shape} (all its formats at once)"),
                    needed_gib: runner::group_bytes_needed(&specs, per_case_backends, llc, 1)
                        .unwrap_or(u128::MAX) as f64
                        / (1u64 << 30) as f64,
                    available_gib: avail as f64 / (1u64 << 30) as f64,
                });
            };
            max_copies.insert(shape.to_string(), fit);
            capped.push(format!(
                "operands: {shape}: rotation copies capped at {fit} to fit {:.1} GiB of memory \
                 (past 4× the {:.0} MiB last-level cache would need {:.1} GiB); its records are \
                 labelled by the working set they had",
                avail as f64 / (1u64 << 30) as f64,
                llc as f64 / (1u64 << 20) as f64,
                needed as f64 / (1u64 << 30) as f64
            ));
        }
    }
    for line in &capped {
        eprintln!("{line}");
    }

    let (run_id, created) = new_run_id(&suite.name, &args)?;

    let stop = Arc::new(AtomicBool::new(false));
    install_sigint(stop.clone());

    let mut opened = registry::open_all(&suite.backends, &suite.threads);
    let mut notes: Vec<String> = Vec::new();
    if !args.quick && args.backend.is_none() {
        // A software rasterizer (llvmpipe/lavapipe) runs the full suite's GEMMs for many minutes;
        // it runs when asked for by name, or in --quick.
        opened.backends.retain(|b| {
            let d = b.device();
            let software = b.name() == "wgpu" && d.kind == "software";
            if software {
                opened.skipped.push(format!(
                    "wgpu: skipped: software adapter '{}' (a CPU rasterizer); pass --backend wgpu or --quick to run it",
                    d.name
                ));
            }
            !software
        });
    }
    // How busy the host is before the first measurement (the env records it again at the end).
    let load_before = crate::results::HostLoad::read();
    let (max_threads, mut calibration, mut devices) = calibrate_opened(&opened, &args, &mut notes)?;
    let probe = ceiling_probe(calibration.as_ref(), &args, max_threads);
    if suite.backends.contains(&BackendKind::Wgpu) {
        for d in crate::kernels::wgpu::list_adapters() {
            if !devices.contains(&d) {
                devices.push(d);
            }
        }
    }

    let rss = if args.no_rss {
        None
    } else if cfg!(target_os = "linux") {
        notes.push(
            "rss: peak resident set (VmHWM) of a fresh child per record, after its inputs are built, minus a \
             baseline child that opened the same backend and built nothing"
                .into(),
        );
        Some(ChildLauncher::chipbench()?)
    } else {
        notes.push("rss: unavailable on this OS (needs Linux VmHWM)".into());
        None
    };
    let mut opts = RunOptions::new(suite.timing, rss, stop.clone());
    opts.cold = cold;
    opts.llc_bytes = llc;
    opts.repeat = args.repeat as usize;
    opts.max_copies = max_copies;
    notes.push(operand_note(cold, llc, args.quick));
    notes.extend(capped);
    notes.push(if crate::affinity::supported() {
        "threads: kernel worker threads pinned to cores (sched_setaffinity)".into()
    } else {
        "threads: not pinned (no affinity control on this OS)".into()
    });
    notes.push(format!(
        "order: the records of one shape run round-robin ({} rounds{}), samples batched to at least {} ms",
        opts.rounds,
        if opts.repeat > 1 { format!(", suite repeated {}×", opts.repeat) } else { String::new() },
        suite.timing.min_sample.as_secs_f64() * 1e3
    ));

    // One step per (case × backend) turn: rounds × repeats of each.
    let turns = (opts.rounds.max(1) * opts.repeat.max(1)) as u64;
    let total = (suite.cases.len() * opened.backends.len()) as u64 * turns;
    eprintln!("{}", operand_note(cold, llc, args.quick));
    let bar = progress_bar(total);
    let (log_lines, started) =
        (!std::io::IsTerminal::is_terminal(&std::io::stderr()), std::time::Instant::now());
    let done = AtomicUsize::new(0);
    let outcome = runner::run_cases(&suite.cases, &opened.backends, &opts, &mut |ev| match ev {
        Event::Measuring { label, .. } => {
            bar.inc(1);
            bar.set_message(label.to_string())
        }
        Event::Record(r) => {
            done.fetch_add(1, Ordering::Relaxed);
            if !r.valid {
                bar.println(format!("INVALID {} {} {} {}: {}", r.backend, r.op, r.format, r.scaling, r.note));
            }
        }
        Event::Skipped(_) => bar.inc(turns),
        Event::BlockDone { shape, repeat } => {
            if log_lines {
                // No terminal for the bar (a log file, CI): one line per finished shape instead.
                let rep = if opts.repeat > 1 {
                    format!(" (repeat {}/{})", repeat + 1, opts.repeat)
                } else {
                    String::new()
                };
                eprintln!(
                    "[{:>5.0} s] {shape}{rep} measured: {}/{} turns",
                    started.elapsed().as_secs_f64(),
                    bar.position(),
                    total
                );
            }
            if let (Some(cal), Some(probe)) = (calibration.as_mut(), probe.as_ref()) {
                calibration::remeasure(cal, probe);
            }
        }
    });
    drop(probe);
    bar.finish_and_clear();

    for (line, count) in group_skipped(&outcome.skipped) {
        let line = if count > 1 { format!("{line} ({count} cases)") } else { line };
        eprintln!("{line}");
        notes.push(line);
    }
    if args.quick {
        notes.push(format!("--quick: dimensions divided by {}, short time budget", suite.quick_divisor));
    }
    let mut run = Run {
        schema_version: SCHEMA_VERSION,
        run_id,
        created,
        tool: format!("chipbench {}", env!("CARGO_PKG_VERSION")),
        suite: suite.name.clone(),
        env: env::collect_with_load(max_threads, devices, load_before),
        calibration,
        records: outcome.records,
        complete: !outcome.interrupted,
        notes,
    };
    let flagged = crate::measure::ceilings::flag_run(&mut run);
    if flagged > 0 {
        let line = format!(
            "ceilings: {flagged} valid record(s) above the read ceiling or the FMA peak by more than 5 % \
             (flagged, not evidence: cache reuse or a wrong byte count)"
        );
        eprintln!("{line}");
        run.notes.push(line);
    }
    print!("{}", report::markdown::tables(&run));
    if run.records.is_empty() {
        eprintln!("no records: every case was skipped (see the lines above)");
    }
    write_and_finish(&run, &args)
}

/// The run id (`<UTC stamp>-<name>[-quick]`) and its RFC 3339 start time; refuses before any
/// work when its files exist and `--force` is not given.
pub(crate) fn new_run_id(name: &str, args: &Args) -> Result<(String, String)> {
    let crate::results::UtcTime { stamp, rfc3339: created } = crate::results::utc_now();
    let run_id = format!("{stamp}-{}{}", sanitize(name), if args.quick { "-quick" } else { "" });
    for ext in [Json.extension(), Markdown.extension()] {
        let p = args.out.join(format!("{run_id}.{ext}"));
        if p.exists() && !args.force {
            return Err(Error::config(p, "output", "exists; pass --force to overwrite"));
        }
    }
    Ok((run_id, created))
}

/// Write the run's JSON and Markdown atomically; exit with [`EXIT_INTERRUPTED`] after writing
/// when the run was interrupted (`complete: false`).
pub(crate) fn write_and_finish(run: &Run, args: &Args) -> Result<()> {
    let paths = report::write_run(run, &args.out, &[&Json, &Markdown], args.force)?;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if !run.complete {
        eprintln!(
            "interrupted: wrote the {} completed records to {} (complete: false)",
            run.records.len(),
            names.join(" and ")
        );
        std::process::exit(EXIT_INTERRUPTED);
    }
    eprintln!("wrote {}", names.join(" and "));
    Ok(())
}

/// One line saying how operands were treated between samples.
fn operand_note(cold: bool, llc: u64, quick: bool) -> String {
    let llc_mib = llc as f64 / (1u64 << 20) as f64;
    match (cold, llc) {
        (_, 0) => "operands: last-level cache size unknown; no rotation, no residency labels".into(),
        (true, _) => format!(
            "operands: cold — GEMV operands rotate through copies past 4× the {llc_mib:.0} MiB last-level cache"
        ),
        (false, _) if quick => format!(
            "operands: --quick reuses operands between samples; its GEMVs fit the {llc_mib:.0} MiB last-level cache and are cache-resident, not DRAM figures"
        ),
        (false, _) => format!(
            "operands: --warm reuses operands between samples; those that fit the {llc_mib:.0} MiB last-level cache are labelled cache-resident"
        ),
    }
}

/// Report the backends that did not open, refuse a run with none, calibrate (unless
/// `--no-calibration`) and list the devices used: `(max threads, calibration, devices)`.
pub(crate) fn calibrate_opened(
    opened: &registry::Opened,
    args: &Args,
    notes: &mut Vec<String>,
) -> Result<(usize, Option<crate::results::Calibration>, Vec<crate::kernels::DeviceInfo>)> {
    for s in &opened.skipped {
        eprintln!("{s}");
        notes.push(s.clone());
    }
    if opened.backends.is_empty() {
        return Err(Error::device("run", "no backend could be opened (see the lines above)"));
    }
    let max_threads = opened.backends.iter().map(|b| b.threads()).max().unwrap_or(1);
    let calibration = if args.no_calibration {
        None
    } else {
        eprintln!("calibrating (FMA peak, memory bandwidth) ...");
        let cfg = if args.quick {
            CalibrationConfig::quick(max_threads)
        } else {
            CalibrationConfig::full(max_threads)
        };
        notes.push(format!("calibration: FMA loop on {}", fma::isa()));
        Some(calibration::calibrate(&cfg))
    };
    let mut devices: Vec<crate::kernels::DeviceInfo> = Vec::new();
    for b in &opened.backends {
        let d = b.device();
        if !devices.contains(&d) {
            devices.push(d);
        }
    }
    Ok((max_threads, calibration, devices))
}

/// The run's progress bar over `total` measurements.
pub(crate) fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

pub(crate) fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    if s.is_empty() {
        "suite".into()
    } else {
        s
    }
}

/// First Ctrl-C: ask the runner to stop after the current record. Second: exit now.
pub(crate) fn install_sigint(stop: Arc<AtomicBool>) {
    let result = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted twice: exiting without writing results");
            std::process::exit(EXIT_INTERRUPTED);
        }
        eprintln!("\ninterrupt: stopping after the current record (Ctrl-C again to quit now)");
    });
    if let Err(e) = result {
        eprintln!("warning: Ctrl-C handler not installed ({e}); an interrupt will lose this run");
    }
}

/// "cpu/4t gemv e4m3 ...: skipped: why" lines grouped as ("cpu: skipped: why", count).
fn group_skipped(lines: &[String]) -> Vec<(String, usize)> {
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        let backend = l.split([' ', '/']).next().unwrap_or("");
        let reason = l.split_once(": skipped: ").map_or(l.as_str(), |(_, r)| r);
        *groups.entry(format!("{backend}: skipped: {reason}")).or_default() += 1;
    }
    groups.into_iter().collect()
}

/// The read-ceiling probe of a calibrated, non-`--quick` run: the ceilings are re-measured
/// between the blocks of records (one shape, or one model-step product, each) with one buffer
/// allocated for the whole run, so each is a range over the run's minutes and a dip while
/// calibrating does not leave a "peak" that the records beat.
pub(super) fn ceiling_probe(
    cal: Option<&crate::results::Calibration>,
    args: &Args,
    max_threads: usize,
) -> Option<crate::measure::read_bw::ReadProbe> {
    cal.filter(|_| !args.quick).map(|_| calibration::read_probe(&CalibrationConfig::full(max_threads)))
}

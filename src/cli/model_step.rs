//! `chipbench run --model ID[,ID...]`: whole decode and prefill steps of models, measured here
//! product by product (see `crate::modelstep` and docs/model-step.md), printed like llama-bench
//! beside the planner's prediction for this machine, written as a results file whose records
//! carry `model_step`.

use super::run::{calibrate_opened, install_sigint, progress_bar, write_and_finish, Args};
use crate::kernels::registry::{self, BackendKind};
use crate::measure::calibration;
use crate::measure::runner::{Event, RunOptions};
use crate::measure::{env, memory};
use crate::modelstep::{self, Phase, Sampling, StepFormat, StepShape};
use crate::profiles;
use crate::results::{Run, SCHEMA_VERSION};
use crate::{Error, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Seed of the inputs (as the default suite's).
const SEED: u64 = 42;

pub fn exec(args: &Args) -> Result<()> {
    let ids = args.model.as_deref().unwrap_or("");
    let all = profiles::models_in(None)?;
    let models = ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|id| profiles::find_model(&all, id))
        .collect::<Result<Vec<_>>>()?;
    if models.is_empty() {
        return Err(Error::invalid("--model", ids, "one or more model ids (see `chipbench models`)"));
    }
    for (flag, v) in [("--batch", args.batch), ("--prompt", args.prompt), ("--context", args.context)] {
        if v == 0 || v > 1 << 20 {
            return Err(Error::invalid(flag, &v.to_string(), "1 ..= 1048576 tokens"));
        }
    }
    let formats = match &args.format {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(StepFormat::parse)
            .collect::<Result<Vec<_>>>()?,
        None => StepFormat::DEFAULTS.to_vec(),
    };
    let backends = match &args.backend {
        Some(b) => {
            BackendKind::parse_list(b).map_err(|_| Error::invalid("--backend", b, BackendKind::ALLOWED))?
        }
        None => vec![BackendKind::Cpu],
    };
    let threads: Vec<usize> = match &args.threads {
        Some(t) => t
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| Error::invalid("--threads", s, "0 (all cores) or a thread count"))
            })
            .collect::<Result<_>>()?,
        None => vec![0],
    };
    let sampling = if args.quick { Sampling::quick() } else { Sampling::standard() };
    let decode =
        StepShape { phase: Phase::Decode, batch: args.batch, prompt: args.prompt, context: args.context };
    let prefill = StepShape { phase: Phase::Prefill, ..decode };
    let planned = modelstep::measure::plan(&models, &[decode, prefill], &formats, &sampling, SEED);

    // Sizes first: every slice is checked before anything is allocated.
    let available = memory::mem_available_bytes();
    let per_case = backends.len() * threads.len();
    for case in modelstep::measure::cases(&planned) {
        memory::check_fits(&case.shape, &case.spec, per_case, available)?;
    }

    let name = format!("model-step-{}", models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join("+"));
    let (run_id, created) = super::run::new_run_id(&name, args)?;
    let stop = Arc::new(AtomicBool::new(false));
    install_sigint(stop.clone());
    let opened = registry::open_all(&backends, &threads);
    let mut notes: Vec<String> = Vec::new();
    let (max_threads, mut calibration, devices) = calibrate_opened(&opened, args, &mut notes)?;
    // The planner's "local" bounds are the best FMA peak and read ceiling seen over the run, as
    // in `run`: a VM short of a vCPU while calibrating once gave half the FMA peak, and the
    // prefill slices then ran 1.5x "faster than the planner".
    let probe = super::run::ceiling_probe(calibration.as_ref(), args, max_threads);
    let mut opts = RunOptions::new(sampling.timing, None, stop.clone());
    // Passes over all the slices (samples pooled per slice), times the user's repeats.
    opts.repeat = sampling.passes * args.repeat as usize;
    opts.cold = !(args.warm || args.quick);
    // One product at a time: the turns are only across backends, so one round is enough.
    opts.rounds = 1;
    let per_pass = modelstep::measure::cases(&planned).len() * opened.backends.len();
    let bar = progress_bar((per_pass * opts.repeat) as u64);
    let mut on_event = |ev: Event| match ev {
        Event::Measuring { label, shape } => {
            let pass = bar.position() as usize / per_pass.max(1) + 1;
            bar.set_message(format!("pass {pass}/{}: {shape} — {label}", opts.repeat));
            bar.inc(1)
        }
        Event::Record(r) => {
            if !r.valid {
                bar.println(format!("INVALID {} {} {} {}: {}", r.backend, r.op, r.format, r.scaling, r.note));
            }
        }
        // Skipped in the first pass, so in every pass.
        Event::Skipped(_) => bar.inc(opts.repeat as u64),
        Event::BlockDone { .. } => {}
    };
    // After each product in each pass: the roofs again (the best seen stays the calibration's),
    // and the median of what its passes gave goes into the product's records for the paired
    // planner.
    // Only at the thread counts the products run at.
    let at: Vec<usize> = opened.backends.iter().map(|b| b.threads()).collect();
    let mut roofs_now = || Some(calibration::remeasure_now(calibration.as_mut()?, probe.as_ref()?, &at));
    let outcome = modelstep::measure(&planned, &opened.backends, &opts, &mut on_event, &mut roofs_now);
    drop(probe);
    bar.finish_and_clear();
    for s in &outcome.skipped {
        notes.push(s.clone());
    }
    notes.push(format!(
        "model steps: batch {}, prompt {}, context {}; slices of {} KiB (decode), at most {} tokens and {} M \
         multiply-adds each; {} ms of samples per slice in {}{}",
        args.batch,
        args.prompt,
        args.context,
        sampling.slice_bytes >> 10,
        sampling.max_m,
        sampling.max_macs >> 20,
        sampling.timing.budget.as_millis(),
        match opts.repeat {
            1 => "one pass".to_string(),
            p => format!("each of {p} passes over the slices, pooled"),
        },
        if args.quick { " (--quick)" } else { "" }
    ));
    let run = Run {
        schema_version: SCHEMA_VERSION,
        run_id,
        created,
        tool: format!("chipbench {}", env!("CARGO_PKG_VERSION")),
        suite: name,
        env: env::collect(max_threads, devices),
        calibration,
        records: outcome.records,
        complete: !outcome.interrupted,
        notes,
    };
    print!("{}", modelstep::steps::render(&run));
    write_and_finish(&run, args)
}

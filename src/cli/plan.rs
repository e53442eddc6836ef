//! `chipbench plan`: what a model takes on a chip (memory, chips needed, decode/prefill bounds,
//! training memory and FLOPs, collective times), one chip or several side by side.

use crate::profiles;
use crate::project::planner::{self, PlanOptions, WeightPrecision};
use crate::project::{plan_collectives, plan_table};
use crate::results::Run;
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model id or alias (see `chipbench models`).
    #[arg(long, default_value = "deepseek-v3")]
    pub model: String,
    /// One chip id or alias (see `chipbench chips`).
    #[arg(long, conflicts_with = "compare")]
    pub chip: Option<String>,
    /// Several chips side by side, comma-separated: h20,ascend-910c,h800.
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<String>,
    /// Weight precision: fp8 (E4M3 + 128x128 f32 block scales) or bf16.
    #[arg(long, default_value = "fp8")]
    pub precision: String,
    /// Context length in tokens: the cache each decoded token attends to.
    #[arg(long, default_value_t = 4096)]
    pub context: u64,
    /// Prompt tokens of the prefill bound: one prompt of this many tokens, with the experts its
    /// tokens touch (a 512-token prompt reads all of DeepSeek-V3's). Default: the context.
    #[arg(long)]
    pub prompt: Option<u64>,
    /// Sequences per decode step (and per chip per training micro-batch).
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Fraction of chip memory for weights + KV cache.
    #[arg(long, default_value_t = 0.9)]
    pub usable_memory: f64,
    /// Chips in the training ring / expert-parallel group (default: what the training state needs).
    #[arg(long)]
    pub train_chips: Option<u64>,
    /// A collectives results file (`chipbench collectives`): adds the collective times calibrated
    /// with its measured curves and the FP8/BF16 all-to-all ratios.
    #[arg(long)]
    pub collectives: Option<PathBuf>,
    /// A results file of `chipbench run --model`: adds the measured step of --model scaled part by
    /// part onto each chip (see docs/model-step.md).
    #[arg(long, value_name = "FILE")]
    pub from_results: Option<PathBuf>,
    /// Directory with chips/ and models/ profiles (default: the embedded ones).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<()> {
    let chips = profiles::chips_in(args.config_dir.as_deref())?;
    let models = profiles::models_in(args.config_dir.as_deref())?;
    let model = profiles::find_model(&models, &args.model)?;
    let keys: Vec<String> = match (&args.chip, args.compare.is_empty()) {
        (Some(c), _) => vec![c.clone()],
        (None, false) => args.compare.clone(),
        (None, true) => return Err(Error::invalid("chip", "(none)", "--chip ID or --compare ID,ID,...")),
    };
    let opts = PlanOptions {
        precision: args.precision.parse::<WeightPrecision>()?,
        context: args.context,
        prompt: args.prompt,
        batch: args.batch,
        usable_memory: args.usable_memory,
        train_chips: args.train_chips,
    };
    let plans = keys
        .iter()
        .map(|k| planner::plan(model, profiles::find_chip(&chips, k)?, &opts))
        .collect::<Result<Vec<_>>>()?;
    print!("{}", plan_table::render(&plans));
    if let Some(path) = &args.collectives {
        let run = Run::load(path)?;
        let memcpy = plan_collectives::measure_memcpy();
        let link = plan_collectives::local_link(&run, memcpy).map_err(|e| match e {
            Error::Config { field, message, .. } => Error::config(path, field, message),
            other => other,
        })?;
        let hidden = model.architecture.hidden as usize;
        let cals: Vec<_> = plans.iter().map(|p| plan_collectives::calibrate(p, hidden, &link)).collect();
        println!("collectives file: {} ({} records)", path.display(), run.records.len());
        print!("{}", plan_table::render_calibrated(&plans, &cals, &link));
    }
    if let Some(path) = &args.from_results {
        let run = Run::load(path)?;
        let chip_list = keys.iter().map(|k| profiles::find_chip(&chips, k)).collect::<Result<Vec<_>>>()?;
        let table = crate::modelstep::project::render(&run, model, &chip_list).map_err(|e| match e {
            Error::Config { field, message, .. } => Error::config(path, field, message),
            other => other,
        })?;
        print!("\n{table}");
    }
    Ok(())
}

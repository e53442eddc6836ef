//! The command line: one file per subcommand, each with its clap `Args` and an `exec`.

pub mod chips;
pub mod claims;
pub mod collectives;
pub mod convert;
pub mod info;
pub mod model_step;
pub mod models;
pub mod plan;
pub mod project;
pub mod report;
pub mod run;
pub mod study;

use clap::{Parser, Subcommand};

/// chipbench: what FP8, FP16/BF16 and FP32 really cost and buy, measured on this machine and
/// projected onto AI chips.
#[derive(Debug, Parser)]
#[command(name = "chipbench", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a benchmark suite (the embedded default when no --suite): validate, time, measure bytes.
    Run(run::Args),
    /// Encode numbers to FP8 E4M3FN, E5M2 or E8M0 and show the codes.
    Convert(convert::Args),
    /// List backends, devices and what each runs natively or emulated.
    Info(info::Args),
    /// List the chip profiles, or show one with its sources.
    Chips(chips::Args),
    /// List the model profiles, or show one.
    Models(models::Args),
    /// Project measured results onto a chip (roofline).
    Project(project::Args),
    /// Plan a model on a chip: memory, chips needed, decode/prefill bounds, training, collectives.
    Plan(plan::Args),
    /// Numerical studies (FP8 accumulation precision).
    Study(study::Args),
    /// The articles' claims with verdicts from measured and sourced numbers.
    Claims(claims::Args),
    /// Merge result files into one Markdown report with SVG plots.
    Report(report::Args),
    /// Collective communication benchmarks over MPI (cargo feature `mpi`).
    Collectives(collectives::Args),
}

/// Parse arguments and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse_from(convert::protect_negative_words(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let result = match cli.command {
        Command::Run(a) => run::exec(a),
        Command::Convert(a) => convert::exec(a),
        Command::Info(a) => info::exec(a),
        Command::Chips(a) => chips::exec(a),
        Command::Models(a) => models::exec(a),
        Command::Project(a) => project::exec(a),
        Command::Plan(a) => plan::exec(a),
        Command::Study(a) => study::exec(a),
        Command::Claims(a) => claims::exec(a),
        Command::Report(a) => report::exec(a),
        Command::Collectives(a) => collectives::exec(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("chipbench: error: {e}");
            e.exit_code()
        }
    }
}

/// Help and version as clap prints them; a usage error as one line with the usage, exit code 2
/// (clap's own report spans five lines).
fn clap_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return e.exit_code();
    }
    let text = e.render().to_string();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let usage = text.lines().find_map(|l| l.trim().strip_prefix("Usage: "));
    let usage = usage.map(|u| format!(" (usage: {u}; see --help)")).unwrap_or_default();
    eprintln!("chipbench: error: {first}{usage}");
    2
}

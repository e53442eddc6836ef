//! `chipbench report`: merge result files from one or many machines into one Markdown report
//! with SVG plots written beside it.

use crate::report::merge;
use crate::results::write_atomic;
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Result files or directories (searched recursively for *.json), from any number of hosts.
    #[arg(required = true, value_name = "DIR")]
    pub inputs: Vec<PathBuf>,
    /// The Markdown file; the SVG plots go beside it as <stem>-<plot>.svg.
    #[arg(long, value_name = "FILE", default_value = "results/report.md")]
    pub out: PathBuf,
    /// Overwrite the report and its plots if they exist.
    #[arg(long)]
    pub force: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let loaded = merge::load(&args.inputs);
    if loaded.runs.is_empty() {
        // One line: why each input gave nothing goes into the error, not onto lines of its own.
        let why = if loaded.warnings.is_empty() {
            String::new()
        } else {
            format!(" ({})", loaded.warnings.join("; "))
        };
        return Err(Error::invalid(
            "report inputs",
            &args.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
            &format!("directories or files holding chipbench results JSON (schema_version 1){why}"),
        ));
    }
    for w in &loaded.warnings {
        eprintln!("chipbench: warning: {w}");
    }
    let stem = args.out.file_stem().map_or_else(|| "report".into(), |s| s.to_string_lossy().into_owned());
    let report = merge::build(&loaded.runs, &loaded.warnings, &stem)?;
    let dir = args.out.parent().map(PathBuf::from).unwrap_or_default();
    let mut targets: Vec<(PathBuf, &str)> = vec![(args.out.clone(), report.markdown.as_str())];
    targets.extend(report.svgs.iter().map(|(name, text)| (dir.join(name), text.as_str())));
    // Check every target before writing any, so a refusal leaves nothing half-done.
    if !args.force {
        if let Some((p, _)) = targets.iter().find(|(p, _)| p.exists()) {
            return Err(Error::config(p, "output", "exists; pass --force to overwrite"));
        }
    }
    for (p, text) in &targets {
        write_atomic(p, text.as_bytes(), args.force)?;
    }
    eprintln!(
        "chipbench: merged {} runs into {} ({} plots)",
        loaded.runs.len(),
        args.out.display(),
        report.svgs.len()
    );
    Ok(())
}

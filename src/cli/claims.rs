//! `chipbench claims`: the articles' claims with verdicts from this machine's results, the codecs
//! and the chip profiles.

use crate::claims::{self, render, Catalogue, Inputs};
use crate::report::merge;
use crate::results::write_atomic;
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Results to draw measured evidence from: directories (searched for *.json) or files.
    /// Default: `results` when it exists.
    #[arg(long = "results", value_name = "DIR")]
    pub results: Vec<PathBuf>,
    /// Print JSON instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite --out if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let paths = if args.results.is_empty() {
        let default = PathBuf::from("results");
        if default.is_dir() {
            vec![default]
        } else {
            eprintln!(
                "chipbench: note: no results directory; measured claims get no data (run `chipbench run`)"
            );
            vec![]
        }
    } else {
        // A named input that is not there is a missing input (exit 3), not a warning.
        if let Some(p) = args.results.iter().find(|p| !p.exists()) {
            return Err(Error::io(p, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        args.results.clone()
    };
    let loaded = merge::load(&paths);
    for w in &loaded.warnings {
        eprintln!("chipbench: warning: {w}");
    }
    let cat = Catalogue::embedded()?;
    let assessed = claims::assess(&cat, &Inputs { runs: loaded.runs });
    let text =
        if args.json { render::json(&cat, &assessed) + "\n" } else { render::markdown(&cat, &assessed, 1) };
    match &args.out {
        Some(p) => {
            write_atomic(p, text.as_bytes(), args.force)?;
            eprintln!("chipbench: wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

//! `chipbench chips` (table of every chip) and `chipbench chips show <id-or-alias>` (one chip
//! with every figure's source and the conflicting values other sources gave).

use crate::profiles::{self, Chip, Precision, Status};
use crate::project::text::table;
use crate::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Directory with chips/ profiles (default: the embedded ones).
    #[arg(long, global = true)]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// One chip with the source and alternatives of every figure.
    Show { id: String },
}

pub fn exec(args: Args) -> Result<()> {
    let chips = profiles::chips_in(args.config_dir.as_deref())?;
    match args.command {
        None => print!("{}", list(&chips)),
        Some(Sub::Show { id }) => print!("{}", show(profiles::find_chip(&chips, &id)?)),
    }
    Ok(())
}

fn short(fig: Option<&profiles::Figure>) -> String {
    match fig {
        Some(f) => match f.status() {
            Status::Sourced => {
                let v = profiles::figure::fmt_num(f.get().unwrap_or(0.0));
                if f.alternatives.is_empty() {
                    v
                } else {
                    format!("{v}~")
                }
            }
            Status::NotNative => "no native".into(),
            Status::None => "none".into(),
            Status::Unfound => "?".into(),
        },
        None => "-".into(),
    }
}

/// The chip table.
pub fn list(chips: &[Chip]) -> String {
    let rows: Vec<Vec<String>> = chips
        .iter()
        .map(|c| {
            let link = match c.interconnect.as_ref() {
                Some(f) if f.status() == Status::Sourced => {
                    let dir = match f.direction {
                        Some(profiles::Direction::PerDirection) => "per dir",
                        Some(profiles::Direction::Bidirectional) => "bidir",
                        _ => "dir?",
                    };
                    format!("{} {dir}", short(Some(f)))
                }
                f => short(f),
            };
            vec![
                c.aliases.first().cloned().unwrap_or(c.id.clone()),
                c.name.clone(),
                short(c.memory.as_ref()),
                short(c.memory_bw.as_ref()),
                short(c.peak_figure(Precision::Fp32)),
                short(c.peak_figure(Precision::Bf16)),
                short(c.peak_figure(Precision::Fp8)),
                link,
                short(c.tdp.as_ref()),
                c.confidence.clone(),
            ]
        })
        .collect();
    table(
        &[
            "chip",
            "name",
            "mem GB",
            "BW TB/s",
            "FP32 TFLOPS",
            "BF16 TFLOPS",
            "FP8 TFLOPS",
            "link GB/s",
            "TDP W",
            "confidence",
        ],
        &rows,
    ) + "dense peaks; ~ = other sources disagree (see `chipbench chips show ID`); ? = no source found; \
         bidir = both directions summed\n"
}

/// One chip with every figure's source and alternatives.
pub fn show(c: &Chip) -> String {
    let mut out = format!("{} ({}), {}\n", c.name, c.id, c.vendor);
    out += &format!("aliases: {}\n", c.aliases.join(", "));
    if let Some(y) = c.year {
        out += &format!("year: {y} [{}]\n", c.year_source);
    }
    out += &format!("confidence: {} ({})\n", c.confidence, c.confidence_note);
    out += &format!("profile: {}\n\n", c.origin);
    for (field, f) in c.figures() {
        let mut line = format!("{field}: {f}");
        if let Some(d) = f.direction {
            line += &format!(
                " ({})",
                serde_json::to_value(d).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
            );
        }
        out += &format!("{line}\n  source: {}\n", f.source);
        for a in &f.alternatives {
            out += &format!("  alternative: {} [{}]\n", profiles::figure::fmt_num(a.value), a.source);
        }
        if let Some(n) = &f.note {
            out += &format!("  note: {n}\n");
        }
    }
    if let Some((bw, how)) = c.link_per_direction_bytes_s() {
        out += &format!("link per direction used by `plan`: {} GB/s ({how})\n", bw / 1e9);
    }
    for n in &c.notes {
        out += &format!("note: {n}\n");
    }
    out
}

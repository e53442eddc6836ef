//! `chipbench models` and `chipbench models show <id>`.

use crate::profiles::{self, Model};
use crate::project::text::{sig3, table};
use crate::Result;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Directory with models/ profiles (default: the embedded ones).
    #[arg(long, global = true)]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// One model: architecture, computed vs published parameter counts, tensors, sources.
    Show { id: String },
}

pub fn exec(args: Args) -> Result<()> {
    let models = profiles::models_in(args.config_dir.as_deref())?;
    match args.command {
        None => print!("{}", list(&models)),
        Some(Sub::Show { id }) => print!("{}", show(profiles::find_model(&models, &id)?)),
    }
    Ok(())
}

fn kind(m: &Model) -> String {
    match &m.moe {
        Some(moe) => format!("MoE {}+{}sh top-{}", moe.experts, moe.shared_experts, moe.experts_per_token),
        None => "dense".into(),
    }
}

/// The model table.
pub fn list(models: &[Model]) -> String {
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            let c = m.param_counts();
            vec![
                m.id.clone(),
                format!("{}", m.params.total_b),
                sig3(c.total as f64 / 1e9),
                format!("{}", m.params.active_b),
                sig3(c.active as f64 / 1e9),
                m.attention.kind.to_uppercase(),
                kind(m),
                m.architecture.layers.to_string(),
                m.architecture.hidden.to_string(),
                sig3(m.kv_elements(1) as f64 * 2.0 / 1024.0),
            ]
        })
        .collect();
    table(
        &[
            "model",
            "published total",
            "computed (B)",
            "published active",
            "computed active (B)",
            "attention",
            "ffn",
            "layers",
            "hidden",
            "KV/token BF16 (KiB)",
        ],
        &rows,
    ) + "computed active excludes the input embedding (a token reads one row of it)\n"
}

/// One model in full.
pub fn show(m: &Model) -> String {
    let c = m.param_counts();
    let mut out = format!("{} ({})\n", m.name, m.id);
    if !m.aliases.is_empty() {
        out += &format!("aliases: {}\n", m.aliases.join(", "));
    }
    out += &format!("architecture source: {}\n", m.architecture_source);
    if !m.native_precision.is_empty() {
        out += &format!("native precision: {} [{}]\n", m.native_precision, m.native_precision_source);
    }
    for (name, fig, computed) in
        [("total", &m.params.total_b, c.total), ("active", &m.params.active_b, c.active_as_published(m))]
    {
        out += &format!(
            "{name}: published {} [{}]; computed {:.3} B ({:+.2} %)\n",
            fig,
            fig.source,
            computed as f64 / 1e9,
            (computed as f64 / 1e9 / fig.get().unwrap_or(f64::NAN) - 1.0) * 100.0
        );
        for a in &fig.alternatives {
            out += &format!("  alternative {} B [{}]\n", a.value, a.source);
        }
    }
    out += &format!("active counting convention: {}\n", m.params.active_convention_source);
    out += &format!(
        "KV cache per token: {} elements x 2 bytes (BF16) = {:.1} KiB\n\n",
        m.kv_elements(1),
        m.kv_elements(1) as f64 * 2.0 / 1024.0
    );
    let rows: Vec<Vec<String>> = m
        .tensors()
        .iter()
        .map(|t| {
            vec![
                t.name.to_string(),
                format!("{:?}", t.kind),
                format!("{}x{}", t.rows, t.cols),
                t.count.to_string(),
                t.active.to_string(),
                sig3((t.numel() * t.count) as f64 / 1e9),
            ]
        })
        .collect();
    out += &table(&["tensor", "kind", "shape", "copies", "per token", "params (B)"], &rows);
    for n in &m.notes {
        out += &format!("note: {n}\n");
    }
    out
}

//! Reports: one [`Exporter`] per output format (JSON, Markdown; SVG plots and merged reports
//! live beside them), each turning a [`Run`] into the text of one file.

pub mod json;
pub mod markdown;
pub mod merge;
pub mod svg;

use crate::results::{write_atomic, Run};
use crate::Result;
use std::path::{Path, PathBuf};

/// Turns a run into the contents of one file.
pub trait Exporter {
    /// File extension without the dot ("json", "md").
    fn extension(&self) -> &'static str;
    fn render(&self, run: &Run) -> Result<String>;
}

/// Write `dir/<run_id>.<ext>` for every exporter, each atomically (temp file + rename), refusing
/// to overwrite an existing file unless `force`. All targets are checked before any is written,
/// so a refusal leaves nothing half-done.
pub fn write_run(run: &Run, dir: &Path, exporters: &[&dyn Exporter], force: bool) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> =
        exporters.iter().map(|e| dir.join(format!("{}.{}", run.run_id, e.extension()))).collect();
    if !force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            return Err(crate::Error::config(p, "output", "exists; pass --force to overwrite"));
        }
    }
    let texts = exporters.iter().map(|e| e.render(run)).collect::<Result<Vec<_>>>()?;
    for (p, t) in paths.iter().zip(&texts) {
        write_atomic(p, t.as_bytes(), force)?;
    }
    Ok(paths)
}

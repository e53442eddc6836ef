//! Chip and model profiles: load, validate, list, look up.
//!
//! The profiles under `configs/chips/` and `configs/models/` are embedded in the binary (see
//! [`embedded`]) so `chipbench chips` works with no files present; a directory given with
//! `--config-dir` replaces them. Every chip figure carries its source and the conflicting values
//! other sources gave, because the chips compared here (H20, H800, Ascend 910C) are mostly known
//! from press reports, not datasheets.
//!
//! Library API: [`chips`], [`chip`], [`models`], [`model`], and the `_in` variants taking a
//! directory.

pub mod chip;
pub mod embedded;
pub mod figure;
pub mod model;

pub use chip::{Chip, Peaks, Precision};
pub use figure::{Alternative, Direction, Figure, Status};
pub use model::{Model, ParamCounts, Tensor, TensorKind};

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Parse TOML into `T`, turning the parser's multi-line message into one line with the file,
/// the dotted key (`memory.value`) and the line number.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::toml(path, text, &e))
}

/// The embedded chip profiles.
pub fn chips() -> Result<Vec<Chip>> {
    embedded::CHIPS.iter().map(|(name, text)| Chip::parse(Path::new(name), text)).collect()
}

/// The embedded model profiles.
pub fn models() -> Result<Vec<Model>> {
    embedded::MODELS.iter().map(|(name, text)| Model::parse(Path::new(name), text)).collect()
}

/// `dir/chips` when it exists, else `dir` itself (so both `configs` and `configs/chips` work).
fn sub_dir(dir: &Path, name: &str) -> PathBuf {
    let sub = dir.join(name);
    if sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::config(dir, "config-dir", "no *.toml files"));
    }
    Ok(files)
}

fn load_dir<T>(dir: &Path, parse: fn(&Path, &str) -> Result<T>) -> Result<Vec<T>> {
    toml_files(dir)?
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            parse(p, utf8_text(p, &bytes)?)
        })
        .collect()
}

/// The text of a profile file, or a config error (exit code 2) when it is not UTF-8.
pub fn utf8_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes)
        .map_err(|e| Error::config(path, "toml", format!("not UTF-8 text (byte {})", e.valid_up_to())))
}

/// Chips from `dir` (or `dir/chips`), or the embedded set when `dir` is `None`. Ids and aliases
/// must be unique.
pub fn chips_in(dir: Option<&Path>) -> Result<Vec<Chip>> {
    let list = match dir {
        Some(d) => load_dir(&sub_dir(d, "chips"), Chip::parse)?,
        None => chips()?,
    };
    check_unique(list.iter().map(|c| (c.origin.as_str(), c.id.as_str(), c.aliases.as_slice())))?;
    Ok(list)
}

/// Models from `dir` (or `dir/models`), or the embedded set when `dir` is `None`.
pub fn models_in(dir: Option<&Path>) -> Result<Vec<Model>> {
    let list = match dir {
        Some(d) => load_dir(&sub_dir(d, "models"), Model::parse)?,
        None => models()?,
    };
    check_unique(list.iter().map(|m| (m.origin.as_str(), m.id.as_str(), m.aliases.as_slice())))?;
    Ok(list)
}

fn check_unique<'a>(items: impl Iterator<Item = (&'a str, &'a str, &'a [String])>) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for (origin, id, aliases) in items {
        for key in std::iter::once(id).chain(aliases.iter().map(String::as_str)) {
            if let Some(prev) = seen.insert(key.to_ascii_lowercase(), origin) {
                if prev != origin {
                    return Err(Error::config(origin, "aliases", format!("'{key}' is also used by {prev}")));
                }
            }
        }
    }
    Ok(())
}

/// Look a chip up by id or alias (`h20`, `910c`, `ascend-910c`, `nvidia-h20`, ...).
pub fn find_chip<'a>(list: &'a [Chip], key: &str) -> Result<&'a Chip> {
    list.iter().find(|c| c.matches(key)).ok_or_else(|| {
        let ids: Vec<String> = list.iter().map(|c| c.aliases.first().unwrap_or(&c.id).clone()).collect();
        Error::invalid("chip", key, &ids.join(", "))
    })
}

/// Look a model up by id or alias.
pub fn find_model<'a>(list: &'a [Model], key: &str) -> Result<&'a Model> {
    list.iter().find(|m| m.matches(key)).ok_or_else(|| {
        Error::invalid("model", key, &list.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "))
    })
}

/// One embedded chip by id or alias.
pub fn chip(key: &str) -> Result<Chip> {
    find_chip(&chips()?, key).cloned()
}

/// One embedded model by id or alias.
pub fn model(key: &str) -> Result<Model> {
    find_model(&models()?, key).cloned()
}

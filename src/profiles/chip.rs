//! Chip profiles: one TOML file per chip under `configs/chips/`, every figure sourced.
//!
//! Schema (see `configs/chips/h20.toml`): top-level `id`, `name`, `vendor`, `aliases`, `year`,
//! `year_source`, `confidence`, `confidence_note`, `notes`; tables `[memory]` (GB),
//! `[memory_bw]` (TB/s), `[tdp]` (W), `[interconnect]` (GB/s, with `direction`) and
//! `[peak.fp32|tf32|bf16|fp16|fp8|int8]` (dense TFLOPS, TOPS for int8; `[peak.fp4]` optional).
//! Each table is a [`Figure`]: `value`, `unit`, `source`, `alternatives`, or a `status`.

use super::figure::{Direction, Figure, Rule, Status};
use crate::formats::Format;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The precisions a chip profile lists peaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Non-tensor (vector) FP32.
    Fp32,
    Tf32,
    Bf16,
    Fp16,
    Fp8,
    Int8,
    Fp4,
}

impl Precision {
    pub const REQUIRED: [Precision; 6] =
        [Precision::Fp32, Precision::Tf32, Precision::Bf16, Precision::Fp16, Precision::Fp8, Precision::Int8];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
            Precision::Fp4 => "fp4",
        }
    }

    pub fn unit(self) -> &'static str {
        if self == Precision::Int8 {
            "TOPS"
        } else {
            "TFLOPS"
        }
    }

    /// The peak a storage format computes at natively (both FP8 encodings share the FP8 rate).
    pub fn of_format(f: Format) -> Precision {
        match f {
            Format::F32 => Precision::Fp32,
            Format::BF16 => Precision::Bf16,
            Format::F16 => Precision::Fp16,
            Format::E4M3 | Format::E5M2 => Precision::Fp8,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Dense peaks per precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peaks {
    pub fp32: Option<Figure>,
    pub tf32: Option<Figure>,
    pub bf16: Option<Figure>,
    pub fp16: Option<Figure>,
    pub fp8: Option<Figure>,
    pub int8: Option<Figure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp4: Option<Figure>,
}

impl Peaks {
    fn slot(&self, p: Precision) -> Option<&Figure> {
        match p {
            Precision::Fp32 => self.fp32.as_ref(),
            Precision::Tf32 => self.tf32.as_ref(),
            Precision::Bf16 => self.bf16.as_ref(),
            Precision::Fp16 => self.fp16.as_ref(),
            Precision::Fp8 => self.fp8.as_ref(),
            Precision::Int8 => self.int8.as_ref(),
            Precision::Fp4 => self.fp4.as_ref(),
        }
    }
}

/// One chip profile. Loaded files are validated: every required figure is present (possibly as
/// an explicit "not-native"/"unfound"), positive, plausible, in its unit, and sourced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chip {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub year: Option<u32>,
    #[serde(default)]
    pub year_source: String,
    /// "vendor-datasheet" | "reputable-press" | "leak/estimate" | "measured".
    #[serde(default)]
    pub confidence: String,
    #[serde(default)]
    pub confidence_note: String,
    #[serde(default)]
    pub notes: Vec<String>,
    pub memory: Option<Figure>,
    pub memory_bw: Option<Figure>,
    pub tdp: Option<Figure>,
    pub interconnect: Option<Figure>,
    pub peak: Option<Peaks>,
    /// Where the profile was read from (not in the file).
    #[serde(skip)]
    pub origin: String,
}

const CONFIDENCE: [&str; 4] = ["vendor-datasheet", "reputable-press", "leak/estimate", "measured"];

fn rule(unit: &'static str, min: f64, max: f64, may_be_absent: bool) -> Rule {
    Rule { unit, min, max, may_be_absent }
}

impl Chip {
    /// Parse and validate one chip file. `path` names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Chip> {
        let mut chip: Chip = super::parse_toml(path, text)?;
        chip.origin = path.display().to_string();
        chip.validate(path)?;
        Ok(chip)
    }

    /// Check every field; the error names the file and the field.
    pub fn validate(&self, path: &Path) -> Result<()> {
        for (field, v) in [("id", &self.id), ("name", &self.name), ("vendor", &self.vendor)] {
            if v.trim().is_empty() {
                return Err(Error::config(path, field, "missing (required)"));
            }
        }
        if !self.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(Error::config(
                path,
                "id",
                format!("'{}': use lowercase letters, digits and '-'", self.id),
            ));
        }
        if !CONFIDENCE.contains(&self.confidence.as_str()) {
            return Err(Error::invalid(
                &format!("{}: confidence", path.display()),
                &self.confidence,
                &CONFIDENCE.join(", "),
            ));
        }
        if let Some(y) = self.year {
            if !(1990..=2035).contains(&y) {
                return Err(Error::config(path, "year", format!("{y} is implausible: allowed 1990 to 2035")));
            }
            if self.year_source.trim().is_empty() {
                return Err(Error::config(path, "year_source", "missing: `year` needs a source"));
            }
        }
        let required = |fig: &Option<Figure>, field: &str| -> Result<()> {
            if fig.is_none() {
                return Err(Error::config(
                    path,
                    field,
                    "missing (required; write status = \"unfound\" with a source when no figure is known)",
                ));
            }
            Ok(())
        };
        required(&self.memory, "memory")?;
        required(&self.memory_bw, "memory_bw")?;
        required(&self.tdp, "tdp")?;
        required(&self.interconnect, "interconnect")?;
        let Some(peak) = &self.peak else {
            return Err(Error::config(
                path,
                "peak",
                "missing (required: peak.fp32, tf32, bf16, fp16, fp8, int8)",
            ));
        };
        for p in Precision::REQUIRED {
            required(&peak.slot(p).cloned(), &format!("peak.{p}"))?;
        }
        for (field, fig) in self.figures() {
            let r = match field.as_str() {
                "memory" => rule("GB", 0.5, 4096.0, false),
                "memory_bw" => rule("TB/s", 0.01, 100.0, false),
                "tdp" => rule("W", 1.0, 5000.0, false),
                "interconnect" => rule("GB/s", 1.0, 100_000.0, true),
                "peak.int8" => rule("TOPS", 0.01, 100_000.0, true),
                _ => rule("TFLOPS", 0.01, 100_000.0, true),
            };
            fig.validate(path, &field, r)?;
            let is_link = field == "interconnect";
            if is_link && fig.status() == Status::Sourced && fig.direction.is_none() {
                return Err(Error::invalid(
                    &format!("{}: interconnect.direction", path.display()),
                    "(missing)",
                    "bidirectional, per-direction, unstated",
                ));
            }
            if !is_link && fig.direction.is_some() {
                return Err(Error::config(
                    path,
                    format!("{field}.direction"),
                    "only [interconnect] has a direction",
                ));
            }
        }
        Ok(())
    }

    /// Every figure with its dotted field name, in display order.
    pub fn figures(&self) -> Vec<(String, &Figure)> {
        let mut out = Vec::new();
        for (name, f) in [
            ("memory", &self.memory),
            ("memory_bw", &self.memory_bw),
            ("tdp", &self.tdp),
            ("interconnect", &self.interconnect),
        ] {
            if let Some(f) = f {
                out.push((name.to_string(), f));
            }
        }
        if let Some(peak) = &self.peak {
            for p in Precision::REQUIRED.into_iter().chain([Precision::Fp4]) {
                if let Some(f) = peak.slot(p) {
                    out.push((format!("peak.{p}"), f));
                }
            }
        }
        out
    }

    /// The figure for a precision's peak (`None` only for the optional fp4).
    pub fn peak_figure(&self, p: Precision) -> Option<&Figure> {
        self.peak.as_ref().and_then(|pk| pk.slot(p))
    }

    /// Dense peak in FLOP/s (OP/s for int8), when sourced.
    pub fn peak_flops(&self, p: Precision) -> Option<f64> {
        self.peak_figure(p).and_then(Figure::get).map(|t| t * 1e12)
    }

    /// Whether the chip computes in this precision natively (false for "not-native"; an
    /// "unfound" peak is not evidence against support).
    pub fn is_native(&self, p: Precision) -> bool {
        self.peak_figure(p).is_some_and(|f| f.status() != Status::NotNative)
    }

    /// Memory capacity in bytes (decimal GB).
    pub fn memory_bytes(&self) -> Option<f64> {
        self.memory.as_ref().and_then(Figure::get).map(|g| g * 1e9)
    }

    /// Memory bandwidth in bytes/s.
    pub fn memory_bw_bytes_s(&self) -> Option<f64> {
        self.memory_bw.as_ref().and_then(Figure::get).map(|t| t * 1e12)
    }

    /// Scale-up link bandwidth per direction in bytes/s, and how it was derived.
    /// A bidirectional (or unstated) total is halved.
    pub fn link_per_direction_bytes_s(&self) -> Option<(f64, &'static str)> {
        let fig = self.interconnect.as_ref()?;
        let v = fig.get()? * 1e9;
        Some(match fig.direction.unwrap_or(Direction::Unstated) {
            Direction::PerDirection => (v, "per direction as quoted"),
            Direction::Bidirectional => (v / 2.0, "bidirectional total / 2"),
            Direction::Unstated => (v / 2.0, "direction unstated: treated as a total, / 2"),
        })
    }

    /// True when `key` is the id, an alias, or the id without its vendor prefix
    /// (case-insensitive).
    pub fn matches(&self, key: &str) -> bool {
        let key = key.trim().to_ascii_lowercase();
        self.id == key
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(&key))
            || self.id.split_once('-').is_some_and(|(_, rest)| rest == key)
    }
}

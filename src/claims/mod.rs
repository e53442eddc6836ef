//! The articles' claims, each with a verdict computed from evidence chipbench produces.
//!
//! Why: press coverage of DeepSeek, FP8 and Huawei's Ascend chips mixes checkable statements
//! ("FP8 halves memory", "Ascend links are slower than the H20's") with ones no benchmark can
//! decide ("H20 systems are more reliable"). The catalogue (`seeds/claims.toml`, embedded) pairs
//! each claim with the evidence that tests it and the rule for the verdict; [`assess`] runs the
//! checks against result files, the format codecs, the chip profiles and the planner, and says
//! where every number came from.
//!
//! Checks live in three files by the kind of evidence they use: [`codecs`] (codecs and
//! quantization, computed here and now), [`measured`] (records of `chipbench run`), [`chips`]
//! (sourced chip and model profiles).

pub mod chips;
pub mod codecs;
pub mod measured;
pub mod render;

use crate::formats::{Format, Scaling};
use crate::results::Run;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The catalogue as shipped with the binary.
pub const EMBEDDED: &str = include_str!("../../seeds/claims.toml");
const EMBEDDED_NAME: &str = "seeds/claims.toml";

/// An article the claims come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub id: String,
    pub title: String,
    pub outlet: String,
    /// The seed articles are undated; this says what their content pins down.
    pub date: String,
}

/// What a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Formats,
    Memory,
    Throughput,
    Compute,
    Interconnect,
    Training,
    Inference,
    Reliability,
    Software,
    Events,
    Security,
}

/// The computation that tests a claim, with its parameters. `kind` in the TOML selects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Check {
    /// Bits per element of each format, and effective bits per parameter with block scales.
    FormatBits { rows: usize, cols: usize, scaling: Scaling },
    /// FP8 / BF16 weight bytes, computed and measured.
    WeightBytes { rows: usize, cols: usize, scaling: Scaling, low: f64, high: f64 },
    /// Measured GEMV speedup of FP8 weights over `baseline`.
    GemvSpeedup { baseline: Format, supported_at: f64, partly_at: f64 },
    /// FP8 / BF16 dense peaks across chip profiles (plus measured GEMM for context).
    Fp8ComputeRatio { min_ratio: f64 },
    /// UE8M0 vs f32 block scales: exponent-add exactness and accuracy cost.
    Ue8m0Accuracy { m: usize, n: usize, k: usize, max_ratio_supported: f64, max_ratio_partly: f64 },
    /// One profile figure of `chip` against `versus` (lower is the claim).
    ChipCompare { field: String, chip: String, versus: String },
    /// Peak ratios between two groups of chips, looking for pairs near `target`.
    ComputeRatios { frontier: Vec<String>, available: Vec<String>, target: f64, tolerance: f64 },
    /// `chip` relative to `versus` in their fastest native formats.
    ChipTrails { chip: String, versus: String, supported_below: f64, partly_below: f64 },
    /// Training vs inference demands of a model on a chip (planner).
    TrainVsInfer { model: String, chip: String, min_ratio: f64 },
    /// Whether a model's inference fits on a chip in BF16 and weight-only FP8 (planner).
    InferenceFit { model: String, chip: String, max_chips: usize },
}

/// One claim of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub category: Category,
    /// Ids of [`Source`]s.
    pub sources: Vec<String>,
    /// The claim in our words.
    pub statement: String,
    /// What evidence tests it, in words.
    pub evidence: String,
    /// How the numbers become a verdict, in words (the check applies the same thresholds).
    pub rule: String,
    #[serde(default)]
    pub check: Option<Check>,
    /// Why no measurement can test the claim (instead of `check`).
    #[serde(default)]
    pub not_testable: Option<String>,
}

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    #[serde(rename = "source")]
    pub sources: Vec<Source>,
    #[serde(rename = "claim")]
    pub claims: Vec<Claim>,
}

impl Catalogue {
    /// The catalogue embedded in the binary.
    pub fn embedded() -> Result<Catalogue> {
        Catalogue::parse(Path::new(EMBEDDED_NAME), EMBEDDED)
    }

    /// Parse and validate a catalogue: unknown keys are refused, every claim names known sources,
    /// ids are unique, and each claim has exactly one of `check` / `not_testable`.
    pub fn parse(path: &Path, text: &str) -> Result<Catalogue> {
        let cat: Catalogue = toml::from_str(text).map_err(|e| Error::toml(path, text, &e))?;
        let known: Vec<&str> = cat.sources.iter().map(|s| s.id.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for c in &cat.claims {
            let field = |f: &str| format!("claim '{}' {f}", c.id);
            if !seen.insert(c.id.as_str()) {
                return Err(Error::config(path, field("id"), "duplicate id"));
            }
            if c.sources.is_empty() {
                return Err(Error::config(path, field("sources"), "empty; name at least one source id"));
            }
            for s in &c.sources {
                if !known.contains(&s.as_str()) {
                    return Err(Error::config(
                        path,
                        field("sources"),
                        format!("unknown source '{s}'; allowed: {}", known.join(", ")),
                    ));
                }
            }
            match (&c.check, &c.not_testable) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(Error::config(
                        path,
                        field("check"),
                        "give exactly one of [claim.check] or not_testable",
                    ))
                }
            }
        }
        Ok(cat)
    }

    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }
}

/// The outcome for one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "supported")]
    Supported,
    #[serde(rename = "partly")]
    Partly,
    #[serde(rename = "not supported")]
    NotSupported,
    #[serde(rename = "not testable")]
    NotTestable,
    /// A testable claim whose evidence is missing from the inputs (e.g. no run results given).
    #[serde(rename = "no data")]
    NoData,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Partly => "partly",
            Verdict::NotSupported => "not supported",
            Verdict::NotTestable => "not testable",
            Verdict::NoData => "no data",
        }
    }

    /// Three-way verdict from a value and two thresholds (higher is better).
    pub fn at_least(value: f64, supported: f64, partly: f64) -> Verdict {
        if value >= supported {
            Verdict::Supported
        } else if value >= partly {
            Verdict::Partly
        } else {
            Verdict::NotSupported
        }
    }

    /// Three-way verdict where lower is better, thresholds inclusive.
    pub fn at_most(value: f64, supported: f64, partly: f64) -> Verdict {
        if value <= supported {
            Verdict::Supported
        } else if value <= partly {
            Verdict::Partly
        } else {
            Verdict::NotSupported
        }
    }

    /// Three-way verdict where lower is better, thresholds exclusive.
    pub fn below(value: f64, supported: f64, partly: f64) -> Verdict {
        if value < supported {
            Verdict::Supported
        } else if value < partly {
            Verdict::Partly
        } else {
            Verdict::NotSupported
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a check found: the verdict, the numbers behind it, where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub numbers: Vec<String>,
    pub from: Vec<String>,
}

impl Finding {
    pub fn new(verdict: Verdict, numbers: Vec<String>, from: Vec<String>) -> Finding {
        Finding { verdict, numbers, from }
    }
    pub fn no_data(why: impl Into<String>) -> Finding {
        Finding { verdict: Verdict::NoData, numbers: vec![why.into()], from: vec![] }
    }
}

/// One assessed claim, as printed and written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub id: String,
    pub category: Category,
    pub statement: String,
    pub sources: Vec<String>,
    pub evidence: String,
    pub rule: String,
    pub verdict: Verdict,
    pub numbers: Vec<String>,
    pub from: Vec<String>,
}

/// A results file with where it was read from.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub path: String,
    pub run: Run,
}

/// Everything the checks may draw on.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub runs: Vec<LoadedRun>,
}

/// Assess every claim of the catalogue.
pub fn assess(cat: &Catalogue, inputs: &Inputs) -> Vec<Assessment> {
    cat.claims
        .iter()
        .map(|c| {
            let finding = match (&c.check, &c.not_testable) {
                (Some(check), _) => run_check(check, inputs),
                (None, reason) => {
                    Finding::new(Verdict::NotTestable, vec![reason.clone().unwrap_or_default()], vec![])
                }
            };
            Assessment {
                id: c.id.clone(),
                category: c.category,
                statement: c.statement.clone(),
                sources: c
                    .sources
                    .iter()
                    .map(|s| {
                        cat.source(s).map_or_else(|| s.clone(), |s| format!("{} ({})", s.title, s.outlet))
                    })
                    .collect(),
                evidence: c.evidence.clone(),
                rule: c.rule.clone(),
                verdict: finding.verdict,
                numbers: finding.numbers,
                from: finding.from,
            }
        })
        .collect()
}

fn run_check(check: &Check, inputs: &Inputs) -> Finding {
    let result = match check {
        Check::FormatBits { rows, cols, scaling } => codecs::format_bits(*rows, *cols, *scaling),
        Check::WeightBytes { rows, cols, scaling, low, high } => {
            codecs::weight_bytes(*rows, *cols, *scaling, (*low, *high), &inputs.runs)
        }
        Check::GemvSpeedup { baseline, supported_at, partly_at } => {
            Ok(measured::gemv_speedup(&inputs.runs, *baseline, *supported_at, *partly_at))
        }
        Check::Ue8m0Accuracy { m, n, k, max_ratio_supported, max_ratio_partly } => {
            codecs::ue8m0_accuracy(*m, *n, *k, *max_ratio_supported, *max_ratio_partly)
        }
        Check::Fp8ComputeRatio { min_ratio } => chips::fp8_compute_ratio(*min_ratio, &inputs.runs),
        Check::ChipCompare { field, chip, versus } => chips::compare(field, chip, versus),
        Check::ComputeRatios { frontier, available, target, tolerance } => {
            chips::compute_ratios(frontier, available, *target, *tolerance)
        }
        Check::ChipTrails { chip, versus, supported_below, partly_below } => {
            chips::trails(chip, versus, *supported_below, *partly_below)
        }
        Check::TrainVsInfer { model, chip, min_ratio } => chips::train_vs_infer(model, chip, *min_ratio),
        Check::InferenceFit { model, chip, max_chips } => chips::inference_fit(model, chip, *max_chips),
    };
    result.unwrap_or_else(|e| Finding::no_data(format!("evidence unavailable: {e}")))
}

/// A number with three significant digits (no exponent for everyday magnitudes).
pub fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Median of a non-empty list.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

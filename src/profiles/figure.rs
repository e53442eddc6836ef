//! One sourced figure of a profile: a value with its unit and source, or an explicit statement
//! that the chip lacks the feature ("not-native", "none") or that no read source gave it
//! ("unfound"). A missing format is never a 0 and never silently absent, so a projection can
//! tell "this chip has no FP8" from "nobody published its FP8 rate".

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// What a figure says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A value with a source (the default when `value` is given).
    Sourced,
    /// The chip has no native support for this format (e.g. FP8 on Ascend 910C, A100).
    NotNative,
    /// The chip has no such feature at all (e.g. no scale-up link on an RTX 4090).
    None,
    /// No read source gave the figure.
    Unfound,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Sourced => "sourced",
            Status::NotNative => "no native support",
            Status::None => "none",
            Status::Unfound => "not found in sources",
        }
    }
}

/// Which way an interconnect figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Sum of both directions (NVIDIA's "900 GB/s" NVLink figure): per direction is half.
    Bidirectional,
    /// Already one direction.
    PerDirection,
    /// No source says; chipbench treats it as a bidirectional total (the conservative reading).
    Unstated,
}

/// A disagreeing value from another source, kept visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub value: f64,
    pub source: String,
}

/// A figure as written in a profile file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Interconnect figures only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Where the value came from (or why there is none). Required.
    #[serde(default)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a validated figure must look like: its unit and a plausible range.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
    /// Whether "not-native"/"none" are allowed (formats and links may be absent; memory may not).
    pub may_be_absent: bool,
}

impl Figure {
    /// The effective status: `Sourced` when a value is given and no status is written.
    pub fn status(&self) -> Status {
        self.status.unwrap_or(if self.value.is_some() { Status::Sourced } else { Status::Unfound })
    }

    /// The value when the figure is sourced.
    pub fn get(&self) -> Option<f64> {
        match self.status() {
            Status::Sourced => self.value,
            _ => None,
        }
    }

    /// Check one figure; `field` is its dotted name in the file (e.g. `peak.fp8`).
    pub fn validate(&self, path: &Path, field: &str, rule: Rule) -> Result<()> {
        let err = |msg: String| Err(Error::config(path, field, msg));
        if self.source.trim().is_empty() {
            return err(
                "missing `source` (every figure names where it came from, or why it is absent)".into()
            );
        }
        for (i, alt) in self.alternatives.iter().enumerate() {
            if alt.source.trim().is_empty() {
                return err(format!("alternatives[{i}] has no source"));
            }
            if !alt.value.is_finite() || alt.value <= 0.0 {
                return err(format!("alternatives[{i}] value {} must be a positive number", alt.value));
            }
        }
        match self.status() {
            Status::Sourced => {
                let Some(v) = self.value else {
                    return err("status \"sourced\" needs a `value`".into());
                };
                if !v.is_finite() || v <= 0.0 {
                    return err(format!(
                        "value {v} must be positive (write status = \"not-native\", \"none\" or \"unfound\" instead of 0)"
                    ));
                }
                if v < rule.min || v > rule.max {
                    return err(format!(
                        "value {v} {} is implausible: allowed {} to {} {}",
                        rule.unit, rule.min, rule.max, rule.unit
                    ));
                }
                match self.unit.as_deref() {
                    Some(u) if u == rule.unit => {}
                    Some(u) => return err(format!("unit '{u}': allowed unit is '{}'", rule.unit)),
                    None => return err(format!("missing `unit` (allowed: '{}')", rule.unit)),
                }
            }
            s @ (Status::NotNative | Status::None) if !rule.may_be_absent => {
                return err(format!(
                    "status \"{}\" is not allowed here: allowed statuses are \"sourced\", \"unfound\"",
                    s.label()
                ));
            }
            s => {
                if self.value.is_some() {
                    return err(format!("status \"{}\" must not carry a `value`", s.label()));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Figure {
    /// `4 TB/s`, `no native support`, `not found in sources`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(v) => write!(f, "{} {}", fmt_num(v), self.unit.as_deref().unwrap_or("")),
            None => f.write_str(self.status().label()),
        }
    }
}

/// A number without trailing zeros: 4, 3.35, 1978.9.
pub fn fmt_num(v: f64) -> String {
    if v == v.round() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

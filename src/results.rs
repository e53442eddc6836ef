//! The results file: one documented serde struct that outside tools rely on (see DESIGN.md,
//! "Contract"). Changing a key name is a breaking change: bump [`SCHEMA_VERSION`].

use crate::kernels::{BufferBytes, DeviceInfo};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

pub const SCHEMA_VERSION: u32 = 1;

/// One run of chipbench on one machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub schema_version: u32,
    pub run_id: String,
    /// RFC 3339 UTC time the run started.
    pub created: String,
    pub tool: String,
    /// Suite name (or the subcommand that produced the records, e.g. "study-accumulation").
    pub suite: String,
    pub env: Env,
    #[serde(default)]
    pub calibration: Option<Calibration>,
    pub records: Vec<Record>,
    /// False when the run was interrupted; the records present are complete and valid.
    #[serde(default = "yes")]
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Where the numbers came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Env {
    pub host: String,
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_features: Vec<String>,
    pub cores: usize,
    pub threads: usize,
    pub memory_bytes: u64,
    pub rustc: String,
    pub git_revision: String,
    pub chipbench_version: String,
    /// Every device a backend used or saw (GPU adapters with API and driver).
    #[serde(default)]
    pub devices: Vec<DeviceInfo>,
}

/// Local peaks that projections use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calibration {
    /// Register-only FMA loop, GFLOP/s, per thread count.
    pub fma_peak_gflops: Vec<ThreadPeak>,
    /// STREAM-like kernels, best of several trials, GB/s.
    pub stream_gbs: Stream,
    /// Read-only bandwidth (sum reduction over a large buffer), GB/s: the GEMV ceiling.
    pub read_gbs: f64,
    pub threads: usize,
    /// Register-only peak of every compute unit the CPU kernels use, per thread count; `unit`
    /// is spelt as a record's `compute` ("f32-fma avx2+fma", "bf16-dot avx512_bf16"), so a record
    /// finds the roof of the units that ran it. Absent in files written before the key existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compute_peaks: Vec<ComputePeak>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ComputePeak {
    pub unit: String,
    pub threads: usize,
    pub gflops: f64,
}

impl Calibration {
    /// The best measured peak of `unit` (a record's `compute`), any thread count up to `threads`.
    pub fn unit_peak(&self, unit: &str, threads: usize) -> Option<f64> {
        self.compute_peaks
            .iter()
            .filter(|p| p.unit == unit && p.threads <= threads.max(1))
            .map(|p| p.gflops)
            .reduce(f64::max)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ThreadPeak {
    pub threads: usize,
    pub gflops: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Stream {
    pub copy: f64,
    pub scale: f64,
    pub add: f64,
    pub triad: f64,
}

/// Bytes a kernel touches, by operand (logical: codes + scales).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bytes {
    pub weights: u64,
    pub scales: u64,
    pub activations: u64,
    pub outputs: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Time {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub samples: usize,
}

/// Error of the output against the f64 reference on the same quantized inputs. A NaN (an
/// invalid output) is written as JSON `null` and read back as NaN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorStats {
    #[serde(deserialize_with = "null_as_nan")]
    pub max_abs: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub max_rel: f64,
    /// DeepGEMM's `1 - 2Σxy / Σ(x²+y²)`.
    #[serde(deserialize_with = "null_as_nan")]
    pub diff: f64,
}

fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Memory of one workload measured three ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Codes + scales of the weights.
    pub logical_weight_bytes: u64,
    /// Buffers the prepared kernel allocated.
    pub buffers: BufferBytes,
    /// Peak resident set of a fresh child process running the same workload (Linux VmHWM),
    /// when measured.
    #[serde(default)]
    pub rss_peak_bytes: Option<u64>,
    /// Peak of a baseline child that opened the same backend and built nothing (the runtime's
    /// fixed overhead); `rss_peak_bytes - rss_baseline_bytes` is what the workload held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_baseline_bytes: Option<u64>,
}

/// One measured kernel (or, for collectives, one op × size × payload). Build one with
/// `Record { .., ..Default::default() }` so that an additive key touches only this struct.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    pub backend: String,
    pub device: String,
    /// "gemm", "gemv", or a collective ("all-reduce", ...).
    pub op: String,
    /// Storage format of the weights (or the collective payload).
    pub format: String,
    /// Storage format of the activations (f32 for weight-only quantization).
    #[serde(default)]
    pub act_format: String,
    pub scaling: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub threads: usize,
    pub bytes: Bytes,
    pub time: Time,
    pub gflops: f64,
    pub gbs: f64,
    pub error: ErrorStats,
    pub valid: bool,
    /// Why a record is invalid or how it ran ("emulated: ...").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// "wall-clock" or "timestamp-query".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timing: String,
    /// The units that ran the arithmetic, e.g. "f32-fma avx2", "bf16-dot avx512_bf16",
    /// "shader f32 fma", "coop-matrix 16x16x16 f16->f32", "candle f32". Empty in files written
    /// before the key existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub compute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Collectives only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algbw_gbs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busbw_gbs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

impl Run {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("Run serialises")
    }

    /// Read a results file, refusing other schemas with a one-line error.
    pub fn load(path: &Path) -> Result<Run> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Run::parse(&bytes, path)
    }

    /// Parse results JSON; `path` only names the source in error messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Run> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::config(path, "json", format!("not UTF-8 text: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::config(path, "json", format!("not valid JSON: {e}")))?;
        match value.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == SCHEMA_VERSION as u64 => {}
            Some(v) => {
                return Err(Error::config(
                    path,
                    "schema_version",
                    format!("{v} is not supported; allowed: {SCHEMA_VERSION}"),
                ))
            }
            None => {
                return Err(Error::config(path, "schema_version", "missing: not a chipbench results file"))
            }
        }
        let run: Run =
            serde_json::from_value(value).map_err(|e| Error::config(path, "json", e.to_string()))?;
        for (i, r) in run.records.iter().enumerate() {
            let numbers = [r.gflops, r.gbs, r.time.median_s, r.time.min_s, r.time.max_s];
            if numbers.iter().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(Error::config(
                    path,
                    format!("records[{i}]"),
                    "gflops, gbs and time must be finite and non-negative",
                ));
            }
        }
        Ok(run)
    }
}

/// A UTC time as the results files write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtcTime {
    /// `YYYYMMDD-HHMMSS`, the time part of run ids.
    pub stamp: String,
    /// RFC 3339, `YYYY-MM-DDTHH:MM:SSZ` (the `created` field).
    pub rfc3339: String,
}

/// Now, in UTC.
pub fn utc_now() -> UtcTime {
    utc_at(std::time::SystemTime::now())
}

/// `t` in UTC (proleptic Gregorian; Howard Hinnant's civil-from-days algorithm).
pub fn utc_at(t: std::time::SystemTime) -> UtcTime {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (h, mi, sec) = (rem / 3600, rem / 60 % 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    UtcTime {
        stamp: format!("{y:04}{m:02}{d:02}-{h:02}{mi:02}{sec:02}"),
        rfc3339: format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{sec:02}Z"),
    }
}

/// Write a file atomically: a temporary file in the same directory, flushed, then renamed over
/// the target, so a reader (or a killed run) never sees half a file. Refuses to replace an
/// existing file unless `force`.
pub fn write_atomic(path: &Path, contents: &[u8], force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(Error::config(path, "output", "exists; pass --force to overwrite"));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_dates() {
        let at = |s| utc_at(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0).rfc3339, "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400).rfc3339, "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000).stamp, "20231114-221320");
        assert_eq!(at(1_735_689_599).rfc3339, "2024-12-31T23:59:59Z");
    }
}

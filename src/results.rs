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
    /// CPU vendor (`AuthenticAMD`, `GenuineIntel`; the implementer code on aarch64).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpu_vendor: String,
    /// x86 family / model / stepping (decimal, as /proc/cpuinfo gives them), which tell
    /// microarchitectures apart where the model name does not ("AMD EPYC" under a hypervisor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_family: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_stepping: Option<u32>,
    /// Base clock in MHz and where it came from (`base_frequency` in sysfs, or the `cpu MHz` of
    /// /proc/cpuinfo, which under a hypervisor is the host's TSC rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_clock_mhz: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base_clock_source: String,
    /// Clock measured by a timed chain of dependent integer adds (one cycle each), MHz: what a
    /// core actually ran at for those few milliseconds (turbo, throttling, a busy host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_clock_mhz: Option<f64>,
    /// Load average and steal time before the run's first measurement and after its last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_before: Option<HostLoad>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_after: Option<HostLoad>,
}

/// A snapshot of how busy the host is (/proc/loadavg, the `cpu` line of /proc/stat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLoad {
    /// 1, 5 and 15 minute load averages.
    pub loadavg: [f64; 3],
    /// Cumulative ticks all CPUs spent stolen by the hypervisor, and in total, since boot.
    pub steal_ticks: u64,
    pub total_ticks: u64,
}

impl HostLoad {
    /// Share of CPU time stolen between `self` and a later snapshot (`None` if no ticks passed).
    pub fn steal_fraction_until(&self, later: &HostLoad) -> Option<f64> {
        let total = later.total_ticks.checked_sub(self.total_ticks).filter(|t| *t > 0)?;
        Some(later.steal_ticks.saturating_sub(self.steal_ticks) as f64 / total as f64)
    }
}

/// Local peaks that projections use.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calibration {
    /// Register-only FMA loop, GFLOP/s, per thread count.
    pub fma_peak_gflops: Vec<ThreadPeak>,
    /// STREAM-like kernels, best of several trials, GB/s.
    pub stream_gbs: Stream,
    /// The read ceiling, GB/s: the best of the read microbenchmarks (`read_variants`) over a
    /// buffer of `read_buffer_bytes`, raised by any re-measurement that beat it. The GEMV
    /// ceiling: a valid record above it by more than 5 % is flagged.
    pub read_gbs: f64,
    pub threads: usize,
    /// The read microbenchmark that set `read_gbs`, e.g. `avx2-4s-pf2048` (ISA, streams per
    /// thread, prefetch distance in bytes). Empty in files written before the key existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub read_variant: String,
    /// Best GB/s of every read microbenchmark.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_variants: Vec<ReadVariantGbs>,
    /// [min, max] GB/s of the read ceiling over the first measurement and every re-measurement
    /// between blocks of records (the winning variant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_gbs_range: Option<[f64; 2]>,
    /// How many re-measurements `read_gbs_range` includes besides the first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub read_remeasures: usize,
    /// Size of the buffer the read ceiling streams through (≥ 4× `llc_bytes`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub read_buffer_bytes: u64,
    /// Last-level cache of CPU 0, bytes, where the OS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llc_bytes: Option<u64>,
    /// Whether every read worker thread was pinned to its own CPU.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_pinned: bool,
    /// Register-only peak of every compute unit the CPU kernels use, per thread count; `unit`
    /// is spelt as a record's `compute` ("f32-fma avx2+fma", "bf16-dot avx512_bf16"), so a record
    /// finds the roof of the units that ran it. Absent in files written before the key existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compute_peaks: Vec<ComputePeak>,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One read microbenchmark's best figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadVariantGbs {
    pub variant: String,
    pub gbs: f64,
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

/// Time per call. Each sample times `calls_per_sample` back-to-back calls (so a sample lasts at
/// least the timer's minimum, ~1 ms) and is divided by that count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Time {
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub samples: usize,
    /// Calls of the kernel inside one timed sample (absent in files written before the key).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub calls_per_sample: usize,
    /// 95 % bootstrap confidence interval of the median (seconds), resampling repeats and then the
    /// samples within each; absent when too few samples were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_low_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_high_s: Option<f64>,
    /// Repeats of the suite the samples come from (`run --repeat N`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: usize,
    /// Median time of a near-empty call of the same backend and op (dispatch and thread wake-up),
    /// timed the same way: the part of `median_s` that is not the kernel's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_overhead_s: Option<f64>,
}

impl Time {
    /// Half-width of the confidence interval relative to the median, when there is one.
    pub fn ci_half_width_rel(&self) -> Option<f64> {
        match (self.ci_low_s, self.ci_high_s) {
            (Some(lo), Some(hi)) if self.median_s > 0.0 => Some(0.5 * (hi - lo) / self.median_s),
            _ => None,
        }
    }
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

/// What validation measured beyond [`ErrorStats`] (see `measure::validate`): how much of the
/// rigorous worst-case bound the output used, and its error against the error f32 rounding is
/// expected to make. Ratios above their limits make a record invalid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorCheck {
    /// max over outputs of |error| / rigorous bound (limit 1).
    #[serde(deserialize_with = "null_as_nan")]
    pub bound_used: f64,
    /// RMS error over the whole output / expected RMS rounding error.
    #[serde(deserialize_with = "null_as_nan")]
    pub rms_ratio: f64,
    /// The limit `rms_ratio` was held to (wider for outputs of few elements).
    pub rms_limit: f64,
    /// |Σ error·sign(reference)| / √(Σ expected²): a systematic error grows with the output size,
    /// rounding does not.
    #[serde(deserialize_with = "null_as_nan")]
    pub aggregate_ratio: f64,
    /// max over outputs of |error| / that output's expected rounding error.
    #[serde(deserialize_with = "null_as_nan")]
    pub peak_ratio: f64,
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
    /// What validation measured (bound used, RMS and aggregate error against the expected
    /// rounding error). Absent in files written before the key existed and in collectives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_check: Option<ErrorCheck>,
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
    /// Bytes one sample reads and writes, times the copies the runner rotates through so every
    /// sample reads operands no cache holds (absent in files written before the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// "cold" (the rotated working set exceeds 4× the last-level cache, or one copy does),
    /// "cache-resident" (the working set fits the last-level cache and is reused between
    /// samples), "warm" (in between: partly cached between samples).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub residency: String,
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
    /// What makes the figure suspect: `above-read-ceiling` (bytes/s more than 5 % above
    /// `calibration.read_gbs`), `above-compute-peak` (FLOP/s more than 5 % above the FMA peak at
    /// its thread count). A flagged record is never evidence for a claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Model steps only (`run --model`): which product of which step this record measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_step: Option<ModelStep>,
}

/// One matrix product of a model's decoder step (`chipbench run --model`). The record's `m`,
/// `n`, `k` are what was measured (a slice, or stacked copies, of the real product); `m`, `n`,
/// `k` here are the real product, and the step spends `time.median_s × scale × count` on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStep {
    /// Model id (configs/models).
    pub model: String,
    /// "decode" or "prefill".
    pub phase: String,
    /// The step's weight format as `format:scaling` (e.g. "e4m3:deepseek", "bf16:none").
    pub step_format: String,
    /// Layer kind: "all layers", "dense layers", "moe layers", "output".
    pub layer: String,
    /// The product, e.g. "kv_a (wkv_a)".
    pub product: String,
    /// "attn-proj", "attn-kv", "ffn" or "head".
    pub part: String,
    /// Times one step runs the product (fractional for routed experts and causal attention).
    pub count: f64,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Real work over measured work, `(m·n·k) / (m_measured·n_measured·k_measured)`.
    pub scale: f64,
    /// Sequences per decode step, prompt tokens, context tokens of the step.
    pub batch: u64,
    pub prompt: u64,
    pub context: u64,
    /// The read ceiling and compute peaks measured right after this product was timed: the roofs of
    /// the paired planner, which puts each product at the bandwidth or peak of its own moment
    /// (this VM's read bandwidth moves 2× within a minute). Absent without a calibration, with
    /// `--quick`, and in files written before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofs_after: Option<RoofsNow>,
}

/// Roofs measured at one moment of a run ([`ModelStep::roofs_after`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RoofsNow {
    /// Read ceiling, GB/s (the calibration's winning read variant).
    pub read_gbs: f64,
    /// FMA peak at the record's thread count, GFLOP/s.
    pub fma_gflops: f64,
    /// BF16 dot-product peak at the record's thread count, GFLOP/s: the compute roof of the
    /// products whose operands run on those units. Absent where the CPU has none, and in files
    /// written before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dot_gflops: Option<f64>,
    /// BF16 tile-matrix unit (AMX) roof at the record's thread count, GFLOP/s: the compute roof
    /// of the products that ran on it (`compute` `bf16-dot amx_bf16`). Absent where the CPU has
    /// none, and in files written before the key existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile_gflops: Option<f64>,
}

impl ModelStep {
    /// Seconds the step spends on this product, from the record's median.
    pub fn seconds(&self, r: &Record) -> f64 {
        r.time.median_s * self.scale * self.count
    }
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

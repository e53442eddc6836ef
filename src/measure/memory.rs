//! Memory accounting, three ways: logical bytes (codes + scales, from the quantized matrices),
//! the buffers a prepared kernel allocated, and the peak resident set (Linux `VmHWM`) of the
//! same workload run alone in a fresh child process.
//!
//! Why a child process: a process's peak is a high-water mark, so one process that ran F32 first
//! would report the F32 peak for every later format. A fresh child per format measures that
//! format alone.
//!
//! Why a baseline: the child also holds the runtime (binary pages, allocator, backend threads).
//! A second child opens the same backend and builds nothing; its peak is subtracted.
//!
//! Why the peak is reset after the inputs are built: generating inputs needs f32 staging
//! (values and scaled values, 8 bytes per element) that the kernel never sees. The child builds
//! the problem, drops the staging, resets the high-water mark to the current resident set
//! (`echo 5 > /proc/self/clear_refs`, Linux ≥ 4.0) and only then prepares and runs the kernel.
//! The baseline child resets at the same point, so `peak − baseline` is what the workload holds:
//! operands in their format, scales, packed buffers, outputs. Where the reset is not possible,
//! the record says the peak includes input generation.

use crate::kernels::registry::BackendKind;
use crate::kernels::Problem;
use crate::measure::inputs::ProblemSpec;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;

const GIB: f64 = (1u64 << 30) as f64;

/// What a child process does before it reports its peak resident set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "kebab-case")]
pub enum ChildJob {
    /// Open the backend (or nothing, for `backend: None`) and build nothing: the fixed overhead.
    Baseline { backend: Option<BackendKind>, threads: usize },
    /// Build the problem, then prepare and run it once on the backend (`None`: only hold the
    /// operands, for when no backend runs this problem).
    Workload { backend: Option<BackendKind>, threads: usize, spec: ProblemSpec },
    /// Allocate and touch `bytes` (checks the method against a known allocation).
    Alloc { bytes: u64 },
}

/// What a child reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    pub vmhwm_bytes: u64,
    /// Whether the high-water mark was reset after building the inputs.
    pub hwm_reset: bool,
}

/// The marker in front of the child's report line on stdout.
pub const REPORT_PREFIX: &str = "CHIPBENCH-CHILD-RSS ";

/// Peak resident set so far (`VmHWM` of /proc/self/status), `None` where there is no procfs.
pub fn vmhwm_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

/// Current resident set (`VmRSS`).
pub fn vmrss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&text, key)
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Reset the high-water mark to the current resident set. False where unsupported.
pub fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `MemAvailable` from /proc/meminfo: what can be allocated without swapping.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemAvailable:").map(|k| k * 1024)
}

/// `MemTotal` from /proc/meminfo.
pub fn mem_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemTotal:").map(|k| k * 1024)
}

/// Run `job` in this process and report (the child side). Prints the report line on stdout.
pub fn child_main(job: &ChildJob) -> Result<ChildReport> {
    let report = run_child_job(job)?;
    let line = serde_json::to_string(&report).expect("report serialises");
    println!("{REPORT_PREFIX}{line}");
    Ok(report)
}

fn run_child_job(job: &ChildJob) -> Result<ChildReport> {
    let unavailable = || Error::Unsupported("peak RSS needs Linux /proc/self/status (VmHWM)".into());
    match job {
        ChildJob::Baseline { backend, threads } => {
            let _backend = backend.map(|b| b.open(*threads)).transpose()?;
            let hwm_reset = reset_hwm();
            Ok(ChildReport { vmhwm_bytes: vmhwm_bytes().ok_or_else(unavailable)?, hwm_reset })
        }
        ChildJob::Workload { backend, threads, spec } => {
            let backend = backend.map(|b| b.open(*threads)).transpose()?;
            let problem: Problem = spec.build()?;
            let hwm_reset = reset_hwm();
            if let Some(b) = &backend {
                let mut prepared = b.prepare(&problem)?;
                prepared.run()?;
                std::hint::black_box(prepared.output()?);
            }
            std::hint::black_box(&problem);
            Ok(ChildReport { vmhwm_bytes: vmhwm_bytes().ok_or_else(unavailable)?, hwm_reset })
        }
        ChildJob::Alloc { bytes } => {
            let hwm_reset = reset_hwm();
            let n = usize::try_from(*bytes).map_err(|_| {
                Error::invalid("alloc bytes", &bytes.to_string(), "a size this machine can address")
            })?;
            let mut buf: Vec<u8> = Vec::new();
            buf.try_reserve_exact(n).map_err(|e| Error::Other(format!("cannot allocate {n} bytes: {e}")))?;
            // Writing every byte makes every page resident.
            buf.resize(n, 1);
            std::hint::black_box(&buf);
            Ok(ChildReport { vmhwm_bytes: vmhwm_bytes().ok_or_else(unavailable)?, hwm_reset })
        }
    }
}

/// How to start a child: an executable and the arguments before `--child-rss <job>`
/// (`chipbench run --child-rss ...`, or a bench binary re-running itself).
#[derive(Debug, Clone)]
pub struct ChildLauncher {
    pub exe: PathBuf,
    pub prefix: Vec<String>,
}

impl ChildLauncher {
    /// The running chipbench binary: `chipbench run --child-rss <job>`.
    pub fn chipbench() -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        Ok(ChildLauncher { exe, prefix: vec!["run".into()] })
    }

    /// The current executable with no subcommand (a bench binary): `<exe> --child-rss <job>`.
    pub fn current_exe() -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
        Ok(ChildLauncher { exe, prefix: Vec::new() })
    }

    /// Run `job` in a fresh child and return its report.
    pub fn measure(&self, job: &ChildJob) -> Result<ChildReport> {
        if !cfg!(target_os = "linux") {
            return Err(Error::Unsupported("peak RSS is measured on Linux only (VmHWM)".into()));
        }
        let json = serde_json::to_string(job).expect("job serialises");
        let out = Command::new(&self.exe)
            .args(&self.prefix)
            .arg("--child-rss")
            .arg(&json)
            .env_remove("CHIPBENCH_FULL")
            .output()
            .map_err(|e| Error::io(&self.exe, e))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().rev().find_map(|l| l.strip_prefix(REPORT_PREFIX));
        match line {
            Some(l) if out.status.success() => serde_json::from_str(l)
                .map_err(|e| Error::Other(format!("child RSS report '{l}' unreadable: {e}"))),
            _ => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
                Err(Error::Other(format!("child RSS measurement failed ({}): {last}", out.status)))
            }
        }
    }

    /// Peak of `job` and of its baseline (see the module docs).
    pub fn measure_net(&self, job: &ChildJob, baseline: &ChildJob) -> Result<NetRss> {
        let base = self.measure(baseline)?;
        let peak = self.measure(job)?;
        Ok(NetRss { peak: peak.vmhwm_bytes, baseline: base.vmhwm_bytes, hwm_reset: peak.hwm_reset })
    }
}

/// A child's peak with the baseline child's peak beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRss {
    pub peak: u64,
    pub baseline: u64,
    pub hwm_reset: bool,
}

impl NetRss {
    /// What the workload itself held: peak − baseline.
    pub fn net(&self) -> u64 {
        self.peak.saturating_sub(self.baseline)
    }
}

/// Largest dimension accepted: beyond this a shape is a typo, not a benchmark.
pub const MAX_DIM: usize = 1 << 24;

/// Bytes a run of `spec` needs at its peak, in the parent or in an RSS child, whichever is more:
/// input generation (f32 values, scaled values and codes: up to 12 bytes per element), the f64
/// reference (dequantized operands, 8 bytes per element, and two f64 per output), and per
/// backend a possible f32 copy of the operands plus the output. `None` when it overflows.
pub fn bytes_needed(spec: &ProblemSpec, backends: usize) -> Option<u128> {
    let (m, n, k) = (spec.m as u128, spec.n as u128, spec.k as u128);
    let operands = m.checked_mul(k)?.checked_add(n.checked_mul(k)?)?;
    let outputs = m.checked_mul(n)?;
    let codes = operands * spec.format.bytes().max(spec.act_format.bytes()) as u128;
    let build = operands.checked_mul(12)?;
    let reference = operands.checked_mul(8)?.checked_add(outputs.checked_mul(16)?)?;
    let per_backend = operands.checked_mul(4)?.checked_add(outputs.checked_mul(4)?)?;
    let held =
        codes.checked_add(reference)?.checked_add(per_backend.checked_mul(backends.max(1) as u128)?)?;
    Some(build.max(held))
}

/// Refuse a shape of zero, beyond [`MAX_DIM`], or whose needs exceed `available` bytes.
/// `what` names the case in the message.
pub fn check_fits(what: &str, spec: &ProblemSpec, backends: usize, available: Option<u64>) -> Result<u128> {
    for (name, v) in [("m", spec.m), ("n", spec.n), ("k", spec.k)] {
        if v == 0 || v > MAX_DIM {
            return Err(Error::invalid(
                &format!("{what}: {name}"),
                &v.to_string(),
                &format!("1 ..= {MAX_DIM}"),
            ));
        }
    }
    let needed = bytes_needed(spec, backends).unwrap_or(u128::MAX);
    if let Some(avail) = available {
        if needed > avail as u128 {
            return Err(Error::TooLarge {
                what: what.to_string(),
                needed_gib: needed as f64 / GIB,
                available_gib: avail as f64 / GIB,
            });
        }
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{Format, Scaling};
    use crate::kernels::Op;

    #[test]
    fn reads_proc_fields() {
        let text = "Name:\tx\nVmHWM:\t  1234 kB\nVmRSS:\t 99 kB\n";
        assert_eq!(kib_field(text, "VmHWM:"), Some(1234));
        assert_eq!(kib_field(text, "VmSwap:"), None);
        if cfg!(target_os = "linux") {
            let hwm = vmhwm_bytes().unwrap();
            assert!(hwm >= vmrss_bytes().unwrap() / 2 && hwm > 0);
            assert!(mem_available_bytes().unwrap() > 0);
        }
    }

    #[test]
    fn refuses_zero_absurd_and_too_large() {
        let spec = |n, k| ProblemSpec::new(Op::Gemv, 1, n, k, Format::BF16, Scaling::NONE);
        let e = check_fits("case x", &spec(0, 8), 1, Some(1 << 40)).unwrap_err().to_string();
        assert!(e.contains("case x: n") && e.contains("'0'") && e.contains("1 ..="), "{e}");
        assert!(check_fits("x", &spec(MAX_DIM + 1, 8), 1, None).is_err());
        let e = check_fits("big", &spec(1 << 20, 1 << 20), 1, Some(8 << 30)).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }));
        let msg = e.to_string();
        assert!(msg.contains("needs") && msg.contains("GiB available"), "{msg}");
        let ok = check_fits("small", &spec(64, 64), 1, Some(1 << 30)).unwrap();
        assert!(ok >= 64 * 64 * 12);
    }

    #[test]
    fn spec_round_trips_through_the_wire() {
        let s = ProblemSpec::new(Op::Gemm, 3, 5, 7, Format::E4M3, Scaling::DEEPSEEK)
            .with_act_format(Format::E4M3)
            .with_seed(9);
        let json = serde_json::to_string(&ChildJob::Workload {
            backend: Some(BackendKind::Cpu),
            threads: 1,
            spec: s,
        })
        .unwrap();
        let back: ChildJob = serde_json::from_str(&json).unwrap();
        let ChildJob::Workload { spec, .. } = back else { panic!("{json}") };
        assert_eq!(spec, s);
    }
}

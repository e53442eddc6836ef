//! Backend selection by name (`--backend cpu|candle|wgpu|all`, suite files), and opening them.
//!
//! Opening can fail (no GPU adapter, no driver): the caller gets the failure as one line and
//! carries on with the backends that did open.

use super::Backend;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Environment variable holding the wgpu adapter index (`chipbench run --adapter N` sets it).
pub const ADAPTER_ENV: &str = "CHIPBENCH_WGPU_ADAPTER";

/// The adapter asked for through [`ADAPTER_ENV`], if any.
fn requested_adapter() -> Result<Option<usize>> {
    match std::env::var(ADAPTER_ENV) {
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid(ADAPTER_ENV, &v, "an adapter index from `chipbench info`")),
        Err(_) => Ok(None),
    }
}

/// The backends chipbench knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Native CPU kernels.
    Cpu,
    /// candle-core, the peer.
    Candle,
    /// A GPU (or a software Vulkan driver) through wgpu.
    Wgpu,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Cpu, BackendKind::Candle, BackendKind::Wgpu];
    pub const ALLOWED: &'static str = "cpu, candle, wgpu, all";

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Candle => "candle",
            BackendKind::Wgpu => "wgpu",
        }
    }

    /// Whether the thread count means anything to this backend (GPU backends run one
    /// submission thread whatever is asked).
    pub fn uses_threads(self) -> bool {
        !matches!(self, BackendKind::Wgpu)
    }

    /// Open the backend; `threads = 0` means all cores.
    pub fn open(self, threads: usize) -> Result<Box<dyn Backend>> {
        Ok(match self {
            BackendKind::Cpu => Box::new(super::cpu::CpuBackend::new(threads)),
            BackendKind::Candle => Box::new(super::candle::CandleBackend::new(threads)),
            BackendKind::Wgpu => Box::new(super::wgpu::WgpuBackend::new(requested_adapter()?)?),
        })
    }

    /// Parse a comma-separated list such as `cpu,candle` or `all` (duplicates removed, order
    /// kept).
    pub fn parse_list(s: &str) -> Result<Vec<BackendKind>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let kinds = if part.eq_ignore_ascii_case("all") {
                BackendKind::ALL.to_vec()
            } else {
                vec![part.parse()?]
            };
            for k in kinds {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        if out.is_empty() {
            return Err(Error::invalid("backend", s, Self::ALLOWED));
        }
        Ok(out)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" | "native" => Ok(BackendKind::Cpu),
            "candle" => Ok(BackendKind::Candle),
            "wgpu" | "gpu" => Ok(BackendKind::Wgpu),
            _ => Err(Error::invalid("backend", s, Self::ALLOWED)),
        }
    }
}

/// The backends that opened, and one line for each that did not.
pub struct Opened {
    pub backends: Vec<Box<dyn Backend>>,
    pub skipped: Vec<String>,
}

/// Open every `kind` at every thread count in `threads` (once for backends that ignore threads).
pub fn open_all(kinds: &[BackendKind], threads: &[usize]) -> Opened {
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    let mut skipped = Vec::new();
    let default_threads = [0usize];
    let threads = if threads.is_empty() { &default_threads[..] } else { threads };
    for &kind in kinds {
        let counts = if kind.uses_threads() { threads } else { &threads[..1] };
        for &t in counts {
            match kind.open(t) {
                Ok(b) => backends.push(b),
                Err(e) => {
                    skipped.push(format!("{kind}: skipped: {e}"));
                    break;
                }
            }
        }
    }
    Opened { backends, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(BackendKind::parse_list("cpu").unwrap(), vec![BackendKind::Cpu]);
        assert_eq!(BackendKind::parse_list("all").unwrap(), BackendKind::ALL.to_vec());
        assert_eq!(
            BackendKind::parse_list("candle, cpu,candle").unwrap(),
            vec![BackendKind::Candle, BackendKind::Cpu]
        );
        let e = BackendKind::parse_list("cpu,tpu").unwrap_err().to_string();
        assert!(e.contains("'tpu'") && e.contains("cpu, candle, wgpu, all"), "{e}");
        assert!(BackendKind::parse_list(" , ").is_err());
    }

    #[test]
    fn cpu_opens_at_each_thread_count() {
        let o = open_all(&[BackendKind::Cpu], &[1, 2]);
        assert_eq!(o.backends.len(), 2);
        assert_eq!(o.backends[0].threads(), 1);
        assert_eq!(o.backends[1].threads(), 2);
    }
}

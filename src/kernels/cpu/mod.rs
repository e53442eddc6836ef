//! Native CPU backend: BLIS-style GEMM and streaming GEMV. (Placeholder until the kernels land.)

use super::stub::{not_built, unsupported_capabilities};
use super::{Backend, Capability, DeviceInfo, Prepared, Problem, Support};
use crate::Result;

/// The native CPU backend. `threads = 0` means all cores.
pub struct CpuBackend {
    threads: usize,
}

impl CpuBackend {
    pub fn new(threads: usize) -> Self {
        let threads =
            if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        CpuBackend { threads }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo { name: "cpu".into(), kind: "cpu".into(), ..Default::default() }
    }
    fn threads(&self) -> usize {
        self.threads
    }
    fn capabilities(&self) -> Vec<Capability> {
        unsupported_capabilities("not built yet")
    }
    fn support(&self, _p: &Problem) -> Support {
        Support::Unsupported("not built yet".into())
    }
    fn prepare<'a>(&'a self, _p: &'a Problem) -> Result<Box<dyn Prepared + 'a>> {
        Err(not_built("cpu"))
    }
}

//! GPU backend through wgpu. (Placeholder until it lands.)

use super::stub::{not_built, stub_backend, unsupported_capabilities};
use super::{Backend, Capability, DeviceInfo, Prepared, Problem, Support};
use crate::Result;

stub_backend!(WgpuBackend, "wgpu");

impl WgpuBackend {
    /// Open adapter `adapter` (index into [`list_adapters`]), or the best one.
    pub fn new(_adapter: Option<usize>) -> Result<Self> {
        Err(not_built("wgpu"))
    }
}

/// Every adapter wgpu can see.
pub fn list_adapters() -> Vec<DeviceInfo> {
    Vec::new()
}

//! candle-core as the peer backend. (Placeholder until it lands.)

use super::stub::{not_built, stub_backend, unsupported_capabilities};
use super::{Backend, Capability, DeviceInfo, Prepared, Problem, Support};
use crate::Result;

stub_backend!(CandleBackend, "candle");

impl CandleBackend {
    pub fn new(_threads: usize) -> Self {
        CandleBackend
    }
}

//! Measurement: seeded inputs, validation against f64, timing, memory, calibration, the
//! environment, suites and the runner that ties them together.

pub mod calibration;
pub mod ceilings;
pub mod env;
pub mod fma;
pub mod inputs;
pub mod memory;
pub mod read_bw;
pub mod read_simd;
pub mod runner;
pub mod suite;
pub mod timer;
pub mod validate;

/// Size of the last-level cache in bytes (for sizing working sets past it).
pub use read_bw::llc_bytes;

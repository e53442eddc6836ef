//! Measurement: seeded inputs, validation against f64, timing, memory, calibration, the
//! environment, suites and the runner that ties them together.

pub mod cache;
pub mod calibration;
pub mod env;
pub mod fma;
pub mod inputs;
pub mod memory;
pub mod runner;
pub mod suite;
pub mod timer;
pub mod validate;

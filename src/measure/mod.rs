//! Measurement: seeded inputs, validation against f64, timing, memory, calibration.

pub mod inputs;
pub mod validate;

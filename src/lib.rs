//! # chipbench
//!
//! Goals: measure what number formats (FP32, BF16, FP16, FP8 E4M3/E5M2 with their scaling schemes)
//! really cost and buy in memory and throughput on the hardware at hand, with every result
//! validated against an f64 reference before it is timed; then project those measurements onto
//! sourced chip profiles (H20, H800, H100, Ascend 910B/910C, ...) and model plans.
//!
//! Data path: `formats` (codecs, scaling, [`formats::QuantizedMatrix`]) → `kernels` (one
//! [`kernels::Backend`] trait: native CPU, candle, wgpu) → `measure` (validate, time, bytes) →
//! [`results::Run`] (JSON) → `report` / `project` / `claims`.

pub mod affinity;
pub mod claims;
pub mod cli;
pub mod collectives;
pub mod error;
pub mod formats;
pub mod kernels;
pub mod measure;
pub mod modelstep;
pub mod profiles;
pub mod project;
pub mod report;
pub mod results;
pub mod study;

pub use error::{Error, Result};

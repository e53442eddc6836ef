//! Numerical studies. [`accumulation`]: how much a limited-precision FP8 GEMM accumulator loses
//! over a long K, and how much promoting partial sums into f32 every N_C elements gives back
//! (the DeepSeek-V3 finding, reproduced by emulation rather than taken on trust).
//! [`sweep`] runs the seeded sweep over K, accumulator width, rounding and N_C; [`plot`] draws it.

pub mod accumulation;
pub mod plot;
pub mod sweep;

pub use accumulation::{dot, dot_reference, gemm, Accumulator, DotConfig, Promotion, Rounding, ScaledRow};
pub use sweep::{Dist, Point, StudyConfig};

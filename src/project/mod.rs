//! Projection of measured kernels onto chip profiles (roofline), the check of that method on
//! this machine, the arithmetic-intensity sweep analysis with its SVG plot, and the model
//! planner (memory, chips needed, decode/prefill bounds, training, collectives).

pub mod check;
pub mod collective;
pub mod kernel_roofs;
pub mod plan_collectives;
pub mod plan_table;
pub mod planner;
pub mod ridge;
pub mod roofline;
pub mod roofline_plot;
pub mod text;

//! report
pub mod merge;
pub mod svg;

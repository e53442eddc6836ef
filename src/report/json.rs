//! The results JSON (the contract in DESIGN.md), pretty-printed.

use super::Exporter;
use crate::results::Run;
use crate::Result;

pub struct Json;

impl Exporter for Json {
    fn extension(&self) -> &'static str {
        "json"
    }
    fn render(&self, run: &Run) -> Result<String> {
        let mut s = run.to_json();
        s.push('\n');
        Ok(s)
    }
}

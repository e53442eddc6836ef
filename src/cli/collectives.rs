//! `chipbench collectives`.

use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> Result<()> {
    Err(crate::Error::Unsupported("`chipbench collectives` is not built yet".into()))
}

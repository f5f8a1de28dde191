//! placeholder replaced below
use crate::cli::BenchArgs;
use crate::ctx::Ctx;
use anyhow::Result;
pub fn run(_ctx: &Ctx, _args: &BenchArgs) -> Result<()> {
    Ok(())
}

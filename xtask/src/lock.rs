//! placeholder replaced below
use crate::cli::LockArgs;
use crate::ctx::Ctx;
use anyhow::Result;
pub fn run(_ctx: &Ctx, _args: &LockArgs) -> Result<()> {
    Ok(())
}

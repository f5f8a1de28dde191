//! `cargo xtask run -- CMD…`: any command in the dev container, with the dev mounts.

use crate::ctx::Ctx;
use crate::devrun;
use crate::error::Result;

pub fn run(ctx: &Ctx, cmd: &[String]) -> Result<()> {
    devrun::exec_ok(
        ctx,
        &devrun::interactive(devrun::new(ctx, "run", cmd.to_vec())),
    )
}

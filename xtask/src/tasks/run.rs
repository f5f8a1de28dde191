//! `cargo xtask run -- CMD…`: any command in the dev container, with the dev mounts.

use crate::cli::DevOpts;
use crate::ctx::Ctx;
use crate::devrun;
use crate::error::Result;

pub fn run(ctx: &Ctx, dev: &DevOpts, cmd: &[String]) -> Result<()> {
    let mut s = devrun::new(ctx, "run", cmd.to_vec());
    devrun::apply_opts(&mut s, dev)?;
    devrun::exec_ok(ctx, &devrun::interactive(s))
}

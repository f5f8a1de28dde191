//! `cargo xtask run -- CMD…`: any command in the dev container, with the dev mounts.

use crate::container::DevRun;
use crate::ctx::{self, Ctx};
use anyhow::Result;

pub fn run(ctx: &Ctx, cmd: &[String]) -> Result<()> {
    let run = DevRun::new(ctx, "run", cmd.to_vec())?.interactive();
    match run.exec(ctx)? {
        0 => Ok(()),
        n => Err(ctx::code(n)),
    }
}

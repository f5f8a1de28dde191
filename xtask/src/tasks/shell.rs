//! `cargo xtask shell`: interactive bash in the dev container (`-t` only when stdin and stdout
//! are terminals).

use crate::ctx::Ctx;
use crate::devrun;
use crate::error::Result;

pub fn run(ctx: &Ctx) -> Result<()> {
    devrun::exec_ok(
        ctx,
        &devrun::interactive(devrun::new(ctx, "shell", vec!["bash".into()])),
    )
}

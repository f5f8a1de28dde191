//! `cargo xtask shell`: interactive bash in the dev container (TTY only when stdin is one).

use crate::container::DevRun;
use crate::ctx::{self, Ctx};
use anyhow::Result;

pub fn run(ctx: &Ctx) -> Result<()> {
    let run = DevRun::new(ctx, "shell", vec!["bash".into()])?.interactive();
    match run.exec(ctx)? {
        0 => Ok(()),
        n => Err(ctx::code(n)),
    }
}

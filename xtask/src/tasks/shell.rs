//! `cargo xtask shell`: interactive bash in the dev container (`-t` only when stdin and stdout
//! are terminals).

use crate::cli::DevOpts;
use crate::ctx::Ctx;
use crate::devrun;
use crate::error::Result;

pub fn run(ctx: &Ctx, dev: &DevOpts) -> Result<()> {
    let mut s = devrun::new(ctx, "shell", vec!["bash".into()]);
    devrun::apply_opts(&mut s, dev)?;
    devrun::exec_ok(ctx, &devrun::interactive(s))
}

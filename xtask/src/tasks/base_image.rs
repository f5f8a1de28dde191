//! `cargo xtask base-image`: build the registry-free Python base image (build/debian.rs) for
//! the engine's platform or `--platform`.

use crate::build::{debian, target};
use crate::cli::BaseImageArgs;
use crate::ctx::Ctx;
use crate::engine::validate_image_ref;
use crate::error::{usage, Result};
use crate::platform;

pub fn run(ctx: &Ctx, args: &BaseImageArgs) -> Result<()> {
    if let Some(tag) = &args.tag {
        validate_image_ref(tag).map_err(|e| usage(format!("--tag {tag:?}: {e}")))?;
    }
    let target = target::resolve(ctx, args.platform.as_deref())?;
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| platform::debian_base(target.arch(), target.native));
    let foreign = target.foreign().then_some(target.arch());
    debian::build(ctx, &tag, &args.suite, args.mirror.as_deref(), foreign)
}

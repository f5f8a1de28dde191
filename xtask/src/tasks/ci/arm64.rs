//! The arm64 leg of `ci`: when the engine can run linux/arm64 (natively it is the chain itself;
//! on x86 through QEMU), build the arm64 image, then smoke, help-check and a 3-step LoRA SFT on
//! a tiny model inside it. Skipped, with the fix, when the engine cannot run arm64.

use crate::cli::{DevOpts, ImageArgs, PassArgs};
use crate::ctx::Ctx;
use crate::engine::{self, Emulation};
use crate::error::Result;
use crate::platform::{self, Arch};
use crate::tasks::{help_check, image, pytest, smoke};

/// The pytest file the leg runs in the arm64 image (a tiny LoRA SFT, and what arm64 refuses).
pub const PLATFORM_TESTS: &str = "tests/test_platform.py";

/// `Ok(Some(reason))` when skipped.
pub fn run(ctx: &Ctx) -> Result<Option<String>> {
    let native = ctx.engine_arch().unwrap_or(Arch::Amd64);
    if native == Arch::Arm64 {
        return Ok(Some(
            "the engine is linux/arm64: the steps above already ran natively on it".into(),
        ));
    }
    if let Emulation::Missing(fix) = engine::emulation(Arch::Arm64, native) {
        return Ok(Some(fix));
    }
    let tag = platform::default_tag(ctx.image(), Arch::Arm64, native);
    image::run(
        ctx,
        &ImageArgs {
            base_image: "auto".into(),
            tag: Some(tag.clone()),
            platform: Some(Arch::Arm64.platform().into()),
            ..Default::default()
        },
    )?;
    let mut g = ctx.g.clone();
    g.image = Some(tag);
    let arm = Ctx::new(&g)?;
    println!("\n==> ci: arm64 smoke");
    smoke::run(&arm)?;
    println!("\n==> ci: arm64 help-check");
    help_check::run(&arm)?;
    println!("\n==> ci: arm64 LoRA SFT on a tiny model");
    pytest::run(
        &arm,
        pytest::Suite::E2e,
        &PassArgs {
            dev: DevOpts {
                engine_args: vec![format!("--platform={}", Arch::Arm64.platform())],
                ..Default::default()
            },
            args: vec!["-q".into(), PLATFORM_TESTS.into()],
            ..Default::default()
        },
    )?;
    Ok(None)
}

//! The platform a build targets: `--platform` checked before anything is built (an unknown
//! platform, one the engine cannot run, or one the lock has no wheels for: exit 2 with the
//! fix), and the tag a build for it gets by default.

use crate::ctx::Ctx;
use crate::engine::{self, Emulation};
use crate::error::{usage, Result};
use crate::lockfile;
use crate::platform::{self, Arch};
use crate::policy;

#[derive(Debug, Clone)]
pub struct Target {
    /// The requested architecture (None: the engine's, no `--platform` passed to the build).
    pub arch: Option<Arch>,
    /// The engine's own architecture.
    pub native: Arch,
    pub emulation: Emulation,
}

impl Target {
    /// The architecture the build produces.
    pub fn arch(&self) -> Arch {
        self.arch.unwrap_or(self.native)
    }
    pub fn foreign(&self) -> bool {
        self.arch() != self.native
    }
    /// `--platform` for the engine, when one was asked for.
    pub fn platform_arg(&self) -> Option<String> {
        self.arch.map(|a| a.platform().to_string())
    }
}

/// Parse and check `--platform` against the engine and the lock.
pub fn resolve(ctx: &Ctx, platform: Option<&str>) -> Result<Target> {
    let arch = platform
        .map(Arch::parse_platform)
        .transpose()
        .map_err(usage)?;
    // A dry run without a daemon plans for an amd64 engine.
    let native = ctx.engine_arch().unwrap_or(Arch::Amd64);
    let target_arch = arch.unwrap_or(native);
    let emulation = engine::emulation(target_arch, native);
    if let Emulation::Missing(fix) = &emulation {
        let msg = format!("{fix} (`cargo xtask doctor` shows which platforms this engine runs)");
        if !ctx.dry_run() {
            return Err(usage(msg));
        }
        println!("# would fail: {msg}");
    }
    if arch.is_some() {
        let path = ctx.path(policy::LOCKFILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let lock = lockfile::parse(&path, &text)?;
            let missing = platform::missing_wheels(&lock, target_arch).map_err(usage)?;
            if !missing.is_empty() {
                return Err(usage(format!(
                    "{} has no {} wheel for: {}; add a marker in python/pyproject.toml (as for bitsandbytes) and run `cargo xtask lock`",
                    policy::LOCKFILE,
                    target_arch.platform(),
                    missing.join(", ")
                )));
            }
        }
    }
    Ok(Target {
        arch,
        native,
        emulation,
    })
}

/// The image tag: `--tag`, else `--image`, else the default for the platform.
pub fn image_tag(ctx: &Ctx, tag: Option<&str>, t: &Target) -> String {
    if let Some(tag) = tag {
        return tag.to_string();
    }
    if ctx.image_explicit() {
        return ctx.image().to_string();
    }
    platform::default_tag(policy::DEFAULT_IMAGE, t.arch(), t.native)
}

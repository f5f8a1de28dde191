//! What building images needs, below the tasks (image, base-image, lock, doctor and bench
//! share it): the BuildKit probe, the platform a build targets, the choice of base image, and
//! the Debian-built base.

pub mod base;
pub mod debian;
pub mod target;

use crate::ctx::Ctx;
use crate::engine::cmd;
use crate::engine::{BuildKit, Engine, Kind};
use crate::error::{fail, Result};

/// What the engine says about BuildKit: its mode, or the one-line error naming both fixes.
/// Queries only, the same in a dry run (doctor reports this as it is).
pub fn probe_buildkit(ctx: &Ctx, engine: &Engine) -> Result<BuildKit, String> {
    if engine.kind == Kind::Podman {
        return Ok(BuildKit::Podman);
    }
    let version = ctx
        .capture(cmd::client_version(engine, &ctx.sh))
        .map_err(|e| e.to_string())?;
    let Some(version) = version.answer() else {
        return Err(format!(
            "`{} version` failed: {}",
            engine.program.display(),
            version.first_error_line()
        ));
    };
    let has_buildx = ctx
        .capture(cmd::buildx_version(engine, &ctx.sh))
        .map(|c| c.ok())
        .unwrap_or(false);
    crate::engine::buildkit_mode(engine.kind, &version, has_buildx, &engine.program)
}

/// The BuildKit mode a build uses. A dry run plans with what a BuildKit client would do and
/// says why the real build would fail.
pub fn buildkit(ctx: &Ctx, engine: &Engine) -> Result<BuildKit> {
    match probe_buildkit(ctx, engine) {
        Ok(m) => Ok(m),
        Err(msg) if ctx.dry_run() => {
            println!("# would fail: {msg}");
            Ok(BuildKit::LegacyEnv)
        }
        Err(msg) => Err(fail(msg)),
    }
}

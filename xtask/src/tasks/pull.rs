//! `cargo xtask pull --registry HOST[:PORT]/NAMESPACE [--tag TAG]`: pull the dev image (by
//! default the tag of the current lock), check that it was built from `python/pylock.toml` and
//! for the engine's architecture, and tag it locally as `--image`.

use crate::cli::PullArgs;
use crate::ctx::Ctx;
use crate::engine::cmd;
use crate::error::{fail, usage, Result};
use crate::platform::Arch;
use crate::policy;
use crate::registry::{self, Registry};
use crate::util::sha256_hex;

pub fn run(ctx: &Ctx, args: &PullArgs) -> Result<()> {
    let reg = Registry::parse(
        args.registry
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(policy::PUBLISHED_REGISTRY),
    )
    .map_err(usage)?;
    let lock_bytes = std::fs::read(ctx.path(policy::LOCKFILE))
        .map_err(|e| usage(format!("{}: {e}", policy::LOCKFILE)))?;
    let lock = sha256_hex(&lock_bytes);
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| registry::lock_tag(&lock));
    if tag.is_empty()
        || tag.len() > 128
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(usage(format!(
            "--tag {tag:?}: a tag is letters, digits, '.', '_' and '-' (e.g. latest, lock-0123456789ab)"
        )));
    }
    let remote = format!("{}:{tag}", reg.repository());
    let e = ctx.engine_ready()?;
    ctx.info(format!("pull: {remote}"));
    let out = ctx.capture(cmd::pull(e, &ctx.sh, &remote))?;
    if out.planned {
        ctx.status_ok(cmd::tag(e, &ctx.sh, &remote, ctx.image()))?;
        return Ok(());
    }
    if !out.ok() {
        let cause = registry::explain_failure(&reg.host, &out.stderr);
        if args.tag.is_none() && cause.starts_with("no such tag") {
            // the default: the current lock's image, which is published only once the lock
            // reached main (a lock bumped on a branch has none yet)
            return Err(fail(format!(
                "pull {remote}: no image published for this python/pylock.toml yet; build it here with `cargo xtask image`"
            )));
        }
        return Err(fail(format!("pull {remote}: {cause}")));
    }
    check_pulled(ctx, e, &remote, &lock)?;
    ctx.status_ok(cmd::tag(e, &ctx.sh, &remote, ctx.image()))?;
    report(ctx, e, &remote)
}

/// The pulled image runs on this engine and was built from the current lock; else it is
/// untagged again and the error says what to do.
fn check_pulled(ctx: &Ctx, e: &crate::engine::Engine, remote: &str, lock: &str) -> Result<()> {
    let engine_arch = ctx.engine_arch();
    let image_arch = ctx.image_arch(remote).and_then(|a| Arch::from_engine(&a));
    if let (Some(want), Some(got)) = (engine_arch, image_arch) {
        if want != got {
            let _ = ctx.capture(cmd::untag(e, &ctx.sh, remote));
            return Err(fail(format!(
                "{remote} is {}, but this engine runs {}: push a {} image too (`cargo xtask image --platform {}` then push), or build here with `cargo xtask image`",
                got.platform(),
                want.platform(),
                want.platform(),
                want.platform()
            )));
        }
    }
    let label = ctx
        .image_label(remote, policy::LOCK_LABEL)
        .unwrap_or_default();
    if label != lock {
        let _ = ctx.capture(cmd::untag(e, &ctx.sh, remote));
        let short = |s: &str| s.chars().take(12).collect::<String>();
        return Err(fail(format!(
            "{remote} was built from lock {} but python/pylock.toml is {}: pull `--tag {}` (the current lock's), check out the revision that image was built from, or build with `cargo xtask image`",
            if label.is_empty() { "(none)".into() } else { short(&label) },
            short(lock),
            registry::lock_tag(lock)
        )));
    }
    Ok(())
}

/// What was pulled: its local name, registry digest and labels.
fn report(ctx: &Ctx, e: &crate::engine::Engine, remote: &str) -> Result<()> {
    let digest = ctx
        .capture(cmd::image_inspect(
            e,
            &ctx.sh,
            "{{range .RepoDigests}}{{.}} {{end}}",
            ctx.image(),
        ))?
        .answer()
        .unwrap_or_default();
    println!("pulled {remote} as {}", ctx.image());
    if !digest.is_empty() {
        println!("digest: {digest}");
    }
    let labels = crate::oci::describe(&ctx.image_labels(ctx.image()));
    if !labels.is_empty() {
        println!("image: {labels}");
    }
    Ok(())
}

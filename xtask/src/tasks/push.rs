//! `cargo xtask push --registry HOST[:PORT]/NAMESPACE`: tag the dev image by lock hash, by git
//! revision (clean trees only) and `latest`, push every platform's image present locally as
//! `<tag>-<arch>`, and put a manifest list under each plain tag (so an arm64 machine pulling
//! `latest` gets arm64). Prints the pushed digests. Credentials: the engine's own login only.

use crate::cli::PushArgs;
use crate::ctx::Ctx;
use crate::engine::cmd;
use crate::error::{fail, usage, Result};
use crate::platform::{self, Arch};
use crate::registry::{self, Registry};
use crate::util::sha256_hex;
use crate::{git, policy};

/// A local image to push, and its platform.
struct Local {
    image: String,
    arch: Arch,
}

/// The platform images present locally with the current lock: the dev image itself and its
/// `-<arch>` siblings (`image --platform`). A sibling built from another lock is skipped with
/// a warning; the dev image itself must be current.
fn locals(ctx: &Ctx, lock: &str) -> Result<Vec<Local>> {
    let image = ctx.image().to_string();
    let Some(arch) = ctx.image_arch(&image) else {
        return Err(fail(format!(
            "no image {image}: build it first (`cargo xtask image`), or pass --image"
        )));
    };
    let arch = Arch::from_engine(&arch).ok_or_else(|| {
        fail(format!(
            "{image} is for {arch}, which the stack does not support"
        ))
    })?;
    if ctx.image_label(&image, policy::LOCK_LABEL).as_deref() != Some(lock) {
        return Err(fail(format!(
            "{image} was built from another python/pylock.toml: rebuild it (`cargo xtask image`) before pushing"
        )));
    }
    let mut out = vec![Local {
        image: image.clone(),
        arch,
    }];
    for other in platform::ALL.into_iter().filter(|a| *a != arch) {
        let sibling = platform::default_tag(&image, other, arch);
        match ctx.image_arch(&sibling).and_then(|a| Arch::from_engine(&a)) {
            Some(a) if a == other => {
                if ctx.image_label(&sibling, policy::LOCK_LABEL).as_deref() == Some(lock) {
                    out.push(Local {
                        image: sibling,
                        arch: a,
                    });
                } else {
                    eprintln!(
                        "push: skipping {sibling}: built from another lock (rebuild it with `cargo xtask image --platform {}`)",
                        other.platform()
                    );
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, args: &PushArgs) -> Result<()> {
    let reg = Registry::parse(&args.registry).map_err(usage)?;
    let lock_bytes = std::fs::read(ctx.path(policy::LOCKFILE))
        .map_err(|e| usage(format!("{}: {e}", policy::LOCKFILE)))?;
    let lock = sha256_hex(&lock_bytes);
    let e = if ctx.dry_run() {
        ctx.engine()?
    } else {
        ctx.engine_ready()?
    };
    let locals = if ctx.dry_run() {
        locals(ctx, &lock).unwrap_or_else(|err| {
            println!("# would fail: {err}");
            vec![Local {
                image: ctx.image().to_string(),
                arch: Arch::Amd64,
            }]
        })
    } else {
        locals(ctx, &lock)?
    };
    let dirty = git::dirty(&ctx.exec, &ctx.sh, &ctx.root);
    let revision = git::head(&ctx.exec, &ctx.sh, &ctx.root).filter(|_| !dirty);
    if dirty {
        ctx.info("push: the tree has uncommitted changes: no git-revision tag");
    }
    let tags = registry::tags(&lock, revision.as_deref());
    let repo = reg.repository();
    let insecure = reg.is_loopback();
    for l in &locals {
        for t in &tags {
            let remote = format!("{repo}:{}", registry::arch_tag(t, l.arch));
            ctx.status_ok(cmd::tag(e, &ctx.sh, &l.image, &remote))?;
            let out = ctx.capture(cmd::push(e, &ctx.sh, &remote))?;
            // The local name was only a vehicle for the push.
            let _ = ctx.capture(cmd::untag(e, &ctx.sh, &remote));
            if !out.ok() && !out.planned {
                return Err(fail(format!(
                    "push {remote}: {}",
                    registry::explain_failure(&reg.host, &out.stderr)
                )));
            }
            ctx.info(format!(
                "pushed {remote} ({})",
                registry::pushed_digest(&out.stdout).unwrap_or_else(|| "digest ?".into())
            ));
        }
    }
    for t in &tags {
        let list = format!("{repo}:{t}");
        let members: Vec<String> = locals
            .iter()
            .map(|l| format!("{repo}:{}", registry::arch_tag(t, l.arch)))
            .collect();
        let out = ctx.capture(cmd::manifest_create(e, &ctx.sh, &list, &members, insecure))?;
        if !out.ok() && !out.planned {
            return Err(fail(format!(
                "manifest create {list}: {}",
                registry::explain_failure(&reg.host, &out.stderr)
            )));
        }
        let out = ctx.capture(cmd::manifest_push(e, &ctx.sh, &list, insecure))?;
        if !out.ok() && !out.planned {
            return Err(fail(format!(
                "manifest push {list}: {}",
                registry::explain_failure(&reg.host, &out.stderr)
            )));
        }
        if !out.planned {
            let digest = registry::pushed_digest(&out.stdout).unwrap_or_else(|| "?".into());
            let arches: Vec<&str> = locals.iter().map(|l| l.arch.name()).collect();
            println!("{list}  {digest}  ({})", arches.join(", "));
        }
    }
    Ok(())
}

//! `cargo xtask push --registry HOST[:PORT]/NAMESPACE`: tag the dev image by lock hash, by git
//! revision (clean trees only), the version of a release tag `vX.Y.Z` on that revision (it
//! must be the image's version label) and `latest`, push every platform's image present locally as
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
    let Some(registry) = args.registry.as_deref().filter(|r| !r.is_empty()) else {
        return Err(usage(
            "no registry: pass --registry HOST[:PORT]/NAMESPACE or set LEXALIGN_REGISTRY",
        ));
    };
    let reg = Registry::parse(registry).map_err(usage)?;
    let lock_bytes = std::fs::read(ctx.path(policy::LOCKFILE))
        .map_err(|e| usage(format!("{}: {e}", policy::LOCKFILE)))?;
    let lock = sha256_hex(&lock_bytes);
    let e = ctx.engine_ready()?;
    let dirty = git::dirty(&ctx.exec, &ctx.sh, &ctx.root);
    let revision = git::head(&ctx.exec, &ctx.sh, &ctx.root).filter(|_| !dirty);
    if dirty {
        ctx.info("push: the tree has uncommitted changes: no git-revision tag");
    }
    let versions = match &revision {
        Some(_) => registry::release_versions(
            &git::answer(
                &ctx.exec,
                &ctx.sh,
                &ctx.root,
                &["tag", "--points-at", "HEAD"],
            )
            .unwrap_or_default(),
        ),
        None => Vec::new(),
    };
    if !args.manifests_only && !ctx.dry_run() {
        let label = ctx
            .image_label(ctx.image(), "org.opencontainers.image.version")
            .unwrap_or_default();
        if let Some(v) = versions.iter().find(|v| **v != label) {
            return Err(fail(format!(
                "push: the release tag v{v} is on this commit, but {} says version {label:?}: set `version = \"{v}\"` in python/pyproject.toml, rebuild with `cargo xtask image`, then push",
                ctx.image()
            )));
        }
    }
    let tags = registry::tags(&lock, revision.as_deref(), &versions);
    let members = if args.manifests_only {
        remote_members(ctx, &reg, &tags, &lock)?
    } else {
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
        push_arch_tags(ctx, e, &reg, &tags, &locals)?;
        locals.iter().map(|l| l.arch).collect()
    };
    if args.no_manifests {
        return Ok(());
    }
    join(ctx, e, &reg, &tags, &members)
}

/// A registry command's result: planned (dry run) or succeeded, else one line with the cause.
fn registry_ok(reg: &Registry, out: &crate::exec::Captured, what: &str) -> Result<()> {
    if out.ok() || out.planned {
        return Ok(());
    }
    Err(fail(format!(
        "{what}: {}",
        registry::explain_failure(&reg.host, &out.stderr)
    )))
}

/// Push each local image as `<tag>-<arch>` for every tag; prints each digest.
fn push_arch_tags(
    ctx: &Ctx,
    e: &crate::engine::Engine,
    reg: &Registry,
    tags: &[String],
    locals: &[Local],
) -> Result<()> {
    let repo = reg.repository();
    for l in locals {
        for t in tags {
            let remote = format!("{repo}:{}", registry::arch_tag(t, l.arch));
            ctx.status_ok(cmd::tag(e, &ctx.sh, &l.image, &remote))?;
            let out = ctx.capture(cmd::push(e, &ctx.sh, &remote))?;
            // The local name was only a vehicle for the push.
            let _ = ctx.capture(cmd::untag(e, &ctx.sh, &remote));
            registry_ok(reg, &out, &format!("push {remote}"))?;
            if !out.planned {
                let digest =
                    registry::pushed_digest(&out.stdout).unwrap_or_else(|| "digest ?".into());
                println!("{remote}  {digest}");
            }
        }
    }
    Ok(())
}

/// The platforms whose `<tag>-<arch>` images the registry holds for the current lock, for
/// every tag (read with skopeo: the engine's own login, labels and architecture without a
/// pull). Anything missing, built from another lock or for another platform: one line naming
/// all of it.
fn remote_members(ctx: &Ctx, reg: &Registry, tags: &[String], lock: &str) -> Result<Vec<Arch>> {
    let repo = reg.repository();
    let mut problems = Vec::new();
    for t in tags {
        for arch in platform::ALL {
            let remote = format!("{repo}:{}", registry::arch_tag(t, arch));
            let out = ctx.capture(registry::inspect_remote(
                &ctx.sh,
                &remote,
                reg.is_loopback(),
            ))?;
            if out.planned {
                continue;
            }
            match registry::RemoteImage::parse(&out.stdout).filter(|_| out.ok()) {
                None if out.code == 127 => {
                    return Err(fail(
                        "skopeo not found: install it (`sudo apt-get install skopeo`) to join the per-platform tags",
                    ))
                }
                None => problems.push(format!(
                    "{remote} missing ({})",
                    registry::explain_failure(&reg.host, &out.stderr)
                )),
                Some(img) if img.lock.as_deref() != Some(lock) => problems.push(format!(
                    "{remote} was built from lock {} (this is {})",
                    img.lock.as_deref().map_or("?", |l| &l[..l.len().min(12)]),
                    &lock[..12]
                )),
                Some(img) if img.architecture != arch.name() => problems.push(format!(
                    "{remote} is {} (expected {})",
                    img.architecture,
                    arch.name()
                )),
                Some(_) => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(fail(format!(
            "cannot join the platform tags: {}; push each platform with `cargo xtask push --no-manifests` from the current lock first",
            problems.join("; ")
        )));
    }
    Ok(platform::ALL.to_vec())
}

/// Each plain tag becomes a manifest list over its `<tag>-<arch>` members; prints each digest.
fn join(
    ctx: &Ctx,
    e: &crate::engine::Engine,
    reg: &Registry,
    tags: &[String],
    arches: &[Arch],
) -> Result<()> {
    let repo = reg.repository();
    let insecure = reg.is_loopback();
    for t in tags {
        let list = format!("{repo}:{t}");
        let members: Vec<String> = arches
            .iter()
            .map(|a| format!("{repo}:{}", registry::arch_tag(t, *a)))
            .collect();
        let out = ctx.capture(cmd::manifest_create(e, &ctx.sh, &list, &members, insecure))?;
        registry_ok(reg, &out, &format!("manifest create {list}"))?;
        let out = ctx.capture(cmd::manifest_push(e, &ctx.sh, &list, insecure))?;
        registry_ok(reg, &out, &format!("manifest push {list}"))?;
        if !out.planned {
            let digest = registry::pushed_digest(&out.stdout).unwrap_or_else(|| "?".into());
            let names: Vec<&str> = arches.iter().map(|a| a.name()).collect();
            println!("{list}  {digest}  ({})", names.join(", "));
        }
    }
    Ok(())
}

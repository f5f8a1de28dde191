//! A Python 3.11 base image from Debian packages, for machines that cannot pull
//! python:3.11-slim (the `base-image` task, and `image` when it needs a base). mmdebstrap writes
//! a rootfs tarball; docker/base/Dockerfile is `FROM scratch` + that tarball. No registry is
//! touched.

use crate::ctx::Ctx;
use crate::engine::cmd::{self, BuildSpec};
use crate::error::{fail, usage, Result};
use crate::exec::Proc;
use crate::platform::Arch;
use crate::{git, policy};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xshell::Shell;

/// Used when git cannot date docker/base (e.g. a tarball of the sources).
const FALLBACK_EPOCH: &str = "1735689600";

/// `mmdebstrap …` writing `out` (pure). SOURCE_DATE_EPOCH makes the tarball reproducible.
pub fn mmdebstrap_cmd(
    sh: &Shell,
    suite: &str,
    mirror: Option<&str>,
    arch: Option<Arch>,
    out: &Path,
    epoch: &str,
) -> Proc {
    let mut cmd = sh.cmd("mmdebstrap");
    if let Some(a) = arch {
        cmd = cmd.arg(format!("--architectures={}", a.name()));
    }
    let mut cmd = cmd
        .args([
            "--quiet",
            "--variant=minbase",
            &format!("--include={}", policy::DEBIAN_BASE_PACKAGES),
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            suite,
        ])
        .arg(out);
    if let Some(m) = mirror {
        cmd = cmd.arg(m);
    }
    Proc::change(cmd).env("SOURCE_DATE_EPOCH", epoch)
}

/// The folder a tag's tarball and recipe go to (one per tag, so two builds never share one).
pub fn work_dir(root: &Path, tag: &str) -> PathBuf {
    let slug: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join("target/base-image").join(slug)
}

/// Build the base image under `tag`, for the engine's platform or for `foreign`
/// (mmdebstrap --architectures, emulated).
pub fn build(
    ctx: &Ctx,
    tag: &str,
    suite: &str,
    mirror: Option<&str>,
    foreign: Option<Arch>,
) -> Result<()> {
    let started = Instant::now();
    let recipe = ctx.path(policy::BASE_DOCKERFILE);
    if !recipe.is_file() {
        return Err(usage(format!("{} not found", recipe.display())));
    }
    check_tools(ctx, foreign)?;
    let engine = ctx.engine()?;
    ctx.engine_ready()?;
    let work = work_dir(&ctx.root, tag);
    let epoch = source_date_epoch(ctx);
    rootfs(ctx, &work, suite, mirror, foreign, &epoch)?;
    ctx.exec.copy(&recipe, work.join("Dockerfile"))?;
    let spec = BuildSpec {
        context: work,
        tag: tag.to_string(),
        labels: vec![
            (policy::PROJECT_LABEL.into(), ctx.project.clone()),
            (policy::OCI_TITLE.into(), policy::BASE_TITLE.into()),
            ("dev.lexalign.source-date-epoch".into(), epoch),
        ],
        platform: foreign.map(|a| a.platform().to_string()),
        ..Default::default()
    };
    let mode = crate::build::buildkit(ctx, engine)?;
    ctx.status_ok(cmd::build(engine, &ctx.sh, mode, &spec))?;
    if !ctx.dry_run() {
        ctx.info(format!(
            "built {tag} in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// mmdebstrap (and arch-test for a foreign platform) are there; a dry run says what would fail.
fn check_tools(ctx: &Ctx, foreign: Option<Arch>) -> Result<()> {
    if which::which("mmdebstrap").is_err() {
        let msg = "mmdebstrap not found: install the `mmdebstrap` package (`sudo apt-get install mmdebstrap`)";
        if !ctx.dry_run() {
            return Err(fail(msg));
        }
        println!("# would fail: {msg}");
    }
    if let Some(a) = foreign {
        if which::which("arch-test").is_err() {
            let msg = format!(
                "mmdebstrap needs `arch-test` to build for {} on this machine: `sudo apt-get install arch-test qemu-user-static binfmt-support`",
                a.platform()
            );
            if !ctx.dry_run() {
                return Err(fail(msg));
            }
            println!("# would fail: {msg}");
        }
    }
    Ok(())
}

/// `work/rootfs.tar` from Debian packages (mmdebstrap into a partial file, renamed when whole).
fn rootfs(
    ctx: &Ctx,
    work: &Path,
    suite: &str,
    mirror: Option<&str>,
    foreign: Option<Arch>,
    epoch: &str,
) -> Result<()> {
    // mmdebstrap picks the output format from the extension: keep `.tar`.
    let partial = work.join("rootfs.partial.tar");
    ctx.exec
        .create_dir_all(work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    let _ = ctx.exec.remove_file(&partial);
    ctx.info(format!(
        "base-image: mmdebstrap {suite} ({}), SOURCE_DATE_EPOCH={epoch}",
        policy::DEBIAN_BASE_PACKAGES
    ));
    let code = ctx.status(
        mmdebstrap_cmd(&ctx.sh, suite, mirror, foreign, &partial, epoch),
        Default::default(),
    )?;
    if code != 0 {
        let _ = ctx.exec.remove_file(&partial);
        return Err(fail(format!(
            "mmdebstrap failed (exit {code}); see its output above (network to the Debian mirror? root or unshare rights?)"
        )));
    }
    ctx.exec.rename(&partial, work.join("rootfs.tar"))?;
    Ok(())
}

/// SOURCE_DATE_EPOCH: the environment's, else the last commit touching docker/base.
fn source_date_epoch(ctx: &Ctx) -> String {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        if v.parse::<u64>().is_ok() {
            return v;
        }
    }
    git::answer(
        &ctx.exec,
        &ctx.sh,
        &ctx.root,
        &["log", "-1", "--format=%ct", "--", "docker/base"],
    )
    .filter(|s| s.parse::<u64>().is_ok())
    .unwrap_or_else(|| FALLBACK_EPOCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmdebstrap_command_line() {
        let sh = Shell::new().unwrap();
        let p = mmdebstrap_cmd(
            &sh,
            "bookworm",
            Some("http://m/debian"),
            None,
            Path::new("/w/r.tar"),
            "9",
        );
        assert_eq!(p.env_value("SOURCE_DATE_EPOCH").as_deref(), Some("9"));
        assert_eq!(p.effect, crate::exec::Effect::Change);
        let argv = p.argv();
        assert_eq!(argv[0], "mmdebstrap");
        assert!(argv.contains(&"--variant=minbase".to_string()));
        assert!(argv.contains(&format!("--include={}", policy::DEBIAN_BASE_PACKAGES)));
        assert_eq!(argv.last().unwrap(), "http://m/debian");
        assert!(!argv.iter().any(|a| a.starts_with("--architectures")));
        let argv = mmdebstrap_cmd(
            &sh,
            "bookworm",
            None,
            Some(Arch::Arm64),
            Path::new("/w/rootfs.tar"),
            "1",
        )
        .argv();
        assert_eq!(&argv[argv.len() - 2..], ["bookworm", "/w/rootfs.tar"]);
        assert_eq!(argv[1], "--architectures=arm64");
    }

    #[test]
    fn one_work_dir_per_tag() {
        let a = work_dir(Path::new("/r"), "lexalign/python:3.11-bookworm");
        assert_eq!(
            a,
            Path::new("/r/target/base-image/lexalign_python_3.11-bookworm")
        );
        assert_ne!(
            a,
            work_dir(Path::new("/r"), "lexalign/python:3.11-bookworm-arm64")
        );
    }
}

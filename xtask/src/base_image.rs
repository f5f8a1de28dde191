//! `cargo xtask base-image`: a Python 3.11 base image from Debian packages, for machines that
//! cannot pull python:3.11-slim. mmdebstrap writes a rootfs tarball; docker/base/Dockerfile is
//! `FROM scratch` + that tarball. No registry is touched.

use crate::cli::BaseImageArgs;
use crate::ctx::{self, Ctx};
use crate::engine::validate_image_ref;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;
use xshell::{Cmd, Shell};

pub const DEFAULT_TAG: &str = "lexalign/python:3.11-bookworm";
/// Packages beyond minbase: Python 3.11 with venv and pip, and the CA store.
pub const PACKAGES: &str = "python3.11,python3.11-venv,python3-pip,ca-certificates";
/// Used when git cannot date docker/base (e.g. a tarball of the sources).
const FALLBACK_EPOCH: &str = "1735689600";

/// `mmdebstrap …` writing `out` (pure). SOURCE_DATE_EPOCH makes the tarball reproducible.
pub fn mmdebstrap_cmd<'a>(
    sh: &'a Shell,
    suite: &str,
    mirror: Option<&str>,
    out: &Path,
    epoch: &str,
) -> Cmd<'a> {
    let mut cmd = sh
        .cmd("mmdebstrap")
        .env("SOURCE_DATE_EPOCH", epoch)
        .args([
            "--quiet",
            "--variant=minbase",
            &format!("--include={PACKAGES}"),
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
    cmd
}

pub fn run(ctx: &Ctx, args: &BaseImageArgs) -> Result<()> {
    validate_image_ref(&args.tag).map_err(|e| ctx::usage(format!("--tag {:?}: {e}", args.tag)))?;
    build(ctx, &args.tag, &args.suite, args.mirror.as_deref())
}

/// Build the base image under `tag`.
pub fn build(ctx: &Ctx, tag: &str, suite: &str, mirror: Option<&str>) -> Result<()> {
    let started = Instant::now();
    let recipe = ctx.root.join("docker/base/Dockerfile");
    if !recipe.is_file() {
        return Err(ctx::usage(format!("{} not found", recipe.display())));
    }
    if !ctx.g.dry_run && which::which("mmdebstrap").is_err() {
        return Err(ctx::fail(
            "mmdebstrap not found: install the `mmdebstrap` package (`sudo apt-get install mmdebstrap`)",
        ));
    }
    let engine = ctx.engine()?;
    ctx.engine_ready()?;
    // One folder per tag, so two builds never share a tarball.
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
    let work = ctx.root.join("target/base-image").join(slug);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let tarball = work.join("rootfs.tar");
    // mmdebstrap picks the output format from the extension: keep `.tar`.
    let partial = work.join("rootfs.partial.tar");
    let _ = std::fs::remove_file(&partial);
    let epoch = source_date_epoch(&ctx.root);
    ctx.info(format!(
        "base-image: mmdebstrap {suite} ({PACKAGES}), SOURCE_DATE_EPOCH={epoch}"
    ));
    let code = ctx.exec(
        mmdebstrap_cmd(&ctx.sh, suite, mirror, &partial, &epoch),
        None,
    )?;
    if code != 0 {
        let _ = std::fs::remove_file(&partial);
        return Err(ctx::fail(format!(
            "mmdebstrap failed (exit {code}); see its output above (network to the Debian mirror? root or unshare rights?)"
        )));
    }
    if !ctx.g.dry_run {
        std::fs::rename(&partial, &tarball)?;
        std::fs::copy(&recipe, work.join("Dockerfile"))?;
    }
    let build = engine
        .cmd(&ctx.sh)
        .arg("build")
        .args(["-t", tag])
        .args(["--label", &ctx.project_label()])
        .args([
            "--label",
            "org.opencontainers.image.title=lexalign-python-base",
        ])
        .args([
            "--label",
            &format!("dev.lexalign.source-date-epoch={epoch}"),
        ])
        .arg(&work);
    ctx.exec_ok(build, None)?;
    ctx.info(format!(
        "built {tag} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// SOURCE_DATE_EPOCH: the environment's, else the last commit touching docker/base.
fn source_date_epoch(root: &Path) -> String {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        if v.parse::<u64>().is_ok() {
            return v;
        }
    }
    std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["log", "-1", "--format=%ct", "--", "docker/base"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| s.parse::<u64>().is_ok())
        .unwrap_or_else(|| FALLBACK_EPOCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmdebstrap_command_line() {
        let sh = Shell::new().unwrap();
        let cmd = mmdebstrap_cmd(&sh, "bookworm", None, Path::new("/w/rootfs.tar"), "123");
        let std_cmd: std::process::Command = mmdebstrap_cmd(
            &sh,
            "bookworm",
            Some("http://m/debian"),
            Path::new("/w/r.tar"),
            "9",
        )
        .into();
        assert!(std_cmd
            .get_envs()
            .any(|(k, v)| k == "SOURCE_DATE_EPOCH" && v == Some("9".as_ref())));
        let argv = ctx::argv(cmd);
        assert_eq!(argv[0], "mmdebstrap");
        assert!(argv.contains(&"--variant=minbase".to_string()));
        assert!(argv.contains(&format!("--include={PACKAGES}")));
        let n = argv.len();
        assert_eq!(&argv[n - 2..], ["bookworm", "/w/rootfs.tar"]);
        let with_mirror = ctx::argv(mmdebstrap_cmd(
            &sh,
            "bookworm",
            Some("http://m/debian"),
            Path::new("/w/r.tar"),
            "9",
        ));
        assert_eq!(with_mirror.last().unwrap(), "http://m/debian");
    }
}

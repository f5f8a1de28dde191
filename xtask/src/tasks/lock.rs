//! `cargo xtask lock`: regenerate python/pylock.toml with uv inside a Linux/Python 3.11
//! container from the base image (so macOS and Windows hosts get the same universal lock),
//! keep every locked version unless asked to upgrade, then sync the pins and show what moved.
//! On any failure the old lock is left untouched.

use crate::cli::{LockArgs, PinsArgs};
use crate::ctx::Ctx;
use crate::engine::cmd::{self, RunSpec};
use crate::error::{exit, usage, Result};
use crate::exec::Proc;
use crate::lockfile::{self, Lock};
use crate::policy::{self, UV_VERSION};
use crate::tasks::pins;
use crate::{devrun, util};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;

/// The resolver command inside the container (pure).
pub fn uv_compile_args(upgrade: bool, upgrade_packages: &[String]) -> Vec<String> {
    let mut a: Vec<String> = [
        "pip",
        "compile",
        "pyproject.toml",
        "--universal",
        "--python-version",
        "3.11",
        "--all-extras",
        "--group",
        "dev",
        "--generate-hashes",
        "--format",
        "pylock.toml",
        "-o",
        "pylock.toml",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if upgrade {
        a.push("--upgrade".into());
    }
    for p in upgrade_packages {
        a.extend(["--upgrade-package".into(), p.clone()]);
    }
    a
}

/// One resolver run in a container.
pub struct LockRun<'p> {
    pub base: &'p str,
    pub work: &'p Path,
    pub ca: Option<&'p Path>,
    pub user: Option<(u32, u32)>,
    pub project: &'p str,
    pub compile: &'p [String],
}

/// `run … BASE sh -c '…install uv…; uv pip compile …'` (pure).
pub fn lock_spec(r: &LockRun<'_>) -> RunSpec {
    let script = format!(
        "set -e; python3.11 -m venv /tmp/uv >/dev/null && /tmp/uv/bin/pip install --disable-pip-version-check -q uv=={UV_VERSION} && exec /tmp/uv/bin/uv {}",
        util::shell_line(r.compile)
    );
    let mut spec = RunSpec {
        name: Some(policy::container_name(r.project, "lock")),
        labels: devrun::labels(r.project, "lock"),
        user: r.user,
        volumes: vec![format!("{}:/work", r.work.display())],
        workdir: Some("/work".into()),
        env: vec![("HOME".into(), "/tmp".into())],
        image: r.base.to_string(),
        cmd: vec!["sh".into(), "-c".into(), script],
        ..Default::default()
    };
    if let Some(ca) = r.ca {
        devrun::ca_mount(&mut spec, ca);
    }
    spec
}

/// What moved between two locks: name (+ marker) → (old, new) (pure).
pub fn changes(old: &Lock, new: &Lock) -> Vec<(String, String, String)> {
    let key = |p: &lockfile::Locked| match &p.marker {
        Some(m) => format!("{} ; {m}", p.name),
        None => p.name.clone(),
    };
    let a: BTreeMap<String, String> = old
        .packages
        .iter()
        .map(|p| (key(p), p.version.clone()))
        .collect();
    let b: BTreeMap<String, String> = new
        .packages
        .iter()
        .map(|p| (key(p), p.version.clone()))
        .collect();
    let mut out = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            Some(w) if w != v => out.push((k.clone(), v.clone(), w.clone())),
            None => out.push((k.clone(), v.clone(), "(removed)".into())),
            _ => {}
        }
    }
    for (k, w) in &b {
        if !a.contains_key(k) {
            out.push((k.clone(), "(new)".into(), w.clone()));
        }
    }
    out
}

pub fn run(ctx: &Ctx, args: &LockArgs) -> Result<()> {
    let pyproject = ctx.path(policy::PYPROJECT);
    let lock_path = ctx.path(policy::LOCKFILE);
    let py_text = std::fs::read_to_string(&pyproject)
        .map_err(|e| usage(format!("{}: {e}", pyproject.display())))?;
    let old_text = std::fs::read_to_string(&lock_path).unwrap_or_default();
    let old = if old_text.is_empty() {
        Lock::default()
    } else {
        lockfile::parse(&lock_path, &old_text)?
    };
    let ca = policy::resolve_ca_bundle(args.ca_bundle.as_deref())?;
    let engine = ctx.engine_ready()?;
    let native = ctx.engine_arch().unwrap_or(crate::platform::Arch::Amd64);
    let base = crate::build::base::resolve_base(ctx, "auto", native, native)?;

    // A scratch copy: the resolver writes there, and the real lock changes only on success.
    let work = ctx
        .root
        .join("target")
        .join(format!("lock-{}", std::process::id()));
    let upgrading: Option<&[String]> = if args.upgrade {
        None
    } else {
        Some(&args.upgrade_package)
    };
    let resolve_text = if args.upgrade || !args.upgrade_package.is_empty() {
        crate::pinning::relax(&py_text, &pyproject, upgrading)?
    } else {
        py_text.clone()
    };
    scratch(ctx, &work, &resolve_text, &old_text)?;
    let compile = uv_compile_args(args.upgrade, &args.upgrade_package);
    let spec = lock_spec(&LockRun {
        base: &base,
        work: &work,
        ca: ca.as_deref(),
        user: policy::host_ids(),
        project: &ctx.project,
        compile: &compile,
    });
    ctx.info(format!(
        "lock: resolving with uv {UV_VERSION} in {base} (Linux, Python 3.11, universal)…"
    ));
    let p: Proc = cmd::run(engine, &ctx.sh, &spec);
    let code = ctx.status(p, Default::default());
    if ctx.dry_run() {
        return code.map(|_| ());
    }
    let result = code.and_then(|code| adopt(ctx, code, &work, &lock_path, &old_text, &old));
    let _ = ctx.exec.remove_dir_all(&work);
    result
}

/// The scratch folder uv resolves in: the (relaxed) pyproject, the README it names, and the
/// current lock as preferences (keep versions).
fn scratch(ctx: &Ctx, work: &Path, resolve_text: &str, old_text: &str) -> Result<()> {
    let _ = ctx.exec.remove_dir_all(work);
    ctx.exec
        .create_dir_all(work)
        .with_context(|| format!("cannot create {}", work.display()))?;
    ctx.exec.write(work.join("pyproject.toml"), resolve_text)?;
    let readme = ctx.path("python/README.md");
    if readme.is_file() {
        ctx.exec.copy(readme, work.join("README.md"))?;
    }
    if !old_text.is_empty() {
        ctx.exec.write(work.join("pylock.toml"), old_text)?;
    }
    Ok(())
}

/// After uv: the new lock replaces the old one (when it differs), pins follow, and the
/// versions that moved are listed. A failed resolution leaves the lock unchanged.
fn adopt(
    ctx: &Ctx,
    code: i32,
    work: &Path,
    lock_path: &Path,
    old_text: &str,
    old: &Lock,
) -> Result<()> {
    if code != 0 {
        return Err(exit(
            1,
            format!(
                "uv could not resolve the lock (exit {code}); see its output above. PyPI must be reachable \
                 (behind a TLS-intercepting proxy pass --ca-bundle). {} is unchanged",
                lock_path.display()
            ),
        ));
    }
    let new_text = std::fs::read_to_string(work.join("pylock.toml"))?;
    let new = lockfile::parse(&work.join("pylock.toml"), &new_text)?;
    if new_text != old_text {
        ctx.exec.write(lock_path, new_text.as_bytes())?;
    }
    pins::run(ctx, &PinsArgs::default())?;
    let moved = changes(old, &new);
    if moved.is_empty() {
        println!("lock: no version changed ({} packages)", new.packages.len());
        return Ok(());
    }
    let w = moved
        .iter()
        .map(|(n, _, _)| n.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!("{:<w$}  {:>14}    new", "package", "old");
    for (name, a, b) in &moved {
        println!("{name:<w$}  {a:>14} -> {b}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_flags() {
        let a = uv_compile_args(false, &[]);
        assert!(a.windows(2).any(|w| w == ["--format", "pylock.toml"]));
        assert!(
            a.contains(&"--universal".to_string()) && a.contains(&"--generate-hashes".to_string())
        );
        assert!(!a.contains(&"--upgrade".to_string()));
        let a = uv_compile_args(false, &["torch".into(), "trl".into()]);
        assert!(a.windows(2).any(|w| w == ["--upgrade-package", "torch"]));
        assert!(a.windows(2).any(|w| w == ["--upgrade-package", "trl"]));
        assert!(uv_compile_args(true, &[]).contains(&"--upgrade".to_string()));
    }

    #[test]
    fn lock_command_line() {
        let compile = uv_compile_args(false, &[]);
        let spec = lock_spec(&LockRun {
            base: "lexalign/python:3.11-bookworm",
            work: Path::new("/repo/target/lock-1"),
            ca: Some(Path::new("/ca.pem")),
            user: Some((1000, 1000)),
            project: "lexalign",
            compile: &compile,
        });
        let argv = spec.args();
        let line = argv.join(" ");
        assert!(line.starts_with("run --rm --init --label dev.lexalign.project=lexalign"));
        assert!(line.contains("--name lexalign-lock-"));
        assert!(line.contains("-v /repo/target/lock-1:/work"));
        assert!(line.contains("-v /ca.pem:/etc/lexalign/ca-bundle.crt:ro"));
        assert!(line.contains("--user 1000:1000"));
        let script = argv.last().unwrap();
        assert!(
            script.contains(&format!("uv=={UV_VERSION}"))
                && script.contains("pip compile pyproject.toml")
        );
    }

    #[test]
    fn changes_table() {
        let p = |n: &str, v: &str| lockfile::Locked {
            name: n.into(),
            version: v.into(),
            marker: None,
            wheels: Vec::new(),
            sdist: false,
        };
        let old = Lock {
            packages: vec![p("rich", "13.9.4"), p("gone", "1"), p("same", "2")],
        };
        let new = Lock {
            packages: vec![p("rich", "15.0.0"), p("added", "3"), p("same", "2")],
        };
        let c = changes(&old, &new);
        assert!(c.contains(&("rich".into(), "13.9.4".into(), "15.0.0".into())));
        assert!(c.contains(&("gone".into(), "1".into(), "(removed)".into())));
        assert!(c.contains(&("added".into(), "(new)".into(), "3".into())));
        assert_eq!(c.len(), 3);
    }
}

//! `cargo xtask pins`: write `==VERSION` from the lockfile into pyproject.toml (the rewriter is
//! the `pinning` library); `--check` changes nothing and prints the diff.

use crate::cli::PinsArgs;
use crate::ctx::Ctx;
use crate::error::{fail, usage};
use crate::lockfile;
use crate::pinning::sync;
use crate::{diff, policy};
use anyhow::Result;
use std::path::{Path, PathBuf};

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "{}: cannot read the {what} ({e}); pass --{what} PATH",
            path.display()
        ))
    })
}

pub fn run(ctx: &Ctx, args: &PinsArgs) -> Result<()> {
    let lock_path = args
        .lock
        .clone()
        .unwrap_or_else(|| ctx.path(policy::LOCKFILE));
    let py_path: PathBuf = args
        .pyproject
        .clone()
        .unwrap_or_else(|| ctx.path(policy::PYPROJECT));
    let lock_text = read(&lock_path, "lock")?;
    let py_text = read(&py_path, "pyproject")?;
    let lock = lockfile::parse(&lock_path, &lock_text)?;
    let synced = sync(&py_text, &py_path, &lock, args.strict)?;
    for w in &synced.warnings {
        eprintln!("warning: {w}");
    }
    if synced.changes.is_empty() {
        ctx.info(format!(
            "pins: {} is in sync with {}",
            py_path.display(),
            lock_path.display()
        ));
        return Ok(());
    }
    if args.check {
        let name = py_path.display().to_string();
        print!(
            "{}",
            diff::unified(
                &py_text,
                &synced.text,
                &format!("a/{name}"),
                &format!("b/{name}")
            )
        );
        return Err(fail(format!(
            "{} is out of sync with {} ({} change(s)); run `cargo xtask pins`",
            py_path.display(),
            lock_path.display(),
            synced.changes.len()
        )));
    }
    if ctx.g.dry_run {
        for c in &synced.changes {
            println!("would pin {}: {:?} -> {:?}", c.at, c.old, c.new);
        }
        return Ok(());
    }
    ctx.exec.write(&py_path, synced.text.as_bytes())?;
    for c in &synced.changes {
        println!("pinned {}: {:?} -> {:?}", c.at, c.old, c.new);
    }
    Ok(())
}

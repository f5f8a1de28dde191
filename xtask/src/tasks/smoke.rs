//! `cargo xtask smoke`: check the built image (docs/docker.md, "smoke"). A stale image (lock label ≠ the
//! current lockfile's hash) fails at once; otherwise every check runs and reports a line.

use crate::ctx::Ctx;
use crate::engine::cmd::{self, RunSpec};
use crate::engine::Engine;
use crate::error::{fail, usage, Result};
use crate::exec::Proc;
use crate::lockfile::{self, Lock};
use crate::util::sha256_hex;
use crate::{devrun, policy};
use std::collections::BTreeMap;

/// Distributions whose import and version are checked (import name, distribution name).
pub const PACKAGES: [(&str, &str); 7] = [
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("trl", "trl"),
    ("peft", "peft"),
    ("datasets", "datasets"),
    ("accelerate", "accelerate"),
    ("huggingface_hub", "huggingface-hub"),
];

const PROBE: &str = r#"
import importlib, importlib.metadata as md, os, sys
print("python=%d.%d.%d" % sys.version_info[:3])
print("uid=%d" % os.getuid())
for mod, dist in PACKAGES:
    try:
        importlib.import_module(mod)
        print("version.%s=%s" % (dist, md.version(dist)))
    except Exception as e:
        print("version.%s=ERROR %s: %s" % (dist, type(e).__name__, (str(e).splitlines() or [""])[0]))
"#;

pub fn probe_script() -> String {
    let list: Vec<String> = PACKAGES
        .iter()
        .map(|(m, d)| format!("({m:?}, {d:?})"))
        .collect();
    format!("PACKAGES = [{}]\n{PROBE}", list.join(", "))
}

/// Parse `key=value` lines (pure).
pub fn parse_kv(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One check's outcome.
#[derive(Debug, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub expected: String,
    pub found: String,
}

impl Check {
    fn new(ok: bool, what: impl Into<String>, expected: &str, found: impl Into<String>) -> Check {
        Check {
            ok,
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
    pub fn line(&self) -> String {
        if self.ok {
            format!("✓ {}: {}", self.what, self.found)
        } else {
            format!(
                "✗ {}: expected {}, found {}",
                self.what, self.expected, self.found
            )
        }
    }
}

/// The checks on the probe's answer against the lock (pure).
pub fn probe_checks(kv: &BTreeMap<String, String>, lock: &Lock, no_answer: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let py = kv
        .get("python")
        .cloned()
        .unwrap_or_else(|| format!("no answer ({no_answer})"));
    out.push(Check::new(
        py.starts_with("3.11."),
        "python version",
        "3.11.x",
        py,
    ));
    let uid = kv.get("uid").cloned().unwrap_or_else(|| "unknown".into());
    out.push(Check::new(
        uid != "0" && uid != "unknown",
        "runs as non-root",
        "a uid other than 0",
        format!("uid {uid}"),
    ));
    for (_, dist) in PACKAGES {
        let found = kv
            .get(&format!("version.{dist}"))
            .cloned()
            .unwrap_or_else(|| "no answer".into());
        let locked = lock.versions_of(dist);
        let expected = if locked.is_empty() {
            "a version in the lock".to_string()
        } else {
            locked.join(" or ")
        };
        out.push(Check::new(
            locked.contains(&found.as_str()),
            format!("import {dist}"),
            &expected,
            found,
        ));
    }
    out
}

fn smoke_spec(ctx: &Ctx, cmd: &[&str]) -> RunSpec {
    RunSpec {
        labels: devrun::labels(&ctx.project, "smoke"),
        image: ctx.image().to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let lock_path = ctx.path(policy::LOCKFILE);
    let lock_bytes =
        std::fs::read(&lock_path).map_err(|e| usage(format!("{}: {e}", lock_path.display())))?;
    let lock = lockfile::parse(&lock_path, &String::from_utf8_lossy(&lock_bytes))?;
    let engine = ctx.engine_ready()?;
    let image = ctx.image();

    // Staleness first: everything else would test the wrong thing.
    check_lock_label(ctx, image, &sha256_hex(&lock_bytes))?;
    let mut checks = Vec::new();
    let probe = ctx.capture(cmd::run(
        engine,
        &ctx.sh,
        &smoke_spec(ctx, &["python", "-c", &probe_script()]),
    ))?;
    let probe_err = crate::engine::killed_hint(probe.code)
        .map(str::to_string)
        .unwrap_or_else(|| probe.first_error_line());
    checks.extend(probe_checks(&parse_kv(&probe.stdout), &lock, &probe_err));
    checks.push(pip_check(ctx, engine)?);
    checks.extend(entrypoint_checks(ctx, engine)?);
    if ctx.dry_run() {
        return Ok(());
    }
    for c in &checks {
        println!("{}", c.line());
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(fail(format!("smoke: {failed} check(s) failed")));
    }
    println!("smoke: all checks passed for {image}");
    Ok(())
}

/// The image's lock label is the current lock's hash (a stale image fails at once).
fn check_lock_label(ctx: &Ctx, image: &str, want: &str) -> Result<()> {
    match ctx.image_label(image, policy::LOCK_LABEL) {
        None if ctx.dry_run() => println!("# image {image}: not found (unknown)"),
        None => {
            return Err(fail(format!(
                "image {image} not found; run `cargo xtask image`"
            )))
        }
        Some(have) if have != want => {
            println!(
                "✗ lock label: expected {want}, found {}",
                if have.is_empty() { "none" } else { &have }
            );
            if !ctx.dry_run() {
                return Err(fail(format!(
                    "image {image} is stale: built from another python/pylock.toml; run `cargo xtask image`"
                )));
            }
        }
        Some(_) => println!("✓ lock label: {} (matches python/pylock.toml)", &want[..12]),
    }
    Ok(())
}

fn pip_check(ctx: &Ctx, engine: &Engine) -> Result<Check> {
    let run = |cmd: &[&str]| -> Proc { cmd::run(engine, &ctx.sh, &smoke_spec(ctx, cmd)) };
    let check = ctx.capture(run(&[
        "uv",
        "pip",
        "check",
        "--python",
        policy::VENV_PYTHON,
    ]))?;
    let msg = if check.ok() {
        "clean".to_string()
    } else {
        check
            .stdout
            .lines()
            .chain(check.stderr.lines())
            .filter(|l| !l.contains("HF_TOKEN") && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Ok(Check::new(check.ok(), "pip check", "clean", msg))
}

/// The entrypoint warns on stderr without HF_TOKEN, and not with it (passed by name only, with a
/// placeholder value in the client's environment); exit codes pass through.
fn entrypoint_checks(ctx: &Ctx, engine: &Engine) -> Result<Vec<Check>> {
    let run = |cmd: &[&str]| -> Proc { cmd::run(engine, &ctx.sh, &smoke_spec(ctx, cmd)) };
    let mut checks = Vec::new();
    let without = ctx.capture(run(&["true"]).env_remove("HF_TOKEN"))?;
    let warned = without.stderr.contains("HF_TOKEN");
    checks.push(Check::new(
        warned,
        "entrypoint warns without HF_TOKEN",
        "a warning on stderr",
        if warned { "warned" } else { "no warning" },
    ));
    let mut with_token = smoke_spec(ctx, &["true"]);
    with_token.env_names.push("HF_TOKEN".into());
    let with = ctx.capture(
        cmd::run(engine, &ctx.sh, &with_token).env("HF_TOKEN", "lexalign-smoke-placeholder"),
    )?;
    let warned = with.stderr.contains("HF_TOKEN");
    checks.push(Check::new(
        !warned,
        "entrypoint quiet with HF_TOKEN",
        "no warning",
        if warned { "warned" } else { "no warning" },
    ));
    let seven = ctx.capture(run(&["sh", "-c", "exit 7"]))?;
    checks.push(Check::new(
        seven.code == 7,
        "exit code passthrough (sh -c 'exit 7')",
        "7",
        seven.code.to_string(),
    ));
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock() -> Lock {
        let p = |n: &str, v: &str| lockfile::Locked {
            name: n.into(),
            version: v.into(),
            marker: None,
            wheels: Vec::new(),
            sdist: false,
        };
        Lock {
            packages: PACKAGES
                .iter()
                .map(|(_, d)| p(d, if *d == "torch" { "2.6.0" } else { "1.0" }))
                .collect(),
        }
    }

    #[test]
    fn a_good_probe_passes_every_check() {
        let mut out = String::from("python=3.11.2\nuid=1000\n");
        for (_, d) in PACKAGES {
            out.push_str(&format!(
                "version.{d}={}\n",
                if d == "torch" { "2.6.0" } else { "1.0" }
            ));
        }
        let checks = probe_checks(&parse_kv(&out), &lock(), "");
        assert_eq!(checks.len(), 2 + PACKAGES.len());
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    }

    #[test]
    fn wrong_versions_root_and_silence_fail() {
        let out = "python=3.12.1\nuid=0\nversion.torch=2.5.1\nversion.trl=ERROR ImportError: x\n";
        let checks = probe_checks(&parse_kv(out), &lock(), "");
        let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| c.line()).collect();
        assert!(failed.contains(&"✗ python version: expected 3.11.x, found 3.12.1".to_string()));
        assert!(failed
            .contains(&"✗ runs as non-root: expected a uid other than 0, found uid 0".to_string()));
        assert!(failed.contains(&"✗ import torch: expected 2.6.0, found 2.5.1".to_string()));
        assert!(failed
            .iter()
            .any(|l| l.starts_with("✗ import trl: expected 1.0, found ERROR")));
        assert_eq!(failed.len(), checks.len(), "nothing passes: {failed:?}");
        let silent = probe_checks(&BTreeMap::new(), &lock(), "exec format error");
        assert_eq!(silent[0].found, "no answer (exec format error)");
    }
}

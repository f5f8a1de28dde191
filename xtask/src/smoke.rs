//! `cargo xtask smoke`: check the built image (design §4). Every check runs and reports a
//! line; a stale image (lock label ≠ the current lockfile's hash) fails at once.

use crate::ctx::{self, Ctx, LOCK_LABEL};
use crate::lockfile;
use crate::util::sha256_hex;
use anyhow::Result;
use std::collections::BTreeMap;
use std::process::Command;
use xshell::{Cmd, Shell};

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

/// `<engine> run --rm … IMAGE CMD…` as the image's own user, no mounts (pure).
pub fn smoke_run<'a>(
    sh: &'a Shell,
    engine: &std::path::Path,
    label: &str,
    image: &str,
    cmd: &[&str],
) -> Cmd<'a> {
    sh.cmd(engine)
        .args(crate::container::run_prefix(label, "smoke"))
        .arg(image)
        .args(cmd)
}

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

struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, ok: bool, what: &str, expected: &str, found: &str) {
        if ok {
            println!("✓ {what}: {found}");
        } else {
            self.failed += 1;
            println!("✗ {what}: expected {expected}, found {found}");
        }
    }
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let engine = ctx.engine()?;
    let lock_path = ctx.root.join("python/pylock.toml");
    let lock_bytes = std::fs::read(&lock_path)
        .map_err(|e| ctx::usage(format!("{}: {e}", lock_path.display())))?;
    let image = ctx.image();
    let label = ctx.project_label();
    let run = |cmd: &[&str]| smoke_run(&ctx.sh, &engine.program, &label, image, cmd);
    if ctx.g.dry_run {
        ctx.capture(engine.cmd(&ctx.sh).args(["image", "inspect", image]))?;
        ctx.capture(run(&["python", "-c", "…"]))?;
        ctx.capture(run(&[
            "uv",
            "pip",
            "check",
            "--python",
            "/opt/venv/bin/python",
        ]))?;
        ctx.capture(run(&["true"]))?;
        ctx.capture(run(&["sh", "-c", "exit 7"]))?;
        return Ok(());
    }
    ctx.engine_ready()?;

    // Staleness first: everything else would test the wrong thing.
    let want = sha256_hex(&lock_bytes);
    let labels = ctx.capture_quiet(engine.cmd(&ctx.sh).args([
        "image",
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{LOCK_LABEL}\"}}}}"),
        image,
    ]))?;
    if !labels.ok() {
        return Err(ctx::fail(format!(
            "image {image} not found ({}); run `cargo xtask image`",
            labels.first_error_line()
        )));
    }
    let have = labels.stdout.trim();
    if have != want {
        println!(
            "✗ lock label: expected {want}, found {}",
            if have.is_empty() { "none" } else { have }
        );
        return Err(ctx::fail(format!(
            "image {image} is stale: built from another python/pylock.toml; run `cargo xtask image`"
        )));
    }
    let mut r = Report { failed: 0 };
    r.check(
        true,
        "lock label",
        &want,
        &format!("{} (matches python/pylock.toml)", &want[..12]),
    );

    let lock = lockfile::parse(&lock_path, &String::from_utf8_lossy(&lock_bytes))?;
    let probe = ctx.capture(run(&["python", "-c", &probe_script()]))?;
    let kv = parse_kv(&probe.stdout);
    let py = kv
        .get("python")
        .cloned()
        .unwrap_or_else(|| format!("no answer ({})", probe.first_error_line()));
    r.check(py.starts_with("3.11."), "python version", "3.11.x", &py);
    let uid = kv.get("uid").cloned().unwrap_or_else(|| "unknown".into());
    r.check(
        uid != "0" && uid != "unknown",
        "runs as non-root",
        "a uid other than 0",
        &format!("uid {uid}"),
    );
    for (_, dist) in PACKAGES {
        let found = kv
            .get(&format!("version.{dist}"))
            .cloned()
            .unwrap_or_else(|| "no answer".into());
        let locked: Vec<&str> = lock.versions_of(dist);
        let expected = if locked.is_empty() {
            "a version in the lock".to_string()
        } else {
            locked.join(" or ")
        };
        r.check(
            locked.contains(&found.as_str()),
            &format!("import {dist}"),
            &expected,
            &found,
        );
    }

    let check = ctx.capture(run(&[
        "uv",
        "pip",
        "check",
        "--python",
        "/opt/venv/bin/python",
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
    r.check(check.ok(), "pip check", "clean", &msg);

    // Entrypoint: warns on stderr without HF_TOKEN, and not with it (passed by name only).
    let mut without: Command = run(&["true"]).into();
    without.env_remove("HF_TOKEN");
    let without = capture(without)?;
    r.check(
        without.1.contains("HF_TOKEN"),
        "entrypoint warns without HF_TOKEN",
        "a warning on stderr",
        if without.1.contains("HF_TOKEN") {
            "warned"
        } else {
            "no warning"
        },
    );
    // HF_TOKEN by name only, with a placeholder value in the client's environment.
    let mut with = Command::new(&engine.program);
    let mut args = crate::container::run_prefix(&label, "smoke");
    args.extend(["-e".into(), "HF_TOKEN".into(), image.into(), "true".into()]);
    with.args(&args)
        .env("HF_TOKEN", "lexalign-smoke-placeholder");
    let with = capture(with)?;
    r.check(
        !with.1.contains("HF_TOKEN"),
        "entrypoint quiet with HF_TOKEN",
        "no warning",
        if with.1.contains("HF_TOKEN") {
            "warned"
        } else {
            "no warning"
        },
    );
    let seven = ctx.capture(run(&["sh", "-c", "exit 7"]))?;
    r.check(
        seven.code == 7,
        "exit code passthrough (sh -c 'exit 7')",
        "7",
        &seven.code.to_string(),
    );

    if r.failed > 0 {
        return Err(ctx::fail(format!("smoke: {} check(s) failed", r.failed)));
    }
    println!("smoke: all checks passed for {image}");
    Ok(())
}

fn capture(mut cmd: Command) -> Result<(i32, String)> {
    let out = cmd.stdin(std::process::Stdio::null()).output()?;
    Ok((
        ctx::exit_code(out.status),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lists_every_package() {
        let s = probe_script();
        for (m, d) in PACKAGES {
            assert!(s.contains(m) && s.contains(d));
        }
    }

    #[test]
    fn kv_parsing() {
        let kv = parse_kv("python=3.11.2\nuid=1000\nversion.torch=2.6.0\nnoise\n");
        assert_eq!(kv["python"], "3.11.2");
        assert_eq!(kv["version.torch"], "2.6.0");
        assert_eq!(kv.len(), 3);
    }

    #[test]
    fn smoke_run_line() {
        let sh = Shell::new().unwrap();
        let argv = ctx::argv(smoke_run(
            &sh,
            std::path::Path::new("docker"),
            "dev.lexalign.project=x",
            "img:1",
            &["sh", "-c", "exit 7"],
        ));
        assert_eq!(argv[..3], ["docker", "run", "--rm"]);
        assert_eq!(argv[argv.len() - 4..], ["img:1", "sh", "-c", "exit 7"]);
    }
}

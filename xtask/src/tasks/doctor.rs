//! `cargo xtask doctor`: a preflight table with a one-line fix per failing row. Exit 1 when a
//! required row fails. The HF_TOKEN value is never printed.

use crate::ctx::Ctx;
use crate::engine::{cmd, Engine};
use crate::error::{fail, Result};
use crate::exec::Proc;
use crate::policy::{self, DEBIAN_BASE, SLIM_BASE};
use crate::tasks::image;
use crate::util;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Info,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

fn row(name: &'static str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Row {
    Row {
        name,
        status,
        detail: detail.into(),
        fix,
    }
}

/// The table (pure).
pub fn render(rows: &[Row]) -> String {
    let mut s = String::new();
    for r in rows {
        let mark = match r.status {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Info => "·",
        };
        s.push_str(&format!("{mark} {:<16} {}\n", r.name, r.detail));
        if let (Some(fix), Status::Fail | Status::Warn) = (&r.fix, r.status) {
            s.push_str(&format!("  {:<16} fix: {fix}\n", ""));
        }
    }
    s
}

pub fn failed(rows: &[Row]) -> usize {
    rows.iter().filter(|r| r.status == Status::Fail).count()
}

/// Free space (bytes) of the filesystem holding `path`, from `df -Pk`.
fn free_bytes(ctx: &Ctx, path: &str) -> Option<u64> {
    let out = ctx
        .capture(Proc::query(ctx.sh.cmd("df").args(["-Pk", path])))
        .ok()?;
    let text = out.stdout;
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Classify free disk (pure): < 10 GB fails, < 25 GB warns (the image alone is ~6.3 GB).
pub fn disk_status(free: u64) -> Status {
    match free {
        f if f < 10_000_000_000 => Status::Fail,
        f if f < 25_000_000_000 => Status::Warn,
        _ => Status::Ok,
    }
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let mut rows = Vec::new();
    let engine: Option<&Engine> = match ctx.engine() {
        Ok(e) => {
            let v = ctx.capture(cmd::client_version(e, &ctx.sh));
            match v {
                Ok(v) if v.ok() => rows.push(row(
                    "engine client",
                    Status::Ok,
                    format!("{} {} ({})", e.name(), v.stdout.trim(), e.program.display()),
                    None,
                )),
                _ => rows.push(row(
                    "engine client",
                    Status::Fail,
                    format!("{} does not answer `version`", e.program.display()),
                    Some("reinstall the client (`apt-get install docker.io`)".into()),
                )),
            }
            Some(e)
        }
        Err(e) => {
            rows.push(row(
                "engine client",
                Status::Fail,
                e.to_string(),
                Some("install Docker (`apt-get install docker.io`) or set LEXALIGN_DOCKER".into()),
            ));
            None
        }
    };
    let mut daemon_ok = false;
    if let Some(e) = engine {
        let out = ctx.capture(cmd::server_version(e, &ctx.sh))?;
        if out.ok() && !out.stdout.trim().is_empty() {
            daemon_ok = true;
            rows.push(row(
                "daemon",
                Status::Ok,
                format!("reachable, server {}", out.stdout.trim()),
                None,
            ));
        } else {
            rows.push(row(
                "daemon",
                Status::Fail,
                format!("not reachable ({})", out.first_error_line()),
                Some("start it: `sudo systemctl start docker` (or `sudo dockerd &`), or set DOCKER_HOST".into()),
            ));
        }
        match image::probe_buildkit(ctx, e) {
            Ok(mode) => rows.push(row("BuildKit", Status::Ok, format!("{mode:?}"), None)),
            Err(err) => rows.push(row(
                "BuildKit",
                Status::Fail,
                "no BuildKit-capable client",
                Some(err.to_string()),
            )),
        }
    } else {
        rows.push(row(
            "daemon",
            Status::Fail,
            "no engine client",
            Some("install Docker first".into()),
        ));
        rows.push(row(
            "BuildKit",
            Status::Fail,
            "no engine client",
            Some("install Docker first".into()),
        ));
    }

    let root_dir = engine
        .filter(|_| daemon_ok)
        .and_then(|e| {
            ctx.capture(cmd::info(e, &ctx.sh, "{{.DockerRootDir}}"))
                .ok()
        })
        .map(|c| c.stdout.trim().to_string())
        .filter(|s| std::path::Path::new(s).exists())
        .unwrap_or_else(|| "/".into());
    match free_bytes(ctx, &root_dir) {
        Some(free) => rows.push(row(
            "free disk",
            disk_status(free),
            format!("{} free at {root_dir}", util::human_bytes(free)),
            Some("free space: `cargo xtask clean`, `docker builder prune`".into()),
        )),
        None => rows.push(row(
            "free disk",
            Status::Warn,
            format!("cannot measure {root_dir}"),
            None,
        )),
    }

    let base = match engine.filter(|_| daemon_ok) {
        Some(_) if ctx.image_id(SLIM_BASE).is_some() => row("base image", Status::Ok, format!("{SLIM_BASE} present"), None),
        Some(_) if ctx.image_id(DEBIAN_BASE).is_some() => row(
            "base image",
            Status::Ok,
            format!("{} present (built from Debian packages)", DEBIAN_BASE),
            None,
        ),
        _ if which::which("mmdebstrap").is_ok() => row(
            "base image",
            Status::Ok,
            format!("none present; `{}` can be built (mmdebstrap found) or {SLIM_BASE} pulled", DEBIAN_BASE),
            None,
        ),
        _ => row(
            "base image",
            Status::Fail,
            format!("neither {SLIM_BASE} nor {} present, and mmdebstrap missing", DEBIAN_BASE),
            Some(format!("`docker pull {SLIM_BASE}`, or `apt-get install mmdebstrap` then `cargo xtask base-image`")),
        ),
    };
    rows.push(base);

    rows.push(match policy::ca_bundle_from_env() {
        Some(p) => row(
            "CA bundle",
            Status::Info,
            format!("{} (passed to builds as a secret)", p.display()),
            None,
        ),
        None => row(
            "CA bundle",
            Status::Info,
            "none set (fine unless TLS to PyPI is intercepted)",
            None,
        ),
    });
    rows.push(match std::env::var("HF_TOKEN") {
        Ok(v) if !v.is_empty() => row("HF_TOKEN", Status::Ok, "set (value hidden)", None),
        _ => row(
            "HF_TOKEN",
            Status::Warn,
            "not set: gated or private Hub repos will fail",
            Some(
                "export HF_TOKEN=… (read token from https://huggingface.co/settings/tokens)".into(),
            ),
        ),
    });
    let gpu = engine
        .filter(|_| daemon_ok)
        .and_then(|e| {
            ctx.capture(cmd::info(e, &ctx.sh, "{{json .Runtimes}}"))
                .ok()
        })
        .map(|c| c.stdout.contains("nvidia"))
        .unwrap_or(false);
    rows.push(if gpu {
        row("GPU runtime", Status::Ok, "nvidia runtime available", None)
    } else {
        row(
            "GPU runtime",
            Status::Info,
            "none (CPU only; install nvidia-container-toolkit for CUDA/QLoRA)",
            None,
        )
    });

    print!("{}", render(&rows));
    let n = failed(&rows);
    if n > 0 && ctx.dry_run() {
        println!("doctor: {n} required check(s) failed (dry run: exit 0)");
        return Ok(());
    }
    if n > 0 {
        return Err(fail(format!("doctor: {n} required check(s) failed")));
    }
    println!("doctor: ready");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_rows_show_their_fix() {
        let rows = vec![
            row(
                "daemon",
                Status::Fail,
                "not reachable",
                Some("start it".into()),
            ),
            row(
                "HF_TOKEN",
                Status::Ok,
                "set (value hidden)",
                Some("unused".into()),
            ),
        ];
        let t = render(&rows);
        assert!(t.contains("✗ daemon"));
        assert!(t.contains("fix: start it"));
        assert!(!t.contains("unused"));
        assert_eq!(failed(&rows), 1);
    }

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_status(5_000_000_000), Status::Fail);
        assert_eq!(disk_status(20_000_000_000), Status::Warn);
        assert_eq!(disk_status(80_000_000_000), Status::Ok);
    }
}

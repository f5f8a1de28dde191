//! `cargo xtask doctor`: a preflight table with a one-line fix per failing row. Exit 1 when a
//! required row fails. The HF_TOKEN value is never printed. Over 400 lines: one table of
//! independent checks, each a few lines, read best in the order they are printed.

use crate::ctx::Ctx;
use crate::engine::{cmd, Emulation, Engine};
use crate::error::{fail, Result};
use crate::exec::Proc;
use crate::platform::{self, Arch};
use crate::policy::{self, DEBIAN_BASE, SLIM_BASE};
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
    let engine = engine_row(ctx, &mut rows);
    let daemon_ok = match engine {
        Some(e) => {
            let (daemon, ok) = daemon_row(ctx, e)?;
            rows.push(daemon);
            rows.push(buildkit_row(ctx, e));
            if ok {
                rows.extend(capacity_rows(ctx, e)?);
            }
            ok
        }
        None => {
            for name in ["daemon", "BuildKit"] {
                rows.push(row(
                    name,
                    Status::Fail,
                    "no engine client",
                    Some("install Docker first".into()),
                ));
            }
            false
        }
    };
    let ready = engine.filter(|_| daemon_ok);
    rows.push(disk_row(ctx, ready));
    rows.push(base_row(ctx, ready));
    rows.push(dev_image_row(ctx, ready));
    rows.push(ca_row());
    rows.push(token_row());
    rows.push(trackers_row(|n| std::env::var(n).ok()));
    rows.push(gpu_row(ctx, ready));
    report(ctx, &rows)
}

/// The table, and the exit: 1 when a required row failed (0 in a dry run).
fn report(ctx: &Ctx, rows: &[Row]) -> Result<()> {
    print!("{}", render(rows));
    let n = failed(rows);
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

fn engine_row<'a>(ctx: &'a Ctx, rows: &mut Vec<Row>) -> Option<&'a Engine> {
    match ctx.engine() {
        Ok(e) => {
            rows.push(match ctx.capture(cmd::client_version(e, &ctx.sh)) {
                Ok(v) if v.ok() => row(
                    "engine client",
                    Status::Ok,
                    format!("{} {} ({})", e.name(), v.stdout.trim(), e.program.display()),
                    None,
                ),
                _ => row(
                    "engine client",
                    Status::Fail,
                    format!("{} does not answer `version`", e.program.display()),
                    Some("reinstall the client (`apt-get install docker.io`)".into()),
                ),
            });
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
    }
}

/// The daemon row, and whether the daemon answers.
fn daemon_row(ctx: &Ctx, e: &Engine) -> Result<(Row, bool)> {
    let out = ctx.capture(cmd::server_version(e, &ctx.sh))?;
    if out.ok() && !out.stdout.trim().is_empty() {
        let detail = format!("reachable, server {}", out.stdout.trim());
        return Ok((row("daemon", Status::Ok, detail, None), true));
    }
    Ok((
        row(
            "daemon",
            Status::Fail,
            format!("not reachable ({})", out.first_error_line()),
            Some(
                "start it: `sudo systemctl start docker` (or `sudo dockerd &`), or set DOCKER_HOST"
                    .into(),
            ),
        ),
        false,
    ))
}

fn buildkit_row(ctx: &Ctx, e: &Engine) -> Row {
    match crate::build::probe_buildkit(ctx, e) {
        Ok(mode) => row("BuildKit", Status::Ok, format!("{mode:?}"), None),
        Err(err) => row(
            "BuildKit",
            Status::Fail,
            "no BuildKit-capable client",
            Some(err.to_string()),
        ),
    }
}

/// Platforms (native or emulated) and the engine's CPUs and memory.
fn capacity_rows(ctx: &Ctx, e: &Engine) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if let Some(native) = ctx.engine_arch() {
        let emulation: Vec<(Arch, Emulation)> = platform::ALL
            .iter()
            .map(|a| (*a, crate::engine::emulation(*a, native)))
            .collect();
        rows.push(platforms_row(&emulation));
    }
    let res = ctx
        .capture(cmd::info(e, &ctx.sh, "{{.NCPU}} {{.MemTotal}}"))?
        .answer()
        .unwrap_or_default();
    let mut it = res.split_whitespace().map(|v| v.parse::<u64>().ok());
    if let (Some(Some(cpus)), Some(Some(mem))) = (it.next(), it.next()) {
        rows.push(resources_row(cpus, mem));
    }
    Ok(rows)
}

fn disk_row(ctx: &Ctx, ready: Option<&Engine>) -> Row {
    let root_dir = ready
        .and_then(|e| {
            ctx.capture(cmd::info(e, &ctx.sh, "{{.DockerRootDir}}"))
                .ok()
        })
        .map(|c| c.stdout.trim().to_string())
        .filter(|s| std::path::Path::new(s).exists())
        .unwrap_or_else(|| "/".into());
    match free_bytes(ctx, &root_dir) {
        Some(free) => row(
            "free disk",
            disk_status(free),
            format!("{} free at {root_dir}", util::human_bytes(free)),
            Some("free space: `cargo xtask clean`, `docker builder prune`".into()),
        ),
        None => row(
            "free disk",
            Status::Warn,
            format!("cannot measure {root_dir}"),
            None,
        ),
    }
}

fn base_row(ctx: &Ctx, ready: Option<&Engine>) -> Row {
    match ready {
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
    }
}

fn dev_image_row(ctx: &Ctx, ready: Option<&Engine>) -> Row {
    match ready.and_then(|_| ctx.image_id(ctx.image())) {
        Some(_) => row(
            "dev image",
            Status::Ok,
            format!(
                "{}: {}",
                ctx.image(),
                crate::oci::describe(&ctx.image_labels(ctx.image()))
            ),
            None,
        ),
        None => row(
            "dev image",
            Status::Info,
            format!("{} not here yet", ctx.image()),
            Some(
                "`cargo xtask pull` (the published image of this lock), or `cargo xtask image`"
                    .into(),
            ),
        ),
    }
}

fn ca_row() -> Row {
    match policy::ca_bundle_from_env() {
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
    }
}

fn token_row() -> Row {
    match std::env::var("HF_TOKEN") {
        Ok(v) if !v.is_empty() => row("HF_TOKEN", Status::Ok, "set (value hidden)", None),
        _ => row(
            "HF_TOKEN",
            Status::Warn,
            "not set: gated or private Hub repos will fail",
            Some(
                "export HF_TOKEN=… (read token from https://huggingface.co/settings/tokens)".into(),
            ),
        ),
    }
}

/// A URI without its `user:password@` part (pure).
pub fn redact_userinfo(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => uri.to_string(),
    }
}

/// Which trackers the environment configures for `training.report_to` (pure over `get`):
/// where MLflow logs, whether W&B is online; secrets only as "set".
pub fn trackers_row(get: impl Fn(&str) -> Option<String>) -> Row {
    let set = |n: &str| get(n).filter(|v| !v.trim().is_empty());
    let mlflow = match set("MLFLOW_TRACKING_URI") {
        Some(uri) => {
            let auth = ["MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"]
                .into_iter()
                .filter(|n| set(n).is_some())
                .map(|n| format!(", {n} set"))
                .collect::<String>();
            format!("MLflow → {}{auth}", redact_userinfo(uri.trim()))
        }
        None => "MLflow → <output_dir>/mlruns (MLFLOW_TRACKING_URI unset)".to_string(),
    };
    let mode = set("WANDB_MODE").map(|m| m.trim().to_lowercase());
    let wandb = match (mode.as_deref(), set("WANDB_API_KEY").is_some()) {
        (Some(m), key) => format!("W&B {m} (WANDB_MODE{})", if key { ", key set" } else { "" }),
        (None, true) => "W&B online (WANDB_API_KEY set)".to_string(),
        (None, false) => "W&B offline (no WANDB_API_KEY; wandb sync uploads later)".to_string(),
    };
    row(
        "trackers",
        Status::Info,
        format!("{mlflow}; {wandb}; used when report_to names them"),
        None,
    )
}

fn gpu_row(ctx: &Ctx, ready: Option<&Engine>) -> Row {
    let gpu = ready
        .and_then(|e| {
            ctx.capture(cmd::info(e, &ctx.sh, "{{json .Runtimes}}"))
                .ok()
        })
        .map(|c| c.stdout.contains("nvidia"))
        .unwrap_or(false);
    if gpu {
        row("GPU runtime", Status::Ok, "nvidia runtime available", None)
    } else {
        row(
            "GPU runtime",
            Status::Info,
            "none (CPU only; install nvidia-container-toolkit for CUDA/QLoRA)",
            None,
        )
    }
}

/// Which platforms this engine builds and runs, native or emulated (pure).
pub fn platforms_row(emulation: &[(Arch, Emulation)]) -> Row {
    let detail = emulation
        .iter()
        .map(|(a, e)| format!("{} {}", a.platform(), e.describe()))
        .collect::<Vec<_>>()
        .join(", ");
    let missing = emulation.iter().find_map(|(_, e)| match e {
        Emulation::Missing(fix) => Some(fix.clone()),
        _ => None,
    });
    match missing {
        Some(fix) => row("platforms", Status::Warn, detail, Some(fix)),
        None => row("platforms", Status::Ok, detail, None),
    }
}

/// Memory a tiny-model run needs, and a 1B-parameter LoRA in fp32 on CPU (weights 4 GB, the
/// frozen copy's activations, optimizer state for the adapter, the dataset).
pub const MEM_TINY: u64 = 4 << 30;
pub const MEM_1B_LORA: u64 = 16 << 30;

/// The engine's CPUs and memory against what training needs (pure).
pub fn resources_row(cpus: u64, mem: u64) -> Row {
    let gib = mem as f64 / (1u64 << 30) as f64;
    let detail = format!("{cpus} CPUs, {gib:.1} GiB memory");
    let raise = "raise the engine's CPU and memory limits (Docker Desktop: Settings → Resources)";
    if cpus < 2 || mem < MEM_TINY {
        return row(
            "resources",
            Status::Warn,
            format!("{detail}: below a tiny-model run's 2 CPUs and 4 GiB"),
            Some(format!(
                "{raise}; containers killed with exit 137 ran out of memory"
            )),
        );
    }
    if mem < MEM_1B_LORA {
        return row(
            "resources",
            Status::Warn,
            format!(
                "{detail}: enough for tiny models; a 1B-parameter LoRA on CPU needs about 16 GiB"
            ),
            Some(raise.into()),
        );
    }
    row(
        "resources",
        Status::Ok,
        format!("{detail} (a 1B-parameter LoRA on CPU needs about 16 GiB)"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_and_resource_rows() {
        let r = platforms_row(&[
            (Arch::Amd64, Emulation::Native),
            (Arch::Arm64, Emulation::Qemu),
        ]);
        assert_eq!(r.status, Status::Ok);
        assert_eq!(
            r.detail,
            "linux/amd64 native, linux/arm64 emulated (QEMU via binfmt_misc)"
        );
        let r = platforms_row(&[
            (Arch::Amd64, Emulation::Native),
            (
                Arch::Arm64,
                Emulation::Missing(crate::engine::emulation_fix(Arch::Arm64)),
            ),
        ]);
        assert_eq!(r.status, Status::Warn);
        assert!(r.fix.unwrap().contains("qemu-user-static"));
        assert_eq!(resources_row(8, 32 << 30).status, Status::Ok);
        let r = resources_row(2, 8 << 30);
        assert!(r.status == Status::Warn && r.detail.contains("16 GiB"));
        let r = resources_row(1, 2 << 30);
        assert!(r.status == Status::Warn && r.fix.unwrap().contains("137"));
    }

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
    fn trackers_row_says_where_without_secrets() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let r = trackers_row(env(&[]));
        assert!(
            r.detail.contains("MLflow → <output_dir>/mlruns"),
            "{}",
            r.detail
        );
        assert!(r.detail.contains("W&B offline"), "{}", r.detail);
        let r = trackers_row(env(&[
            (
                "MLFLOW_TRACKING_URI",
                "https://me:s3cret-pw@mlflow.example:5000/x",
            ),
            ("MLFLOW_TRACKING_TOKEN", "tok-value-123"),
            ("WANDB_API_KEY", "key-value-456"),
        ]));
        assert!(
            r.detail
                .contains("MLflow → https://***@mlflow.example:5000/x, MLFLOW_TRACKING_TOKEN set"),
            "{}",
            r.detail
        );
        assert!(r.detail.contains("W&B online (WANDB_API_KEY set)"));
        for secret in ["s3cret-pw", "tok-value-123", "key-value-456", "me:"] {
            assert!(!r.detail.contains(secret), "{}", r.detail);
        }
        let r = trackers_row(env(&[("WANDB_MODE", "Disabled"), ("WANDB_API_KEY", "k")]));
        assert!(
            r.detail.contains("W&B disabled (WANDB_MODE, key set)"),
            "{}",
            r.detail
        );
        assert_eq!(redact_userinfo("http://h:1/a@b"), "http://h:1/a@b");
        assert_eq!(redact_userinfo("file:///tmp/x"), "file:///tmp/x");
    }

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_status(5_000_000_000), Status::Fail);
        assert_eq!(disk_status(20_000_000_000), Status::Warn);
        assert_eq!(disk_status(80_000_000_000), Status::Ok);
    }
}

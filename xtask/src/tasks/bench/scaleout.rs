//! The scale-out rows: pushing the dev image to a Distribution registry on 127.0.0.1 (Debian's
//! `docker-registry`, started here), cold and warm (layers already there; target ≤ 5 s); a
//! first run's pull from it into a second, empty engine (a dockerd of its own, started here)
//! next to a cold build of the same lock; and a 2-node `multinode` rehearsal's steps/s against
//! 2 processes in one container (ratio ≥ 0.8).

use super::measure::Bench;
use super::report::{Row, Target};
use crate::error::{fail, Result};
use crate::exec::Proc;

const WARMUP: u64 = 10;

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

pub fn push(b: &Bench) -> Result<Vec<Row>> {
    let mut cold = Row::new("push-cold", "push to a loopback registry, empty", "s");
    let mut warm = Row::new("push-warm", "push again, layers already there", "s");
    warm.target = Some(Target::AtMost(5.0));
    let mut pull = Row::new(
        "pull-cold",
        "first run: pull into an engine without any layer",
        "s",
    );
    pull.peer_name = "cold image build";
    if which::which("docker-registry").is_err() {
        let why =
            "not measured: docker-registry is not installed (apt-get install docker-registry)";
        return Ok(vec![
            cold.unavailable(why),
            warm.unavailable(why),
            pull.unavailable(why),
        ]);
    }
    let dir = b.ctx.root.join("target/bench/registry");
    let _ = b.ctx.exec.remove_dir_all(&dir);
    b.ctx.exec.create_dir_all(&dir)?;
    let port = free_port()?;
    let cfg = dir.join("config.yml");
    b.ctx.exec.write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("data").display()
        ),
    )?;
    let _server = b.ctx.exec.background(Proc::change(
        b.ctx.sh.cmd("docker-registry").arg("serve").arg(&cfg),
    ))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(fail(format!(
                "bench: the registry did not listen on 127.0.0.1:{port}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let reg = format!("127.0.0.1:{port}/bench");
    b.ctx.info(format!(
        "bench: push {} to {reg} (cold, then warm)",
        b.ctx.image()
    ));
    let push = |what: &str| -> Result<f64> {
        let p = b.xtask(&["--image", b.ctx.image(), "-q", "push", "--registry", &reg]);
        Ok(b.time_ok(p, what)?.0)
    };
    cold.samples.push(push("cold push")?);
    for _ in 0..b.runs {
        warm.samples.push(push("warm push")?);
    }
    let note = "the whole `cargo xtask push --registry 127.0.0.1:PORT/bench`: tags by lock, revision and latest, per-arch tags, manifest lists";
    cold.note = format!("{note}; every layer uploaded once");
    warm.note = format!("{note}; the registry answers that every layer exists");
    if b.wanted("pull-cold") {
        pull = match pull_cold(b, &reg) {
            Ok(row) => row,
            Err(e) => pull.unavailable(format!("not measured: {e}")),
        };
    }
    let _ = b.ctx.exec.remove_dir_all(&dir);
    Ok(vec![cold, warm, pull])
}

/// `cargo xtask pull` from the loopback registry into a dockerd of its own with an empty data
/// root (nothing of the image present: what a first run on a new machine meets), next to a
/// cold `image` build of the same lock on the bench's engine.
fn pull_cold(b: &Bench, reg: &str) -> Result<Row> {
    let mut row = Row::new(
        "pull-cold",
        "first run: pull into an engine without any layer",
        "s",
    );
    row.peer_name = "cold image build";
    // a short folder: the engine's sockets live under it (108-byte limit)
    let dir = std::env::temp_dir().join(format!("lexalign-bench-engine-{}", std::process::id()));
    let _ = b.ctx.exec.remove_dir_all(&dir);
    b.ctx.exec.create_dir_all(&dir)?;
    let sock = dir.join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let daemon = b.ctx.exec.background(Proc::change(
        b.ctx
            .sh
            .cmd("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            // the default bridge (docker0, shared with the first engine; it starts no container):
            // `--bridge=none` would make dockerd delete docker0 under the first engine
            .args(["-H", &host, "--iptables=false", "--ip-masq=false"])
            .args(["--log-level", "error"]),
    ))?;
    let up = || {
        b.ctx
            .capture(Proc::query(
                b.ctx
                    .sh
                    .cmd(&b.engine.program)
                    .args(["-H", &host, "version"]),
            ))
            .is_ok_and(|c| c.ok())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !up() {
        if std::time::Instant::now() > deadline {
            drop(daemon);
            let _ = b.ctx.exec.remove_dir_all(&dir);
            return Err(fail(
                "the second dockerd did not start within 30 s (root is needed)",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    b.ctx
        .info(format!("bench: pull from {reg} into an empty engine"));
    let pulled = b.time_ok(
        b.xtask(&["-q", "pull", "--registry", reg])
            .env("DOCKER_HOST", &host),
        "pull into an empty engine",
    );
    // SIGTERM, so that dockerd stops its containerd and unmounts; then the guard reaps it
    if let Ok(pid) = std::fs::read_to_string(dir.join("docker.pid")) {
        let _ = b.ctx.exec.capture_cleanup(Proc::change(
            b.ctx.sh.cmd("kill").args(["-TERM", pid.trim()]),
        ));
        let stop = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while up() && std::time::Instant::now() < stop {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
    drop(daemon);
    let _ = b.ctx.exec.remove_dir_all(&dir);
    row.samples.push(pulled?.0);
    b.ctx
        .info("bench: cold build of the same lock (build cache emptied), the pull's peer");
    row.peer.push(super::builds::cold_image(b)?);
    let _ = b.ctx.capture(crate::engine::cmd::untag(
        &b.engine,
        &b.ctx.sh,
        "lexalign-bench:cold",
    ));
    row.note = "`cargo xtask pull` (lock tag, label and platform checks, tag as lexalign-dev:latest) from the registry on 127.0.0.1 into a second dockerd with an empty data root; the peer: `image --no-cache` after `docker builder prune -af` (PyPI and apt from this machine's mirrors); ratio < 1: the pull saves that share".into();
    Ok(row)
}

/// Steps per second after the first WARMUP steps, from metrics.jsonl's step times.
fn steps_per_s(metrics: &str) -> Option<f64> {
    let mut pts: Vec<(u64, f64)> = Vec::new();
    for l in metrics.lines() {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        if v.get("loss").is_some() {
            pts.push((v["step"].as_u64()?, v["time"].as_f64()?));
        }
    }
    let after: Vec<_> = pts.into_iter().filter(|(s, _)| *s > WARMUP).collect();
    let ((s0, t0), (s1, t1)) = (*after.first()?, *after.last()?);
    (t1 > t0).then(|| (s1 - s0) as f64 / (t1 - t0))
}

pub fn multinode(b: &Bench) -> Result<Vec<Row>> {
    let mut row = Row::new("multinode", "2-node rehearsal, LoRA SFT steps/s", "steps/s");
    row.target = Some(Target::RatioAtLeast(0.8));
    row.peer_name = "2 processes in one container";
    let py = b.ctx.root.join("target/bench/multinode");
    let _ = b.ctx.exec.remove_dir_all(&py);
    super::measure::copy_dir(&b.ctx.exec, &b.ctx.python_dir, &py)?;
    let pyd = py.display().to_string();
    let img = b.ctx.image();
    b.time_ok(
        b.xtask(&["--image", img, "--python-dir", &pyd, "run", "--", "python", "-c",
            "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from tiny import build_tiny_model, sft_rows, write_jsonl; build_tiny_model(Path('tiny')); write_jsonl(Path('bench.jsonl'), sft_rows(512))"]),
        "tiny model",
    )?;
    let steps = 60;
    for i in 0..b.runs.min(2) {
        for (name, multi) in [("mn", true), ("sp", false)] {
            let out = format!("outputs/{name}{i}");
            b.ctx.exec.write(
                py.join(format!("{name}{i}.yaml")),
                format!("model: tiny\ndataset: {{path: bench.jsonl}}\noutput_dir: {out}\ntraining: {{max_steps: {steps}, batch_size: 4, max_length: 64, logging_steps: 1, save_steps: 1000, seed: 7}}\n"),
            )?;
            let cfg = format!("{name}{i}.yaml");
            let args: Vec<&str> = if multi {
                vec![
                    "--image",
                    img,
                    "--python-dir",
                    &pyd,
                    "-q",
                    "multinode",
                    "--nodes",
                    "2",
                    "--",
                    "finetune.py",
                    "--config",
                    &cfg,
                    "-q",
                ]
            } else {
                vec![
                    "--image",
                    img,
                    "--python-dir",
                    &pyd,
                    "-q",
                    "run",
                    "--",
                    "python",
                    "-m",
                    "lexalign.launch",
                    "--nproc-per-node",
                    "2",
                    "finetune.py",
                    "--config",
                    &cfg,
                    "-q",
                ]
            };
            b.time_ok(
                b.xtask(&args),
                if multi {
                    "2-node rehearsal"
                } else {
                    "2-process run"
                },
            )?;
            let m = std::fs::read_to_string(py.join(&out).join("metrics.jsonl"))?;
            let v = steps_per_s(&m).ok_or_else(|| fail("bench: no step times in metrics.jsonl"))?;
            if multi {
                row.samples.push(v);
            } else {
                row.peer.push(v);
            }
        }
    }
    row.note = format!("tiny GPT-2, CPU fp32 over gloo on 127.0.0.1, {steps} steps (first {WARMUP} skipped); nodes are containers on the host network");
    let _ = b.ctx.exec.remove_dir_all(&py);
    Ok(vec![row])
}

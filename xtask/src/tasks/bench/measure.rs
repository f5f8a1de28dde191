//! Measuring the bench groups: each function runs its commands through the execution layer,
//! times them, and returns report rows (a peer or floor measured in the same run where one
//! exists). Rows whose prerequisites are missing say "not measured: <the fix>".
//! Over 400 lines: one function per bench group, each a short sequence sharing the `Bench`
//! helpers above them; rows.rs registers them.

use super::report::{fmt, median, Row, Target};
use super::rows::wanted;
use crate::ctx::Ctx;
use crate::engine::{cmd, Engine};
use crate::error::{fail, Result};
use crate::exec::{Captured, Proc};
use crate::policy;
use crate::util::human_bytes;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Bench<'a> {
    pub ctx: &'a Ctx,
    pub engine: Engine,
    /// This xtask binary (timed as users run it).
    pub exe: PathBuf,
    /// A scratch copy of what the image needs, for edits that must not touch the checkout.
    pub tree: PathBuf,
    pub runs: usize,
    pub only: Vec<String>,
}

impl Bench<'_> {
    /// Run and time a command.
    pub fn time(&self, p: Proc) -> Result<(f64, Captured)> {
        let t = Instant::now();
        let out = self.ctx.capture(p)?;
        Ok((t.elapsed().as_secs_f64(), out))
    }

    /// Time a command that must succeed.
    pub fn time_ok(&self, p: Proc, what: &str) -> Result<(f64, Captured)> {
        let (t, out) = self.time(p)?;
        if !out.ok() {
            let last = out
                .stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string();
            return Err(fail(format!("bench: {what} failed: {last}")));
        }
        Ok((t, out))
    }

    /// Write back every dirty page (`sync`) before a timed run, so that it does not pay for
    /// the flush of the run before it (a cold build and its floor each write ~10 GB).
    pub fn settle(&self) {
        let _ = self.ctx.capture(Proc::change(self.ctx.sh.cmd("sync")));
    }

    pub fn xtask(&self, args: &[&str]) -> Proc {
        Proc::change(self.ctx.sh.cmd(&self.exe).args(args))
            .env("LEXALIGN_DOCKER", &self.engine.program)
    }

    pub(super) fn tree_image(&self, tag: &str) -> Proc {
        self.xtask(&["--image", tag, "image"])
            .env("LEXALIGN_ROOT", &self.tree)
    }

    pub(super) fn cargo(&self) -> String {
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
    }

    pub(super) fn wanted(&self, id: &str) -> bool {
        wanted(&self.only, id)
    }

    /// The last stdout line of a script run in the dev container (the Python benchmarks print
    /// one JSON object).
    pub(super) fn dev_json(&self, script: &[&str]) -> Result<serde_json::Value> {
        let mut args = vec!["--image", self.ctx.image(), "run", "--"];
        args.extend_from_slice(script);
        let (_, out) = self.time_ok(self.xtask(&args), &script.join(" "))?;
        let last = out.stdout.lines().last().unwrap_or("").to_string();
        serde_json::from_str(&last)
            .map_err(|e| fail(format!("bench: {}: not JSON ({e})", script.join(" "))))
    }

    pub(super) fn prepare_tree(&self) -> Result<()> {
        let _ = self.ctx.exec.remove_dir_all(&self.tree);
        for d in ["docker", "python"] {
            copy_dir(&self.ctx.exec, &self.ctx.root.join(d), &self.tree.join(d))?;
        }
        self.ctx.exec.copy(
            self.ctx.root.join(".dockerignore"),
            self.tree.join(".dockerignore"),
        )?;
        Ok(())
    }

    /// `run` of a command in `image`, built by the typed builder. HF_TOKEN is set (to a dummy,
    /// so the entrypoint does not warn) by name, its value only in the process environment.
    pub(super) fn run_in_image(&self, image: &str, command: &[&str]) -> Proc {
        let spec = cmd::RunSpec {
            image: image.to_string(),
            cmd: command.iter().map(|s| s.to_string()).collect(),
            env_names: vec!["HF_TOKEN".into()],
            ..Default::default()
        };
        cmd::run(&self.engine, &self.ctx.sh, &spec).env("HF_TOKEN", "x")
    }
}

pub(super) fn numbers(v: &serde_json::Value, key: &str) -> Vec<f64> {
    v.get(key)
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default()
}

pub(super) fn copy_dir(exec: &crate::exec::Exec, from: &Path, to: &Path) -> Result<()> {
    exec.create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_string_lossy();
        if matches!(
            n.as_ref(),
            "__pycache__" | ".pytest_cache" | ".ruff_cache" | "models" | "outputs"
        ) || n.ends_with(".egg-info")
        {
            continue;
        }
        if e.file_type()?.is_dir() {
            copy_dir(exec, &e.path(), &to.join(&name))?;
        } else {
            exec.copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Container start, and what the xtask (and cargo) add to it.
pub fn startup(b: &Bench) -> Result<Vec<Row>> {
    let image = b.ctx.image().to_string();
    let mut direct = Row::new("true-direct", "`true` on the host", "s");
    let mut bare = Row::new("container-start", "docker run --rm IMAGE true", "s");
    bare.chart = true;
    bare.peer_name = "true on the host";
    let mut xt = Row::new("xtask-run", "xtask run -- true", "s");
    xt.chart = true;
    xt.peer_name = "docker run --rm IMAGE true";
    let mut cargo = Row::new("cargo-xtask-run", "cargo xtask run -- true", "s");
    cargo.chart = true;
    let mut over = Row::new(
        "xtask-overhead",
        "xtask overhead over the bare engine call",
        "ms",
    );
    over.target = Some(Target::AtMost(20.0));
    let mut cargo_over = Row::new(
        "cargo-xtask-overhead",
        "cargo xtask overhead over the bare engine call",
        "ms",
    );
    cargo_over.target = Some(Target::AtMost(100.0));
    let sh = &b.ctx.sh;
    for _ in 0..b.runs {
        direct
            .samples
            .push(b.time_ok(Proc::change(sh.cmd("true")), "true")?.0);
        bare.samples.push(
            b.time_ok(b.run_in_image(&image, &["true"]), "docker run true")?
                .0,
        );
        xt.samples.push(
            b.time_ok(
                b.xtask(&["--image", &image, "run", "--", "true"]),
                "xtask run true",
            )?
            .0,
        );
        let c = Proc::change(
            sh.cmd(b.cargo())
                .args(["xtask", "--image", &image, "run", "--", "true"]),
        )
        .current_dir(&b.ctx.root)
        .env("LEXALIGN_DOCKER", &b.engine.program);
        cargo.samples.push(b.time_ok(c, "cargo xtask run true")?.0);
    }
    bare.peer = direct.samples.clone();
    xt.peer = bare.samples.clone();
    let pair = |a: &[f64], b: &[f64]| -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| (x - y) * 1000.0).collect()
    };
    over.samples = pair(&xt.samples, &bare.samples);
    over.note =
        "xtask binary: finds the engine, pings the daemon and asks the image's identity on its socket (one request each), reads the git revision, adds --init, mounts, user, labels"
            .into();
    cargo_over.samples = pair(&cargo.samples, &bare.samples);
    cargo_over.note = "adds cargo's freshness check of the xtask binary".into();
    Ok([bare, direct, xt, cargo, over, cargo_over]
        .into_iter()
        .filter(|r| b.wanted(r.id))
        .collect())
}

pub fn cli_help(b: &Bench) -> Result<Vec<Row>> {
    let image = b.ctx.image().to_string();
    let mut rows = Vec::new();
    for cli in crate::policy::CLIS {
        let want = format!("help-{cli}");
        let Some(id) = super::rows::Group::CliHelp
            .ids()
            .iter()
            .copied()
            .find(|i| *i == want)
        else {
            return Err(crate::error::fail(format!(
                "bench: no row id for {cli}.py --help"
            )));
        };
        if !b.wanted(id) {
            continue;
        }
        let mut row = Row::new(id, id, "s");
        row.target = Some(Target::AtMost(1.0));
        row.chart = true;
        let script = format!("{cli}.py");
        for _ in 0..b.runs {
            let p = b.run_in_image(&image, &["python", &script, "--help"]);
            row.samples
                .push(b.time_ok(p, &format!("{script} --help"))?.0);
        }
        row.note = format!("`python {script} --help` in the image, including the container start");
        rows.push(row);
    }
    Ok(rows)
}

pub fn image_size(b: &Bench, extra: &mut String) -> Result<Vec<Row>> {
    let image = b.ctx.image().to_string();
    let sh = &b.ctx.sh;
    let mut row = Row::new("image-size", "image size", "GB");
    row.target = Some(Target::RatioAtMost(1.10));
    row.peer_name = "base + venv";
    let size = |r: &str| -> u64 {
        b.ctx
            .capture(cmd::image_inspect(&b.engine, sh, "{{.Size}}", r))
            .ok()
            .and_then(|c| c.answer())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let img = size(&image);
    let base_ref = if b.ctx.image_id(policy::SLIM_BASE).is_some() {
        policy::SLIM_BASE
    } else {
        policy::DEBIAN_BASE
    };
    let base = size(base_ref);
    let (_, o) = b.time_ok(
        b.run_in_image(&image, &["du", "-sb", "/opt/venv"]),
        "du /opt/venv",
    )?;
    let venv: u64 = o
        .stdout
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    row.samples.push(img as f64 / 1e9);
    row.peer.push((base + venv) as f64 / 1e9);
    row.note = format!(
        "image {} vs {base_ref} {} + /opt/venv {}",
        human_bytes(img),
        human_bytes(base),
        human_bytes(venv)
    );
    let hist = b.ctx.capture(cmd::history(
        &b.engine,
        sh,
        "{{.Size}}\t{{.CreatedBy}}",
        &image,
    ))?;
    let mut layers: Vec<(u64, String)> = hist
        .stdout
        .lines()
        .filter_map(|l| {
            let (s, c) = l.split_once('\t')?;
            Some((s.parse().ok()?, c.chars().take(110).collect()))
        })
        .collect();
    layers.sort_by_key(|l| std::cmp::Reverse(l.0));
    extra.push_str("\n## Five largest layers\n\n| size | created by |\n|---|---|\n");
    for (s, c) in layers.iter().take(5) {
        extra.push_str(&format!(
            "| {} | `{}` |\n",
            human_bytes(*s),
            c.replace('|', "\\|").replace('`', "'")
        ));
    }
    Ok(vec![row])
}

/// The xtask's direct dependencies, read from xtask/Cargo.toml (the budget lives there).
fn xtask_dependencies(root: &Path) -> String {
    std::fs::read_to_string(root.join("xtask/Cargo.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("dependencies")?
                .as_table()
                .map(|d| d.keys().cloned().collect::<Vec<_>>())
        })
        .map(|k| k.join(", "))
        .unwrap_or_default()
}

pub fn xtask_compile(b: &Bench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let sh = &b.ctx.sh;
    if b.wanted("xtask-compile") {
        let mut row = Row::new("xtask-compile", "cargo build -p xtask from clean", "s");
        row.target = Some(Target::AtMost(60.0));
        let dir = b.ctx.root.join("target/bench/xtask-build");
        for _ in 0..b.runs.min(2) {
            let _ = b.ctx.exec.remove_dir_all(&dir);
            let p =
                Proc::change(
                    sh.cmd(b.cargo())
                        .args(["build", "-q", "-p", "xtask", "--offline"]),
                )
                .current_dir(&b.ctx.root)
                .env("CARGO_TARGET_DIR", &dir);
            row.samples.push(b.time_ok(p, "cargo build -p xtask")?.0);
        }
        let _ = b.ctx.exec.remove_dir_all(&dir);
        row.note = format!("dependencies: {}", xtask_dependencies(&b.ctx.root));
        rows.push(row);
    }
    if b.wanted("xtask-help") {
        let mut help = Row::new("xtask-help", "warm cargo xtask --help", "s");
        for _ in 0..b.runs {
            let p =
                Proc::change(sh.cmd(b.cargo()).args(["xtask", "--help"])).current_dir(&b.ctx.root);
            help.samples.push(b.time_ok(p, "cargo xtask --help")?.0);
        }
        rows.push(help);
    }
    Ok(rows)
}

pub fn train_overhead(b: &Bench) -> Result<Vec<Row>> {
    b.ctx
        .info("bench: training overhead (finetune CLI vs plain trl, in the container)");
    let mut row = Row::new("train-overhead", "finetune CLI steps/s", "steps/s");
    row.target = Some(Target::RatioAtLeast(0.95));
    row.peer_name = "plain trl script";
    let runs = b.runs.min(3).to_string();
    match b.dev_json(&["python", "benchmarks/train_bench.py", "--runs", &runs]) {
        Ok(v) => {
            row.samples = numbers(&v, "cli_steps_s");
            row.peer = numbers(&v, "plain_steps_s");
            let rss = median(&numbers(&v, "cli_peak_rss_mb"));
            let prss = median(&numbers(&v, "plain_peak_rss_mb"));
            row.note = format!(
                "tiny GPT-2, CPU fp32, 60 steps, first 10 skipped; peak RSS CLI {} MB, plain {} MB",
                fmt(rss),
                fmt(prss)
            );
        }
        Err(e) => row = row.unavailable(format!("not measured: {e}")),
    }
    Ok(vec![row])
}

pub fn packing(b: &Bench) -> Result<Vec<Row>> {
    b.ctx
        .info("bench: SFT packing vs padded batches (finetune CLI, in the container)");
    let mut row = Row::new("packing", "SFT non-padding tokens/s, packed", "tokens/s");
    row.peer_name = "padded batches";
    let runs = b.runs.min(3).to_string();
    match b.dev_json(&["python", "benchmarks/packing_bench.py", "--runs", &runs]) {
        Ok(v) => {
            row.samples = numbers(&v, "packed_tok_s");
            row.peer = numbers(&v, "padded_tok_s");
            row.note = "informational: tiny GPT-2, CPU fp32, 512 rows of 4-120 words, batch 8, max_length 256, 40 steps (first 10 skipped); \
                        packed batches are one flattened sequence with a block-diagonal mask (SDPA), so attention cost grows with the whole batch on CPU"
                .into();
        }
        Err(e) => row = row.unavailable(format!("not measured: {e}")),
    }
    Ok(vec![row])
}

pub fn preview(b: &Bench) -> Result<Vec<Row>> {
    b.ctx
        .info("bench: preview of 1,000 chat rows (python -m lexalign preview, in the container)");
    let mut row = Row::new("preview-1k", "preview, 1,000 chat rows", "s");
    row.peer_name = "apply_chat_template alone";
    row.target = Some(Target::AtMost(10.0));
    let runs = b.runs.min(3).to_string();
    match b.dev_json(&["python", "benchmarks/preview_bench.py", "--runs", &runs]) {
        Ok(v) => {
            row.samples = numbers(&v, "cli_s");
            row.peer = numbers(&v, "template_tokenize_s");
            row.note = "the whole CLI run (start-up, data, every row's masks); tiny ChatML tokenizer \
                        with a default system prompt, three turns per row; peer: tokenizing the same \
                        rows through the template without masks, in-process"
                .into();
        }
        Err(e) => row = row.unavailable(format!("not measured: {e}")),
    }
    Ok(vec![row])
}

/// ZeRO-3 against DDP, two CPU processes: the per-rank peak RSS the model accounts for (a
/// ≥ 1 GB fp32 Llama minus a tiny one of the same family), and steps/s.
pub fn sharding(b: &Bench) -> Result<Vec<Row>> {
    b.ctx.info(
        "bench: ZeRO-3 vs DDP, per-rank memory and steps/s (2 CPU processes, in the container)",
    );
    let mut mem = Row::new(
        "sharding-memory",
        "per-rank memory the model accounts for, ZeRO-3",
        "MB",
    );
    mem.peer_name = "DDP";
    mem.target = Some(Target::RatioAtMost(0.7));
    let mut steps = Row::new("sharding-steps", "steps/s, ZeRO-3, 2 CPU ranks", "steps/s");
    steps.peer_name = "DDP";
    match b.dev_json(&["python", "benchmarks/sharding_bench.py", "--runs", "1"]) {
        Ok(v) => {
            mem.samples = numbers(&v, "zero3_model_share_mb");
            mem.peer = numbers(&v, "ddp_model_share_mb");
            let model_mb = v.get("model_mb").and_then(|m| m.as_f64()).unwrap_or(0.0);
            mem.note = format!(
                "peak RSS of the largest rank with a random-init Llama of {model_mb:.0} MB fp32 (4 layers, hidden 2048) minus the same run with a tiny Llama;                  python -m lexalign.launch --nproc-per-node 2, LoRA r=8, 4 steps, batch 1, 32 tokens"
            );
            steps.samples = numbers(&v, "zero3_steps_per_s");
            steps.peer = numbers(&v, "ddp_steps_per_s");
            steps.note = "the same runs; mean of steps 2-4 (the first warms up)".into();
        }
        Err(e) => {
            mem = mem.unavailable(format!("not measured: {e}"));
            steps = steps.unavailable(format!("not measured: {e}"));
        }
    }
    Ok(vec![mem, steps])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_the_python_scripts() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"steps": 60, "cli_steps_s": [1.5, 2.5], "plain_steps_s": [2.0]}"#,
        )
        .unwrap();
        assert_eq!(numbers(&v, "cli_steps_s"), vec![1.5, 2.5]);
        assert!(numbers(&v, "missing").is_empty());
    }

    #[test]
    fn dependency_note_comes_from_the_manifest() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let deps = xtask_dependencies(root);
        assert!(
            deps.contains("clap") && deps.contains("serde_json") && deps.contains("xshell"),
            "{deps}"
        );
    }
}

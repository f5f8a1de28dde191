//! `cargo xtask bench`: measure the dev loop and write `target/bench/results.json`,
//! `docs/benchmarks.md` and `docs/benchmarks.svg`. Medians over several runs, and a ratio to a
//! peer or floor measured in the same run wherever one exists. Rows whose prerequisites are
//! missing are reported as "not available", never faked.

use crate::cli::BenchArgs;
use crate::ctx::{self, Ctx};
use crate::util::{atomic_write, human_bytes};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How a row is judged.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// median (in the row's unit) at most this
    AtMost(f64),
    /// ratio at most this
    RatioAtMost(f64),
    /// ratio at least this
    RatioAtLeast(f64),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub id: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    /// The peer/floor samples, for ratio rows.
    pub peer: Vec<f64>,
    pub peer_name: &'static str,
    pub target: Option<Target>,
    pub note: String,
    pub available: bool,
    /// Include in the SVG chart (rebuild and start-up rows, seconds).
    pub chart: bool,
}

impl Row {
    fn new(id: &'static str, name: &'static str, unit: &'static str) -> Row {
        Row {
            id,
            name,
            unit,
            samples: vec![],
            peer: vec![],
            peer_name: "",
            target: None,
            note: String::new(),
            available: true,
            chart: false,
        }
    }
    fn unavailable(mut self, why: impl Into<String>) -> Row {
        self.available = false;
        self.note = why.into();
        self
    }
    pub fn median(&self) -> Option<f64> {
        median(&self.samples)
    }
    pub fn ratio(&self) -> Option<f64> {
        Some(self.median()? / median(&self.peer)?)
    }
    /// None: no target (or not available).
    pub fn pass(&self) -> Option<bool> {
        if !self.available {
            return None;
        }
        match self.target? {
            Target::AtMost(v) => Some(self.median()? <= v),
            Target::RatioAtMost(v) => Some(self.ratio()? <= v),
            Target::RatioAtLeast(v) => Some(self.ratio()? >= v),
        }
    }
    fn target_text(&self) -> String {
        match self.target {
            Some(Target::AtMost(v)) => format!("≤ {v} {}", self.unit),
            Some(Target::RatioAtMost(v)) => format!("ratio ≤ {v}"),
            Some(Target::RatioAtLeast(v)) => format!("ratio ≥ {v}"),
            None => "-".into(),
        }
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON (no serde_json in the budget: a tiny writer is enough for this file)
// ---------------------------------------------------------------------------------------------

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

fn json_arr(v: &[f64]) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| json_num(Some(*x)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn results_json(rows: &[Row], meta: &[(&str, String)]) -> String {
    let mut o = String::from("{\n");
    for (k, v) in meta {
        o.push_str(&format!("  {}: {},\n", json_str(k), json_str(v)));
    }
    o.push_str("  \"rows\": [\n");
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let s = &r.samples;
            format!(
                "    {{\"id\": {}, \"name\": {}, \"unit\": {}, \"available\": {}, \"median\": {}, \"min\": {}, \"max\": {}, \"runs\": {}, \"samples\": {}, \"peer\": {}, \"peer_samples\": {}, \"ratio\": {}, \"target\": {}, \"pass\": {}, \"note\": {}}}",
                json_str(r.id),
                json_str(r.name),
                json_str(r.unit),
                r.available,
                json_num(r.median()),
                json_num(s.iter().cloned().reduce(f64::min)),
                json_num(s.iter().cloned().reduce(f64::max)),
                s.len(),
                json_arr(s),
                json_str(r.peer_name),
                json_arr(&r.peer),
                json_num(r.ratio()),
                json_str(&r.target_text()),
                r.pass().map_or("null".to_string(), |p| p.to_string()),
                json_str(&r.note),
            )
        })
        .collect();
    o.push_str(&items.join(",\n"));
    o.push_str("\n  ]\n}\n");
    o
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<20} {:>9} {:>9} {:>9} {:>4} {:>8} {:<18} {}\n",
        "row", "median", "min", "max", "runs", "ratio", "target", "result"
    );
    for r in rows {
        let result = match (r.available, r.pass()) {
            (false, _) => "not available".to_string(),
            (_, Some(true)) => "pass".into(),
            (_, Some(false)) => "MISS".into(),
            (_, None) => "-".into(),
        };
        let min = r.samples.iter().cloned().reduce(f64::min);
        let max = r.samples.iter().cloned().reduce(f64::max);
        s.push_str(&format!(
            "{:<20} {:>9} {:>9} {:>9} {:>4} {:>8} {:<18} {}\n",
            r.id,
            fmt(r.median()),
            fmt(min),
            fmt(max),
            r.samples.len(),
            fmt(r.ratio()),
            r.target_text(),
            result
        ));
    }
    s
}

pub fn svg(rows: &[Row]) -> String {
    let chart: Vec<&Row> = rows
        .iter()
        .filter(|r| r.chart && r.available && r.median().is_some())
        .collect();
    let max = chart
        .iter()
        .map(|r| {
            let t = match r.target {
                Some(Target::AtMost(v)) => v,
                _ => 0.0,
            };
            r.median().unwrap().max(t)
        })
        .fold(0.1f64, f64::max);
    let (left, width, bar_h, gap) = (230.0, 520.0, 22.0, 10.0);
    let height = 50.0 + chart.len() as f64 * (bar_h + gap);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Rebuild and start-up times (median seconds; | = target)</text>\n",
        left + width + 90.0
    );
    for (i, r) in chart.iter().enumerate() {
        let y = 35.0 + i as f64 * (bar_h + gap);
        let m = r.median().unwrap();
        let w = (m / max * width).max(1.0);
        let color = match r.pass() {
            Some(true) => "#3a8d4f",
            Some(false) => "#c0392b",
            None => "#6c7a89",
        };
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{color}\"/>\n<text x=\"{:.1}\" y=\"{}\">{:.2} s</text>\n",
            left - 8.0,
            y + 15.0,
            r.name,
            left + w + 6.0,
            y + 15.0,
            m
        ));
        if let Some(Target::AtMost(t)) = r.target {
            let x = left + t / max * width;
            s.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\" stroke-width=\"2\"/>\n",
                y - 3.0,
                y + bar_h + 3.0
            ));
        }
    }
    s.push_str("</svg>\n");
    s
}

pub fn markdown(rows: &[Row], meta: &[(&str, String)], extra: &str) -> String {
    let mut s = String::from(
        "# Benchmarks\n\nGenerated by `cargo xtask bench` (do not edit by hand; rerun it). ",
    );
    s.push_str("Medians over the runs shown; ratios are measured against a peer or floor in the same run.\n\n");
    for (k, v) in meta {
        s.push_str(&format!("- **{k}**: {v}\n"));
    }
    s.push_str("\n![rebuild and start-up times](benchmarks.svg)\n\n");
    s.push_str("| # | row | median | min | max | runs | peer / floor | ratio | target | result | notes |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let result = match (r.available, r.pass()) {
            (false, _) => "not available",
            (_, Some(true)) => "✅ pass",
            (_, Some(false)) => "❌ miss",
            (_, None) => "-",
        };
        let min = r.samples.iter().cloned().reduce(f64::min);
        let max = r.samples.iter().cloned().reduce(f64::max);
        let peer = if r.peer.is_empty() {
            "-".to_string()
        } else {
            format!("{}: {}", r.peer_name, fmt(median(&r.peer)))
        };
        s.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.name,
            r.unit,
            fmt(r.median()),
            fmt(min),
            fmt(max),
            r.samples.len(),
            peer,
            fmt(r.ratio()),
            r.target_text(),
            result,
            r.note.replace('|', "\\|")
        ));
    }
    s.push_str(extra);
    s
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

struct Bench<'a> {
    ctx: &'a Ctx,
    engine: PathBuf,
    exe: PathBuf,
    tree: PathBuf,
}

fn secs_of(mut cmd: Command) -> Result<(f64, std::process::Output)> {
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    Ok((t.elapsed().as_secs_f64(), out))
}

fn ok(out: &std::process::Output, what: &str) -> Result<()> {
    if out.status.success() {
        Ok(())
    } else {
        Err(ctx::fail(format!(
            "bench: {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
        )))
    }
}

impl Bench<'_> {
    fn xtask(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).env("LEXALIGN_DOCKER", &self.engine);
        c
    }
    fn engine(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.engine);
        c.args(args);
        c
    }
    fn tree_image(&self, tag: &str) -> Command {
        let mut c = self.xtask(&["--image", tag, "image"]);
        c.env("LEXALIGN_ROOT", &self.tree);
        c
    }
    /// A copy of what the image needs, for edits that must not touch the checkout.
    fn prepare_tree(&self) -> Result<()> {
        let _ = std::fs::remove_dir_all(&self.tree);
        for d in ["docker", "python"] {
            copy_dir(&self.ctx.root.join(d), &self.tree.join(d))?;
        }
        std::fs::copy(
            self.ctx.root.join(".dockerignore"),
            self.tree.join(".dockerignore"),
        )?;
        Ok(())
    }
    fn dev_json(&self, script: &[&str]) -> Result<String> {
        let mut args = vec!["--image", self.ctx.image(), "run", "--"];
        args.extend_from_slice(script);
        let mut c = self.xtask(&args);
        let (_, out) = secs_of({
            c.stderr(Stdio::piped());
            c
        })?;
        ok(&out, &script.join(" "))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .to_string())
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
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
            copy_dir(&e.path(), &to.join(&name))?;
        } else {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Numbers from a `{"key": [..]}` JSON line printed by the Python benchmark scripts.
pub fn json_numbers(line: &str, key: &str) -> Vec<f64> {
    let Some(i) = line.find(&format!("\"{key}\": [")) else {
        return vec![];
    };
    let rest = &line[i + key.len() + 5..];
    let end = rest.find(']').unwrap_or(0);
    rest[..end]
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

const ROWS: [&str; 10] = [
    "cold-build",
    "warm-rebuild",
    "noop-rebuild",
    "lock-change",
    "container-start",
    "cli-help",
    "image-size",
    "xtask-compile",
    "train-overhead",
    "download",
];

pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    for o in &args.only {
        if !ROWS.iter().any(|r| r == o) && !o.chars().all(|c| c.is_ascii_digit()) {
            return Err(ctx::usage(format!(
                "--only {o}: unknown row; rows: {}",
                ROWS.join(", ")
            )));
        }
    }
    let wanted = |i: usize| -> bool {
        args.only.is_empty()
            || args
                .only
                .iter()
                .any(|o| o == ROWS[i - 1] || o == &i.to_string())
    };
    let engine = ctx.engine_ready()?.program.clone();
    if ctx.g.dry_run {
        println!("bench: would measure rows {}", ROWS.join(", "));
        return Ok(());
    }
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let b = Bench {
        ctx,
        engine,
        exe: std::env::current_exe()?,
        tree: ctx.root.join("target/bench/tree"),
    };
    let image = ctx.image().to_string();
    let mut rows: Vec<Row> = Vec::new();
    let mut extra = String::new();
    let say = |m: &str| ctx.info(format!("bench: {m}"));

    // Make sure the image exists and is current before timing anything against it.
    let (_, out) = secs_of(b.xtask(&["--image", &image, "-q", "image"]))?;
    ok(&out, "cargo xtask image")?;

    if wanted(1) {
        let mut row = Row::new("cold-build", "cold image build", "s");
        row.target = Some(Target::RatioAtMost(1.3));
        row.peer_name = "uv pip sync on the host";
        if args.quick {
            row = row.unavailable("skipped with --quick");
        } else if which::which("uv").is_err() {
            row = row.unavailable("uv is not installed on the host (the floor)");
        } else {
            let cold_runs = runs.min(2);
            for i in 0..cold_runs {
                say(&format!(
                    "cold build {}/{cold_runs} (build cache and cache mounts emptied)",
                    i + 1
                ));
                let (_, o) = secs_of(b.engine(&["builder", "prune", "-af"]))?;
                ok(&o, "docker builder prune")?;
                let (t, o) = secs_of(b.xtask(&[
                    "--image",
                    "lexalign-bench:cold",
                    "-q",
                    "image",
                    "--no-cache",
                ]))?;
                ok(&o, "cold image build")?;
                row.samples.push(t);
                let venv = ctx.root.join("target/bench/floor-venv");
                let cache = ctx.root.join("target/bench/floor-uv-cache");
                let _ = std::fs::remove_dir_all(&venv);
                let _ = std::fs::remove_dir_all(&cache);
                let mut c = Command::new("uv");
                c.args(["venv", "-q", "--python", "3.11"])
                    .arg(&venv)
                    .env("UV_CACHE_DIR", &cache);
                let (t1, o) = secs_of(c)?;
                ok(&o, "uv venv")?;
                let mut c = Command::new("uv");
                c.args([
                    "pip",
                    "sync",
                    "-q",
                    "--require-hashes",
                    "--compile-bytecode",
                    "--python",
                ])
                .arg(venv.join("bin/python"))
                .arg(ctx.root.join("python/pylock.toml"))
                .env("UV_CACHE_DIR", &cache)
                .env("UV_LINK_MODE", "copy");
                let (t2, o) = secs_of(c)?;
                ok(&o, "uv pip sync (floor)")?;
                row.peer.push(t1 + t2);
                let _ = std::fs::remove_dir_all(&cache);
            }
            let _ = b.engine(&["rmi", "-f", "lexalign-bench:cold"]).output();
            row.note = "cold = `docker builder prune -af` then `image --no-cache`; includes apt, uv download+install, bytecode compile and layer export".into();
        }
        rows.push(row);
    }

    if wanted(2) || wanted(3) || wanted(4) {
        b.prepare_tree()?;
        let (_, o) = secs_of(b.tree_image("lexalign-bench:tree"))?;
        ok(&o, "tree image build")?;
    }
    if wanted(2) {
        let mut row = Row::new("warm-rebuild", "rebuild after a .py edit", "s");
        row.target = Some(Target::AtMost(10.0));
        row.chart = true;
        let file = b.tree.join("python/lexalign/__init__.py");
        let mut cached = 0;
        for i in 0..runs {
            let mut text = std::fs::read_to_string(&file)?;
            text.push_str(&format!("# bench edit {i}\n"));
            std::fs::write(&file, text)?;
            let (t, o) = secs_of(b.tree_image("lexalign-bench:tree"))?;
            ok(&o, "warm rebuild")?;
            if String::from_utf8_lossy(&o.stdout).contains("deps:    cached") {
                cached += 1;
            }
            row.samples.push(t);
        }
        row.note = format!("dependency layers reported cached in {cached}/{runs} runs");
        rows.push(row);
    }
    if wanted(3) {
        let mut row = Row::new("noop-rebuild", "no-op rebuild", "s");
        row.target = Some(Target::AtMost(3.0));
        row.chart = true;
        for _ in 0..runs {
            let (t, o) = secs_of(b.tree_image("lexalign-bench:tree"))?;
            ok(&o, "no-op rebuild")?;
            row.samples.push(t);
        }
        rows.push(row);
    }
    if wanted(4) {
        let mut warm = Row::new(
            "lock-change",
            "rebuild after a lock change (uv cache warm)",
            "s",
        );
        warm.target = Some(Target::AtMost(30.0));
        warm.chart = true;
        let mut cold = Row::new(
            "lock-change-nocache",
            "rebuild after a lock change (uv cache emptied)",
            "s",
        );
        cold.chart = true;
        // Two locks that differ in one small package: the current one, and one with `rich` moved.
        let lock = b.tree.join("python/pylock.toml");
        let py = b.tree.join("python/pyproject.toml");
        let lock_a = std::fs::read_to_string(&lock)?;
        let py_a = std::fs::read_to_string(&py)?;
        let alt = if py_a.contains("\"rich==13.9.4\"") {
            "14.0.0"
        } else {
            "13.9.4"
        };
        let py_b = regex_free_replace_pin(&py_a, "rich", alt);
        std::fs::write(&py, &py_b)?;
        let mut c = b.xtask(&["-q", "lock"]);
        c.env("LEXALIGN_ROOT", &b.tree);
        let (_, o) = secs_of(c)?;
        if !o.status.success() {
            warm = warm.unavailable("could not make a second lock (PyPI unreachable?)");
            cold = cold.unavailable("could not make a second lock (PyPI unreachable?)");
            std::fs::write(&py, &py_a)?;
        } else {
            let lock_b = std::fs::read_to_string(&lock)?;
            let mut flip = false;
            let mut n = 0;
            for (row, empty_cache) in [(&mut warm, false), (&mut cold, true)] {
                for _ in 0..runs {
                    flip = !flip;
                    n += 1;
                    // A comment unique to this run: the build cache must not already hold it.
                    let text = format!(
                        "{}# bench run {n} at {}\n",
                        if flip { &lock_b } else { &lock_a },
                        crate::image::now_rfc3339()
                    );
                    std::fs::write(&lock, text)?;
                    if empty_cache {
                        let (_, o) = secs_of(b.engine(&[
                            "builder",
                            "prune",
                            "-f",
                            "--filter",
                            "type=exec.cachemount",
                        ]))?;
                        ok(&o, "emptying the cache mounts")?;
                    }
                    let (t, o) = secs_of(b.tree_image("lexalign-bench:tree"))?;
                    ok(&o, "lock-change rebuild")?;
                    row.samples.push(t);
                }
            }
            warm.note = format!("rich {alt} ⇄ current, each lock new to the build cache; the heavy layer stays cached, the rest layer is reinstalled from the uv cache");
            cold.peer_name = "uv cache warm";
            cold.peer = warm.samples.clone();
            cold.note =
                "the same with the uv cache mount emptied first: what the cache mount saves".into();
            std::fs::write(&lock, &lock_a)?;
            std::fs::write(&py, &py_a)?;
        }
        rows.push(warm);
        rows.push(cold);
    }
    if wanted(5) {
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
        over.target = Some(Target::AtMost(100.0));
        let mut cargo_over = Row::new(
            "cargo-xtask-overhead",
            "cargo xtask overhead over the bare engine call",
            "ms",
        );
        cargo_over.target = Some(Target::AtMost(100.0));
        for _ in 0..runs {
            let (t, _) = secs_of(Command::new("true"))?;
            direct.samples.push(t);
            let (t, o) = secs_of(b.engine(&["run", "--rm", &image, "true"]))?;
            ok(&o, "docker run true")?;
            bare.samples.push(t);
            let (t, o) = secs_of(b.xtask(&["--image", &image, "run", "--", "true"]))?;
            ok(&o, "xtask run true")?;
            xt.samples.push(t);
            let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut c = Command::new(cargo_bin);
            c.args(["xtask", "--image", &image, "run", "--", "true"])
                .current_dir(&ctx.root)
                .env("LEXALIGN_DOCKER", &b.engine);
            let (t, o) = secs_of(c)?;
            ok(&o, "cargo xtask run true")?;
            cargo.samples.push(t);
        }
        bare.peer = direct.samples.clone();
        xt.peer = bare.samples.clone();
        let pair = |a: &[f64], b: &[f64]| -> Vec<f64> {
            a.iter().zip(b).map(|(x, y)| (x - y) * 1000.0).collect()
        };
        over.samples = pair(&xt.samples, &bare.samples);
        over.note =
            "xtask binary: finds the engine, checks the daemon, adds --init, mounts, user, labels"
                .into();
        cargo_over.samples = pair(&cargo.samples, &bare.samples);
        cargo_over.note = "adds cargo's freshness check of the xtask binary".into();
        rows.extend([direct, bare, xt, cargo, over, cargo_over]);
    }
    if wanted(6) {
        for (cli, id) in [
            ("download", "help-download"),
            ("finetune", "help-finetune"),
            ("align", "help-align"),
        ] {
            let mut row = Row::new(id, help_name(cli), "s");
            row.target = Some(Target::AtMost(1.0));
            row.chart = true;
            for _ in 0..runs {
                let (t, o) = secs_of(b.engine(&[
                    "run",
                    "--rm",
                    "-e",
                    "HF_TOKEN=x",
                    &image,
                    "python",
                    &format!("{cli}.py"),
                    "--help",
                ]))?;
                ok(&o, &format!("{cli}.py --help"))?;
                row.samples.push(t);
            }
            row.note = "including the container start".into();
            rows.push(row);
        }
    }
    if wanted(7) {
        let mut row = Row::new("image-size", "image size", "GB");
        row.target = Some(Target::RatioAtMost(1.10));
        row.peer_name = "base + venv";
        let size = |r: &str| -> Result<u64> {
            let (_, o) = secs_of(b.engine(&["image", "inspect", "--format", "{{.Size}}", r]))?;
            ok(&o, "image inspect")?;
            Ok(String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0))
        };
        let img = size(&image)?;
        let (_, o) = secs_of(b.engine(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"org.opencontainers.image.title\"}}",
            &image,
        ]))?;
        let _ = o;
        let base_ref = if crate::image::image_present(ctx, ctx.engine()?, crate::image::SLIM) {
            crate::image::SLIM
        } else {
            crate::base_image::DEFAULT_TAG
        };
        let base = size(base_ref).unwrap_or(0);
        let (_, o) = secs_of(b.engine(&[
            "run",
            "--rm",
            "-e",
            "HF_TOKEN=x",
            &image,
            "du",
            "-sb",
            "/opt/venv",
        ]))?;
        let venv: u64 = String::from_utf8_lossy(&o.stdout)
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
        let (_, o) = secs_of(b.engine(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.Size}}\t{{.CreatedBy}}",
            "--human=false",
            &image,
        ]))?;
        let mut layers: Vec<(u64, String)> = String::from_utf8_lossy(&o.stdout)
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
        rows.push(row);
    }
    if wanted(8) {
        let mut row = Row::new("xtask-compile", "cargo build -p xtask from clean", "s");
        row.target = Some(Target::AtMost(60.0));
        let dir = ctx.root.join("target/bench/xtask-build");
        let compile_runs = runs.min(2);
        for _ in 0..compile_runs {
            let _ = std::fs::remove_dir_all(&dir);
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["build", "-q", "-p", "xtask", "--offline"])
                .current_dir(&ctx.root)
                .env("CARGO_TARGET_DIR", &dir);
            let (t, o) = secs_of(c)?;
            ok(&o, "cargo build -p xtask")?;
            row.samples.push(t);
        }
        let _ = std::fs::remove_dir_all(&dir);
        row.note =
            "dependencies: clap, anyhow, xshell, serde, toml, toml_edit, which, signal-hook".into();
        let mut help = Row::new("xtask-help", "warm cargo xtask --help", "s");
        for _ in 0..runs {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["xtask", "--help"]).current_dir(&ctx.root);
            let (t, o) = secs_of(c)?;
            ok(&o, "cargo xtask --help")?;
            help.samples.push(t);
        }
        rows.push(row);
        rows.push(help);
    }
    if wanted(9) {
        say("training overhead (finetune CLI vs plain trl, in the container)");
        let mut row = Row::new("train-overhead", "finetune CLI steps/s", "steps/s");
        row.target = Some(Target::RatioAtLeast(0.95));
        row.peer_name = "plain trl script";
        match b.dev_json(&[
            "python",
            "benchmarks/train_bench.py",
            "--runs",
            &runs.min(3).to_string(),
        ]) {
            Ok(line) => {
                row.samples = json_numbers(&line, "cli_steps_s");
                row.peer = json_numbers(&line, "plain_steps_s");
                let rss = median(&json_numbers(&line, "cli_peak_rss_mb"));
                let prss = median(&json_numbers(&line, "plain_peak_rss_mb"));
                row.note = format!("tiny GPT-2, CPU fp32, 60 steps, first 10 skipped; peak RSS CLI {} MB, plain {} MB", fmt(rss), fmt(prss));
            }
            Err(e) => row = row.unavailable(format!("{e}")),
        }
        rows.push(row);
    }
    if wanted(10) {
        for (id, name, rate) in [
            ("download", "download CLI throughput (loopback)", "0"),
            (
                "download-link",
                "download CLI throughput (100 MB/s link)",
                "100",
            ),
        ] {
            say(&format!("{name} (CLI vs curl, in the container)"));
            let mut row = Row::new(id, name, "MB/s");
            row.target = Some(Target::RatioAtLeast(0.8));
            row.peer_name = "curl";
            let n = runs.min(3).to_string();
            match b.dev_json(&[
                "python",
                "benchmarks/download_bench.py",
                "--runs",
                &n,
                "--rate-mb-s",
                rate,
            ]) {
                Ok(line) => {
                    row.samples = json_numbers(&line, "cli_mb_s");
                    row.peer = json_numbers(&line, "curl_mb_s");
                    let help = median(&json_numbers(&line, "help_s"));
                    row.note = format!(
                        "200 MB from the local Hub imitation{}; the whole CLI run (start-up, API call, transfer, sha256); download.py --help {} s",
                        if rate == "0" { "" } else { " throttled to 100 MB/s" },
                        fmt(help)
                    );
                }
                Err(e) => row = row.unavailable(format!("{e}")),
            }
            rows.push(row);
        }
    }

    let git = |a: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&ctx.root)
            .args(a)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meta = vec![
        ("date", crate::image::now_rfc3339()),
        ("git_revision", git(&["rev-parse", "HEAD"])),
        ("machine", format!("{cpu}, {cores} cores")),
        ("engine", b.engine.display().to_string()),
        ("runs", runs.to_string()),
    ];
    print!("{}", table(&rows));
    let out_dir = ctx.root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    if !args.only.is_empty() {
        // A partial run must not replace the full report.
        atomic_write(
            &out_dir.join("results-only.json"),
            results_json(&rows, &meta).as_bytes(),
        )?;
        ctx.info("bench: --only: wrote target/bench/results-only.json (docs/benchmarks.md is written by full runs)");
        let _ = std::fs::remove_dir_all(&b.tree);
        return Ok(());
    }
    atomic_write(
        &out_dir.join("results.json"),
        results_json(&rows, &meta).as_bytes(),
    )?;
    let docs = ctx.root.join("docs");
    std::fs::create_dir_all(&docs)?;
    let notes = std::fs::read_to_string(docs.join("benchmarks-notes.md")).unwrap_or_default();
    atomic_write(
        &docs.join("benchmarks.md"),
        markdown(&rows, &meta, &format!("{extra}\n{notes}")).as_bytes(),
    )?;
    atomic_write(&docs.join("benchmarks.svg"), svg(&rows).as_bytes())?;
    ctx.info("bench: wrote target/bench/results.json, docs/benchmarks.md and docs/benchmarks.svg");
    let _ = std::fs::remove_dir_all(&b.tree);
    let _ = b.engine(&["rmi", "-f", "lexalign-bench:tree"]).output();
    Ok(())
}

fn help_name(cli: &str) -> &'static str {
    match cli {
        "download" => "download.py --help in the image",
        "finetune" => "finetune.py --help in the image",
        _ => "align.py --help in the image",
    }
}

/// Replace `"name==X"` by `"name==V"` in a pyproject (the pin is there after `pins`).
fn regex_free_replace_pin(text: &str, name: &str, version: &str) -> String {
    let start = format!("\"{name}==");
    text.lines()
        .map(|l| match l.find(&start) {
            Some(i) => {
                let rest = &l[i + start.len()..];
                let end = rest.find('"').unwrap_or(rest.len());
                format!("{}{start}{version}{}", &l[..i], &rest[end..])
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if text.ends_with('\n') { "\n" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_verdicts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut r = Row::new("x", "x", "s");
        r.samples = vec![2.0, 4.0, 3.0];
        r.target = Some(Target::AtMost(3.0));
        assert_eq!(r.pass(), Some(true));
        r.peer = vec![2.0];
        r.target = Some(Target::RatioAtMost(1.3));
        assert_eq!(r.ratio(), Some(1.5));
        assert_eq!(r.pass(), Some(false));
        let u = Row::new("y", "y", "s").unavailable("no");
        assert_eq!(u.pass(), None);
    }

    #[test]
    fn reports_contain_every_row() {
        let mut a = Row::new("noop-rebuild", "no-op rebuild", "s");
        a.samples = vec![0.5];
        a.target = Some(Target::AtMost(3.0));
        a.chart = true;
        let b = Row::new("download", "download", "MB/s").unavailable("not available: no curl");
        let rows = vec![a, b];
        let t = table(&rows);
        assert!(t.contains("noop-rebuild") && t.contains("pass") && t.contains("not available"));
        let j = results_json(&rows, &[("date", "d".into())]);
        assert!(
            j.contains("\"id\": \"noop-rebuild\"")
                && j.contains("\"pass\": true")
                && j.contains("\"pass\": null")
        );
        let m = markdown(&rows, &[], "");
        assert!(m.contains("| noop-rebuild |") && m.contains("benchmarks.svg"));
        let s = svg(&rows);
        assert!(s.starts_with("<svg") && s.contains("no-op rebuild") && !s.contains(">download<"));
    }

    #[test]
    fn json_numbers_from_python() {
        let line = r#"{"steps": 60, "cli_steps_s": [1.5, 2.5], "plain_steps_s": [2.0]}"#;
        assert_eq!(json_numbers(line, "cli_steps_s"), vec![1.5, 2.5]);
        assert_eq!(json_numbers(line, "missing"), Vec::<f64>::new());
    }

    #[test]
    fn pin_replacement() {
        let t = "deps = [\n  \"rich==15.0.0\",\n  \"richer==1\",\n]\n";
        assert_eq!(
            regex_free_replace_pin(t, "rich", "13.9.4"),
            "deps = [\n  \"rich==13.9.4\",\n  \"richer==1\",\n]\n"
        );
    }
}

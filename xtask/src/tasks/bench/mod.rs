//! `cargo xtask bench`: measure the dev loop. A full run writes `target/bench/results.json`,
//! `docs/benchmarks.md` (with `docs/benchmarks-notes.md` appended) and `docs/benchmarks.svg`;
//! `--quick` and `--only` write `target/bench/results-{quick,only}.json` and leave the committed
//! report alone. Medians over several runs, and a ratio to a peer or floor measured in the same
//! run wherever one exists.
//!
//! rows.rs: the registry (group → printed ids); builds.rs and measure.rs: how each group is
//! measured;
//! report.rs: verdicts and the reports.

mod arm64;
mod builds;
mod download;
pub mod measure;
pub mod report;
pub mod rows;
mod scaleout;

use crate::cli::BenchArgs;
use crate::ctx::Ctx;
use crate::error::{usage, Result};
use crate::git;
use crate::util::now_rfc3339;
use measure::Bench;
use rows::Group;

pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    let groups = rows::select(&args.only).map_err(usage)?;
    if ctx.dry_run() {
        let ids: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.ids().iter().copied())
            .filter(|id| rows::wanted(&args.only, id))
            .collect();
        println!("bench: would measure {}", ids.join(", "));
        return Ok(());
    }
    let engine = ctx.engine_ready()?.clone();
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 5 }).max(1);
    let b = Bench {
        ctx,
        engine,
        exe: std::env::current_exe()?,
        tree: ctx.root.join("target/bench/tree"),
        runs,
        only: args.only.clone(),
    };
    // The image must exist and be current before anything is timed against it.
    b.time_ok(
        b.xtask(&["--image", ctx.image(), "-q", "image"]),
        "cargo xtask image",
    )?;

    let mut extra = String::new();
    let out = measure_groups(&b, groups, args.quick, &mut extra)?;
    let _ = ctx.exec.remove_dir_all(&b.tree);
    let _ = ctx.capture(crate::engine::cmd::rmi(
        &b.engine,
        &ctx.sh,
        "lexalign-bench:tree",
    ));
    write_reports(ctx, args, &out, &meta(ctx, &b), &extra)
}

/// Every selected group's rows, in the registry's order.
fn measure_groups(
    b: &Bench,
    groups: Vec<Group>,
    quick: bool,
    extra: &mut String,
) -> Result<Vec<report::Row>> {
    let mut out = Vec::new();
    for g in groups {
        let rows = match g {
            Group::ColdBuild => builds::cold_build(b, quick)?,
            Group::Rebuilds => builds::rebuilds(b)?,
            Group::LockChange => builds::lock_change(b)?,
            Group::Startup => measure::startup(b)?,
            Group::CliHelp => measure::cli_help(b)?,
            Group::ImageSize => measure::image_size(b, extra)?,
            Group::XtaskCompile => measure::xtask_compile(b)?,
            Group::TrainOverhead => measure::train_overhead(b)?,
            Group::Packing => measure::packing(b)?,
            Group::Preview => measure::preview(b)?,
            Group::Sharding => measure::sharding(b)?,
            Group::Arm64 => arm64::arm64(b, quick)?,
            Group::Push => scaleout::push(b)?,
            Group::Multinode => scaleout::multinode(b)?,
            Group::HfPeer => download::hf_peer(b)?,
            Group::Download => download::download(b)?,
        };
        out.extend(rows);
    }
    Ok(out)
}

/// The run's circumstances, printed with the results: date, revision, machine, engine, runs.
fn meta(ctx: &Ctx, b: &Bench) -> Vec<(&'static str, String)> {
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
    vec![
        ("date", now_rfc3339()),
        (
            "git_revision",
            git::head(&ctx.exec, &ctx.sh, &ctx.root).unwrap_or_default(),
        ),
        ("machine", format!("{cpu}, {cores} cores")),
        ("engine", b.engine.program.display().to_string()),
        ("runs", b.runs.to_string()),
    ]
}

/// The table on stdout; results JSON; for a full run also docs/benchmarks.md and .svg.
fn write_reports(
    ctx: &Ctx,
    args: &BenchArgs,
    out: &[report::Row],
    meta: &[(&str, String)],
    extra: &str,
) -> Result<()> {
    print!("{}", report::table(out));
    let out_dir = ctx.root.join("target/bench");
    ctx.exec.create_dir_all(&out_dir)?;
    let json = report::results_json(out, meta);
    // A partial run must not replace the full report.
    let partial = match (args.only.is_empty(), args.quick) {
        (false, _) => Some("results-only.json"),
        (true, true) => Some("results-quick.json"),
        (true, false) => None,
    };
    if let Some(name) = partial {
        ctx.exec.write(out_dir.join(name), json.as_bytes())?;
        ctx.info(format!(
            "bench: wrote target/bench/{name} (docs/benchmarks.md is written by full runs only)"
        ));
        return Ok(());
    }
    ctx.exec
        .write(out_dir.join("results.json"), json.as_bytes())?;
    let docs = ctx.root.join("docs");
    ctx.exec.create_dir_all(&docs)?;
    let notes = std::fs::read_to_string(docs.join("benchmarks-notes.md")).unwrap_or_default();
    ctx.exec.write(
        docs.join("benchmarks.md"),
        report::markdown(out, meta, &format!("{extra}\n{notes}")).as_bytes(),
    )?;
    ctx.exec
        .write(docs.join("benchmarks.svg"), report::svg(out).as_bytes())?;
    ctx.info("bench: wrote target/bench/results.json, docs/benchmarks.md and docs/benchmarks.svg");
    Ok(())
}

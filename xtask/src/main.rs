//! `cargo xtask` — the LexAlign dev-environment automation.
//!
//! `main` only parses the command line and dispatches; every task lives in its own module
//! with one entry function, and every engine command line is built by a pure function.

mod base_image;
mod bench;
mod ci;
mod clean;
mod cli;
mod container;
mod ctx;
mod diff;
mod doctor;
mod engine;
mod help_check;
mod image;
mod lock;
mod lockfile;
mod pins;
mod pytest;
mod requirement;
mod run;
mod shell;
mod smoke;
mod util;

use clap::Parser;
use cli::{Cli, Task};

fn main() {
    let cli = Cli::parse();
    let code = match ctx::Ctx::new(&cli.global) {
        Ok(ctx) => ctx::finish(dispatch(&ctx, cli.task)),
        Err(e) => ctx::finish(Err(e)),
    };
    std::process::exit(code);
}

fn dispatch(ctx: &ctx::Ctx, task: Task) -> anyhow::Result<()> {
    match task {
        Task::Doctor => doctor::run(ctx),
        Task::BaseImage(a) => base_image::run(ctx, &a),
        Task::Image(a) => image::run(ctx, &a),
        Task::Smoke => smoke::run(ctx),
        Task::HelpCheck => help_check::run(ctx),
        Task::TestUnit(a) => pytest::run(ctx, pytest::Suite::Unit, &a.args),
        Task::TestE2e(a) => pytest::run(ctx, pytest::Suite::E2e, &a.args),
        Task::Shell => shell::run(ctx),
        Task::Run(a) => run::run(ctx, &a.cmd),
        Task::Pins(a) => pins::run(ctx, &a),
        Task::Lock(a) => lock::run(ctx, &a),
        Task::Ci(a) => ci::run(ctx, &a),
        Task::Bench(a) => bench::run(ctx, &a),
        Task::Clean => clean::run(ctx),
    }
}

//! `cargo xtask` — the LexAlign dev-environment automation (the library is lib.rs).
//! `main` parses the command line and dispatches to one task's entry point.

use clap::Parser;
use xtask::cli::{Cli, Task};
use xtask::tasks::*;
use xtask::{ctx, error, exec};

fn main() {
    let cli = Cli::parse();
    let code = match ctx::Ctx::new(&cli.global) {
        Ok(ctx) => {
            let code = error::finish(dispatch(&ctx, cli.task));
            if exec::interrupted() {
                ctx.remove_owned_containers(); // none of ours runs on after Ctrl-C/SIGTERM
            }
            code
        }
        Err(e) => error::finish(Err(e)),
    };
    // Interrupted between two commands, a task may have ended "well": it did not.
    let code = if code == 0 && exec::interrupted() {
        eprintln!("interrupted");
        130
    } else {
        code
    };
    std::process::exit(code);
}

fn dispatch(ctx: &ctx::Ctx, task: Task) -> error::Result<()> {
    match task {
        Task::Doctor => doctor::run(ctx),
        Task::BaseImage(a) => base_image::run(ctx, &a),
        Task::Image(a) => image::run(ctx, &a),
        Task::Smoke => smoke::run(ctx),
        Task::HelpCheck => help_check::run(ctx),
        Task::TestUnit(a) => pytest::run(ctx, pytest::Suite::Unit, &a),
        Task::TestE2e(a) => pytest::run(ctx, pytest::Suite::E2e, &a),
        Task::Shell(a) => shell::run(ctx, &a.dev),
        Task::Run(a) => run::run(ctx, &a.dev, &a.cmd),
        Task::Pins(a) => pins::run(ctx, &a),
        Task::Lock(a) => lock::run(ctx, &a),
        Task::Ci(a) => ci::run(ctx, &a),
        Task::Bench(a) => bench::run(ctx, &a),
        Task::Clean(a) => clean::run(ctx, &a),
        Task::Push(a) => push::run(ctx, &a),
        Task::Pull(a) => pull::run(ctx, &a),
        Task::Multinode(a) => multinode::run(ctx, &a),
        Task::Sbom(a) => sbom::run(ctx, &a),
    }
}

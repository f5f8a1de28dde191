//! `cargo xtask ci`: cargo tests, pins --check, image, smoke, help-check, test-unit, test-e2e,
//! in that order, with a summary table. Stops at the first failure unless --keep-going.

use crate::cli::{CiArgs, ImageArgs, PinsArgs};
use crate::ctx::{self, Ctx};
use anyhow::Result;
use std::time::{Duration, Instant};

pub const STEPS: [&str; 7] = [
    "cargo test",
    "pins --check",
    "image",
    "smoke",
    "help-check",
    "test-unit",
    "test-e2e",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(i32),
    Skipped,
}

/// The summary table (pure).
pub fn summary(results: &[(&str, Outcome, Duration)]) -> String {
    let mut s = format!("\n{:<14} {:<10} {:>9}\n", "step", "status", "seconds");
    s.push_str(&format!("{}\n", "-".repeat(35)));
    let mut total = Duration::ZERO;
    for (step, outcome, took) in results {
        total += *took;
        let status = match outcome {
            Outcome::Passed => "ok".to_string(),
            Outcome::Failed(c) => format!("FAILED({c})"),
            Outcome::Skipped => "skipped".to_string(),
        };
        s.push_str(&format!(
            "{step:<14} {status:<10} {:>9.1}\n",
            took.as_secs_f64()
        ));
    }
    s.push_str(&format!(
        "{:<14} {:<10} {:>9.1}\n",
        "total",
        "",
        total.as_secs_f64()
    ));
    s
}

fn step(ctx: &Ctx, name: &str) -> Result<()> {
    match name {
        "cargo test" => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let cmd = ctx
                .sh
                .cmd(cargo)
                .args(["test", "--workspace", "--locked"])
                .env("LEXALIGN_IMAGE", ctx.image());
            ctx.exec_ok(cmd, None)
        }
        "pins --check" => crate::pins::run(
            ctx,
            &PinsArgs {
                check: true,
                ..Default::default()
            },
        ),
        "image" => crate::image::run(
            ctx,
            &ImageArgs {
                base_image: "auto".into(),
                ..Default::default()
            },
        ),
        "smoke" => crate::smoke::run(ctx),
        "help-check" => crate::help_check::run(ctx),
        "test-unit" => crate::pytest::run(ctx, crate::pytest::Suite::Unit, &[]),
        "test-e2e" => crate::pytest::run(ctx, crate::pytest::Suite::E2e, &[]),
        other => unreachable!("unknown ci step {other}"),
    }
}

pub fn run(ctx: &Ctx, args: &CiArgs) -> Result<()> {
    let mut results: Vec<(&str, Outcome, Duration)> = Vec::new();
    let mut first_failure: Option<i32> = None;
    for name in STEPS {
        if first_failure.is_some() && !args.keep_going {
            results.push((name, Outcome::Skipped, Duration::ZERO));
            continue;
        }
        println!("\n==> ci: {name}");
        let started = Instant::now();
        let code = ctx::finish(step(ctx, name));
        let took = started.elapsed();
        if code == 130 {
            results.push((name, Outcome::Failed(130), took));
            print!("{}", summary(&results));
            return Err(ctx::code(130));
        }
        if code == 0 {
            results.push((name, Outcome::Passed, took));
        } else {
            results.push((name, Outcome::Failed(code), took));
            first_failure.get_or_insert(code);
        }
    }
    print!("{}", summary(&results));
    match first_failure {
        None => {
            println!("ci: all {} steps passed", STEPS.len());
            Ok(())
        }
        Some(_) => {
            let failed: Vec<&str> = results
                .iter()
                .filter(|(_, o, _)| matches!(o, Outcome::Failed(_)))
                .map(|(n, _, _)| *n)
                .collect();
            Err(ctx::fail(format!("ci failed: {}", failed.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_the_contract() {
        assert_eq!(STEPS[0], "cargo test");
        assert_eq!(STEPS[1], "pins --check");
        assert_eq!(STEPS[6], "test-e2e");
    }

    #[test]
    fn summary_lists_every_step() {
        let t = summary(&[
            ("image", Outcome::Passed, Duration::from_secs(3)),
            ("smoke", Outcome::Failed(1), Duration::from_millis(500)),
            ("help-check", Outcome::Skipped, Duration::ZERO),
        ]);
        assert!(t.contains("image") && t.contains("ok") && t.contains("3.0"));
        assert!(t.contains("FAILED(1)"));
        assert!(t.contains("skipped"));
        assert!(t.contains("total"));
    }
}

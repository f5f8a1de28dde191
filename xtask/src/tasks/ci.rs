//! `cargo xtask ci`: the whole chain as a list of prepared steps, run in order with a summary
//! table. Stops at the first failure unless --keep-going. `--dry-run ci` runs every step as a
//! dry run and lists them as planned.

use crate::cli::{CiArgs, ImageArgs, PinsArgs};
use crate::ctx::Ctx;
use crate::error::{code_of, fail, finish, Result};
use crate::exec::Proc;
use crate::tasks::{help_check, image, pins, pytest, smoke};
use std::time::{Duration, Instant};

mod arm64;

/// One step of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CargoTest,
    PinsCheck,
    Image,
    Smoke,
    HelpCheck,
    TestUnit,
    TestE2e,
    Arm64,
}

/// The chain, in order: cheap checks first, then the image and what needs it, then the arm64
/// leg (emulated on x86 engines; skipped with the fix when the engine cannot run arm64).
pub const STEPS: [Step; 8] = [
    Step::CargoTest,
    Step::PinsCheck,
    Step::Image,
    Step::Smoke,
    Step::HelpCheck,
    Step::TestUnit,
    Step::TestE2e,
    Step::Arm64,
];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::CargoTest => "cargo test",
            Step::PinsCheck => "pins --check",
            Step::Image => "image",
            Step::Smoke => "smoke",
            Step::HelpCheck => "help-check",
            Step::TestUnit => "test-unit",
            Step::TestE2e => "test-e2e",
            Step::Arm64 => "arm64",
        }
    }

    /// `cargo test --workspace --locked`, with the image under test named for the e2e tests.
    pub fn cargo_test(ctx: &Ctx) -> Proc {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        Proc::change(ctx.sh.cmd(cargo).args(["test", "--workspace", "--locked"]))
            .env("LEXALIGN_IMAGE", ctx.image())
    }

    /// Run the step; `Ok(Some(reason))` when it was skipped.
    fn run(self, ctx: &Ctx) -> Result<Option<String>> {
        if self == Step::Arm64 {
            return arm64::run(ctx);
        }
        self.run_plain(ctx).map(|()| None)
    }

    fn run_plain(self, ctx: &Ctx) -> Result<()> {
        match self {
            Step::Arm64 => unreachable!("run() handles the arm64 leg"),
            Step::CargoTest => ctx.status_ok(Step::cargo_test(ctx)),
            Step::PinsCheck => pins::run(
                ctx,
                &PinsArgs {
                    check: true,
                    ..Default::default()
                },
            ),
            Step::Image => image::run(
                ctx,
                &ImageArgs {
                    base_image: "auto".into(),
                    ..Default::default()
                },
            ),
            Step::Smoke => smoke::run(ctx),
            Step::HelpCheck => help_check::run(ctx),
            Step::TestUnit => pytest::run(ctx, pytest::Suite::Unit, &Default::default()),
            Step::TestE2e => pytest::run(ctx, pytest::Suite::E2e, &Default::default()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(i32),
    Skipped,
    /// A dry run: the step's commands were printed, none ran.
    Planned,
}

/// The summary table (pure).
pub fn summary(results: &[(Step, Outcome, Duration)]) -> String {
    let mut s = format!("\n{:<14} {:<10} {:>9}\n", "step", "status", "seconds");
    s.push_str(&format!("{}\n", "-".repeat(35)));
    let mut total = Duration::ZERO;
    for (step, outcome, took) in results {
        total += *took;
        let status = match outcome {
            Outcome::Passed => "ok".to_string(),
            Outcome::Failed(c) => format!("FAILED({c})"),
            Outcome::Skipped => "skipped".to_string(),
            Outcome::Planned => "planned".to_string(),
        };
        s.push_str(&format!(
            "{:<14} {status:<10} {:>9.1}\n",
            step.name(),
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

pub fn run(ctx: &Ctx, args: &CiArgs) -> Result<()> {
    let mut results: Vec<(Step, Outcome, Duration)> = Vec::new();
    let mut failed = false;
    for step in STEPS {
        if failed && !args.keep_going {
            results.push((step, Outcome::Skipped, Duration::ZERO));
            continue;
        }
        println!(
            "\n==> ci: {}{}",
            step.name(),
            if ctx.dry_run() { " (planned)" } else { "" }
        );
        let started = Instant::now();
        let result = step.run(ctx);
        let took = started.elapsed();
        let code = match &result {
            Ok(_) => 0,
            Err(e) => code_of(e),
        };
        if let Ok(Some(reason)) = &result {
            println!("{}: skipped — {reason}", step.name());
            results.push((step, Outcome::Skipped, took));
            continue;
        }
        let result = result.map(|_| ());
        if code == 130 {
            results.push((step, Outcome::Failed(130), took));
            print!("{}", summary(&results));
            return result;
        }
        let outcome = match (code, ctx.dry_run()) {
            (0, true) => Outcome::Planned,
            (0, false) => Outcome::Passed,
            (n, _) => {
                finish(result);
                failed = true;
                Outcome::Failed(n)
            }
        };
        results.push((step, outcome, took));
    }
    print!("{}", summary(&results));
    let failures: Vec<&str> = results
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Failed(_)))
        .map(|(s, _, _)| s.name())
        .collect();
    if !failures.is_empty() {
        return Err(fail(format!("ci failed: {}", failures.join(", "))));
    }
    let ran = results
        .iter()
        .filter(|(_, o, _)| *o != Outcome::Skipped)
        .count();
    let skipped = results.len() - ran;
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped")
    } else {
        String::new()
    };
    if ctx.dry_run() {
        println!("ci: {ran} steps planned{skipped} (dry run: nothing ran)");
    } else {
        println!("ci: all {ran} steps passed{skipped}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_says_what_happened_to_each_step() {
        let t = summary(&[
            (Step::Image, Outcome::Passed, Duration::from_secs(3)),
            (Step::Smoke, Outcome::Failed(1), Duration::from_millis(500)),
            (Step::HelpCheck, Outcome::Skipped, Duration::ZERO),
            (Step::TestUnit, Outcome::Planned, Duration::ZERO),
        ]);
        let lines: Vec<&str> = t.lines().filter(|l| !l.is_empty()).collect();
        assert!(
            lines[2].starts_with("image") && lines[2].contains(" ok ") && lines[2].ends_with("3.0")
        );
        assert!(lines[3].starts_with("smoke") && lines[3].contains("FAILED(1)"));
        assert!(lines[4].contains("skipped") && lines[5].contains("planned"));
        assert!(lines[6].starts_with("total") && lines[6].ends_with("3.5"));
    }
}

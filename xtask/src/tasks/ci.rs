//! `cargo xtask ci`: the whole chain as a list of prepared steps, run in order with a summary
//! table. Stops at the first failure unless --keep-going. `--dry-run ci` runs every step as a
//! dry run and lists them as planned.

use crate::cli::{CiArgs, ImageArgs, PinsArgs};
use crate::ctx::Ctx;
use crate::error::{code_of, fail, finish, Result};
use crate::exec::Proc;
use crate::policy;
use crate::tasks::{help_check, image, pins, pytest, smoke};
use std::time::{Duration, Instant};

mod arm64;

/// One step of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CargoFast,
    PinsCheck,
    Image,
    Smoke,
    HelpCheck,
    TestUnit,
    CargoEngine,
    TestE2e,
    Arm64,
}

/// The chain, in order: the cargo tests that need no engine first and alone (seconds), the
/// cheap checks, then the image — built once, with the layer cache — and everything that needs
/// it (the engine's cargo tests build it again only in name: every layer is cached), then the
/// arm64 leg (emulated on x86 engines; skipped with the fix when the engine cannot run arm64).
pub const STEPS: [Step; 9] = [
    Step::CargoFast,
    Step::PinsCheck,
    Step::Image,
    Step::Smoke,
    Step::HelpCheck,
    Step::TestUnit,
    Step::CargoEngine,
    Step::TestE2e,
    Step::Arm64,
];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::CargoFast => "cargo test (fast)",
            Step::PinsCheck => "pins --check",
            Step::Image => "image",
            Step::Smoke => "smoke",
            Step::HelpCheck => "help-check",
            Step::TestUnit => "test-unit",
            Step::CargoEngine => "cargo test (engine)",
            Step::TestE2e => "test-e2e",
            Step::Arm64 => "arm64",
        }
    }

    /// The cargo tests that need no engine: xtask's own (units, tidy, docs), the fake engine's
    /// and the lint tests.
    pub fn cargo_fast(ctx: &Ctx) -> Vec<Proc> {
        let mut e2e = vec!["test", "--locked", "-p", policy::E2E_PACKAGE];
        for t in policy::FAST_CARGO_TESTS {
            e2e.extend(["--test", t]);
        }
        vec![
            Proc::change(
                ctx.sh
                    .cmd(cargo())
                    .args(["test", "--locked", "-p", "xtask"]),
            ),
            Proc::change(ctx.sh.cmd(cargo()).args(e2e)),
        ]
    }

    /// The engine tests (every other test target of tests/), with the image under test named.
    pub fn cargo_engine(ctx: &Ctx) -> Result<Proc> {
        let manifest = ctx.root.join("tests/Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| fail(format!("cannot read {}: {e}", manifest.display())))?;
        let mut args = vec!["test".to_string(), "--locked".into(), "-p".into()];
        args.push(policy::E2E_PACKAGE.into());
        for t in engine_tests(&text)? {
            args.extend(["--test".to_string(), t]);
        }
        Ok(Proc::change(ctx.sh.cmd(cargo()).args(args)).env("LEXALIGN_IMAGE", ctx.image()))
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
            Step::CargoFast => Step::cargo_fast(ctx)
                .into_iter()
                .try_for_each(|p| ctx.status_ok(p)),
            Step::CargoEngine => ctx.status_ok(Step::cargo_engine(ctx)?),
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

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The engine test targets of tests/Cargo.toml: its `[[test]]` entries on the custom harness
/// (pure). Refuses a manifest where a fast target is one of them.
pub fn engine_tests(manifest: &str) -> Result<Vec<String>> {
    let v: toml::Value =
        toml::from_str(manifest).map_err(|e| fail(format!("tests/Cargo.toml: {e}")))?;
    let mut out = Vec::new();
    for t in v
        .get("test")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let name = t.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        if t.get("harness").and_then(|h| h.as_bool()) == Some(false) {
            if policy::FAST_CARGO_TESTS.contains(&name) {
                return Err(fail(format!(
                    "tests/Cargo.toml: `{name}` is a fast test (policy::FAST_CARGO_TESTS) on the engine tests' harness"
                )));
            }
            out.push(name.to_string());
        }
    }
    Ok(out)
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
    let mut s = format!("\n{:<20} {:<10} {:>9}\n", "step", "status", "seconds");
    s.push_str(&format!("{}\n", "-".repeat(41)));
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
            "{:<20} {status:<10} {:>9.1}\n",
            step.name(),
            took.as_secs_f64()
        ));
    }
    s.push_str(&format!(
        "{:<20} {:<10} {:>9.1}\n",
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

    #[test]
    fn engine_tests_are_the_custom_harness_targets() {
        let manifest = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/Cargo.toml"),
        )
        .unwrap();
        let engine = engine_tests(&manifest).unwrap();
        for t in ["docker", "editors", "scaleout", "slurm", "trackers"] {
            assert!(engine.iter().any(|e| e == t), "{t} missing from {engine:?}");
        }
        // every test file or folder of tests/tests is one or the other
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tests");
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().replace(".rs", "");
            let fast = policy::FAST_CARGO_TESTS.contains(&name.as_str());
            assert!(
                name == "common" || fast != engine.contains(&name),
                "tests/tests/{name}: neither a fast test (policy::FAST_CARGO_TESTS) nor an engine test, or both"
            );
        }
        let bad = "[[test]]\nname = \"lint\"\nharness = false\n";
        assert!(engine_tests(bad).is_err());
        assert!(engine_tests("not toml [").is_err());
    }

    #[test]
    fn the_fast_cargo_tests_come_first_and_the_engine_ones_after_the_image() {
        let pos = |s: Step| STEPS.iter().position(|x| *x == s).unwrap();
        assert_eq!(pos(Step::CargoFast), 0);
        assert!(pos(Step::CargoEngine) > pos(Step::Image));
    }
}

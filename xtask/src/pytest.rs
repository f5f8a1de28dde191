//! `cargo xtask test-unit` / `test-e2e`: pytest in the dev container; pytest's exit code is
//! the task's.

use crate::container::DevRun;
use crate::ctx::{self, Ctx};
use anyhow::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Unit,
    E2e,
}

/// The pytest command line inside the container (pure).
pub fn pytest_cmd(suite: Suite, extra: &[String]) -> Vec<String> {
    let marker = match suite {
        Suite::Unit => "not integration and not hub",
        Suite::E2e => "integration and not hub",
    };
    let mut cmd: Vec<String> = ["python", "-m", "pytest", "-m", marker]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.extend(extra.iter().cloned());
    cmd
}

pub fn run(ctx: &Ctx, suite: Suite, extra: &[String]) -> Result<()> {
    let task = match suite {
        Suite::Unit => "test-unit",
        Suite::E2e => "test-e2e",
    };
    let run = DevRun::new(ctx, task, pytest_cmd(suite, extra))?;
    match run.exec(ctx)? {
        0 => Ok(()),
        n => Err(ctx::code(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_passthrough() {
        let c = pytest_cmd(Suite::Unit, &["-k".into(), "config".into()]);
        assert_eq!(c[..4], ["python", "-m", "pytest", "-m"]);
        assert_eq!(c[4], "not integration and not hub");
        assert_eq!(c[5..], ["-k", "config"]);
        let c = pytest_cmd(Suite::E2e, &[]);
        assert_eq!(c[4], "integration and not hub");
    }
}

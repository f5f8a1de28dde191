//! `cargo xtask test-unit` / `test-e2e`: pytest in the dev container; pytest's exit code is
//! the task's.

use crate::ctx::Ctx;
use crate::devrun;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Unit,
    E2e,
}

impl Suite {
    pub fn task(self) -> &'static str {
        match self {
            Suite::Unit => "test-unit",
            Suite::E2e => "test-e2e",
        }
    }
    /// The pytest marker expression (the real-Hub tests are opt-in: `-- -m hub`).
    pub fn marker(self) -> &'static str {
        match self {
            Suite::Unit => "not integration and not hub",
            Suite::E2e => "integration and not hub",
        }
    }
}

/// The pytest command line inside the container (pure). A later `-m` in `extra` wins.
pub fn pytest_cmd(suite: Suite, extra: &[String]) -> Vec<String> {
    let mut cmd: Vec<String> = ["python", "-m", "pytest", "-m", suite.marker()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    cmd.extend(extra.iter().cloned());
    cmd
}

pub fn run(ctx: &Ctx, suite: Suite, extra: &[String]) -> Result<()> {
    devrun::exec_ok(
        ctx,
        &devrun::new(ctx, suite.task(), pytest_cmd(suite, extra)),
    )
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

//! `cargo xtask test-unit` / `test-e2e`: pytest in the dev container; pytest's exit code is
//! the task's.

use crate::cli::PassArgs;
use crate::ctx::Ctx;
use crate::devrun;
use crate::error::{usage, Result};

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
    /// The pytest marker expression (the real-Hub and GPU tests are opt-in: `-- -m hub`,
    /// `--gpus all -- -m gpu`).
    pub fn marker(self) -> &'static str {
        match self {
            Suite::Unit => "not integration and not hub and not gpu",
            Suite::E2e => "integration and not hub and not gpu",
        }
    }
}

/// Where a `--junit-dir` is mounted in the container.
pub const JUNIT_IN_CONTAINER: &str = "/junit";

/// The pytest command line inside the container (pure). A later `-m` in `extra` wins.
pub fn pytest_cmd(suite: Suite, junit: bool, extra: &[String]) -> Vec<String> {
    let mut cmd: Vec<String> = ["python", "-m", "pytest", "-m", suite.marker()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if suite == Suite::Unit {
        // the fast tier on every CPU (pytest-xdist); `-- -n 0` runs it in one process
        cmd.extend(["-n".into(), "auto".into()]);
    }
    if junit {
        cmd.push(format!(
            "--junitxml={JUNIT_IN_CONTAINER}/{}.xml",
            suite.task()
        ));
    }
    cmd.extend(extra.iter().cloned());
    cmd
}

pub fn run(ctx: &Ctx, suite: Suite, args: &PassArgs) -> Result<()> {
    let mut s = devrun::new(
        ctx,
        suite.task(),
        pytest_cmd(suite, args.junit_dir.is_some(), &args.args),
    );
    devrun::apply_opts(&mut s, &args.dev)?;
    if let Some(dir) = &args.junit_dir {
        ctx.exec.create_dir_all(dir).map_err(|e| {
            usage(format!(
                "--junit-dir {}: cannot create it ({e})",
                dir.display()
            ))
        })?;
        let abs = std::path::absolute(dir)
            .map_err(|e| usage(format!("--junit-dir {}: {e}", dir.display())))?;
        s.volumes
            .push(format!("{}:{JUNIT_IN_CONTAINER}", abs.display()));
    }
    devrun::exec_ok(ctx, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_passthrough() {
        let c = pytest_cmd(Suite::Unit, false, &["-k".into(), "config".into()]);
        assert_eq!(c[..4], ["python", "-m", "pytest", "-m"]);
        assert_eq!(c[4], "not integration and not hub and not gpu");
        assert_eq!(c[5..], ["-n", "auto", "-k", "config"]);
        let c = pytest_cmd(Suite::E2e, true, &[]);
        assert_eq!(c[4], "integration and not hub and not gpu");
        assert_eq!(c[5], "--junitxml=/junit/test-e2e.xml");
    }
}

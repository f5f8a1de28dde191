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

/// How many of the slowest tests pytest lists at the end of a run.
pub const DURATIONS: usize = 15;

/// Where a `--junit-dir` is mounted in the container.
pub const JUNIT_IN_CONTAINER: &str = "/junit";

/// pytest-xdist workers for the fast tier: two per CPU. Its tests wait on sockets, timers and
/// subprocesses more than they compute (measured on 2 cores: 71 s with 2 workers, 47-48 s with
/// 4, three runs each, no failure).
pub fn unit_workers(cpus: usize) -> usize {
    (2 * cpus.max(1)).min(32)
}

/// pytest-xdist workers for the integration tier: one per CPU, at most 4. Its tests train tiny
/// models, but each also waits on interpreter starts and torch imports of the CLIs it runs
/// (measured on 2 cores: 631 s in one process, 425 s with 2 workers, every test passing).
pub fn e2e_workers(cpus: usize) -> usize {
    cpus.clamp(1, 4)
}

/// The pytest command line inside the container (pure). A later `-m` or `-n` in `extra` wins.
pub fn pytest_cmd(suite: Suite, junit: bool, extra: &[String], cpus: usize) -> Vec<String> {
    let mut cmd: Vec<String> = ["python", "-m", "pytest", "-m", suite.marker()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // both tiers in parallel (pytest-xdist); `-- -n 0` runs one in a single process
    let workers = match suite {
        Suite::Unit => unit_workers(cpus),
        Suite::E2e => e2e_workers(cpus),
    };
    cmd.extend(["-n".into(), workers.to_string()]);
    // where the time goes: the slowest tests at the end of every run (docs/testing.md)
    cmd.push(format!("--durations={DURATIONS}"));
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
        pytest_cmd(
            suite,
            args.junit_dir.is_some(),
            &args.args,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ),
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
        let c = pytest_cmd(Suite::Unit, false, &["-k".into(), "config".into()], 2);
        assert_eq!(c[..4], ["python", "-m", "pytest", "-m"]);
        assert_eq!(c[4], "not integration and not hub and not gpu");
        assert_eq!(c[5..], ["-n", "4", "--durations=15", "-k", "config"]);
        assert_eq!(unit_workers(2), 4);
        assert_eq!(unit_workers(0), 2);
        assert_eq!(unit_workers(64), 32);
        let c = pytest_cmd(Suite::E2e, true, &[], 2);
        assert_eq!(c[4], "integration and not hub and not gpu");
        assert_eq!(
            c[5..],
            [
                "-n",
                "2",
                "--durations=15",
                "--junitxml=/junit/test-e2e.xml"
            ]
        );
        assert_eq!((e2e_workers(0), e2e_workers(16)), (1, 4));
    }
}

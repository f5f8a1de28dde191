//! Dev-run containers: the run spec every container task uses (test-unit, test-e2e, shell, run,
//! help-check), filled from the context and project policy: `--rm --init`, labels (project, task,
//! and the run-time mark `clean` trusts), a predictable name, the host's uid:gid, `python/` at
//! /app, the HF cache volume, HF_TOKEN & co. by name, and the CA bundle read-only.

use crate::ctx::Ctx;
use crate::engine::cmd::{self, RunSpec};
use crate::error::{code, usage, Result};
use crate::exec::{Io, Proc};
use crate::policy;
use std::io::IsTerminal;
use std::path::Path;

/// The labels of every container the xtask starts (pure).
pub fn labels(project: &str, task: &str) -> Vec<String> {
    vec![
        policy::project_label(project),
        format!("{}={task}", policy::TASK_LABEL),
        format!("{}={project}", policy::RUN_LABEL),
    ]
}

/// `-v CA:…:ro -e SSL_CERT_FILE=… …` for a CA bundle (pure).
pub fn ca_mount(spec: &mut RunSpec, ca: &Path) {
    spec.volumes
        .push(format!("{}:{}:ro", ca.display(), policy::CA_IN_CONTAINER));
    for var in policy::CA_ENV_VARS {
        spec.env
            .push((var.to_string(), policy::CA_IN_CONTAINER.to_string()));
    }
}

/// A dev run (pure given its inputs).
#[allow(clippy::too_many_arguments)]
pub fn spec(
    project: &str,
    task: &str,
    image: &str,
    python_dir: &Path,
    user: Option<(u32, u32)>,
    pass_env: Vec<String>,
    ca: Option<&Path>,
    cmd: Vec<String>,
) -> RunSpec {
    let mut s = RunSpec {
        name: Some(policy::container_name(project, task)),
        labels: labels(project, task),
        user,
        volumes: vec![
            format!("{}:{}", python_dir.display(), policy::APP_DIR),
            format!("{}:{}", policy::hf_volume(project), policy::HF_HOME),
        ],
        workdir: Some(policy::APP_DIR.into()),
        env_names: pass_env,
        image: image.to_string(),
        cmd,
        ..Default::default()
    };
    if let Some(ca) = ca {
        ca_mount(&mut s, ca);
    }
    s
}

/// A dev run for `task` with the context's settings.
pub fn new(ctx: &Ctx, task: &str, cmd: Vec<String>) -> RunSpec {
    let pass_env = policy::PASS_ENV
        .iter()
        .filter(|n| std::env::var_os(n).is_some())
        .map(|n| n.to_string())
        .collect();
    spec(
        &ctx.project,
        task,
        ctx.image(),
        &ctx.python_dir,
        policy::host_ids(),
        pass_env,
        policy::ca_bundle_from_env().as_deref(),
        cmd,
    )
}

/// Interactive: stdin passed through (`-i`), and a TTY (`-t`) when stdin and stdout are both
/// terminals.
pub fn interactive(mut s: RunSpec) -> RunSpec {
    s.interactive = true;
    s.tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    s
}

fn check_python_dir(dir: &Path) -> Result<()> {
    if !dir.join("pyproject.toml").is_file() {
        return Err(usage(format!(
            "{} has no pyproject.toml; pass --python-dir pointing at the LexAlign python/ folder",
            dir.display()
        )));
    }
    Ok(())
}

/// The command that removes the container on Ctrl-C.
fn remover(ctx: &Ctx, s: &RunSpec) -> Result<Option<Proc>> {
    let e = ctx.engine()?;
    Ok(s.name.as_ref().map(|n| cmd::rm(e, &ctx.sh, n, true)))
}

/// Run it with inherited output; the container's exit code (130 after a signal, container removed).
pub fn exec(ctx: &Ctx, s: &RunSpec) -> Result<i32> {
    let e = if ctx.dry_run() {
        ctx.engine()?
    } else {
        check_python_dir(&ctx.python_dir)?;
        ctx.engine_ready()?
    };
    let io = Io {
        stdin: s.interactive || s.tty,
        on_signal: remover(ctx, s)?,
    };
    ctx.status(cmd::run(e, &ctx.sh, s), io)
}

/// `exec`, and a non-zero exit is the task's exit code.
pub fn exec_ok(ctx: &Ctx, s: &RunSpec) -> Result<()> {
    match exec(ctx, s)? {
        0 => Ok(()),
        n => Err(code(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_run_spec() {
        let s = spec(
            "lexalign",
            "run",
            "lexalign-dev:latest",
            Path::new("/src/python"),
            Some((1000, 1001)),
            vec!["HF_TOKEN".into()],
            Some(Path::new("/etc/ssl/ca.crt")),
            vec!["true".into()],
        );
        let line = s.args().join(" ");
        assert!(line.starts_with("run --rm --init --label dev.lexalign.project=lexalign"));
        assert!(line.contains("--label dev.lexalign.task=run"));
        assert!(line.contains("--label dev.lexalign.run=lexalign"));
        assert!(line.contains("--name lexalign-run-"));
        assert!(line.contains("-v /src/python:/app -v lexalign-hf-cache:/cache/huggingface"));
        assert!(line.contains("-v /etc/ssl/ca.crt:/etc/lexalign/ca-bundle.crt:ro"));
        assert!(line.contains("-e SSL_CERT_FILE=/etc/lexalign/ca-bundle.crt"));
        assert!(line.contains("-e HF_TOKEN ") && !line.contains("HF_TOKEN="));
        assert!(line.ends_with("lexalign-dev:latest true"));
    }
}

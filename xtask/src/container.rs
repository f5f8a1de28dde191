//! Dev-run containers: the one `<engine> run` command line every container task uses
//! (test-unit, test-e2e, shell, run, help-check), built by a pure function.

use crate::ctx::{self, Ctx};
use anyhow::Result;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use xshell::{Cmd, Shell};

/// Where the CA bundle is mounted inside dev containers.
pub const CA_IN_CONTAINER: &str = "/etc/lexalign/ca-bundle.crt";
/// Host variables passed into dev containers by name (values never appear on a command line).
pub const PASS_ENV: &[&str] = &[
    "HF_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY",
    "CI",
];

/// `run --rm --init --label <project> --label dev.lexalign.task=<task>`: how every container the
/// tasks start begins (an init process forwards signals; the labels let `clean` find it).
pub fn run_prefix(project_label: &str, task: &str) -> Vec<String> {
    vec![
        "run".into(),
        "--rm".into(),
        "--init".into(),
        "--label".into(),
        project_label.into(),
        "--label".into(),
        format!("dev.lexalign.task={task}"),
    ]
}

#[derive(Debug, Clone)]
pub struct DevRun {
    pub engine: PathBuf,
    pub image: String,
    /// Container name: `<project>-<task>-<pid>`, so it can be found and stopped.
    pub name: String,
    pub project_label: String,
    pub task: String,
    pub python_dir: PathBuf,
    pub user: Option<(u32, u32)>,
    /// Pass stdin through (`-i`): `run` and `shell`.
    pub stdin: bool,
    /// Allocate a TTY (`-t`): only when stdin and stdout are terminals.
    pub tty: bool,
    /// Names of host variables that are set (passed as `-e NAME`).
    pub pass_env: Vec<String>,
    pub ca_bundle: Option<PathBuf>,
    pub hf_volume: String,
    pub cmd: Vec<String>,
}

impl DevRun {
    /// A dev run for `task` with the context's settings.
    pub fn new(ctx: &Ctx, task: &str, cmd: Vec<String>) -> Result<DevRun> {
        let engine = ctx.engine()?.program.clone();
        Ok(DevRun {
            engine,
            image: ctx.image().to_string(),
            name: format!("{}-{}-{}", ctx.project, task, std::process::id()),
            project_label: ctx.project_label(),
            task: task.to_string(),
            python_dir: ctx.python_dir.clone(),
            user: if cfg!(target_os = "linux") {
                ctx::host_ids()
            } else {
                None
            },
            stdin: false,
            tty: false,
            pass_env: PASS_ENV
                .iter()
                .filter(|n| std::env::var_os(n).is_some())
                .map(|n| n.to_string())
                .collect(),
            ca_bundle: crate::image::ca_bundle_from_env(),
            hf_volume: ctx.hf_volume(),
            cmd,
        })
    }

    /// Interactive: stdin passed through (`-i`), and a TTY (`-t`) when stdin and stdout are
    /// terminals.
    pub fn interactive(mut self) -> Self {
        self.stdin = true;
        self.tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        self
    }

    /// The full command line (pure).
    pub fn to_cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        sh.cmd(&self.engine).args(self.args())
    }

    pub fn args(&self) -> Vec<String> {
        let mut a = run_prefix(&self.project_label, &self.task);
        a.extend(["--name".into(), self.name.clone()]);
        if self.stdin || self.tty {
            a.push("-i".into());
        }
        if self.tty {
            a.push("-t".into());
        }
        if let Some((uid, gid)) = self.user {
            a.extend(["--user".into(), format!("{uid}:{gid}")]);
        }
        a.extend([
            "-v".into(),
            format!("{}:/app", self.python_dir.display()),
            "-v".into(),
            format!("{}:/cache/huggingface", self.hf_volume),
            "-w".into(),
            "/app".into(),
        ]);
        for name in &self.pass_env {
            a.extend(["-e".into(), name.clone()]);
        }
        if let Some(ca) = &self.ca_bundle {
            a.extend([
                "-v".into(),
                format!("{}:{CA_IN_CONTAINER}:ro", ca.display()),
                "-e".into(),
                format!("SSL_CERT_FILE={CA_IN_CONTAINER}"),
                "-e".into(),
                format!("REQUESTS_CA_BUNDLE={CA_IN_CONTAINER}"),
                "-e".into(),
                format!("PIP_CERT={CA_IN_CONTAINER}"),
            ]);
        }
        a.push(self.image.clone());
        a.extend(self.cmd.iter().cloned());
        a
    }

    /// Run it; the container's exit code is returned (130 after a signal, container removed).
    pub fn exec(&self, ctx: &Ctx) -> Result<i32> {
        if !ctx.g.dry_run {
            check_python_dir(&self.python_dir)?;
            ctx.engine_ready()?;
        }
        let stdin = self.stdin || self.tty;
        ctx.exec_with(self.to_cmd(&ctx.sh).into(), Some(&self.name), |c| {
            if stdin {
                c.stdin(std::process::Stdio::inherit())
            } else {
                c.stdin(std::process::Stdio::null())
            }
        })
    }
}

fn check_python_dir(dir: &Path) -> Result<()> {
    if !dir.join("pyproject.toml").is_file() {
        return Err(ctx::usage(format!(
            "{} has no pyproject.toml; pass --python-dir pointing at the LexAlign python/ folder",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DevRun {
        DevRun {
            engine: PathBuf::from("/usr/bin/docker"),
            image: "lexalign-dev:latest".into(),
            name: "lexalign-run-42".into(),
            project_label: "dev.lexalign.project=lexalign".into(),
            task: "run".into(),
            python_dir: PathBuf::from("/src/python"),
            user: Some((1000, 1001)),
            stdin: false,
            tty: false,
            pass_env: vec!["HF_TOKEN".into()],
            ca_bundle: Some(PathBuf::from("/etc/ssl/ca.crt")),
            hf_volume: "lexalign-hf-cache".into(),
            cmd: vec!["sh".into(), "-c".into(), "exit 7".into()],
        }
    }

    #[test]
    fn dev_run_command_line() {
        let sh = Shell::new().unwrap();
        let argv = ctx::argv(sample().to_cmd(&sh));
        let line = argv.join(" ");
        assert_eq!(argv[0], "/usr/bin/docker");
        assert_eq!(&argv[1..4], ["run", "--rm", "--init"]);
        assert!(line.contains("--name lexalign-run-42"));
        assert!(line.contains("--label dev.lexalign.project=lexalign"));
        assert!(line.contains("--user 1000:1001"));
        assert!(line.contains("-v /src/python:/app"));
        assert!(line.contains("-v lexalign-hf-cache:/cache/huggingface"));
        assert!(line.contains("-v /etc/ssl/ca.crt:/etc/lexalign/ca-bundle.crt:ro"));
        assert!(line.contains("-e SSL_CERT_FILE=/etc/lexalign/ca-bundle.crt"));
        assert!(line.contains("-e REQUESTS_CA_BUNDLE=/etc/lexalign/ca-bundle.crt"));
        // HF_TOKEN by name only
        let i = argv.iter().position(|a| a == "HF_TOKEN").unwrap();
        assert_eq!(argv[i - 1], "-e");
        assert!(!line.contains("HF_TOKEN="));
        assert!(
            !line.contains(" -t") && !line.contains(" -i "),
            "no tty, no stdin"
        );
        // the image, then the command, last
        assert_eq!(
            &argv[argv.len() - 4..],
            ["lexalign-dev:latest", "sh", "-c", "exit 7"]
        );
    }

    #[test]
    fn tty_and_no_user() {
        let mut r = sample();
        r.tty = true;
        r.user = None;
        r.ca_bundle = None;
        let args = r.args();
        assert!(args.windows(2).any(|w| w == ["-i", "-t"]));
        r.tty = false;
        r.stdin = true;
        let args = r.args();
        assert!(args.contains(&"-i".to_string()) && !args.contains(&"-t".to_string()));
        assert!(!args.contains(&"--user".to_string()));
        assert!(!args.iter().any(|a| a.contains("SSL_CERT_FILE")));
    }
}

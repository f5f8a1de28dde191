//! The task context: repository paths, global flags, the engine, and running commands
//! (streamed or captured, honouring --dry-run/--verbose/--quiet and SIGINT/SIGTERM).

use crate::cli::Global;
use crate::engine::{self, Engine};
use crate::util::shell_line;
use anyhow::{Context, Result};
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xshell::{Cmd, Shell};

/// Label every project object carries (containers, images, volumes): `KEY=<project>`.
pub const PROJECT_LABEL: &str = "dev.lexalign.project";
/// Label with the sha256 of python/pylock.toml, used to detect a stale image.
pub const LOCK_LABEL: &str = "dev.lexalign.lock-sha256";

/// An error that carries the process exit code (and maybe a one-line message).
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub msg: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.msg {
            Some(m) => f.write_str(m),
            None => write!(f, "exit code {}", self.code),
        }
    }
}
impl std::error::Error for Exit {}

/// Exit 2: bad usage or input. The message says what is wrong and how to fix it.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 2,
        msg: Some(msg.into()),
    }
    .into()
}

/// Exit with `code`, nothing more to say (the engine or pytest already said it).
pub fn code(code: i32) -> anyhow::Error {
    Exit { code, msg: None }.into()
}

/// Exit 1 with a one-line message.
pub fn fail(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 1,
        msg: Some(msg.into()),
    }
    .into()
}

/// Turn a task's result into the process exit code, printing the error on stderr.
pub fn finish(result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(exit) => {
                if let Some(m) = &exit.msg {
                    eprintln!("error: {m}");
                }
                exit.code
            }
            None => {
                eprintln!("error: {e:#}");
                1
            }
        },
    }
}

/// Set by SIGINT/SIGTERM; checked while a child runs.
static INTERRUPTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// The signal flag, registered on first use (signal-hook: the handler only sets the flag).
fn signal_flag() -> &'static Arc<AtomicBool> {
    INTERRUPTED.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
}

pub fn interrupted() -> bool {
    signal_flag().load(Ordering::SeqCst)
}

/// The output of a captured command.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// First non-empty stderr line (or stdout's), for one-line error messages.
    pub fn first_error_line(&self) -> String {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("(no output)")
            .to_string()
    }
}

pub struct Ctx {
    pub root: PathBuf,
    pub python_dir: PathBuf,
    pub g: Global,
    pub sh: Shell,
    /// Value of the project label (`LEXALIGN_PROJECT`, default `lexalign`).
    pub project: String,
    engine: OnceCell<Engine>,
    daemon: OnceCell<String>,
}

impl Ctx {
    pub fn new(g: &Global) -> Result<Ctx> {
        // Register the signal flag before any child starts.
        let _ = signal_flag();
        if let Err(e) = engine::validate_image_ref(&g.image) {
            return Err(usage(format!("--image {:?}: {e}", g.image)));
        }
        let root = find_root()?;
        let python_dir = match &g.python_dir {
            Some(p) => std::path::absolute(p)?,
            None => root.join("python"),
        };
        let project = std::env::var("LEXALIGN_PROJECT")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "lexalign".to_string());
        let sh = Shell::new()?;
        sh.change_dir(&root);
        Ok(Ctx {
            root,
            python_dir,
            g: g.clone(),
            sh,
            project,
            engine: OnceCell::new(),
            daemon: OnceCell::new(),
        })
    }

    pub fn image(&self) -> &str {
        &self.g.image
    }

    /// `dev.lexalign.project=<project>`
    pub fn project_label(&self) -> String {
        format!("{PROJECT_LABEL}={}", self.project)
    }

    /// The named volume that backs /cache/huggingface in dev runs.
    pub fn hf_volume(&self) -> String {
        format!("{}-hf-cache", self.project)
    }

    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.g.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// The engine client (found, not yet checked against a daemon).
    pub fn engine(&self) -> Result<&Engine> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let env = std::env::var("LEXALIGN_DOCKER").ok();
        let found = engine::resolve(self.g.engine.as_deref(), env.as_deref(), |n| {
            which::which(n).ok()
        });
        let program = match found {
            Ok(p) => p,
            // A dry run prints what would run; it needs no client.
            Err(_) if self.g.dry_run => {
                PathBuf::from(self.g.engine.clone().or(env).unwrap_or("docker".into()))
            }
            Err(msg) => return Err(fail(msg)),
        };
        Ok(self.engine.get_or_init(|| Engine::new(program)))
    }

    /// The engine, with its daemon reachable (server version checked once).
    pub fn engine_ready(&self) -> Result<&Engine> {
        let engine = self.engine()?;
        if self.g.dry_run || self.daemon.get().is_some() {
            return Ok(engine);
        }
        // Fast path: ping the local Docker socket (~1 ms instead of a ~20 ms client run);
        // anything else (contexts, remote hosts, podman) asks the client.
        if fast_ping_applies(&engine.program) && docker_socket_ping() {
            let _ = self.daemon.set("reachable".into());
            return Ok(engine);
        }
        let out = self.capture_quiet(engine.server_version_cmd(&self.sh))?;
        if !out.ok() || out.stdout.trim().is_empty() {
            return Err(fail(
                engine.daemon_unreachable_message(&out.first_error_line()),
            ));
        }
        let _ = self.daemon.set(out.stdout.trim().to_string());
        Ok(engine)
    }

    /// Print a command line the way it would run (env prefix included).
    pub fn show(&self, cmd: &Command) {
        let line = command_line(cmd);
        if self.g.dry_run {
            println!("{line}");
        } else if self.g.verbose {
            eprintln!("+ {line}");
        }
    }

    /// Run a command with inherited stdio and return its exit code. `container` is the name
    /// of a container the command starts: on SIGINT/SIGTERM it is removed, and the result is 130.
    pub fn exec(&self, cmd: Cmd<'_>, container: Option<&str>) -> Result<i32> {
        self.exec_with(cmd.into(), container, |c| c)
    }

    /// Like `exec`, but lets the caller adjust the std Command (stdin/tty passthrough, pipes).
    pub fn exec_with(
        &self,
        mut cmd: Command,
        container: Option<&str>,
        adjust: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Result<i32> {
        self.show(&cmd);
        if self.g.dry_run {
            return Ok(0);
        }
        adjust(&mut cmd);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{program}`"))?;
        self.wait_child(&mut child, container)
    }

    /// Wait for a child; on a signal remove the named container, stop the child, return 130.
    pub fn wait_child(
        &self,
        child: &mut std::process::Child,
        container: Option<&str>,
    ) -> Result<i32> {
        loop {
            if let Some(status) = child.try_wait()? {
                if interrupted() {
                    self.cleanup_container(container);
                    return Err(code(130));
                }
                return Ok(exit_code(status));
            }
            if interrupted() {
                self.cleanup_container(container);
                // Give the client a moment to notice its container is gone.
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if child.try_wait()?.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("interrupted");
                return Err(code(130));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn cleanup_container(&self, container: Option<&str>) {
        if let (Some(name), Ok(engine)) = (container, self.engine()) {
            let _ = Command::from(engine.cmd(&self.sh).args(["rm", "-f", name]))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// `exec`, and a non-zero exit becomes the task's exit code.
    pub fn exec_ok(&self, cmd: Cmd<'_>, container: Option<&str>) -> Result<()> {
        match self.exec(cmd, container)? {
            0 => Ok(()),
            n => Err(code(n)),
        }
    }

    /// Run a command and capture its output. In a dry run it is printed and not run
    /// (the result is an empty failure, so callers take their "unknown" path).
    pub fn capture(&self, cmd: Cmd<'_>) -> Result<Captured> {
        let cmd: Command = cmd.into();
        self.show(&cmd);
        if self.g.dry_run {
            return Ok(Captured {
                code: -1,
                ..Default::default()
            });
        }
        run_captured(cmd)
    }

    /// Capture without printing (internal probes such as version checks), even in a dry run.
    pub fn capture_quiet(&self, cmd: Cmd<'_>) -> Result<Captured> {
        run_captured(cmd.into())
    }
}

fn run_captured(mut cmd: Command) -> Result<Captured> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{program}`"))?;
    Ok(Captured {
        code: exit_code(out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A child's exit status as a shell would report it (128+N for a signal).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// `ENV=VALUE program args…`, quoted. Only variables set explicitly on the command appear.
pub fn command_line(cmd: &Command) -> String {
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    words.push(cmd.get_program().to_string_lossy().into_owned());
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    shell_line(&words)
}

/// The argv of an xshell command (for tests and printing).
#[cfg(test)]
pub fn argv(cmd: Cmd<'_>) -> Vec<String> {
    let cmd: Command = cmd.into();
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect()
}

/// The repository root: `$LEXALIGN_ROOT`, else the nearest folder above the current one that
/// holds `xtask/Cargo.toml`, else the folder this xtask was compiled in.
fn find_root() -> Result<PathBuf> {
    if let Some(r) = std::env::var_os("LEXALIGN_ROOT").filter(|s| !s.is_empty()) {
        let r = std::path::absolute(PathBuf::from(r))?;
        if !r.is_dir() {
            return Err(usage(format!(
                "LEXALIGN_ROOT={} is not a folder; unset it or point it at a LexAlign checkout",
                r.display()
            )));
        }
        return Ok(r);
    }
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join("xtask/Cargo.toml").is_file() && dir.join("Cargo.toml").is_file() {
                return Ok(dir);
            }
            if !dir.pop() {
                break;
            }
        }
    }
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf())
}

/// The socket ping stands for the client only when the client is `docker` talking to its
/// default endpoint: no DOCKER_CONTEXT, no current context set in ~/.docker/config.json.
fn fast_ping_applies(program: &Path) -> bool {
    if program.file_name().and_then(|n| n.to_str()) != Some("docker") {
        return false;
    }
    if std::env::var_os("DOCKER_CONTEXT").is_some() {
        return false;
    }
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"));
    match config.and_then(|c| std::fs::read_to_string(c).ok()) {
        Some(text) => {
            !text.contains("\"currentContext\"") || text.contains("\"currentContext\": \"default\"")
        }
        None => true,
    }
}

/// `GET /_ping` on the Docker socket named by DOCKER_HOST (unix://…) or the default one.
pub fn docker_socket_ping() -> bool {
    use std::io::{Read, Write};
    let path = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => match h.strip_prefix("unix://") {
            Some(p) => p.to_string(),
            None => return false,
        },
        _ => "/var/run/docker.sock".to_string(),
    };
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200")
}

/// Host user and group ids (Linux: from /proc/self/status; elsewhere none are passed).
pub fn host_ids() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<u32> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(2)? // effective id
            .parse()
            .ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_shows_env_and_quotes() {
        let sh = Shell::new().unwrap();
        let mut c: Command = sh.cmd("docker").args(["run", "a b"]).into();
        c.env("DOCKER_BUILDKIT", "1");
        assert_eq!(command_line(&c), "DOCKER_BUILDKIT=1 docker run 'a b'");
    }

    #[test]
    fn exit_codes_map_signals() {
        let st = Command::new("sh").args(["-c", "exit 7"]).status().unwrap();
        assert_eq!(exit_code(st), 7);
        let st = Command::new("sh")
            .args(["-c", "kill -9 $$"])
            .status()
            .unwrap();
        assert_eq!(exit_code(st), 137);
    }

    #[test]
    fn exit_error_carries_code() {
        assert_eq!(finish(Err(usage("bad"))), 2);
        assert_eq!(finish(Err(code(7))), 7);
        assert_eq!(finish(Err(anyhow::anyhow!("x"))), 1);
        assert_eq!(finish(Ok(())), 0);
    }

    #[test]
    fn host_ids_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(host_ids().is_some());
        }
    }
}

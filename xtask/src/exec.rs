//! The execution layer: the only code in the xtask that starts a process (a test enforces it).
//! Over 400 lines: every way of starting a process (captured, streamed, line by line, time-limited,
//! a group of nodes, a background server) must live here, and its tests run real processes.
//!
//! Every command arrives as a [`Proc`]: a command line plus its [`Effect`]. This layer owns
//! - echo: `-v` prints each command before it runs (`+ …` on stderr);
//! - dry run: a [`Effect::Change`] command is printed on stdout and not run; a
//!   [`Effect::Query`] (version, info, inspect, images, ps, volume ls, git rev-parse, df …) runs,
//!   because a task needs its answer to make the plan. A query that cannot start (no engine on
//!   this machine) answers with exit code 127 instead of failing, so plans say "unknown";
//! - capture vs streaming, and timeouts;
//! - signals: SIGINT/SIGTERM while a child runs stop it, run the caller's clean-up (remove the
//!   container) and end the task with exit code 130.

use crate::error::{code, Result};
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Whether a command changes anything (and so is skipped by a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads state only; runs even in a dry run.
    Query,
    /// Changes state (builds, runs containers, writes files, pulls); printed, not run, in a dry run.
    Change,
}

/// A command line and its effect. Built by pure functions (engine builders, git, mmdebstrap …).
#[derive(Debug)]
pub struct Proc {
    cmd: Command,
    pub effect: Effect,
}

impl Proc {
    pub fn new(cmd: impl Into<Command>, effect: Effect) -> Proc {
        Proc {
            cmd: cmd.into(),
            effect,
        }
    }
    pub fn query(cmd: impl Into<Command>) -> Proc {
        Proc::new(cmd, Effect::Query)
    }
    pub fn change(cmd: impl Into<Command>) -> Proc {
        Proc::new(cmd, Effect::Change)
    }
    /// Set an environment variable for this command only (shown in its printed line).
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Proc {
        self.cmd.env(key, value);
        self
    }
    /// Remove a variable from the child's environment.
    pub fn env_remove(mut self, key: &str) -> Proc {
        self.cmd.env_remove(key);
        self
    }
    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Proc {
        self.cmd.current_dir(dir);
        self
    }
    /// program + arguments, for tests and messages.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.cmd.get_program().to_string_lossy().into_owned())
            .chain(
                self.cmd
                    .get_args()
                    .map(|a| a.to_string_lossy().into_owned()),
            )
            .collect()
    }
    /// `ENV=VALUE program args…`, quoted for a shell (only variables set on the command).
    pub fn line(&self) -> String {
        let mut words: Vec<String> = self
            .cmd
            .get_envs()
            .filter_map(|(k, v)| {
                v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            })
            .collect();
        words.extend(self.argv());
        crate::util::shell_line(&words)
    }
    /// The value of an environment variable set on the command.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.cmd
            .get_envs()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }
    pub fn program(&self) -> String {
        self.cmd.get_program().to_string_lossy().into_owned()
    }
}

/// The output of a captured command.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// A dry run printed this command instead of running it.
    pub planned: bool,
}

impl Captured {
    pub fn ok(&self) -> bool {
        self.code == 0 && !self.planned
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
    /// Trimmed stdout when the command succeeded and said something.
    pub fn answer(&self) -> Option<String> {
        let s = self.stdout.trim();
        (self.ok() && !s.is_empty()).then(|| s.to_string())
    }
}

/// How a streamed command is wired.
#[derive(Debug, Default)]
pub struct Io {
    /// Pass the task's stdin through (else the child reads /dev/null).
    pub stdin: bool,
    /// Run on SIGINT/SIGTERM before exiting 130 (e.g. `docker rm -f NAME`).
    pub on_signal: Option<Proc>,
}

/// The flags that decide how commands run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exec {
    pub dry_run: bool,
    pub verbose: bool,
}

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

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

/// Register the SIGINT/SIGTERM flag (call before any child starts).
pub fn install_signal_flag() {
    let _ = signal_flag();
}

pub fn interrupted() -> bool {
    signal_flag().load(Ordering::SeqCst)
}

/// A child's exit status as a shell would report it (128+N for a signal).
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

impl Exec {
    /// Print the command as a dry run or -v wants it; true when it must not run.
    fn announce(&self, p: &Proc) -> bool {
        let skip = self.dry_run && p.effect == Effect::Change;
        if skip {
            println!("{}", p.line());
        } else if self.verbose {
            eprintln!("+ {}", p.line());
        }
        skip
    }

    /// Run and capture stdout/stderr (stdin is /dev/null).
    pub fn capture(&self, mut p: Proc) -> Result<Captured> {
        if self.announce(&p) {
            return Ok(Captured {
                planned: true,
                ..Default::default()
            });
        }
        let program = p.program();
        match p.cmd.stdin(Stdio::null()).output() {
            Ok(out) => Ok(Captured {
                code: exit_code(out.status),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                planned: false,
            }),
            // A query that cannot start is an answer ("unknown"), not a crash.
            Err(e) if p.effect == Effect::Query => Ok(Captured {
                code: 127,
                stderr: format!("cannot start `{program}`: {e}"),
                ..Default::default()
            }),
            Err(e) => Err(e).with_context(|| format!("cannot start `{program}`")),
        }
    }

    /// Run with inherited stdout/stderr; return the exit code (0 for a planned command).
    pub fn status(&self, mut p: Proc, io: Io) -> Result<i32> {
        if self.announce(&p) {
            return Ok(0);
        }
        p.cmd.stdin(if io.stdin {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        let program = p.program();
        let mut child = p
            .cmd
            .spawn()
            .with_context(|| format!("cannot start `{program}`"))?;
        self.wait(&mut child, io.on_signal)
    }

    /// Run, passing each output line to `on_line` as it comes (stdout and stderr), and keep
    /// the whole output. Returns (exit code, output).
    pub fn lines(
        &self,
        mut p: Proc,
        on_line: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<(i32, String)> {
        if self.announce(&p) {
            return Ok((0, String::new()));
        }
        let mut child = spawn_piped(&mut p)?;
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let readers = read_lines(&mut child, move |line, _| {
            on_line(line);
            let mut l = sink.lock().unwrap();
            l.push_str(line);
            l.push('\n');
        });
        let code = self.wait(&mut child, None)?;
        for r in readers {
            let _ = r.join();
        }
        let text = log.lock().unwrap().clone();
        Ok((code, text))
    }

    /// Run with output discarded; give up (kill it) after `limit`. None: timed out or could not
    /// start. A planned command answers None.
    pub fn within(&self, mut p: Proc, limit: Duration) -> Option<i32> {
        if self.announce(&p) {
            return None;
        }
        let mut child = p
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(exit_code(st));
            }
            if Instant::now() > deadline || interrupted() {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for a child; on a signal run the clean-up, stop the child, and end with 130.
    fn wait(&self, child: &mut std::process::Child, on_signal: Option<Proc>) -> Result<i32> {
        loop {
            if let Some(status) = child.try_wait()? {
                if interrupted() {
                    self.cleanup(on_signal);
                    return Err(code(130));
                }
                return Ok(exit_code(status));
            }
            if interrupted() {
                self.cleanup(on_signal);
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

    fn cleanup(&self, on_signal: Option<Proc>) {
        if let Some(mut p) = on_signal {
            let _ = p
                .cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Start a command with stdin closed and stdout/stderr piped.
fn spawn_piped(p: &mut Proc) -> Result<std::process::Child> {
    let program = p.program();
    p.cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{program}`"))
}

/// One thread per output stream, passing each line to `on_line(line, is_stderr)`.
fn read_lines(
    child: &mut std::process::Child,
    on_line: impl Fn(&str, bool) + Send + Sync + 'static,
) -> Vec<std::thread::JoinHandle<()>> {
    let on_line = Arc::new(on_line);
    let streams: [(Option<Box<dyn std::io::Read + Send>>, bool); 2] = [
        (child.stdout.take().map(|s| Box::new(s) as _), false),
        (child.stderr.take().map(|s| Box::new(s) as _), true),
    ];
    streams
        .into_iter()
        .filter_map(|(stream, is_err)| {
            let stream = stream?;
            let on_line = Arc::clone(&on_line);
            Some(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    on_line(&line, is_err);
                }
            }))
        })
        .collect()
}

/// A process left running in the background (a server a benchmark needs); killed when dropped.
pub struct Background(Option<std::process::Child>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Exec {
    /// Start a server in the background, output discarded (a dry run only prints it).
    pub fn background(&self, mut p: Proc) -> Result<Background> {
        if self.announce(&p) {
            return Ok(Background(None));
        }
        let program = p.program();
        let child = p
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start `{program}`"))?;
        Ok(Background(Some(child)))
    }
}

/// One process of a group run (`Exec::group`): its output lines are prefixed `[label] `.
pub struct Member {
    pub label: String,
    pub proc: Proc,
}

impl Exec {
    /// Run every member at once, their output interleaved line by line with `[label] `
    /// prefixes. When the first member fails, run `on_failure` (once) so the others stop
    /// rather than hang; on SIGINT/SIGTERM run `on_signal`, stop them all, and end with 130.
    /// Returns each member's exit code, in order (all 0 for a dry run).
    pub fn group(
        &self,
        members: Vec<Member>,
        on_failure: Vec<Proc>,
        on_signal: Vec<Proc>,
    ) -> Result<Vec<i32>> {
        let mut planned = true;
        for m in &members {
            planned &= self.announce(&m.proc);
        }
        if planned {
            return Ok(vec![0; members.len()]);
        }
        let mut children = Vec::new();
        let mut readers = Vec::new();
        for mut m in members {
            let mut child = spawn_piped(&mut m.proc)?;
            let label = m.label.clone();
            readers.extend(read_lines(&mut child, move |line, stderr| {
                if stderr {
                    eprintln!("[{label}] {line}");
                } else {
                    println!("[{label}] {line}");
                }
            }));
            children.push(child);
        }
        let mut codes: Vec<Option<i32>> = vec![None; children.len()];
        let mut on_failure = Some(on_failure);
        loop {
            for (i, c) in children.iter_mut().enumerate() {
                if codes[i].is_none() {
                    if let Some(st) = c.try_wait()? {
                        codes[i] = Some(exit_code(st));
                    }
                }
            }
            if interrupted() {
                for p in on_signal {
                    let _ = self.capture(p);
                }
                for c in children.iter_mut() {
                    let _ = c.kill();
                }
                for c in children.iter_mut() {
                    let _ = c.wait();
                }
                for r in readers {
                    let _ = r.join();
                }
                eprintln!("interrupted");
                return Err(code(130));
            }
            if codes.iter().any(|c| matches!(c, Some(n) if *n != 0)) {
                if let Some(stop) = on_failure.take() {
                    for p in stop {
                        let _ = self.capture(p);
                    }
                }
            }
            if codes.iter().all(Option::is_some) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in readers {
            let _ = r.join();
        }
        Ok(codes.into_iter().map(|c| c.unwrap_or(1)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xshell::Shell;

    #[test]
    fn line_shows_env_and_quotes() {
        let sh = Shell::new().unwrap();
        let p = Proc::change(sh.cmd("docker").args(["run", "a b"])).env("DOCKER_BUILDKIT", "1");
        assert_eq!(p.line(), "DOCKER_BUILDKIT=1 docker run 'a b'");
        assert_eq!(p.env_value("DOCKER_BUILDKIT").as_deref(), Some("1"));
    }

    #[test]
    fn exit_codes_map_signals() {
        let sh = Shell::new().unwrap();
        let x = Exec::default();
        let c = x
            .capture(Proc::query(sh.cmd("sh").args(["-c", "exit 7"])))
            .unwrap();
        assert_eq!(c.code, 7);
        let c = x
            .capture(Proc::query(sh.cmd("sh").args(["-c", "kill -9 $$"])))
            .unwrap();
        assert_eq!(c.code, 137);
    }

    #[test]
    fn dry_run_skips_changes_and_runs_queries() {
        let sh = Shell::new().unwrap();
        let dir = std::env::temp_dir().join(format!("xtask-exec-{}", std::process::id()));
        let x = Exec {
            dry_run: true,
            ..Default::default()
        };
        let c = x.capture(Proc::change(sh.cmd("mkdir").arg(&dir))).unwrap();
        assert!(c.planned && !c.ok());
        assert!(!dir.exists(), "a planned change must not run");
        assert_eq!(
            x.status(Proc::change(sh.cmd("false")), Io::default())
                .unwrap(),
            0
        );
        let q = x.capture(Proc::query(sh.cmd("echo").arg("hi"))).unwrap();
        assert_eq!(q.answer().as_deref(), Some("hi"));
    }

    #[test]
    fn a_query_that_cannot_start_is_unknown_not_an_error() {
        let sh = Shell::new().unwrap();
        let c = Exec::default()
            .capture(Proc::query(sh.cmd("/nonexistent/engine").arg("version")))
            .unwrap();
        assert_eq!(c.code, 127);
        assert!(c.answer().is_none());
        assert!(Exec::default()
            .capture(Proc::change(sh.cmd("/nonexistent/engine").arg("run")))
            .is_err());
    }

    #[test]
    fn lines_are_collected_and_timeouts_kill() {
        let sh = Shell::new().unwrap();
        let (code, out) = Exec::default()
            .lines(
                Proc::change(sh.cmd("sh").args(["-c", "echo a; echo b >&2; exit 3"])),
                |_| {},
            )
            .unwrap();
        assert_eq!(code, 3);
        assert!(out.contains("a\n") && out.contains("b\n"));
        let t = Instant::now();
        let r = Exec::default().within(
            Proc::change(sh.cmd("sleep").arg("5")),
            Duration::from_millis(200),
        );
        assert_eq!(r, None);
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}

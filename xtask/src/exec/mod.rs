//! The execution layer: the only code in the xtask that starts a process (a test enforces it).
//! Over 400 lines: every way of starting one process (captured, streamed, line by line,
//! time-limited) must live here, and its tests run real processes; groups and background servers
//! are in group.rs.
//!
//! Every command arrives as a [`Proc`]: a command line plus its [`Effect`]. This layer owns
//! - echo: `-v` prints each command before it runs (`+ …` on stderr);
//! - dry run: a [`Effect::Change`] command is printed on stdout and not run; a
//!   [`Effect::Query`] (version, info, inspect, images, ps, volume ls, git rev-parse, df …) runs,
//!   because a task needs its answer to make the plan. A query that cannot start (no engine on
//!   this machine) answers with exit code 127 instead of failing, so plans say "unknown";
//! - capture vs streaming, and timeouts;
//! - signals: once SIGINT/SIGTERM arrived, every way of running a process ends the task with
//!   exit code 130 and nothing new starts (a child in flight is stopped; the caller's clean-up,
//!   such as removing the container, runs). A dev-run container is first sent the same signal
//!   ([`Forward`]) and given time to stop on its own (a training run saves a checkpoint); a
//!   second signal removes it at once.

mod files;
mod group;

use crate::error::{code, Result};
pub use crate::signals::{install_signal_flag, interrupted};
use crate::signals::{last_signal, signal_count};
use anyhow::Context;
pub use group::Member;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
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
    /// Pass the signal on to what the child runs (a container), and wait for it to stop.
    pub forward: Option<Forward>,
}

/// The commands that hand SIGINT or SIGTERM on to a container (`kill --signal …`), and how long
/// to wait for it to stop after that before removing it.
#[derive(Debug)]
pub struct Forward {
    pub int: Proc,
    pub term: Proc,
    pub grace: Duration,
}

/// The flags that decide how commands run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exec {
    pub dry_run: bool,
    pub verbose: bool,
}

/// Nothing new starts once the user interrupted: the task ends with 130.
fn refuse_after_signal() -> Result<()> {
    if interrupted() {
        return Err(code(130));
    }
    Ok(())
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

    /// Run and capture stdout/stderr (stdin is /dev/null). After a signal nothing starts, and
    /// a signal while it runs stops it: both end the task with 130.
    pub fn capture(&self, p: Proc) -> Result<Captured> {
        refuse_after_signal()?;
        self.capture_inner(p, true)
    }

    /// `capture` for clean-up after a signal (removing a container): runs regardless.
    pub fn capture_cleanup(&self, p: Proc) -> Result<Captured> {
        self.capture_inner(p, false)
    }

    fn capture_inner(&self, mut p: Proc, stop_on_signal: bool) -> Result<Captured> {
        if self.announce(&p) {
            return Ok(Captured {
                planned: true,
                ..Default::default()
            });
        }
        let program = p.program();
        let mut child = match spawn_piped(&mut p) {
            Ok(c) => c,
            // A query that cannot start is an answer ("unknown"), not a crash.
            Err(e) if p.effect == Effect::Query => {
                return Ok(Captured {
                    code: 127,
                    stderr: format!("cannot start `{program}`: {}", e.root_cause()),
                    ..Default::default()
                })
            }
            Err(e) => return Err(e),
        };
        let collect = |s: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut s) = s {
                    let _ = s.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let out = collect(child.stdout.take().map(|s| Box::new(s) as _));
        let err = collect(child.stderr.take().map(|s| Box::new(s) as _));
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if stop_on_signal && interrupted() {
                let _ = child.kill();
                let _ = child.wait();
                let _ = (out.join(), err.join());
                return Err(code(130));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(Captured {
            code: exit_code(status),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            planned: false,
        })
    }

    /// Run with inherited stdout/stderr; return the exit code (0 for a planned command).
    pub fn status(&self, mut p: Proc, io: Io) -> Result<i32> {
        refuse_after_signal()?;
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
        self.wait(&mut child, io.on_signal, io.forward)
    }

    /// Run, passing each output line to `on_line` as it comes (stdout and stderr), and keep
    /// the whole output. Returns (exit code, output).
    pub fn lines(
        &self,
        mut p: Proc,
        on_line: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<(i32, String)> {
        refuse_after_signal()?;
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
        let code = self.wait(&mut child, None, None)?;
        for r in readers {
            let _ = r.join();
        }
        let text = log.lock().unwrap().clone();
        Ok((code, text))
    }

    /// Run with output discarded; give up (kill it) after `limit`. None: timed out or could not
    /// start. A planned command answers None.
    pub fn within(&self, mut p: Proc, limit: Duration) -> Option<i32> {
        if interrupted() || self.announce(&p) {
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

    /// Wait for a child; on a signal run the clean-up, stop the child, and end with 130. With
    /// `forward`, the signal goes on to the container first and it gets `grace` to stop on its
    /// own (a second signal cuts that short); the task then ends with the container's exit code
    /// when it failed (a preempted training run: 75), else 128 + the signal.
    fn wait(
        &self,
        child: &mut std::process::Child,
        on_signal: Option<Proc>,
        forward: Option<Forward>,
    ) -> Result<i32> {
        loop {
            if let Some(status) = child.try_wait()? {
                if interrupted() {
                    self.cleanup(on_signal);
                    return Err(code(130));
                }
                return Ok(exit_code(status));
            }
            if interrupted() {
                let sig = last_signal();
                if let Some(f) = forward {
                    let seen = signal_count();
                    let pass = if sig == signal_hook::consts::SIGTERM {
                        f.term
                    } else {
                        f.int
                    };
                    let _ = self.capture_cleanup(pass);
                    let deadline = Instant::now() + f.grace;
                    while Instant::now() < deadline && signal_count() == seen {
                        if let Some(status) = child.try_wait()? {
                            self.cleanup(on_signal);
                            eprintln!("interrupted");
                            let c = exit_code(status);
                            return Err(code(if c != 0 { c } else { 128 + sig }));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
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
        if let Some(p) = on_signal {
            let _ = self.capture_cleanup(p);
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

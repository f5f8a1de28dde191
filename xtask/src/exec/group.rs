//! The execution layer, continued: processes that run together (the nodes of a multi-node
//! rehearsal) and a server left running in the background.

use super::{exit_code, interrupted, read_lines, refuse_after_signal, spawn_piped, Exec, Proc};
use crate::error::{code, Result};
use anyhow::Context;
use std::process::Stdio;
use std::time::Duration;

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
        refuse_after_signal()?;
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

/// A process run beside the task's own (a build that exports the heavy layer while the main
/// build goes on): its stderr collected; `finish` waits for it, dropping it kills it.
pub struct Companion {
    child: Option<std::process::Child>,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Companion {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Companion {
    /// Wait for it to end: (exit code, its stderr); None for a dry run.
    pub fn finish(mut self) -> Option<(i32, String)> {
        let status = self.child.take()?.wait().ok()?;
        let err = self.err.take()?.join().unwrap_or_default();
        Some((exit_code(status), err))
    }
}

impl Exec {
    /// Start `p` beside what the task runs next (stdout discarded, stderr collected).
    pub fn companion(&self, mut p: Proc) -> Result<Companion> {
        refuse_after_signal()?;
        if self.announce(&p) {
            return Ok(Companion {
                child: None,
                err: None,
            });
        }
        let program = p.program();
        let mut child = p
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{program}`"))?;
        let stderr = child.stderr.take();
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stderr {
                use std::io::Read;
                let _ = s.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        });
        Ok(Companion {
            child: Some(child),
            err: Some(err),
        })
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
        refuse_after_signal()?;
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
                    let _ = self.capture_cleanup(p);
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

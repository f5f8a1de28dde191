//! `cargo xtask help-check`: every CLI with `--help`, in one container; each is reported.

use crate::ctx::Ctx;
use crate::devrun;
use crate::engine::cmd;
use crate::error::{fail, Result};
use crate::policy::CLIS;

/// The script run inside the container (pure): each CLI's exit code and output, delimited.
pub fn script(clis: &[&str]) -> String {
    let mut s = String::from("cd /app; ");
    for c in clis {
        s.push_str(&format!(
            "out=$(python {c}.py --help 2>&1); rc=$?; printf '@@lexalign-help {c} %s\\n%s\\n' \"$rc\" \"$out\"; "
        ));
    }
    s
}

#[derive(Debug, PartialEq, Eq)]
pub struct HelpResult {
    pub cli: String,
    pub code: i32,
    pub output: String,
}

/// Split the container's output into one result per CLI (pure).
pub fn parse(output: &str) -> Vec<HelpResult> {
    let mut results: Vec<HelpResult> = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("@@lexalign-help ") {
            let mut parts = rest.split_whitespace();
            let cli = parts.next().unwrap_or("?").to_string();
            let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
            results.push(HelpResult {
                cli,
                code,
                output: String::new(),
            });
        } else if let Some(last) = results.last_mut() {
            last.output.push_str(line);
            last.output.push('\n');
        }
    }
    results
}

/// One ✓/✗ line per expected CLI, and how many failed (pure). `container` describes how the
/// container ended, for CLIs that never reported.
pub fn verdicts(clis: &[&str], results: &[HelpResult], container: &str) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut failed = 0;
    for cli in clis {
        match results.iter().find(|r| r.cli == *cli) {
            Some(r) if r.code == 0 && r.output.contains("Usage:") => {
                lines.push(format!("✓ {cli}.py --help: exit 0, usage printed"))
            }
            Some(r) => {
                failed += 1;
                let last = r
                    .output
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("(no output)");
                let what = if r.code == 0 {
                    "no usage text".to_string()
                } else {
                    format!("exit {}", r.code)
                };
                lines.push(format!("✗ {cli}.py --help: {what}: {last}"));
            }
            None => {
                failed += 1;
                lines.push(format!("✗ {cli}.py --help: did not run ({container})"));
            }
        }
    }
    (lines, failed)
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let spec = devrun::new(
        ctx,
        "help-check",
        vec!["sh".into(), "-c".into(), script(&CLIS)],
    );
    let e = ctx.engine_ready()?;
    let out = ctx.capture(cmd::run(e, &ctx.sh, &spec))?;
    if out.planned {
        return Ok(());
    }
    let container = match crate::engine::killed_hint(out.code) {
        Some(hint) => format!("container exit {}: {hint}", out.code),
        None => format!("container exit {}: {}", out.code, out.first_error_line()),
    };
    let (lines, failed) = verdicts(&CLIS, &parse(&out.stdout), &container);
    for l in lines {
        println!("{l}");
    }
    if failed > 0 {
        return Err(fail(format!(
            "help-check: {failed} of {} CLIs failed",
            CLIS.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cli_gets_a_verdict() {
        let out = "@@lexalign-help download 0\nUsage: download.py [OPTIONS]\n\n@@lexalign-help finetune 0\nno usage here\n@@lexalign-help align 1\nTraceback\nSyntaxError: bad\n";
        let (lines, failed) = verdicts(
            &["download", "finetune", "align", "export"],
            &parse(out),
            "exit 1",
        );
        assert_eq!(failed, 3);
        assert!(lines[0].starts_with("✓ download.py"));
        assert_eq!(
            lines[1],
            "✗ finetune.py --help: no usage text: no usage here"
        );
        assert_eq!(lines[2], "✗ align.py --help: exit 1: SyntaxError: bad");
        assert_eq!(lines[3], "✗ export.py --help: did not run (exit 1)");
    }

    #[test]
    fn the_script_reports_what_the_shell_sees() {
        // Run the generated script with stand-in CLIs in a scratch folder: the delimiters and
        // exit codes must survive a real shell. (Under target/, not the system's temporary
        // folder: /tmp may be mounted noexec.)
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/xtask-tests")
            .join(format!("help-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake_python = dir.join("python");
        std::fs::write(
            &fake_python,
            "#!/bin/sh\ncase \"$1\" in good.py) echo 'Usage: good.py';; *) echo boom >&2; exit 4;; esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake_python, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = script(&["good", "bad"]).replace("cd /app; ", "");
        let sh = xshell::Shell::new().unwrap();
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = crate::exec::Exec::default()
            .capture(crate::exec::Proc::query(sh.cmd("sh").args(["-c", &script])).env("PATH", path))
            .unwrap();
        let (lines, failed) = verdicts(&["good", "bad"], &parse(&out.stdout), "");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(failed, 1, "{lines:?}");
        assert_eq!(lines[1], "✗ bad.py --help: exit 4: boom");
    }
}

//! `cargo xtask help-check`: the three CLIs with `--help`, in one container; all three reported.

use crate::container::DevRun;
use crate::ctx::{self, Ctx};
use anyhow::Result;

pub const CLIS: [&str; 3] = ["download", "finetune", "align"];

/// The script run inside the container (pure): each CLI's exit code and output, delimited.
pub fn script() -> String {
    let mut s = String::from("cd /app; ");
    for c in CLIS {
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

impl HelpResult {
    pub fn ok(&self) -> bool {
        self.code == 0 && self.output.contains("Usage:")
    }
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

pub fn run(ctx: &Ctx) -> Result<()> {
    let run = DevRun::new(ctx, "help-check", vec!["sh".into(), "-c".into(), script()])?;
    if ctx.g.dry_run {
        ctx.exec(run.to_cmd(&ctx.sh), Some(&run.name))?;
        return Ok(());
    }
    ctx.engine_ready()?;
    let out = ctx.capture(run.to_cmd(&ctx.sh))?;
    let results = parse(&out.stdout);
    let mut failed = 0;
    for cli in CLIS {
        match results.iter().find(|r| r.cli == cli) {
            Some(r) if r.ok() => println!("✓ {cli}.py --help: exit 0, usage printed"),
            Some(r) => {
                failed += 1;
                let first = r
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
                println!("✗ {cli}.py --help: {what}: {first}");
            }
            None => {
                failed += 1;
                println!(
                    "✗ {cli}.py --help: did not run (container exit {}): {}",
                    out.code,
                    out.first_error_line()
                );
            }
        }
    }
    if failed > 0 {
        return Err(ctx::fail(format!("help-check: {failed} of 3 CLIs failed")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_cli() {
        let out = "@@lexalign-help download 0\nUsage: download.py [OPTIONS]\n\n@@lexalign-help finetune 0\nUsage: x\n@@lexalign-help align 1\nTraceback\nSyntaxError: bad\n";
        let r = parse(out);
        assert_eq!(r.len(), 3);
        assert!(r[0].ok() && r[1].ok());
        assert!(!r[2].ok());
        assert_eq!(r[2].code, 1);
        assert!(r[2].output.contains("SyntaxError"));
    }

    #[test]
    fn script_runs_all_three() {
        let s = script();
        for c in CLIS {
            assert!(s.contains(&format!("python {c}.py --help")));
        }
    }
}

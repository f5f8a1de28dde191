//! `cargo xtask clean`: remove the containers, images and volumes that carry the project's
//! label, and list them. With --dry-run it lists only.

use crate::ctx::{self, Ctx};
use anyhow::Result;
use xshell::{Cmd, Shell};

/// The three listing commands (pure): containers, images, volumes with the project label.
pub fn list_cmds<'a>(sh: &'a Shell, engine: &std::path::Path, label: &str) -> [Cmd<'a>; 3] {
    let filter = format!("label={label}");
    [
        sh.cmd(engine).args([
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            "{{.ID}} {{.Names}}",
        ]),
        sh.cmd(engine).args([
            "images",
            "--filter",
            &filter,
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ]),
        sh.cmd(engine)
            .args(["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"]),
    ]
}

/// Parse `ID NAME` lines, de-duplicating IDs (pure).
pub fn parse_listing(out: &str) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(2, ' ');
        let id = parts.next().unwrap_or_default().to_string();
        let name = parts.next().unwrap_or(&id).to_string();
        if let Some(entry) = seen.iter_mut().find(|(i, _)| *i == id) {
            entry.1.push_str(&format!(", {name}"));
        } else {
            seen.push((id, name));
        }
    }
    seen
}

pub fn run(ctx: &Ctx) -> Result<()> {
    let engine = ctx.engine()?;
    if !ctx.g.dry_run {
        ctx.engine_ready()?;
    } else if which::which(&engine.program).is_err() && !engine.program.is_file() {
        // Nothing to list without a client.
        for c in list_cmds(&ctx.sh, &engine.program, &ctx.project_label()) {
            ctx.capture(c)?;
        }
        return Ok(());
    }
    let [containers, images, volumes] = list_cmds(&ctx.sh, &engine.program, &ctx.project_label());
    let containers = parse_listing(&ctx.capture_quiet(containers)?.stdout);
    let images = parse_listing(&ctx.capture_quiet(images)?.stdout);
    let mut volumes: Vec<String> = ctx
        .capture_quiet(volumes)?
        .stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    // The HF cache volume may predate its label (created implicitly by a run).
    let hf = ctx.hf_volume();
    if !volumes.contains(&hf)
        && ctx
            .capture_quiet(engine.cmd(&ctx.sh).args(["volume", "inspect", &hf]))?
            .ok()
    {
        volumes.push(hf);
    }
    let verb = if ctx.g.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut failures = 0;
    let mut remove = |kind: &str, args: Vec<String>, show: String| -> Result<()> {
        let cmd = engine.cmd(&ctx.sh).args(&args);
        if ctx.g.dry_run {
            ctx.capture(cmd)?;
            println!("{verb} {kind} {show}");
            return Ok(());
        }
        let out = ctx.capture(cmd)?;
        if out.ok() {
            println!("{verb} {kind} {show}");
        } else {
            failures += 1;
            eprintln!("could not remove {kind} {show}: {}", out.first_error_line());
        }
        Ok(())
    };
    for (id, name) in &containers {
        remove(
            "container",
            vec!["rm".into(), "-f".into(), id.clone()],
            format!("{name} ({id})"),
        )?;
    }
    for (id, name) in &images {
        remove(
            "image",
            vec!["rmi".into(), "-f".into(), id.clone()],
            format!("{name} ({id})"),
        )?;
    }
    for v in &volumes {
        remove(
            "volume",
            vec!["volume".into(), "rm".into(), "-f".into(), v.clone()],
            v.clone(),
        )?;
    }
    if containers.is_empty() && images.is_empty() && volumes.is_empty() {
        println!("nothing to remove (label {})", ctx.project_label());
    }
    if failures > 0 {
        return Err(ctx::fail(format!(
            "clean: {failures} object(s) could not be removed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_filter_on_the_label() {
        let sh = Shell::new().unwrap();
        for c in list_cmds(
            &sh,
            std::path::Path::new("docker"),
            "dev.lexalign.project=lexalign",
        ) {
            let argv = ctx::argv(c);
            assert!(
                argv.contains(&"label=dev.lexalign.project=lexalign".to_string()),
                "{argv:?}"
            );
        }
    }

    #[test]
    fn listing_dedups_ids() {
        let l = parse_listing("abc lexalign-dev:latest\nabc lexalign-dev:old\ndef other:1\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].1, "lexalign-dev:latest, lexalign-dev:old");
    }
}

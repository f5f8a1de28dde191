//! Dev-run containers: the run spec every container task uses (test-unit, test-e2e, shell, run,
//! help-check), filled from the context and project policy: `--rm --init`, labels (project, task,
//! and the run-time mark `clean` trusts), a predictable name, the host's uid:gid, `python/` at
//! /app, the HF cache volume, HF_TOKEN & co. by name, and the CA bundle read-only.

use crate::cli::DevOpts;
use crate::ctx::Ctx;
use crate::engine::cmd::{self, RunOpts, RunSpec};
use crate::error::{code, usage, Result};
use crate::exec::{Forward, Io, Proc};
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
        env: policy::DEV_RUN_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        image: image.to_string(),
        cmd,
        ..Default::default()
    };
    if let Some(ca) = ca {
        ca_mount(&mut s, ca);
    }
    s
}

/// LEXALIGN_IMAGE_ID / LEXALIGN_IMAGE_DIGEST for the image a dev run uses, from one `image
/// inspect` answer "ID DIGEST…" (pure; nothing when the image is missing), so run.json records
/// which image trained.
pub fn image_identity(inspect: Option<&str>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut words = inspect.unwrap_or("").split_whitespace();
    if let Some(id) = words.next().filter(|s| s.starts_with("sha256:")) {
        env.push(("LEXALIGN_IMAGE_ID".to_string(), id.to_string()));
    }
    if let Some(d) = words.next().filter(|d| d.contains("@sha256:")) {
        env.push(("LEXALIGN_IMAGE_DIGEST".to_string(), d.to_string()));
    }
    env
}

/// A dev run for `task` with the context's settings.
pub fn new(ctx: &Ctx, task: &str, cmd: Vec<String>) -> RunSpec {
    let pass_env = policy::PASS_ENV
        .iter()
        .filter(|n| std::env::var_os(n).is_some())
        .map(|n| n.to_string())
        .collect();
    let mut s = spec(
        &ctx.project,
        task,
        ctx.image(),
        &ctx.python_dir,
        policy::host_ids(),
        pass_env,
        policy::ca_bundle_from_env().as_deref(),
        cmd,
    );
    let inspect = ctx.engine().ok().and_then(|e| {
        // One request on the local Docker socket where it stands for the client (~1 ms),
        // else one client run (~20 ms): this is all a dev run asks before it starts.
        if crate::engine::fast_ping_applies(&e.program) {
            let path = format!("/images/{}/json", ctx.image());
            if let Some(body) = crate::engine::docker_socket_get(&path) {
                return crate::engine::identity_from_inspect_json(&body);
            }
        }
        ctx.capture(cmd::image_inspect(
            e,
            &ctx.sh,
            "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}",
            ctx.image(),
        ))
        .ok()?
        .answer()
    });
    s.env.extend(image_identity(inspect.as_deref()));
    let rev = crate::git::head_from_files(&ctx.root)
        .or_else(|| crate::git::head(&ctx.exec, &ctx.sh, &ctx.root));
    if let Some(rev) = rev {
        s.env.push((policy::GIT_REVISION_ENV.to_string(), rev));
    }
    s
}

/// The engine flags for `--gpus`, `--shm-size`, `--ipc`, `--network`, `-p` and `--engine-arg`,
/// checked (pure): a bad value is a usage error naming the flag and a valid example.
pub fn run_opts(o: &DevOpts) -> Result<RunOpts> {
    let mut a = RunOpts::default();
    if let Some(g) = &o.gpus {
        let ok = g == "all"
            || g.parse::<u32>().is_ok_and(|n| n > 0)
            || g.strip_prefix("device=").is_some_and(|l| {
                !l.is_empty()
                    && l.split(',').all(|d| {
                        !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    })
            });
        if !ok {
            return Err(usage(format!(
                "--gpus {g}: use all, a count such as 2, or device=0,1"
            )));
        }
        a.gpus = Some(g.clone());
    }
    if let Some(v) = &o.shm_size {
        let digits = v.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit())
            || v.len() - digits.len() > 1
        {
            return Err(usage(format!(
                "--shm-size {v}: use a size such as 8g or 512m"
            )));
        }
        a.shm_size = Some(v.clone());
    }
    if let Some(v) = &o.ipc {
        if !matches!(v.as_str(), "host" | "private" | "shareable" | "none")
            && !v.starts_with("container:")
        {
            return Err(usage(format!(
                "--ipc {v}: use host, private, shareable or none"
            )));
        }
        a.ipc = Some(v.clone());
    }
    if let Some(v) = &o.network {
        if v.is_empty() || v.starts_with('-') {
            return Err(usage(format!(
                "--network {v:?}: use host, none, bridge or a network name"
            )));
        }
        a.network = Some(v.clone());
    }
    for p in &o.publish {
        let parts: Vec<&str> = p.split(':').collect();
        let port = |s: &str| {
            let s = s.split('/').next().unwrap_or("");
            s.split('-').all(|n| n.parse::<u16>().is_ok_and(|n| n > 0))
        };
        let ok = match parts.as_slice() {
            [h, c] => port(h) && port(c),
            [ip, h, c] => !ip.is_empty() && (h.is_empty() || port(h)) && port(c),
            _ => false,
        };
        if !ok {
            return Err(usage(format!(
                "-p {p}: use HOST:CONTAINER or IP:HOST:CONTAINER, e.g. -p 127.0.0.1:6006:6006"
            )));
        }
        a.publish.push(p.clone());
    }
    for e in &o.engine_args {
        if !e.starts_with('-') {
            return Err(usage(format!(
                "--engine-arg {e}: give one engine flag with its value, e.g. --engine-arg=--cpus=4"
            )));
        }
        a.engine_args.push(e.clone());
    }
    Ok(a)
}

/// Add the dev-run options to a spec.
pub fn apply_opts(s: &mut RunSpec, o: &DevOpts) -> Result<()> {
    s.opts = run_opts(o)?;
    Ok(())
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

/// How long a container gets to stop on its own after a forwarded signal (a training step plus
/// a checkpoint save), before it is removed. A second signal removes it at once.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// SIGINT/SIGTERM to the task go on to the container's init, as `docker stop` would send them.
fn forwarder(ctx: &Ctx, s: &RunSpec) -> Result<Option<Forward>> {
    let e = ctx.engine()?;
    Ok(s.name.as_ref().map(|n| Forward {
        int: cmd::kill(e, &ctx.sh, n, "INT"),
        term: cmd::kill(e, &ctx.sh, n, "TERM"),
        grace: STOP_GRACE,
    }))
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
        forward: forwarder(ctx, s)?,
    };
    let code = ctx.status(cmd::run(e, &ctx.sh, s), io)?;
    if let Some(hint) = crate::engine::killed_hint(code) {
        eprintln!(
            "{}: the container exited 137: {hint}",
            s.name.as_deref().unwrap_or("container")
        );
    }
    Ok(code)
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
    fn image_identity_from_one_inspect() {
        let env = image_identity(Some(
            "sha256:abc reg/ns/lexalign-dev@sha256:def other@sha256:x",
        ));
        assert_eq!(
            env,
            [
                ("LEXALIGN_IMAGE_ID".to_string(), "sha256:abc".to_string()),
                (
                    "LEXALIGN_IMAGE_DIGEST".to_string(),
                    "reg/ns/lexalign-dev@sha256:def".to_string()
                ),
            ]
        );
        assert_eq!(
            image_identity(Some("sha256:abc")).len(),
            1,
            "never pushed: no digest"
        );
        assert!(image_identity(None).is_empty());
    }

    #[test]
    fn dev_opts_become_engine_flags() {
        let o = DevOpts {
            gpus: Some("all".into()),
            shm_size: Some("8g".into()),
            ipc: Some("host".into()),
            network: Some("host".into()),
            publish: vec!["127.0.0.1:6006:6006".into(), "8080:80".into()],
            engine_args: vec!["--cpus=4".into()],
        };
        assert_eq!(
            run_opts(&o).unwrap().args().join(" "),
            "--gpus all --shm-size 8g --ipc host --network host -p 127.0.0.1:6006:6006 -p 8080:80 --cpus=4"
        );
        assert!(run_opts(&DevOpts::default()).unwrap().args().is_empty());
        for bad in [
            DevOpts {
                gpus: Some("0".into()),
                ..Default::default()
            },
            DevOpts {
                gpus: Some("many".into()),
                ..Default::default()
            },
            DevOpts {
                shm_size: Some("lots".into()),
                ..Default::default()
            },
            DevOpts {
                ipc: Some("shared".into()),
                ..Default::default()
            },
            DevOpts {
                publish: vec!["6006".into()],
                ..Default::default()
            },
            DevOpts {
                publish: vec!["a:b".into()],
                ..Default::default()
            },
            DevOpts {
                engine_args: vec!["cpus=4".into()],
                ..Default::default()
            },
        ] {
            let e = run_opts(&bad).unwrap_err();
            assert_eq!(crate::error::code_of(&e), 2, "{bad:?}");
        }
        let mut s = RunSpec {
            image: "img".into(),
            cmd: vec!["true".into()],
            ..Default::default()
        };
        apply_opts(
            &mut s,
            &DevOpts {
                gpus: Some("2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.args().join(" ").contains("--gpus 2 img true"));
    }

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
        assert!(line.contains("-e PYTHONDONTWRITEBYTECODE= "));
        assert!(line.ends_with("lexalign-dev:latest true"));
    }
}

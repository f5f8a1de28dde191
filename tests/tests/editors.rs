//! The ways people use the image outside `cargo xtask`, for real: the Dev Containers CLI
//! (`devcontainer up` / `exec` on .devcontainer/devcontainer.json, as a non-root host user),
//! Compose (docker/compose.yaml with Debian's docker-compose 1.29 or Compose v2), and the
//! design's plain `docker run` usages. Fails loudly without Docker or the tools, unless
//! LEXALIGN_SKIP_DOCKER_TESTS=1 (then reported as ignored).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Dev Containers CLI: $LEXALIGN_DEVCONTAINER_CLI, else target/devcontainer (what .ci/run
/// installs with npm) copied into `shared` (the host user may not be able to enter the
/// checkout: a clone under /root or in a private temporary folder), else `devcontainer` on PATH.
fn devcontainer_cli(shared: &Path) -> String {
    if let Ok(p) = std::env::var("LEXALIGN_DEVCONTAINER_CLI") {
        return p;
    }
    let local = root().join("target/devcontainer");
    if local.join("node_modules/.bin/devcontainer").exists() {
        let to = shared.join("devcontainer-cli");
        let r = sh("cp", &["-a", local.to_str().unwrap(), to.to_str().unwrap()]);
        assert_eq!(r.code, 0, "copy the Dev Containers CLI: {}", r.all());
        return to
            .join("node_modules/.bin/devcontainer")
            .display()
            .to_string();
    }
    "devcontainer".into()
}

/// Compose: `docker-compose` (v1.29 here) or the engine's `compose` plugin (v2).
fn compose() -> Vec<String> {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return vec!["docker-compose".into()];
    }
    vec![engine(), "compose".into()]
}

fn uid() -> u32 {
    sh("id", &["-u"]).stdout.trim().parse().unwrap()
}

/// The non-root host user to act as: ourselves, or (as root, as in CI) a user made for this
/// test and deleted (with its home) when dropped.
struct HostUser {
    name: String,
    uid: u32,
    made: bool,
}

impl HostUser {
    fn get() -> HostUser {
        if uid() != 0 {
            return HostUser {
                name: sh("id", &["-un"]).stdout.trim().to_string(),
                uid: uid(),
                made: false,
            };
        }
        let name = format!("lexalign-dc{}", std::process::id());
        let r = sh("useradd", &["-m", "-G", "docker", &name]);
        assert_eq!(r.code, 0, "useradd {name}: {}", r.all());
        let uid = sh("id", &["-u", &name]).stdout.trim().parse().unwrap();
        HostUser {
            name,
            uid,
            made: true,
        }
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        if self.made {
            let r = sh("userdel", &["-r", &self.name]);
            if r.code != 0 {
                eprintln!("userdel -r {}: {}", self.name, r.all());
            }
        }
    }
}

/// A scratch folder that every user can reach: under the first of $TMPDIR, /tmp and /var/tmp
/// whose every parent folder others may traverse (a private $TMPDIR is skipped). Removed when
/// dropped.
struct SharedScratch(PathBuf);

impl SharedScratch {
    fn new(name: &str) -> SharedScratch {
        use std::os::unix::fs::PermissionsExt;
        let traversable = |p: &Path| {
            p.ancestors().all(|a| {
                std::fs::metadata(a)
                    .is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0)
            })
        };
        let base = [std::env::temp_dir(), "/tmp".into(), "/var/tmp".into()]
            .into_iter()
            .find(|b| traversable(b))
            .expect("no temporary folder that other users can enter ($TMPDIR, /tmp, /var/tmp)");
        let dir = base.join(format!("lexalign-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        SharedScratch(dir)
    }
}

impl Drop for SharedScratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository as a clone would have it (tracked and not-ignored files) in `into/ws`, owned
/// by `user`.
fn clone_tree(into: &Path, user: &str) -> PathBuf {
    let dir = into.join("ws");
    std::fs::create_dir_all(&dir).unwrap();
    let files = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    for f in files.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(f).unwrap());
        let (from, to) = (root().join(rel), dir.join(rel));
        if from.is_file() {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let r = sh("chown", &["-R", &format!("{user}:"), dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.all());
    dir
}

/// Removes the containers carrying a label when dropped (the CLI has no `down`).
struct RemoveByLabel(String);

impl Drop for RemoveByLabel {
    fn drop(&mut self) {
        let ids = sh(
            &engine(),
            &["ps", "-aq", "--filter", &format!("label={}", self.0)],
        )
        .stdout;
        for id in ids.split_whitespace() {
            // the Dev Containers CLI builds a `vsc-…-uid` image to match the host user's uid:
            // it goes with the container
            let image = sh(&engine(), &["inspect", "--format", "{{.Config.Image}}", id]).stdout;
            sh(&engine(), &["rm", "-f", id]);
            let image = image.trim();
            if image.starts_with("vsc-") {
                sh(&engine(), &["rmi", image]);
            }
        }
    }
}

/// Run as the host user, with its own home and temporary folder (the CLI writes to $TMPDIR,
/// and ours may be private).
fn as_user(user: &str, program: &str, args: &[&str], cwd: &Path) -> Run {
    let mut c = if uid() == 0 {
        let mut c = Command::new("runuser");
        c.args([
            "-u",
            user,
            "--",
            "env",
            &format!("HOME=/home/{user}"),
            &format!("TMPDIR=/home/{user}"),
            program,
        ]);
        c
    } else {
        Command::new(program)
    };
    c.args(args).current_dir(cwd).env_remove("HF_TOKEN");
    c.output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
        .into()
}

fn devcontainer_up_and_exec_as_the_host_user() {
    let (img, _) = built_image();
    assert_eq!(
        img,
        policy::DEFAULT_IMAGE,
        "devcontainer.json names the default image"
    );
    let host = HostUser::get();
    let (user, user_uid) = (host.name.clone(), host.uid);
    let shared = SharedScratch::new("devcontainer");
    let ws = clone_tree(&shared.0, &user);
    let label = format!("dev.lexalign.e2e=devcontainer-{}", std::process::id());
    let _cleanup = RemoveByLabel(label.clone());
    let cli = devcontainer_cli(&shared.0);
    let ws_s = ws.to_str().unwrap();
    let common = [
        "--workspace-folder",
        ws_s,
        "--docker-path",
        &engine(),
        "--id-label",
        &label,
    ];
    let mut up = vec!["up"];
    up.extend(common);
    let r = as_user(&user, &cli, &up, &ws);
    assert_eq!(r.code, 0, "devcontainer up: {}", r.all());
    assert!(r.stdout.contains("\"outcome\":\"success\""), "{}", r.all());
    assert!(
        r.all().contains("LexAlign dev container ready"),
        "postCreateCommand ran: {}",
        r.all()
    );

    let script = "set -e; pwd; for c in download finetune align export generate; do python $c.py --help >/dev/null; done; \
                  python -c 'import lexalign; print(lexalign.__file__)'; touch made-in-devcontainer.txt; \
                  python -m pytest -q -p no:cacheprovider tests/test_config.py tests/test_eval_unit.py -k 'config or svg or summary'";
    let mut exec = vec!["exec"];
    exec.extend(common);
    exec.extend(["bash", "-c", script]);
    let r = as_user(&user, &cli, &exec, &ws);
    assert_eq!(r.code, 0, "devcontainer exec: {}", r.all());
    assert!(
        r.stdout.contains("/workspaces/lexalign/python\n"),
        "workspaceFolder: {}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("/workspaces/lexalign/python/lexalign/__init__.py"),
        "the workspace copy of the package is imported: {}",
        r.stdout
    );
    assert!(r.stdout.contains(" passed"), "{}", r.stdout);
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(ws.join("python/made-in-devcontainer.txt")).unwrap();
    assert_eq!(
        made.uid(),
        user_uid,
        "a file made inside belongs to the host user"
    );
    drop(_cleanup);
    let left = sh(
        &engine(),
        &["ps", "-aq", "--filter", &format!("label={label}")],
    )
    .stdout;
    assert!(left.trim().is_empty(), "container removed: {left}");
}

fn compose_runs_the_help_checks_and_unit_tests() {
    let (img, _) = built_image();
    let project = format!("lexalign-e2e-{}", std::process::id());
    let file = root().join(policy::COMPOSE_FILE);
    let base: Vec<String> = compose()
        .into_iter()
        .chain([
            "-f".into(),
            file.display().to_string(),
            "-p".into(),
            project.clone(),
        ])
        .collect();
    let run = |args: &[&str]| -> Run {
        let mut c = Command::new(&base[0]);
        c.args(&base[1..])
            .args(["run", "--rm", "-T", "lexalign"])
            .args(args);
        c.env("LEXALIGN_IMAGE", img)
            .env("LEXALIGN_UID", uid().to_string())
            .env("LEXALIGN_GID", sh("id", &["-g"]).stdout.trim())
            .env_remove("HF_TOKEN")
            .env("DOCKER_HOST", "unix:///var/run/docker.sock");
        c.output().unwrap().into()
    };
    let r = run(&[
        "sh",
        "-c",
        "for c in download finetune align export generate; do python $c.py --help | head -1; done",
    ]);
    let down = || {
        let mut c = Command::new(&base[0]);
        c.args(&base[1..]).arg("down").output().unwrap();
    };
    if r.code != 0 {
        down();
    }
    assert_eq!(r.code, 0, "compose run --help: {}", r.all());
    assert_eq!(r.stdout.matches("Usage:").count(), 5, "{}", r.stdout);
    let r = run(&[
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not integration",
        "tests/test_config.py",
    ]);
    down();
    assert_eq!(r.code, 0, "compose run pytest: {}", r.all());
    assert!(r.stdout.contains(" passed"), "{}", r.stdout);
}

/// The design's "Data Flow" and "Testing Strategy" usages, with the image's defaults.
fn design_docker_run_usages_work_as_written() {
    let (img, _) = built_image();
    let e = engine();
    for cli in ["download", "finetune", "align", "export", "generate"] {
        let r = sh(
            &e,
            &["run", "--rm", img, "python", &format!("{cli}.py"), "--help"],
        );
        assert_eq!(r.code, 0, "{cli}.py --help: {}", r.all());
        assert!(r.stdout.contains("Usage:"), "{}", r.stdout);
    }
    // docker run lexalign-dev pytest tests/ -v -m "not integration" (the image's own copy)
    let r = sh(
        &e,
        &[
            "run",
            "--rm",
            img,
            "pytest",
            "tests/",
            "-q",
            "-m",
            "not integration",
        ],
    );
    assert_eq!(r.code, 0, "pytest in the image: {}", r.all());
    assert!(
        r.stdout.contains(" passed") && !r.stdout.contains("failed"),
        "{}",
        r.stdout
    );
    // docker run --rm -v $(pwd):/app lexalign-dev pytest … (the host's python/ over /app)
    let py = root().join("python");
    let mount = format!("{}:/app", py.display());
    let r = sh(
        &e,
        &[
            "run",
            "--rm",
            "-v",
            &mount,
            img,
            "pytest",
            "tests/test_cli.py",
            "tests/test_config.py",
            "-q",
            "-m",
            "not integration",
        ],
    );
    assert_eq!(r.code, 0, "pytest on the mounted tree: {}", r.all());
    // docker run -it lexalign-dev bash: an interactive shell (stdin piped here)
    let mut c = Command::new(&e);
    c.args(["run", "--rm", "-i", img, "bash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"python download.py --help | head -1; exit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    // the real-Hub tests without HF_TOKEN: reported as skipped, never passed
    let r = sh(
        &e,
        &[
            "run",
            "--rm",
            img,
            "pytest",
            "tests/test_hub_real.py",
            "-v",
            "-m",
            "hub",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("SKIPPED") && !r.stdout.contains("PASSED"),
        "{}",
        r.stdout
    );
}

fn main() {
    let tests: Vec<(&str, fn())> = vec![
        (
            "devcontainer_up_and_exec_as_the_host_user",
            devcontainer_up_and_exec_as_the_host_user,
        ),
        (
            "compose_runs_the_help_checks_and_unit_tests",
            compose_runs_the_help_checks_and_unit_tests,
        ),
        (
            "design_docker_run_usages_work_as_written",
            design_docker_run_usages_work_as_written,
        ),
    ];
    run_docker_trials(tests, "editor/Compose tests", false);
}

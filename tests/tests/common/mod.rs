//! Helpers shared by the end-to-end tests: run `cargo xtask`, find the engine, build the image
//! once per test binary, copy parts of the tree into scratch folders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
pub use xtask::policy;

/// A token-shaped canary (assembled so no token-shaped literal sits in the source).
pub const HF_CANARY: &str = concat!("hf_", "E2eCanaryTokenDoNotLeak0123456789abcd");

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The engine client the tests use directly (same rule as xtask: $LEXALIGN_DOCKER, else docker).
pub fn engine() -> String {
    std::env::var("LEXALIGN_DOCKER")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "docker".into())
}

pub fn image() -> String {
    std::env::var("LEXALIGN_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| policy::DEFAULT_IMAGE.into())
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Run {
            code: o
                .status
                .code()
                .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The HF cache volume of the tests' dev runs: never the user's `lexalign-hf-cache`.
pub const TEST_HF_VOLUME: &str = "lexalign-e2e-hf-cache";

/// `cargo xtask ARGS` from the repository root (dev runs on the tests' own HF cache volume).
pub fn xtask_cmd(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.arg("xtask").args(args).current_dir(root());
    c.env_remove("HF_TOKEN");
    c.env(policy::HF_VOLUME_ENV, TEST_HF_VOLUME);
    c
}

/// `cargo xtask ARGS` with extra environment. A test that sets its own LEXALIGN_PROJECT gets
/// that project's volume (`<project>-hf-cache`), which it cleans up itself.
pub fn xtask(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut c = xtask_cmd(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    if envs.iter().any(|(k, _)| *k == "LEXALIGN_PROJECT") {
        c.env_remove(policy::HF_VOLUME_ENV);
    }
    c.output().expect("cargo xtask runs").into()
}

pub fn sh(program: &str, args: &[&str]) -> Run {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
        .into()
}

/// The user opted out of Docker tests (LEXALIGN_SKIP_DOCKER_TESTS=1): they are reported as
/// skipped.
pub fn docker_opted_out() -> bool {
    std::env::var("LEXALIGN_SKIP_DOCKER_TESTS").as_deref() == Ok("1")
}

/// Docker tests fail loudly without an engine unless the user opted out.
pub fn require_docker() -> bool {
    let out = Command::new(engine())
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!(
            "this test needs a reachable Docker engine (`{} version` failed: {}); start dockerd, or set LEXALIGN_SKIP_DOCKER_TESTS=1 to skip",
            engine(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "this test needs a Docker engine client (`{}`: {e}); install docker.io, or set LEXALIGN_SKIP_DOCKER_TESTS=1 to skip",
            engine()
        ),
    }
}

/// The CA bundle used for the shared build: the host's bundle plus a unique canary line, so a
/// leak of the secret into the image can be searched for.
pub fn canary_ca_bundle() -> (PathBuf, String) {
    let dir = scratch("ca-bundle");
    let canary = format!("# lexalign-ca-canary-{}", std::process::id());
    let mut content = policy::CA_ENV_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    content.push('\n');
    content.push_str(&canary);
    content.push('\n');
    let path = dir.join("ca-bundle.crt");
    std::fs::write(&path, content).unwrap();
    (path, canary)
}

static BUILT: OnceLock<(String, String)> = OnceLock::new();

/// Build the dev image once for this test binary (cached layers make it quick after the first
/// time), with the canary CA bundle and an HF_TOKEN canary in the environment.
/// Returns (image, CA canary line).
pub fn built_image() -> &'static (String, String) {
    BUILT.get_or_init(|| {
        let (ca, canary) = canary_ca_bundle();
        let img = image();
        let r = xtask(
            &[
                "--image",
                &img,
                "image",
                "--ca-bundle",
                ca.to_str().unwrap(),
            ],
            &[("HF_TOKEN", HF_CANARY)],
        );
        assert_eq!(r.code, 0, "cargo xtask image failed:\n{}", r.all());
        (img, canary)
    })
}

/// A fresh scratch folder under target/e2e.
pub fn scratch(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = root()
        .join("target/e2e")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copy a folder, skipping caches and outputs.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if matches!(
            n.as_ref(),
            "__pycache__"
                | ".pytest_cache"
                | ".ruff_cache"
                | "models"
                | "outputs"
                | ".venv"
                | "build"
        ) || n.ends_with(".egg-info")
        {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A copy of what the image build needs (docker/, python/, .dockerignore, Cargo files for root
/// detection) in a scratch folder, to be used with LEXALIGN_ROOT.
pub fn copy_build_tree(name: &str) -> PathBuf {
    let dir = scratch(name);
    copy_dir(&root().join("docker"), &dir.join("docker"));
    copy_dir(&root().join("python"), &dir.join("python"));
    std::fs::copy(root().join(".dockerignore"), dir.join(".dockerignore")).unwrap();
    dir
}

/// Containers carrying the project label (running or not).
pub fn project_containers(project: &str) -> Vec<String> {
    let r = sh(
        &engine(),
        &[
            "ps",
            "-aq",
            "--filter",
            &format!("label={}={project}", policy::PROJECT_LABEL),
        ],
    );
    r.stdout
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The main of a test binary on libtest-mimic: each test fails loudly without an engine, or
/// is reported as ignored (never passed) when the user opted out with
/// LEXALIGN_SKIP_DOCKER_TESTS=1. `one_at_a_time` for tests that share the machine's CPUs or
/// check that nothing of theirs is left running.
pub fn run_docker_trials(tests: Vec<(&'static str, fn())>, what: &str, one_at_a_time: bool) -> ! {
    run_docker_trials_then(tests, what, one_at_a_time, || {})
}

/// `run_docker_trials`, then `after` (stop what the trials started and kept in statics).
pub fn run_docker_trials_then(
    tests: Vec<(&'static str, fn())>,
    what: &str,
    one_at_a_time: bool,
    after: impl FnOnce(),
) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    if one_at_a_time {
        args.test_threads = Some(1);
    }
    let skip = docker_opted_out();
    if skip {
        let names: Vec<&str> = tests.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "LEXALIGN_SKIP_DOCKER_TESTS=1: skipping {} {what}: {}",
            names.len(),
            names.join(", ")
        );
    } else {
        require_docker();
    }
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            libtest_mimic::Trial::test(name, move || {
                f();
                Ok(())
            })
            .with_ignored_flag(skip)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    after();
    if !skip {
        // the tests' own HF cache volume goes with them (it may be in use by another binary's
        // container only if binaries ran at once; then it stays)
        let _ = Command::new(engine())
            .args(["volume", "rm", TEST_HF_VOLUME])
            .output();
    }
    conclusion.exit()
}

/// `cargo xtask --image <the built image> --python-dir PY run -- CMD…`.
pub fn run_in(py: &Path, cmd: &[&str]) -> Run {
    let (img, _) = built_image();
    let mut a = vec![
        "--image",
        img.as_str(),
        "--python-dir",
        py.to_str().unwrap(),
        "run",
        "--",
    ];
    a.extend_from_slice(cmd);
    xtask(&a, &[])
}

/// A scratch copy of python/ with a tiny model (`tiny/`) and `rows` SFT rows in `data` (a JSONL
/// file name), made in the image: the project folder the scale-out tests train in.
pub fn tiny_project(name: &str, data: &str, rows: usize) -> PathBuf {
    let py = scratch(name);
    copy_dir(&root().join("python"), &py);
    let code = format!(
        "import sys; sys.path.insert(0, 'tests'); from tiny import build_tiny_model, sft_rows, write_jsonl; \
         from pathlib import Path; build_tiny_model(Path('tiny')); write_jsonl(Path('{data}'), sft_rows({rows}))"
    );
    let r = run_in(&py, &["python", "-c", &code]);
    assert_eq!(r.code, 0, "{}", r.all());
    py
}

/// The same training as two processes in one container (`python -m lexalign.launch
/// --nproc-per-node 2`, torchrun's agent): what
/// the multi-node rehearsals and the SLURM runs are compared with.
pub fn two_processes(py: &Path, cfg: &str) -> Run {
    run_in(
        py,
        &[
            "python",
            "-m",
            "lexalign.launch",
            "--nproc-per-node",
            "2",
            "finetune.py",
            "--config",
            cfg,
        ],
    )
}
/// Everything a finished child wrote on its piped stderr.
pub fn stderr_of(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

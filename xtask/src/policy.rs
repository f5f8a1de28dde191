//! Project policy: every name, label, path and rule the xtask shares with the Dockerfile,
//! compose.yaml and the Python project. Nothing here starts a process; the tidy test
//! (`tidy.rs`) checks that docker/ agrees with these values; facts only the Dockerfile uses are
//! declared here all the same, so there is one list of them.

use std::path::{Path, PathBuf};

/// The image the tasks build and run unless `--image` says otherwise.
pub const DEFAULT_IMAGE: &str = "lexalign-dev:latest";
/// The command-line programs of the Python project (python/<name>.py): help-check runs each
/// with --help, bench times them.
pub const CLIS: [&str; 5] = ["download", "finetune", "align", "export", "generate"];

/// Where the project publishes its images (the default registry of `pull`).
pub const PUBLISHED_REGISTRY: &str = "ghcr.io/lexalign";

/// `LEXALIGN_PROJECT`'s default: label value, volume and container name prefix.
pub const DEFAULT_PROJECT: &str = "lexalign";

// --- base images -------------------------------------------------------------------------------
/// The upstream base, used when present locally or pullable.
pub const SLIM_BASE: &str = "python:3.11-slim";
/// The registry-free base `base-image` builds from Debian packages.
pub const DEBIAN_BASE: &str = "lexalign/python:3.11-bookworm";
pub const DEBIAN_SUITE: &str = "bookworm";
/// Packages beyond mmdebstrap's minbase: Python 3.11 with venv and pip, and the CA store.
pub const DEBIAN_BASE_PACKAGES: &str = "python3.11,python3.11-venv,python3-pip,ca-certificates";
/// Seconds to try pulling the upstream base (env `LEXALIGN_PULL_TIMEOUT` overrides).
pub const PULL_TIMEOUT_S: u64 = 60;

// --- labels ------------------------------------------------------------------------------------
/// Every object the xtask creates carries `PROJECT_LABEL=<project>`.
pub const PROJECT_LABEL: &str = "dev.lexalign.project";
/// Containers: the task that started them.
pub const TASK_LABEL: &str = "dev.lexalign.task";
/// Containers only, set at run time (an image never carries it): proof that the xtask started
/// the container, since containers inherit the labels of their image.
pub const RUN_LABEL: &str = "dev.lexalign.run";
/// The sha256 of python/pylock.toml the image was built from (stale-image check).
pub const LOCK_LABEL: &str = "dev.lexalign.lock-sha256";
pub const OCI_TITLE: &str = "org.opencontainers.image.title";
pub const IMAGE_TITLE: &str = "lexalign-dev";
pub const BASE_TITLE: &str = "lexalign-python-base";

// --- files in the repository -------------------------------------------------------------------
pub const DOCKERFILE: &str = "docker/Dockerfile";
pub const BASE_DOCKERFILE: &str = "docker/base/Dockerfile";
#[cfg_attr(not(test), allow(dead_code))]
pub const COMPOSE_FILE: &str = "docker/compose.yaml";
pub const LOCKFILE: &str = "python/pylock.toml";
pub const PYPROJECT: &str = "python/pyproject.toml";
/// `sbom`: the script run in a container of the image, and the pinned tools it runs with.
pub const SBOM_SCRIPT: &str = "docker/sbom.py";
pub const SBOM_TOOLS: &str = "docker/sbom-tools.txt";

// --- the image ---------------------------------------------------------------------------------
/// uv, the same version in the Dockerfile (`ARG UV_VERSION`) and in `lock`.
pub const UV_VERSION: &str = "0.13.9";
/// The big, rarely changing packages installed in a layer of their own (`ARG HEAVY_PACKAGES`;
/// a trailing `*` is a prefix match on the PEP 503 name).
#[cfg_attr(not(test), allow(dead_code))]
pub const HEAVY_PACKAGES: [&str; 3] = ["torch", "triton", "nvidia-*"];
/// How every multi-process training run starts: torchrun's arguments and elastic agent, with
/// LexAlign's exit codes (a preempted run exits 75, not torchrun's 1; python/lexalign/launch.py).
pub const LAUNCHER: [&str; 3] = ["python", "-m", "lexalign.launch"];
/// Packages PyPI ships only as a source archive: the lock pins the archive's hash and the image
/// builds the wheel from it (pure Python, no compiler), so they need no wheel per platform.
pub const BUILT_FROM_SDIST: [&str; 1] = ["deepspeed"];
/// The cargo test targets of tests/ that need no engine (the fake engine, lint): `ci` runs them
/// with xtask's own tests first, alone, before the image is built. Every other test target of
/// tests/ runs on the custom harness (`harness = false`) and is an engine test.
pub const FAST_CARGO_TESTS: [&str; 2] = ["fake_engine", "lint"];
/// The package of the end-to-end tests (tests/Cargo.toml).
pub const E2E_PACKAGE: &str = "lexalign-e2e";
/// The Dockerfile stages that install dependencies: `image` reports them cached or rebuilt.
pub const DEPS_STAGES: [&str; 4] = ["deps-heavy", "deps-huge", "deps-big", "deps"];
/// The dependency tiers above the heavy one: a package whose largest artifact in the lock (any
/// wheel, or the sdist) is at least this many MB goes in the deps-huge, then deps-big layer
/// (`ARG HUGE_PACKAGE_MB`, `ARG BIG_PACKAGE_MB`; docker/lock_subset.py). The rest, the small
/// packages, go in the last layer: a bump of one of them reinstalls only those.
pub const LAYER_TIERS_MB: [(&str, u32); 2] = [("HUGE_PACKAGE_MB", 15), ("BIG_PACKAGE_MB", 1)];
/// The BuildKit secret id of the CA bundle.
pub const CA_SECRET_ID: &str = "ca";
pub const APP_DIR: &str = "/app";
pub const HF_HOME: &str = "/cache/huggingface";
pub const VENV_PYTHON: &str = "/opt/venv/bin/python";
/// The lock installed in the image (run.json's environment fingerprint reads it).
#[cfg_attr(not(test), allow(dead_code))]
pub const LOCK_IN_IMAGE: &str = "/opt/lexalign/pylock.toml";
#[cfg_attr(not(test), allow(dead_code))]
pub const ENTRYPOINT: &str = "/usr/local/bin/docker-entrypoint.sh";
/// The image's own user (dev runs pass the host's uid:gid instead).
#[cfg_attr(not(test), allow(dead_code))]
pub const IMAGE_UID: u32 = 1000;

// --- dev runs ----------------------------------------------------------------------------------
/// Where a CA bundle is mounted inside containers.
pub const CA_IN_CONTAINER: &str = "/etc/lexalign/ca-bundle.crt";
/// Variables that name a CA bundle, in the order they are consulted.
pub const CA_ENV_VARS: [&str; 3] = ["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"];
/// Host variables passed into dev containers by name (values never on a command line): the
/// Hub's, then the trackers' (`training.report_to`; docs/training.md).
pub const PASS_ENV: [&str; 15] = [
    "HF_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_TELEMETRY",
    "CI",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_EXPERIMENT_NAME",
    "WANDB_API_KEY",
    "WANDB_MODE",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_BASE_URL",
];
/// Of PASS_ENV, the variables whose values are secrets: never printed, written or on a
/// command line (a tracking URI may carry `user:password@` too: shown redacted).
pub const SECRET_ENV: [&str; 4] = [
    "HF_TOKEN",
    "WANDB_API_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
];
/// Set in every dev run: Python writes the bytecode of the mounted sources next to them
/// (`__pycache__/`, as on the host; ignored by git and the build context), so a CLI does not
/// compile its modules again at every start (~35 ms of each `download.py` run). The image
/// keeps `PYTHONDONTWRITEBYTECODE=1` for everything else; an empty value switches it off.
pub const DEV_RUN_ENV: [(&str, &str); 1] = [("PYTHONDONTWRITEBYTECODE", "")];
/// The git revision of the tree a dev run trains from (MLflow's `lexalign.git_revision` tag).
pub const GIT_REVISION_ENV: &str = "LEXALIGN_GIT_REVISION";

/// PEP 503 normalisation of `name` is heavy (pure).
#[cfg_attr(not(test), allow(dead_code))]
pub fn is_heavy(name: &str) -> bool {
    let n = crate::lockfile::normalize(name);
    HEAVY_PACKAGES.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => n.starts_with(prefix),
        None => n == *p,
    })
}

/// `dev.lexalign.project=<project>`
pub fn project_label(project: &str) -> String {
    format!("{PROJECT_LABEL}={project}")
}

/// Overrides the HF cache volume of dev runs (the end-to-end tests use their own, so they
/// never write into a user's cache).
pub const HF_VOLUME_ENV: &str = "LEXALIGN_HF_VOLUME";

/// The named volume that backs the HF cache in dev runs: `$LEXALIGN_HF_VOLUME`, else
/// `<project>-hf-cache`.
pub fn hf_volume(project: &str) -> String {
    std::env::var(HF_VOLUME_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("{project}-hf-cache"))
}

/// `<project>-<task>-<pid>`: every container the xtask starts has a predictable name.
pub fn container_name(project: &str, task: &str) -> String {
    format!("{project}-{task}-{}", std::process::id())
}

/// The first CA bundle named by SSL_CERT_FILE, PIP_CERT or REQUESTS_CA_BUNDLE that is a file.
pub fn ca_bundle_from_env() -> Option<PathBuf> {
    CA_ENV_VARS
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// `--ca-bundle` must name a readable file (exit 2 otherwise); without it, the environment's.
pub fn resolve_ca_bundle(flag: Option<&Path>) -> crate::error::Result<Option<PathBuf>> {
    use crate::error::usage;
    match flag {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => {
                Ok(Some(std::path::absolute(p)?))
            }
            Ok(_) => Err(usage(format!(
                "--ca-bundle {}: not a file; pass the path of a PEM bundle",
                p.display()
            ))),
            Err(e) => Err(usage(format!(
                "--ca-bundle {}: cannot read it ({e}); pass the path of a readable PEM bundle",
                p.display()
            ))),
        },
        None => Ok(ca_bundle_from_env()),
    }
}

/// The host user's uid and gid (Linux: /proc/self/status; elsewhere none, and dev runs use the
/// image's user).
pub fn host_ids() -> Option<(u32, u32)> {
    if !cfg!(target_os = "linux") {
        return None;
    }
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
    fn heavy_rule() {
        assert!(is_heavy("Torch") && is_heavy("nvidia_cudnn_cu12") && is_heavy("triton"));
        assert!(!is_heavy("rich"));
        assert!(!is_heavy("torchaudio"), "exact names match exactly");
    }

    #[test]
    fn names() {
        assert_eq!(hf_volume("lexalign"), "lexalign-hf-cache");
        assert_eq!(project_label("x"), "dev.lexalign.project=x");
        assert!(container_name("p", "run").starts_with("p-run-"));
    }

    #[test]
    fn ca_bundle_flag_must_be_readable() {
        let e = resolve_ca_bundle(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert_eq!(crate::error::code_of(&e), 2);
        assert!(e.to_string().contains("/nonexistent/ca.pem"));
        let e = resolve_ca_bundle(Some(Path::new("/"))).unwrap_err();
        assert_eq!(crate::error::code_of(&e), 2);
    }

    #[test]
    fn host_ids_are_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(host_ids().is_some());
        }
    }
}

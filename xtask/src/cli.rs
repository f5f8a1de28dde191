//! Command-line definitions (clap derive). Bad usage exits 2 with clap's message.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "LexAlign dev environment: build the image, test in containers, sync pins",
    version
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Container engine client (path or name). Default: $LEXALIGN_DOCKER, else `docker`, else `podman`.
    #[arg(long, global = true, value_name = "PATH_OR_NAME")]
    pub engine: Option<String>,
    /// Image reference the tasks build and run.
    /// The dev image [default: lexalign-dev:latest; `image --platform` for another
    /// architecture: lexalign-dev:latest-<arch>].
    #[arg(long, global = true, value_name = "REF")]
    pub image: Option<String>,
    /// Print every command that would change something, run none of them (read-only queries
    /// still run), write nothing, exit 0.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Print each command before running it.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print only errors and the final result.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The Python project mounted at /app in dev runs (default: <repo>/python).
    #[arg(long, global = true, value_name = "DIR")]
    pub python_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Task {
    /// Preflight checks: engine, daemon, BuildKit, disk, base image, CA bundle, HF_TOKEN, GPU.
    Doctor,
    /// Build the registry-free Python 3.11 base image from Debian packages (mmdebstrap).
    BaseImage(BaseImageArgs),
    /// Build docker/Dockerfile into the dev image.
    Image(ImageArgs),
    /// Check the built image: Python, packages vs lockfile, user, entrypoint, exit codes, staleness.
    Smoke,
    /// Run every CLI (download, finetune, align, export, generate) with --help inside the image.
    HelpCheck,
    /// pytest -m "not integration and not hub" in a container (extra args after --).
    TestUnit(PassArgs),
    /// pytest -m "integration and not hub" in a container (extra args after --; `-- -m hub` for the real Hub).
    TestE2e(PassArgs),
    /// Interactive bash in the container with the dev mounts.
    Shell(ShellArgs),
    /// Run any command in the container with the dev mounts: `cargo xtask run -- CMD…`.
    Run(RunArgs),
    /// Sync exact pins from the lockfile into pyproject.toml.
    Pins(PinsArgs),
    /// Regenerate python/pylock.toml with uv inside a Linux container, then sync pins.
    Lock(LockArgs),
    /// The whole chain: cargo tests, pins --check, image, smoke, help-check, test-unit, test-e2e.
    Ci(CiArgs),
    /// Benchmark the dev loop and write target/bench/results.json and docs/benchmarks.md.
    Bench(BenchArgs),
    /// Remove what the xtask created: its containers, its images, and with --volumes the HF cache.
    Clean(CleanArgs),
    /// Push the dev image (every platform present) to a registry, tagged by lock, revision and latest.
    Push(PushArgs),
    /// Pull the dev image of the current lock from a registry, check it, tag it as --image.
    Pull(PullArgs),
    /// Rehearse multi-node training on this machine: N containers, torchrun with c10d on 127.0.0.1.
    Multinode(MultinodeArgs),
    /// Write a CycloneDX 1.6 JSON SBOM of the image (--image): Python packages, Debian packages.
    Sbom(SbomArgs),
}

#[derive(Args, Debug)]
pub struct SbomArgs {
    /// Where to write it [default: target/sbom/<image>.cdx.json].
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// CA bundle for installing the SBOM tools from PyPI on first use (default: $SSL_CERT_FILE,
    /// $PIP_CERT, $REQUESTS_CA_BUNDLE).
    #[arg(long, value_name = "PEM")]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Where to push: HOST[:PORT]/NAMESPACE (log in with `docker login HOST`; no credentials
    /// here) [default: $LEXALIGN_REGISTRY].
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE", env = "LEXALIGN_REGISTRY")]
    pub registry: Option<String>,
    /// Push only the `<tag>-<arch>` tags of the local images (one CI runner per platform).
    #[arg(long, conflicts_with = "manifests_only")]
    pub no_manifests: bool,
    /// Push nothing: make each plain tag a manifest list over the `<tag>-<arch>` tags the
    /// registry holds for the current lock (after `--no-manifests` on every platform).
    #[arg(long)]
    pub manifests_only: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Where to pull from: HOST[:PORT]/NAMESPACE [default: $LEXALIGN_REGISTRY, else the
    /// project's published images].
    #[arg(long, value_name = "HOST[:PORT]/NAMESPACE", env = "LEXALIGN_REGISTRY")]
    pub registry: Option<String>,
    /// The tag [default: lock-<12 hex of python/pylock.toml's sha256>].
    #[arg(long)]
    pub tag: Option<String>,
}

#[derive(Args, Debug)]
pub struct MultinodeArgs {
    /// Number of nodes (containers).
    #[arg(long)]
    pub nodes: u32,
    /// Processes per node (GPUs per node, or CPU processes).
    #[arg(long, default_value_t = 1)]
    pub nproc_per_node: u32,
    #[command(flatten)]
    pub dev: DevOpts,
    /// SCRIPT ARGS…: a file in python/ (mounted at /app) and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct BaseImageArgs {
    /// Tag of the base image [default: lexalign/python:3.11-bookworm, or
    /// lexalign/python:3.11-bookworm-<arch> for another architecture than the engine's].
    #[arg(long)]
    pub tag: Option<String>,
    /// Target platform: linux/amd64 or linux/arm64 (another than the engine's runs emulated).
    #[arg(long)]
    pub platform: Option<String>,
    /// Debian suite.
    #[arg(long, default_value = crate::policy::DEBIAN_SUITE)]
    pub suite: String,
    /// Debian mirror (default: mmdebstrap's, or the host's apt sources).
    #[arg(long)]
    pub mirror: Option<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct ImageArgs {
    /// Base image: `auto` (python:3.11-slim if present or pullable, else the Debian-built base), or a reference.
    #[arg(long, default_value = "auto")]
    pub base_image: String,
    /// Tag for the built image (default: the global --image).
    #[arg(long)]
    pub tag: Option<String>,
    /// Build without the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// CA bundle for pip/uv inside the build (default: $SSL_CERT_FILE, $PIP_CERT, $REQUESTS_CA_BUNDLE).
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<PathBuf>,
    /// Target platform: linux/amd64 or linux/arm64. Another than the engine's runs emulated
    /// (QEMU) and is tagged <image>-<arch> unless --tag or --image names the image.
    #[arg(long)]
    pub platform: Option<String>,
    /// Import BuildKit layer cache, e.g. type=gha,scope=amd64 (needs a buildx builder).
    #[arg(long, value_name = "SPEC")]
    pub cache_from: Option<String>,
    /// Export BuildKit layer cache, e.g. type=gha,mode=max,scope=amd64; the image is loaded.
    #[arg(long, value_name = "SPEC")]
    pub cache_to: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct PassArgs {
    /// Write pytest's JUnit XML report to DIR/<task>.xml on the host (DIR is created).
    #[arg(long, value_name = "DIR")]
    pub junit_dir: Option<PathBuf>,
    #[command(flatten)]
    pub dev: DevOpts,
    /// Arguments passed to pytest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub dev: DevOpts,
    /// The command to run in the container.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub cmd: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct ShellArgs {
    #[command(flatten)]
    pub dev: DevOpts,
}

/// Engine options for dev runs (run, shell, test-unit, test-e2e).
#[derive(Args, Debug, Default, Clone, PartialEq, Eq)]
pub struct DevOpts {
    /// GPUs for the container: `all`, a count, or `device=0,1` (needs the NVIDIA container toolkit).
    #[arg(long, value_name = "all|N|device=LIST")]
    pub gpus: Option<String>,
    /// Size of /dev/shm, e.g. 8g (PyTorch data loaders and NCCL need more than the default 64m).
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// IPC namespace: `host` shares the host's (an alternative to a large --shm-size).
    #[arg(long, value_name = "host|private|shareable")]
    pub ipc: Option<String>,
    /// Network: `host`, `none`, `bridge` or a network name.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// Publish a port: HOST:CONTAINER or IP:HOST:CONTAINER (repeatable), e.g. -p 6006:6006 for TensorBoard.
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Escape hatch: one more engine `run` flag, passed as is (repeatable), e.g. --engine-arg=--cpus=4.
    #[arg(long = "engine-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub engine_args: Vec<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct PinsArgs {
    /// Change nothing; print a diff and exit 1 when anything would change.
    #[arg(long)]
    pub check: bool,
    /// Lockfile (PEP 751 pylock.toml, or requirements-style `name==version` lines).
    #[arg(long, value_name = "PATH")]
    pub lock: Option<PathBuf>,
    /// The pyproject.toml to update.
    #[arg(long, value_name = "PATH")]
    pub pyproject: Option<PathBuf>,
    /// A requirement whose package is missing from the lock is an error (default: a warning).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug, Default)]
pub struct LockArgs {
    /// Allow every package to move to its newest allowed version.
    #[arg(long)]
    pub upgrade: bool,
    /// Allow only this package to move (repeatable).
    #[arg(long, value_name = "NAME")]
    pub upgrade_package: Vec<String>,
    /// CA bundle for uv (default as for `image`).
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
pub struct CiArgs {
    /// Run every step even after a failure.
    #[arg(long)]
    pub keep_going: bool,
}

#[derive(Args, Debug, Default)]
pub struct BenchArgs {
    /// Fewer runs, and no cold build.
    #[arg(long)]
    pub quick: bool,
    /// Only these rows (any id the bench prints, e.g. `noop-rebuild help-download`).
    #[arg(long, num_args = 1.., value_name = "ROW")]
    pub only: Vec<String>,
    /// Runs per row (default 5, 3 with --quick).
    #[arg(long)]
    pub runs: Option<usize>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct CleanArgs {
    /// Also remove the volumes (the HF cache: every downloaded model).
    #[arg(long)]
    pub volumes: bool,
    /// Also remove running containers.
    #[arg(long)]
    pub force: bool,
}

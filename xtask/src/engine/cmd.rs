//! Typed engine command builders: the only place where engine argv is spelled. Each returns a
//! [`Proc`] with its effect (query or change), so the execution layer knows what a dry run may
//! run. Pure: nothing here starts a process.
//!
//! Over 400 lines: one short builder per engine command (and their tests), kept in one file so
//! every argv the xtask can send to the engine is in one place.

use super::{BuildKit, Engine};
use crate::exec::Proc;
use std::path::PathBuf;
use xshell::Shell;

fn query(e: &Engine, sh: &Shell, args: &[&str]) -> Proc {
    Proc::query(sh.cmd(&e.program).args(args))
}

fn change(e: &Engine, sh: &Shell, args: &[&str]) -> Proc {
    Proc::change(sh.cmd(&e.program).args(args))
}

/// `version --format {{.Client.Version}}` (no daemon needed).
pub fn client_version(e: &Engine, sh: &Shell) -> Proc {
    query(e, sh, &["version", "--format", "{{.Client.Version}}"])
}

/// `version --format {{.Server.Version}}`: fails when the daemon cannot be reached.
pub fn server_version(e: &Engine, sh: &Shell) -> Proc {
    query(e, sh, &["version", "--format", "{{.Server.Version}}"])
}

pub fn buildx_version(e: &Engine, sh: &Shell) -> Proc {
    query(e, sh, &["buildx", "version"])
}

/// `info --format FORMAT`
pub fn info(e: &Engine, sh: &Shell, format: &str) -> Proc {
    query(e, sh, &["info", "--format", format])
}

/// `image inspect --format FORMAT REF`
pub fn image_inspect(e: &Engine, sh: &Shell, format: &str, reference: &str) -> Proc {
    query(e, sh, &["image", "inspect", "--format", format, reference])
}

/// `inspect --format FORMAT ID…` (containers)
pub fn container_inspect(e: &Engine, sh: &Shell, format: &str, ids: &[String]) -> Proc {
    Proc::query(
        sh.cmd(&e.program)
            .args(["container", "inspect", "--format", format])
            .args(ids),
    )
}

/// `ps -a --filter F… --format FORMAT`
pub fn ps(e: &Engine, sh: &Shell, filters: &[String], format: &str) -> Proc {
    let mut c = sh.cmd(&e.program).args(["ps", "-a"]);
    for f in filters {
        c = c.args(["--filter", f]);
    }
    Proc::query(c.args(["--format", format]))
}

/// `images --filter F… --format FORMAT`
pub fn images(e: &Engine, sh: &Shell, filters: &[String], format: &str) -> Proc {
    let mut c = sh.cmd(&e.program).arg("images");
    for f in filters {
        c = c.args(["--filter", f]);
    }
    Proc::query(c.args(["--format", format]))
}

/// `history --no-trunc --human=false --format FORMAT REF`
pub fn history(e: &Engine, sh: &Shell, format: &str, reference: &str) -> Proc {
    query(
        e,
        sh,
        &[
            "history",
            "--no-trunc",
            "--human=false",
            "--format",
            format,
            reference,
        ],
    )
}

pub fn volume_ls(e: &Engine, sh: &Shell, filter: &str) -> Proc {
    query(
        e,
        sh,
        &["volume", "ls", "--filter", filter, "--format", "{{.Name}}"],
    )
}

pub fn volume_inspect(e: &Engine, sh: &Shell, name: &str) -> Proc {
    query(e, sh, &["volume", "inspect", "--format", "{{.Name}}", name])
}

pub fn volume_create(e: &Engine, sh: &Shell, name: &str, label: &str) -> Proc {
    change(e, sh, &["volume", "create", "--label", label, name])
}

pub fn volume_rm(e: &Engine, sh: &Shell, name: &str) -> Proc {
    change(e, sh, &["volume", "rm", name])
}

/// `rm [-f] ID`
pub fn rm(e: &Engine, sh: &Shell, id: &str, force: bool) -> Proc {
    if force {
        change(e, sh, &["rm", "-f", id])
    } else {
        change(e, sh, &["rm", id])
    }
}

/// `kill --signal SIG ID`: hand a signal to the container's init (which passes it on).
pub fn kill(e: &Engine, sh: &Shell, id: &str, signal: &str) -> Proc {
    change(e, sh, &["kill", "--signal", signal, id])
}

/// `rmi REF` (never `-f`: an image a container or another tag still uses stays).
pub fn rmi(e: &Engine, sh: &Shell, reference: &str) -> Proc {
    change(e, sh, &["rmi", reference])
}

/// `tag SRC DST`
pub fn tag(e: &Engine, sh: &Shell, src: &str, dst: &str) -> Proc {
    change(e, sh, &["tag", src, dst])
}

/// `rmi REF` for a tag only (the image stays while another tag names it).
pub fn untag(e: &Engine, sh: &Shell, reference: &str) -> Proc {
    change(e, sh, &["rmi", reference])
}

/// `push REF` (credentials: the engine's own login).
pub fn push(e: &Engine, sh: &Shell, reference: &str) -> Proc {
    change(e, sh, &["push", reference])
}

/// `manifest create [--insecure] --amend LIST MEMBER…`
pub fn manifest_create(
    e: &Engine,
    sh: &Shell,
    list: &str,
    members: &[String],
    insecure: bool,
) -> Proc {
    let mut a = vec!["manifest", "create"];
    if insecure {
        a.push("--insecure");
    }
    a.extend(["--amend", list]);
    a.extend(members.iter().map(String::as_str));
    change(e, sh, &a)
}

/// `manifest push [--insecure] --purge LIST` (prints the list's digest).
pub fn manifest_push(e: &Engine, sh: &Shell, list: &str, insecure: bool) -> Proc {
    let mut a = vec!["manifest", "push"];
    if insecure {
        a.push("--insecure");
    }
    a.extend(["--purge", list]);
    change(e, sh, &a)
}

/// `pull -q REF` (a change: it writes to the image store, so a dry run never pulls).
pub fn pull(e: &Engine, sh: &Shell, reference: &str) -> Proc {
    change(e, sh, &["pull", "-q", reference])
}

/// `builder prune -f [-a] [--filter F]`
pub fn builder_prune(e: &Engine, sh: &Shell, all: bool, filter: Option<&str>) -> Proc {
    let mut c = sh.cmd(&e.program).args(["builder", "prune", "-f"]);
    if all {
        c = c.arg("-a");
    }
    if let Some(f) = filter {
        c = c.args(["--filter", f]);
    }
    Proc::change(c)
}

/// Everything one image build needs.
#[derive(Debug, Clone, Default)]
pub struct BuildSpec {
    /// `-f`; None: `<context>/Dockerfile`.
    pub dockerfile: Option<PathBuf>,
    pub context: PathBuf,
    pub tag: String,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// `--secret id=ID,src=PATH` (BuildKit).
    pub secrets: Vec<(String, PathBuf)>,
    pub no_cache: bool,
    pub platform: Option<String>,
    /// BuildKit cache import/export (`type=gha`, `type=registry,ref=…`, `type=local,…`); with
    /// either, the result is loaded into the engine's image store (`--load`).
    pub cache_from: Option<String>,
    pub cache_to: Option<String>,
    /// `--target STAGE`: build up to that stage only.
    pub target: Option<String>,
    /// `--iidfile PATH`: where the engine writes the built image's id.
    pub iidfile: Option<PathBuf>,
}

/// `<engine> build …` with BuildKit enabled the way this client needs it.
pub fn build(e: &Engine, sh: &Shell, mode: BuildKit, spec: &BuildSpec) -> Proc {
    let mut c = sh.cmd(&e.program).arg("build");
    if mode != BuildKit::Podman {
        c = c.arg("--progress=plain");
    }
    if let Some(f) = &spec.dockerfile {
        c = c.arg("-f").arg(f);
    }
    if !spec.tag.is_empty() {
        c = c.args(["-t", &spec.tag]);
    }
    for (k, v) in &spec.build_args {
        c = c.args(["--build-arg", &format!("{k}={v}")]);
    }
    for (k, v) in &spec.labels {
        c = c.args(["--label", &format!("{k}={v}")]);
    }
    for (id, src) in &spec.secrets {
        c = c.args(["--secret", &format!("id={id},src={}", src.display())]);
    }
    if spec.no_cache {
        c = c.arg("--no-cache");
    }
    if let Some(p) = &spec.platform {
        c = c.args(["--platform", p]);
    }
    if let Some(from) = &spec.cache_from {
        c = c.args(["--cache-from", from]);
    }
    if let Some(to) = &spec.cache_to {
        c = c.args(["--cache-to", to]);
    }
    if spec.cache_from.is_some() || spec.cache_to.is_some() {
        c = c.arg("--load");
    }
    if let Some(t) = &spec.target {
        c = c.args(["--target", t]);
    }
    if let Some(f) = &spec.iidfile {
        c = c.arg("--iidfile").arg(f);
    }
    let p = Proc::change(c.arg(&spec.context));
    match mode {
        BuildKit::LegacyEnv | BuildKit::Buildx => p.env("DOCKER_BUILDKIT", "1"),
        BuildKit::Podman => p,
    }
}

/// One container run. Every container the xtask starts is `--rm --init` and labelled.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    pub name: Option<String>,
    /// `KEY=VALUE` labels.
    pub labels: Vec<String>,
    /// `-i`: pass stdin through.
    pub interactive: bool,
    /// `-t`
    pub tty: bool,
    pub user: Option<(u32, u32)>,
    /// `-v SRC:DST[:ro]`
    pub volumes: Vec<String>,
    pub workdir: Option<String>,
    /// `-e NAME`: passed by name, the value never appears on the command line.
    pub env_names: Vec<String>,
    /// `-e NAME=VALUE`: only for values that are not secret (paths, flags).
    pub env: Vec<(String, String)>,
    /// The run options, typed (checked where they enter: devrun).
    pub opts: RunOpts,
    pub image: String,
    pub cmd: Vec<String>,
}

/// Engine flags of a dev run, each a typed field; `engine_args` is the one documented escape
/// hatch (`--engine-arg`), passed verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOpts {
    /// `--gpus`
    pub gpus: Option<String>,
    /// `--shm-size`
    pub shm_size: Option<String>,
    /// `--ipc`
    pub ipc: Option<String>,
    /// `--network`
    pub network: Option<String>,
    /// `--pid` (multinode: host)
    pub pid: Option<String>,
    /// `-p`
    pub publish: Vec<String>,
    /// `--engine-arg` values
    pub engine_args: Vec<String>,
}

impl RunOpts {
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (flag, v) in [
            ("--gpus", &self.gpus),
            ("--shm-size", &self.shm_size),
            ("--ipc", &self.ipc),
            ("--network", &self.network),
            ("--pid", &self.pid),
        ] {
            if let Some(v) = v {
                a.extend([flag.to_string(), v.clone()]);
            }
        }
        for p in &self.publish {
            a.extend(["-p".into(), p.clone()]);
        }
        a.extend(self.engine_args.iter().cloned());
        a
    }
}

/// The label every container an xtask process starts carries, valued with that process's id:
/// on Ctrl-C or SIGTERM the process removes what it started (`owned_containers`, main.rs).
pub const OWNER_LABEL: &str = "dev.lexalign.owner";

/// `OWNER_LABEL=<pid>` of this process.
pub fn owner_label() -> String {
    format!("{OWNER_LABEL}={}", std::process::id())
}

/// The containers this process started (running or not): `ps -aq --filter label=OWNER=<pid>`.
pub fn owned_containers(e: &Engine, sh: &Shell) -> Proc {
    ps(e, sh, &[format!("label={}", owner_label())], "{{.ID}}")
}

impl RunSpec {
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["run".into(), "--rm".into(), "--init".into()];
        for l in self.labels.iter().cloned().chain([owner_label()]) {
            a.extend(["--label".into(), l]);
        }
        if let Some(n) = &self.name {
            a.extend(["--name".into(), n.clone()]);
        }
        if self.interactive || self.tty {
            a.push("-i".into());
        }
        if self.tty {
            a.push("-t".into());
        }
        if let Some((uid, gid)) = self.user {
            a.extend(["--user".into(), format!("{uid}:{gid}")]);
        }
        for v in &self.volumes {
            a.extend(["-v".into(), v.clone()]);
        }
        if let Some(w) = &self.workdir {
            a.extend(["-w".into(), w.clone()]);
        }
        for n in &self.env_names {
            a.extend(["-e".into(), n.clone()]);
        }
        for (k, v) in &self.env {
            a.extend(["-e".into(), format!("{k}={v}")]);
        }
        a.extend(self.opts.args());
        a.push(self.image.clone());
        a.extend(self.cmd.iter().cloned());
        a
    }
}

/// `<engine> run …`
pub fn run(e: &Engine, sh: &Shell, spec: &RunSpec) -> Proc {
    Proc::change(sh.cmd(&e.program).args(spec.args()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn docker() -> Engine {
        Engine::new(PathBuf::from("/usr/bin/docker"))
    }

    #[test]
    fn queries_and_changes_are_typed() {
        let sh = Shell::new().unwrap();
        let e = docker();
        use crate::exec::Effect::*;
        for (p, want) in [
            (client_version(&e, &sh), Query),
            (image_inspect(&e, &sh, "{{.Id}}", "x"), Query),
            (ps(&e, &sh, &[], "{{.ID}}"), Query),
            (images(&e, &sh, &[], "{{.ID}}"), Query),
            (volume_ls(&e, &sh, "label=a"), Query),
            (info(&e, &sh, "{{.NCPU}}"), Query),
            (pull(&e, &sh, "x"), Change),
            (rmi(&e, &sh, "x"), Change),
            (rm(&e, &sh, "x", true), Change),
            (volume_create(&e, &sh, "v", "l=1"), Change),
            (volume_rm(&e, &sh, "v"), Change),
            (builder_prune(&e, &sh, true, None), Change),
        ] {
            assert_eq!(p.effect, want, "{}", p.line());
        }
        assert_eq!(
            rmi(&e, &sh, "img:1").argv(),
            ["/usr/bin/docker", "rmi", "img:1"],
            "never -f"
        );
    }

    #[test]
    fn build_command_line() {
        let sh = Shell::new().unwrap();
        let spec = BuildSpec {
            dockerfile: Some(PathBuf::from("/repo/docker/Dockerfile")),
            context: PathBuf::from("/repo"),
            tag: "lexalign-dev:latest".into(),
            build_args: vec![("BASE_IMAGE".into(), "python:3.11-slim".into())],
            labels: vec![("dev.lexalign.lock-sha256".into(), "abc".into())],
            secrets: vec![("ca".into(), PathBuf::from("/etc/ssl/certs/ca.crt"))],
            no_cache: true,
            platform: Some("linux/amd64".into()),
            ..Default::default()
        };
        let p = build(&docker(), &sh, BuildKit::LegacyEnv, &spec);
        let argv = p.argv();
        let line = argv.join(" ");
        assert_eq!(&argv[..3], ["/usr/bin/docker", "build", "--progress=plain"]);
        assert!(line.contains("-f /repo/docker/Dockerfile"));
        assert!(line.contains("-t lexalign-dev:latest"));
        assert!(line.contains("--build-arg BASE_IMAGE=python:3.11-slim"));
        assert!(line.contains("--label dev.lexalign.lock-sha256=abc"));
        assert!(line.contains("--secret id=ca,src=/etc/ssl/certs/ca.crt"));
        assert!(line.contains("--no-cache") && line.contains("--platform linux/amd64"));
        assert!(!line.contains("--load") && !line.contains("--cache-"));
        let cached = BuildSpec {
            cache_from: Some("type=gha,scope=x".into()),
            cache_to: Some("type=gha,mode=max,scope=x".into()),
            ..Default::default()
        };
        let line = build(&docker(), &sh, BuildKit::Buildx, &cached).line();
        assert!(line
            .contains("--cache-from type=gha,scope=x --cache-to type=gha,mode=max,scope=x --load"));
        assert_eq!(argv.last().unwrap(), "/repo");
        assert_eq!(p.env_value("DOCKER_BUILDKIT").as_deref(), Some("1"));
        let pod = build(
            &Engine::new(PathBuf::from("/usr/bin/podman")),
            &sh,
            BuildKit::Podman,
            &spec,
        );
        assert!(pod.env_value("DOCKER_BUILDKIT").is_none());
        assert!(!pod.argv().contains(&"--progress=plain".to_string()));
    }

    #[test]
    fn run_command_line() {
        let sh = Shell::new().unwrap();
        let spec = RunSpec {
            name: Some("lexalign-run-42".into()),
            labels: vec!["dev.lexalign.project=lexalign".into()],
            user: Some((1000, 1001)),
            volumes: vec!["/src/python:/app".into()],
            workdir: Some("/app".into()),
            env_names: vec!["HF_TOKEN".into()],
            env: vec![("SSL_CERT_FILE".into(), "/etc/ca".into())],
            opts: RunOpts {
                shm_size: Some("1g".into()),
                pid: Some("host".into()),
                engine_args: vec!["--cpus=2".into()],
                ..Default::default()
            },
            image: "img:1".into(),
            cmd: vec!["sh".into(), "-c".into(), "exit 7".into()],
            ..Default::default()
        };
        let argv = run(&docker(), &sh, &spec).argv();
        assert_eq!(&argv[1..4], ["run", "--rm", "--init"]);
        let line = argv.join(" ");
        for part in [
            "--name lexalign-run-42",
            "--label dev.lexalign.project=lexalign",
            "--user 1000:1001",
            "-v /src/python:/app",
            "-w /app",
            "-e HF_TOKEN",
            "-e SSL_CERT_FILE=/etc/ca",
            "--shm-size 1g --pid host --cpus=2 img:1",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
        assert!(!line.contains(" -i") && !line.contains(" -t"));
        assert_eq!(&argv[argv.len() - 3..], ["sh", "-c", "exit 7"]);
        let tty = RunSpec {
            tty: true,
            image: "i".into(),
            ..Default::default()
        };
        assert!(tty.args().windows(2).any(|w| w == ["-i", "-t"]));
        let _ = Path::new("/");
    }
}

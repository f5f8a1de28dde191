//! The container engine client: discovery, BuildKit support, daemon reachability (the local
//! socket's fast paths in `socket`), and image-reference validation (pure functions). `cmd` holds the typed command builders: the only
//! place engine argv is spelled.

pub mod cmd;
mod reference;
mod socket;

pub use socket::{
    docker_socket_get, docker_socket_ping, fast_ping_applies, identity_from_inspect_json,
};

use crate::platform::Arch;

pub use reference::validate_image_ref;

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

#[derive(Debug, Clone)]
pub struct Engine {
    pub program: PathBuf,
    pub kind: Kind,
}

/// How the engine builds with BuildKit features (secret and cache mounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKit {
    /// The buildx plugin is installed: `docker build` is BuildKit.
    Buildx,
    /// A pre-23 docker client: BuildKit with `DOCKER_BUILDKIT=1`.
    LegacyEnv,
    /// Podman (buildah) supports secret and cache mounts natively.
    Podman,
}

impl Engine {
    pub fn new(program: PathBuf) -> Engine {
        let kind = kind_of(&program);
        Engine { program, kind }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }

    /// One line: the daemon cannot be reached, and how to start it.
    pub fn daemon_unreachable_message(&self, detail: &str) -> String {
        match self.kind {
            Kind::Docker => format!(
                "cannot reach the Docker daemon through `{}` ({detail}); start it with \
                 `sudo systemctl start docker` (or `sudo dockerd &`), or set DOCKER_HOST to a running daemon",
                self.program.display()
            ),
            Kind::Podman => format!(
                "cannot reach podman through `{}` ({detail}); on macOS/Windows run `podman machine start`",
                self.program.display()
            ),
        }
    }
}

pub fn kind_of(program: &Path) -> Kind {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("podman") {
        Kind::Podman
    } else {
        Kind::Docker
    }
}

/// Find the engine client: `--engine`, else `$LEXALIGN_DOCKER`, else `docker`, else `podman`.
/// `lookup` resolves a bare name on PATH. The error is one line with the fix.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    lookup: impl Fn(&str) -> Option<PathBuf>,
) -> Result<PathBuf, String> {
    let explicit = flag.map(|f| (f, "--engine")).or(env
        .filter(|e| !e.is_empty())
        .map(|e| (e, "LEXALIGN_DOCKER")));
    if let Some((value, source)) = explicit {
        let found = if value.contains('/') {
            let p = PathBuf::from(value);
            p.is_file().then_some(p)
        } else {
            lookup(value)
        };
        return found.ok_or_else(|| {
            format!(
                "container engine `{value}` (from {source}) not found; install Docker \
                 (`apt-get install docker.io`) or give {source} the path of a docker/podman client"
            )
        });
    }
    lookup("docker")
        .or_else(|| lookup("podman"))
        .ok_or_else(|| {
            "no container engine found: neither `docker` nor `podman` is on PATH; install Docker \
         (`apt-get install docker.io`, or Docker Desktop) or set LEXALIGN_DOCKER to a client's path"
                .to_string()
        })
}

/// Major version of a client version string such as `20.10.24+dfsg1` or `28.2.2`.
pub fn major_version(version: &str) -> Option<u32> {
    version.trim().split(['.', '+', '-']).next()?.parse().ok()
}

/// Whether this client can build with secret and cache mounts, and how. The error is one
/// line naming both fixes.
pub fn buildkit_mode(
    kind: Kind,
    client_version: &str,
    has_buildx: bool,
    program: &Path,
) -> Result<BuildKit, String> {
    if kind == Kind::Podman {
        return Ok(BuildKit::Podman);
    }
    if has_buildx {
        return Ok(BuildKit::Buildx);
    }
    match major_version(client_version) {
        Some(major) if major < 23 => Ok(BuildKit::LegacyEnv),
        _ => {
            let hint = if Path::new("/usr/bin/docker") != program
                && Path::new("/usr/bin/docker").is_file()
            {
                " (e.g. LEXALIGN_DOCKER=/usr/bin/docker)"
            } else {
                ""
            };
            Err(format!(
                "docker client {} ({}) has no buildx plugin, so it cannot build with BuildKit secret and \
                 cache mounts; install buildx (`apt-get install docker-buildx`, or docker-buildx-plugin) or \
                 point LEXALIGN_DOCKER at a BuildKit-capable client{hint}",
                client_version.trim(),
                program.display()
            ))
        }
    }
}

/// Exit 137 is SIGKILL, which from a container almost always means the engine's OOM killer.
pub const KILLED: i32 = 137;

/// The one line a task prints when a container it ran was killed (pure).
pub fn killed_hint(code: i32) -> Option<&'static str> {
    (code == KILLED).then_some(
        "killed — usually out of memory; raise the engine's memory limit (Docker Desktop: Settings → Resources), or lower training.batch_size / max_length",
    )
}

/// How an engine can run containers of another architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emulation {
    Native,
    /// QEMU registered with binfmt_misc on this (local, Linux) engine's kernel.
    Qemu,
    /// Docker Desktop (macOS, Windows) or a remote engine: it brings its own emulation.
    EngineProvided,
    /// Not available; the fix.
    Missing(String),
}

impl Emulation {
    pub fn describe(&self) -> &str {
        match self {
            Emulation::Native => "native",
            Emulation::Qemu => "emulated (QEMU via binfmt_misc)",
            Emulation::EngineProvided => "emulated (the engine's own)",
            Emulation::Missing(_) => "not available",
        }
    }
}

/// The fix for a missing emulation of `arch` (pure).
pub fn emulation_fix(arch: Arch) -> String {
    let m = arch.machine();
    format!(
        "{} needs QEMU emulation on this engine: sudo apt-get install qemu-user-static binfmt-support; \
         sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc (if not mounted); \
         sudo update-binfmts --enable qemu-{m}",
        arch.platform()
    )
}

/// Decide (pure): `local_linux` — the engine runs on this Linux kernel; `binfmt` — the state of
/// /proc/sys/fs/binfmt_misc/qemu-<machine> (None: missing).
pub fn emulation_for(
    arch: Arch,
    native: Arch,
    local_linux: bool,
    binfmt: Option<&str>,
) -> Emulation {
    if arch == native {
        return Emulation::Native;
    }
    if !local_linux {
        return Emulation::EngineProvided;
    }
    match binfmt {
        Some(state) if state.lines().next().map(str::trim) == Some("enabled") => Emulation::Qemu,
        _ => Emulation::Missing(emulation_fix(arch)),
    }
}

/// Is the engine on this machine's kernel (a Linux host, the local socket, no other context)?
pub fn engine_is_local_linux() -> bool {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let context = std::env::var("DOCKER_CONTEXT").unwrap_or_default();
    cfg!(target_os = "linux")
        && (host.is_empty() || host.starts_with("unix://"))
        && (context.is_empty() || context == "default")
}

/// What this engine offers for `arch` (reads binfmt_misc; starts nothing).
pub fn emulation(arch: Arch, native: Arch) -> Emulation {
    let state =
        std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/qemu-{}", arch.machine())).ok();
    emulation_for(arch, native, engine_is_local_linux(), state.as_deref())
}

#[cfg(test)]
mod tests {

    #[test]
    fn emulation_decisions() {
        use super::{emulation_for, Emulation};
        use crate::platform::Arch::*;
        assert_eq!(emulation_for(Amd64, Amd64, true, None), Emulation::Native);
        assert_eq!(
            emulation_for(
                Arm64,
                Amd64,
                true,
                Some("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
            ),
            Emulation::Qemu
        );
        assert!(
            matches!(emulation_for(Arm64, Amd64, true, Some("disabled\n")), Emulation::Missing(f) if f.contains("update-binfmts --enable qemu-aarch64"))
        );
        assert!(matches!(
            emulation_for(Arm64, Amd64, true, None),
            Emulation::Missing(_)
        ));
        assert_eq!(
            emulation_for(Amd64, Arm64, false, None),
            Emulation::EngineProvided
        );
    }

    use super::*;

    fn on_path(names: &'static [&'static str]) -> impl Fn(&str) -> Option<PathBuf> {
        move |n| {
            names
                .contains(&n)
                .then(|| PathBuf::from(format!("/bin/{n}")))
        }
    }

    #[test]
    fn resolution_order() {
        let both = on_path(&["docker", "podman"]);
        assert_eq!(
            resolve(None, None, &both).unwrap(),
            PathBuf::from("/bin/docker")
        );
        assert_eq!(
            resolve(None, None, on_path(&["podman"])).unwrap(),
            PathBuf::from("/bin/podman")
        );
        assert_eq!(
            resolve(None, Some("podman"), &both).unwrap(),
            PathBuf::from("/bin/podman")
        );
        assert_eq!(
            resolve(Some("docker"), Some("podman"), &both).unwrap(),
            PathBuf::from("/bin/docker")
        );
        // an empty env value is ignored
        assert_eq!(
            resolve(None, Some(""), &both).unwrap(),
            PathBuf::from("/bin/docker")
        );
    }

    #[test]
    fn resolution_errors_name_the_fix() {
        let none = on_path(&[]);
        let e = resolve(None, None, &none).unwrap_err();
        assert!(e.contains("no container engine found") && e.contains("apt-get install docker.io"));
        assert!(!e.contains('\n'));
        let e = resolve(Some("/nope/docker"), None, &none).unwrap_err();
        assert!(e.contains("/nope/docker") && e.contains("--engine"));
        let e = resolve(None, Some("dockr"), &none).unwrap_err();
        assert!(e.contains("LEXALIGN_DOCKER"));
    }

    #[test]
    fn buildkit_detection() {
        let p = Path::new("/usr/local/bin/docker");
        assert_eq!(
            buildkit_mode(Kind::Docker, "20.10.24+dfsg1", false, p),
            Ok(BuildKit::LegacyEnv)
        );
        assert_eq!(
            buildkit_mode(Kind::Docker, "28.2.2", true, p),
            Ok(BuildKit::Buildx)
        );
        assert_eq!(
            buildkit_mode(Kind::Podman, "5.0.0", false, p),
            Ok(BuildKit::Podman)
        );
        let e = buildkit_mode(Kind::Docker, "28.2.2", false, p).unwrap_err();
        assert!(
            e.contains("install buildx") && e.contains("LEXALIGN_DOCKER"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert!(buildkit_mode(Kind::Docker, "garbage", false, p).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(major_version("20.10.24+dfsg1"), Some(20));
        assert_eq!(major_version("28.2.2"), Some(28));
        assert_eq!(major_version(""), None);
    }
}

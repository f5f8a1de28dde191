//! The container engine client: discovery, BuildKit support, daemon reachability, and
//! image-reference validation (pure functions). `cmd` holds the typed command builders: the only
//! place engine argv is spelled.

pub mod cmd;
mod reference;

pub use reference::validate_image_ref;

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// The socket ping stands for the client only when the client is `docker` talking to its
/// default endpoint: no DOCKER_CONTEXT, no current context set in ~/.docker/config.json.
pub fn fast_ping_applies(program: &Path) -> bool {
    if program.file_name().and_then(|n| n.to_str()) != Some("docker") {
        return false;
    }
    if std::env::var_os("DOCKER_CONTEXT").is_some() {
        return false;
    }
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"));
    match config.and_then(|c| std::fs::read_to_string(c).ok()) {
        Some(text) => {
            !text.contains("\"currentContext\"") || text.contains("\"currentContext\": \"default\"")
        }
        None => true,
    }
}

/// `GET /_ping` on the Docker socket named by DOCKER_HOST (unix://…) or the default one
/// (~1 ms, where a client run costs ~20 ms; no process is started).
pub fn docker_socket_ping() -> bool {
    use std::io::{Read, Write};
    let path = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => match h.strip_prefix("unix://") {
            Some(p) => p.to_string(),
            None => return false,
        },
        _ => "/var/run/docker.sock".to_string(),
    };
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200")
}

#[cfg(test)]
mod tests {
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

//! The container engine client: discovery, BuildKit support, daemon reachability, and
//! image-reference validation. Everything here is a pure function or a command builder.

use std::path::{Path, PathBuf};
use xshell::{Cmd, Shell};

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

    /// `<engine>` with no arguments yet.
    pub fn cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        sh.cmd(&self.program)
    }

    pub fn client_version_cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        self.cmd(sh)
            .args(["version", "--format", "{{.Client.Version}}"])
    }

    /// Fails when the daemon (or podman's service/machine) cannot be reached.
    pub fn server_version_cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        self.cmd(sh)
            .args(["version", "--format", "{{.Server.Version}}"])
    }

    pub fn buildx_version_cmd<'a>(&self, sh: &'a Shell) -> Cmd<'a> {
        self.cmd(sh).args(["buildx", "version"])
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

    /// `build` with BuildKit enabled the way this client needs it.
    pub fn build_cmd<'a>(&self, sh: &'a Shell, mode: BuildKit) -> Cmd<'a> {
        let cmd = self.cmd(sh).arg("build");
        match mode {
            BuildKit::LegacyEnv | BuildKit::Buildx => cmd.env("DOCKER_BUILDKIT", "1"),
            BuildKit::Podman => cmd,
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

/// Validate an image reference (`[registry[:port]/]path[:tag][@digest]`, docker's grammar).
pub fn validate_image_ref(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("empty image reference; use e.g. lexalign-dev:latest".into());
    }
    if reference.len() > 255 + 128 + 80 {
        return Err("image reference too long".into());
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(format!("digest `{d}` is not sha256:<64 hex digits>"));
        }
    }
    // A tag follows the last ':' after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return Err(format!(
                "tag `{tag}` is invalid: use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-')"
            ));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            let port_ok =
                port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err(format!("registry `{first}` is invalid"));
            }
            parts.remove(0);
        }
    }
    for part in parts {
        if !path_component_ok(part) {
            return Err(format!(
                "`{part}` is not a valid repository name component: use lower-case letters, digits \
                 and single separators ('.', '_', '__', '-'), e.g. lexalign-dev:latest"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(part: &str) -> bool {
    let b = part.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // separator: '.', '_', '__', or one or more '-'
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
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
    fn build_cmd_sets_buildkit_env() {
        let sh = Shell::new().unwrap();
        let e = Engine::new(PathBuf::from("/usr/bin/docker"));
        let c: std::process::Command = e.build_cmd(&sh, BuildKit::LegacyEnv).into();
        assert!(c
            .get_envs()
            .any(|(k, v)| k == "DOCKER_BUILDKIT" && v == Some("1".as_ref())));
        let p = Engine::new(PathBuf::from("/usr/bin/podman"));
        assert_eq!(p.kind, Kind::Podman);
        let c: std::process::Command = p.build_cmd(&sh, BuildKit::Podman).into();
        assert_eq!(c.get_envs().count(), 0);
    }

    #[test]
    fn image_references() {
        for ok in [
            "lexalign-dev:latest",
            "lexalign-dev",
            "lexalign/python:3.11-bookworm",
            "python:3.11-slim",
            "localhost:5000/a/b:c",
            "ghcr.io/org/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a__b.c-d:T_1",
        ] {
            assert!(validate_image_ref(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Lexalign:latest",
            "lexalign dev",
            "lexalign:",
            "lexalign:-x",
            "lex..align",
            "-lex",
            "lex/",
            "img@sha256:xyz",
            "a:b:c",
        ] {
            assert!(validate_image_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(major_version("20.10.24+dfsg1"), Some(20));
        assert_eq!(major_version("28.2.2"), Some(28));
        assert_eq!(major_version(""), None);
    }
}

//! Registry references for `push` and `pull` (pure): `--registry HOST[:PORT]/NAMESPACE`, the
//! repository an image goes to, and the tags it gets (by lock hash, by git revision, latest,
//! and `<tag>-<arch>` per platform under a manifest list).

use crate::platform::Arch;
use crate::policy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `HOST[:PORT]`
    pub host: String,
    /// One or more path components, e.g. `team/ml`.
    pub namespace: String,
}

impl Registry {
    /// Parse `HOST[:PORT]/NAMESPACE`. The host must look like a registry host (a dot, a port,
    /// or `localhost`), or the engine would read it as a Docker Hub user.
    pub fn parse(s: &str) -> Result<Registry, String> {
        let hint = "use HOST[:PORT]/NAMESPACE, e.g. 127.0.0.1:5000/lexalign or ghcr.io/my-org";
        let s = s.trim().trim_end_matches('/');
        if s.contains("://") {
            return Err(format!("--registry {s}: no scheme; {hint}"));
        }
        if s.contains('@') {
            return Err(format!(
                "--registry: credentials do not go on the command line; log in with `docker login HOST` and {hint}"
            ));
        }
        let Some((host, namespace)) = s.split_once('/') else {
            return Err(format!("--registry {s}: no namespace; {hint}"));
        };
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        };
        let host_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && (name.contains('.') || name == "localhost" || port.is_some());
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !host_ok || !port_ok {
            return Err(format!(
                "--registry {s}: {host:?} is not a registry host; {hint}"
            ));
        }
        let ns_ok = !namespace.is_empty()
            && namespace.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
                    && c.chars()
                        .next()
                        .is_some_and(|ch| ch.is_ascii_alphanumeric())
            });
        if !ns_ok {
            return Err(format!(
                "--registry {s}: namespace {namespace:?} must be lowercase letters, digits, '.', '_', '-' (and '/'); {hint}"
            ));
        }
        Ok(Registry {
            host: host.to_string(),
            namespace: namespace.to_string(),
        })
    }

    /// A loopback registry (plain HTTP is fine there; engines allow 127.0.0.0/8 by default).
    pub fn is_loopback(&self) -> bool {
        let name = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(n, _)| n);
        name == "localhost" || name.starts_with("127.") || name == "[::1]"
    }

    /// `HOST/NS/lexalign-dev`: the one repository push writes and pull reads, whatever the
    /// local image is called (`--image`).
    pub fn repository(&self) -> String {
        format!("{}/{}/{}", self.host, self.namespace, policy::IMAGE_TITLE)
    }
}

/// The tag for a lock: `lock-<first 12 hex of its sha256>`.
pub fn lock_tag(lock_sha256: &str) -> String {
    format!("lock-{}", &lock_sha256[..12.min(lock_sha256.len())])
}

/// The tags a push gives: lock, git revision (only for a clean tree), the versions of release
/// tags on that revision, latest.
pub fn tags(lock_sha256: &str, revision: Option<&str>, versions: &[String]) -> Vec<String> {
    let mut t = vec![lock_tag(lock_sha256)];
    if let Some(r) = revision {
        t.push(r.to_string());
    }
    t.extend(versions.iter().cloned());
    t.push("latest".into());
    t
}

/// The versions of the release tags (`vMAJOR.MINOR.PATCH[-pre]`) among git tag names, one a
/// line (`git tag --points-at HEAD`), without the `v`: the image tags of a tag push.
pub fn release_versions(git_tags: &str) -> Vec<String> {
    git_tags
        .lines()
        .filter_map(|t| t.trim().strip_prefix('v'))
        .filter(|v| {
            let core = v.split_once('-').map_or(*v, |(c, _)| c);
            let nums: Vec<&str> = core.split('.').collect();
            nums.len() == 3
                && nums
                    .iter()
                    .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        })
        .map(String::from)
        .collect()
}

/// `<tag>-<arch>`: one platform's image under a manifest list.
pub fn arch_tag(tag: &str, arch: Arch) -> String {
    format!("{tag}-{}", arch.name())
}

/// The digest a `push` or `manifest push` printed (`… digest: sha256:… size: …`, or a bare
/// `sha256:…` line).
pub fn pushed_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|l| {
        let at = l.find("sha256:")?;
        let d: String = l[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .collect();
        (d.len() == 7 + 64).then_some(d)
    })
}

/// `skopeo inspect docker://REF`: an image's digest, architecture and labels straight from the
/// registry, without pulling it (skopeo uses the engine's login, ~/.docker/config.json).
pub fn inspect_remote(sh: &xshell::Shell, reference: &str, insecure: bool) -> crate::exec::Proc {
    let mut c = sh.cmd("skopeo").arg("inspect").arg("--no-tags");
    if insecure {
        c = c.arg("--tls-verify=false");
    }
    crate::exec::Proc::query(c.arg(format!("docker://{reference}")))
}

/// What `inspect_remote` says about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    pub digest: String,
    pub architecture: String,
    /// The `dev.lexalign.lock-sha256` label.
    pub lock: Option<String>,
}

impl RemoteImage {
    pub fn parse(json: &str) -> Option<RemoteImage> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        Some(RemoteImage {
            digest: v.get("Digest")?.as_str()?.to_string(),
            architecture: v.get("Architecture")?.as_str()?.to_string(),
            lock: v
                .get("Labels")
                .and_then(|l| l.get(crate::policy::LOCK_LABEL))
                .and_then(|l| l.as_str())
                .map(String::from),
        })
    }
}

/// One line for a failed push/pull, from the engine's error (credentials never appear in it:
/// the engine's own login is used, and we print only our words and the host).
pub fn explain_failure(host: &str, stderr: &str) -> String {
    let low = stderr.to_lowercase();
    let cause = if low.contains("connection refused") {
        "connection refused — is the registry running?"
    } else if low.contains("no such host") || low.contains("name resolution") {
        "the host name does not resolve"
    } else if low.contains("manifest unknown") || low.contains("not found") {
        "no such tag there — push it first (`cargo xtask push --registry …`)"
    } else if low.contains("unauthorized") || low.contains("denied") {
        "access denied — log in with `docker login` (the xtask never takes credentials)"
    } else if low.contains("server gave http response to https client") {
        "the registry speaks plain HTTP — add it to the engine's insecure-registries, or use TLS"
    } else if low.contains("timeout") || low.contains("deadline") {
        "timed out"
    } else {
        "the engine's error was not recognised"
    };
    let first = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let first: String = first.chars().take(300).collect();
    format!("registry {host}: {cause} ({first})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_images_from_skopeo() {
        let json = r#"{"Name":"r/x","Digest":"sha256:ab","Architecture":"arm64","Os":"linux",
            "Labels":{"dev.lexalign.lock-sha256":"feed","org.opencontainers.image.title":"t"}}"#;
        assert_eq!(
            RemoteImage::parse(json),
            Some(RemoteImage {
                digest: "sha256:ab".into(),
                architecture: "arm64".into(),
                lock: Some("feed".into())
            })
        );
        let no_labels = r#"{"Digest":"sha256:ab","Architecture":"amd64","Labels":null}"#;
        assert_eq!(RemoteImage::parse(no_labels).unwrap().lock, None);
        assert_eq!(RemoteImage::parse("not json"), None);
        let sh = xshell::Shell::new().unwrap();
        let p = inspect_remote(&sh, "127.0.0.1:5000/ns/lexalign-dev:latest-arm64", true);
        assert_eq!(p.effect, crate::exec::Effect::Query);
        assert_eq!(
            p.argv()[1..],
            [
                "inspect",
                "--no-tags",
                "--tls-verify=false",
                "docker://127.0.0.1:5000/ns/lexalign-dev:latest-arm64"
            ]
        );
    }

    #[test]
    fn registry_references() {
        let r = Registry::parse("127.0.0.1:5000/lexalign").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert!(r.is_loopback());
        assert_eq!(r.repository(), "127.0.0.1:5000/lexalign/lexalign-dev");
        let r = Registry::parse("ghcr.io/my-org/ml/").unwrap();
        assert_eq!(
            (r.host.as_str(), r.namespace.as_str()),
            ("ghcr.io", "my-org/ml")
        );
        assert!(!r.is_loopback());
        assert!(Registry::parse("localhost/team").is_ok());
        for bad in [
            "myuser",
            "myuser/repo",
            "https://ghcr.io/x",
            "127.0.0.1:5000",
            "127.0.0.1:99999/x",
            "user:pw@ghcr.io/x",
            "ghcr.io/My_Org",
            "ghcr.io//x",
        ] {
            assert!(Registry::parse(bad).is_err(), "{bad}");
        }
        assert!(Registry::parse("user:pw@ghcr.io/x")
            .unwrap_err()
            .contains("docker login"));
    }

    #[test]
    fn tags_and_digests() {
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(lock_tag(sha), "lock-0123456789ab");
        assert_eq!(tags(sha, None, &[]), ["lock-0123456789ab", "latest"]);
        assert_eq!(
            tags(sha, Some("deadbeef"), &["1.2.0".into()]),
            ["lock-0123456789ab", "deadbeef", "1.2.0", "latest"]
        );
        assert_eq!(
            release_versions("v1.2.0\nnightly\nv2\nv1.3.0-rc.1\nv1.x.0\nv1.2.3;rm\n"),
            ["1.2.0", "1.3.0-rc.1"]
        );
        assert_eq!(arch_tag("latest", Arch::Arm64), "latest-arm64");
        let out =
            "abc: Pushed\nlatest: digest: sha256:".to_string() + &"a".repeat(64) + " size: 1234\n";
        assert_eq!(
            pushed_digest(&out),
            Some(format!("sha256:{}", "a".repeat(64)))
        );
        assert_eq!(pushed_digest("sha256:short"), None);
        assert!(
            explain_failure("h:1", "dial tcp 127.0.0.1:1: connect: connection refused")
                .contains("is the registry running")
        );
        assert!(
            explain_failure("h:1", "manifest unknown: manifest unknown").contains("push it first")
        );
    }
}

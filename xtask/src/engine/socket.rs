//! The local Docker socket's fast paths: where the socket stands for the client (the `docker`
//! client on its default endpoint), one HTTP request on it answers what a client run would, in
//! ~1 ms instead of ~20 ms and without starting a process — the daemon ping, and the image
//! identity a dev run records before it starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// One `GET` on the Docker socket named by DOCKER_HOST (unix://…) or the default one: the
/// body of a 200 answer (~1 ms, where a client run costs ~20 ms; no process is started). None
/// for any other answer, a socket that is not there, or DOCKER_HOST naming something else.
pub fn docker_socket_get(path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h.strip_prefix("unix://")?.to_string(),
        _ => "/var/run/docker.sock".to_string(),
    };
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    s.take(16 << 20).read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200"))
        .then(|| body.to_string())
}

/// `GET /_ping` on the Docker socket: the daemon answers.
pub fn docker_socket_ping() -> bool {
    docker_socket_get("/_ping").is_some()
}

/// "ID DIGEST…" of an image from the engine's `GET /images/REF/json` answer (pure; None when
/// it is not one), the same text as `image inspect --format '{{.Id}}{{range .RepoDigests}}
/// {{.}}{{end}}'`.
pub fn identity_from_inspect_json(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut words = vec![v.get("Id")?.as_str()?.to_string()];
    for d in v
        .get("RepoDigests")
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
    {
        words.extend(d.as_str().map(String::from));
    }
    Some(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_from_the_sockets_inspect_answer() {
        let body = r#"{"Id":"sha256:abc","RepoTags":["x:latest"],"RepoDigests":["r/x@sha256:d1","r/y@sha256:d2"],"Size":1}"#;
        assert_eq!(
            identity_from_inspect_json(body).as_deref(),
            Some("sha256:abc r/x@sha256:d1 r/y@sha256:d2")
        );
        assert_eq!(
            identity_from_inspect_json(r#"{"Id":"sha256:abc","RepoDigests":null}"#).as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(
            identity_from_inspect_json("{\"message\":\"No such image\"}"),
            None
        );
        assert_eq!(identity_from_inspect_json("not json"), None);
        // what the dev run makes of it: the same variables as from the client's answer
        let env = crate::devrun::image_identity(identity_from_inspect_json(body).as_deref());
        assert_eq!(env.len(), 2);
    }
}

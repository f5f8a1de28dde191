//! Registry tests: `push`/`pull` through a Distribution registry on 127.0.0.1.

use crate::common::*;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry on 127.0.0.1 for the test's lifetime.
pub(crate) struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start() -> Registry {
        let bin =
            std::env::var("LEXALIGN_REGISTRY_BIN").unwrap_or_else(|_| "docker-registry".into());
        let dir = scratch("registry");
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs Debian's docker-registry (`{bin}`: {e}); apt-get install docker-registry, or set LEXALIGN_SKIP_DOCKER_TESTS=1")
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Registry { child, port }
    }
    fn reference(&self) -> String {
        format!("127.0.0.1:{}/e2e", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn lock_sha256() -> String {
    let out = sh(
        "sha256sum",
        &[root().join(policy::LOCKFILE).to_str().unwrap()],
    );
    out.stdout.split_whitespace().next().unwrap().to_string()
}

/// A small image (FROM scratch: a file and the lock label) for one platform.
pub(crate) fn small_image(tag: &str, platform: &str, lock: &str) {
    let dir = scratch("small-image");
    std::fs::write(dir.join("hello.txt"), format!("{tag} {platform}\n")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL {}={lock} {}=lexalign-e2e\n",
            policy::LOCK_LABEL,
            policy::PROJECT_LABEL
        ),
    )
    .unwrap();
    let out = Command::new(engine())
        .args(["build", "-q", "--platform", platform, "-t", tag])
        .arg(&dir)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cargo xtask --image IMAGE pull --registry REG EXTRA…`
pub(crate) fn pull(image: &str, registry: &str, extra: &[&str]) -> Run {
    let mut a = vec!["--image", image, "pull", "--registry", registry];
    a.extend_from_slice(extra);
    xtask(&a, &[])
}

pub(crate) fn push_and_pull_through_a_loopback_registry() {
    let reg = Registry::start();
    let r = reg.reference();
    let lock = lock_sha256();
    let img = format!("lexalign-e2e-small-{}:latest", std::process::id());
    small_image(&img, "linux/amd64", &lock);
    small_image(&format!("{img}-arm64"), "linux/arm64", &lock);

    let out = xtask(&["--image", &img, "push", "--registry", &r], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let repo = format!("{r}/lexalign-dev");
    let lock_tag = format!("lock-{}", &lock[..12]);
    let digest_of = |tag: &str| -> String {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{repo}:{tag} ")))
            .unwrap_or_else(|| panic!("no digest for {tag}: {}", out.stdout));
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    let digest = digest_of(&lock_tag);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest_of("latest");
    // the manifest list holds both platforms
    let m = sh(
        &engine(),
        &[
            "manifest",
            "inspect",
            "--insecure",
            &format!("{repo}:latest"),
        ],
    );
    assert_eq!(m.code, 0, "{}", m.all());
    assert!(
        m.stdout.contains("\"architecture\": \"amd64\"")
            && m.stdout.contains("\"architecture\": \"arm64\""),
        "{}",
        m.stdout
    );
    // the printed digest is the one the registry serves
    let by_digest = sh(&engine(), &["pull", &format!("{repo}@{digest}")]);
    assert_eq!(by_digest.code, 0, "{}", by_digest.all());

    // pull: the lock's tag by default, checked, tagged as --image
    let pulled = format!("lexalign-e2e-pulled-{}:latest", std::process::id());
    let out = pull(&pulled, &r, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let label = sh(
        &engine(),
        &[
            "image",
            "inspect",
            "--format",
            &format!(
                "{{{{index .Config.Labels \"{}\"}}}} {{{{.Architecture}}}}",
                policy::LOCK_LABEL
            ),
            &pulled,
        ],
    );
    assert_eq!(label.stdout.trim(), format!("{lock} amd64"));
    assert!(
        out.stdout.contains(&format!("digest: {repo}@{digest}")),
        "pull prints the digest push printed: {}",
        out.stdout
    );

    // a tag that does not exist; an image from another lock; an unreachable registry; bad refs
    let out = pull(&pulled, &r, &["--tag", "no-such-tag"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("push it first"), "{}", out.stderr);
    let stale = format!("{img}-stale");
    small_image(&stale, "linux/amd64", &"0".repeat(64));
    let remote = format!("{repo}:stale");
    assert_eq!(sh(&engine(), &["tag", &stale, &remote]).code, 0);
    assert_eq!(sh(&engine(), &["push", &remote]).code, 0);
    let out = pull(&pulled, &r, &["--tag", "stale"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("was built from lock 000000000000"),
        "{}",
        out.stderr
    );
    let out = xtask(
        &["--image", &img, "push", "--registry", "127.0.0.1:1/e2e"],
        &[],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
    for bad in [
        "myuser",
        "user:secret@127.0.0.1:5000/x",
        "http://127.0.0.1:5000/x",
    ] {
        let out = xtask(&["--image", &img, "push", "--registry", bad], &[]);
        assert_eq!(out.code, 2, "{bad}: {}", out.all());
        assert!(
            !out.all().contains("secret"),
            "credentials echoed: {}",
            out.all()
        );
    }
    for t in [
        img.clone(),
        format!("{img}-arm64"),
        stale,
        pulled,
        remote,
        format!("{repo}:{lock_tag}"), // what `pull` fetched, before it re-tagged it
    ] {
        sh(&engine(), &["rmi", &t]);
    }
}

/// Two runners, one platform each: `push --no-manifests` from each (one at a time), then
/// `push --manifests-only` joins the `<tag>-<arch>` tags the registry holds into manifest
/// lists whose entries have the right platforms and digests. A missing platform or one built
/// from another lock stops the join with one line naming it. `pull` with no flags uses
/// LEXALIGN_REGISTRY.
pub(crate) fn split_push_then_join_like_two_runners() {
    let reg = Registry::start();
    let r = reg.reference();
    let repo = format!("{r}/lexalign-dev");
    let lock = lock_sha256();
    let lock_tag = format!("lock-{}", &lock[..12]);
    let pid = std::process::id();
    let (amd, arm) = (
        format!("lexalign-e2e-runner-amd-{pid}:latest"),
        format!("lexalign-e2e-runner-arm-{pid}:latest"),
    );
    small_image(&amd, "linux/amd64", &lock);
    let env = [("LEXALIGN_REGISTRY", r.as_str())];
    let digest_in = |out: &Run, remote: &str| -> String {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{remote} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no digest for {remote}: {}", out.all()))
            .to_string()
    };
    // the amd64 runner
    let out = xtask(&["--image", &amd, "push", "--no-manifests"], &env);
    assert_eq!(out.code, 0, "{}", out.all());
    let amd_digest = digest_in(&out, &format!("{repo}:{lock_tag}-amd64"));
    assert!(
        !out.stdout.contains(&format!("{repo}:{lock_tag} ")),
        "--no-manifests made a list: {}",
        out.stdout
    );
    // joining now names the missing platform
    let out = xtask(&["push", "--manifests-only"], &env);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains(&format!("{repo}:{lock_tag}-arm64 missing")),
        "{}",
        out.stderr
    );
    // an arm64 image from another lock is refused by name
    let stale = format!("lexalign-e2e-runner-stale-{pid}:latest");
    small_image(&stale, "linux/arm64", &"0".repeat(64));
    for t in ["latest", &lock_tag] {
        let remote = format!("{repo}:{t}-arm64");
        assert_eq!(sh(&engine(), &["tag", &stale, &remote]).code, 0);
        assert_eq!(sh(&engine(), &["push", &remote]).code, 0);
        sh(&engine(), &["rmi", &remote]);
    }
    let out = xtask(&["push", "--manifests-only"], &env);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "{repo}:{lock_tag}-arm64 was built from lock 000000000000"
        )),
        "{}",
        out.stderr
    );
    // the arm64 runner (its own engine would have only this image)
    small_image(&arm, "linux/arm64", &lock);
    let out = xtask(&["--image", &arm, "push", "--no-manifests"], &env);
    assert_eq!(out.code, 0, "{}", out.all());
    let arm_digest = digest_in(&out, &format!("{repo}:{lock_tag}-arm64"));
    // the join
    let out = xtask(&["push", "--manifests-only"], &env);
    assert_eq!(out.code, 0, "{}", out.all());
    for t in [lock_tag.as_str(), "latest"] {
        let list = format!("{repo}:{t}");
        digest_in(&out, &list);
        let m = sh(&engine(), &["manifest", "inspect", "--insecure", &list]);
        assert_eq!(m.code, 0, "{}", m.all());
        let v: serde_json::Value = serde_json::from_str(&m.stdout).unwrap();
        let entries: Vec<(String, String)> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["platform"]["architecture"].as_str().unwrap().to_string(),
                    e["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("amd64".to_string(), amd_digest.clone()),
                ("arm64".to_string(), arm_digest.clone())
            ],
            "{list}"
        );
    }
    // pull with no flags: the registry comes from LEXALIGN_REGISTRY
    let pulled = format!("lexalign-e2e-pulled-default-{pid}:latest");
    let out = xtask(&["--image", &pulled, "pull"], &env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.all().contains(&format!("pull: {repo}:{lock_tag}")),
        "{}",
        out.all()
    );
    for t in [amd, arm, stale, pulled, format!("{repo}:{lock_tag}")] {
        sh(&engine(), &["rmi", &t]);
    }
}

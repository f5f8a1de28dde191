//! Past one machine, for real: `push`/`pull` through a Distribution registry (Debian's
//! `docker-registry`) that the test starts on 127.0.0.1, and `multinode` rehearsals of a LoRA
//! SFT on a tiny model (2 nodes on the host network, rendezvous on 127.0.0.1). Fails loudly
//! without Docker or docker-registry unless LEXALIGN_SKIP_DOCKER_TESTS=1 (reported as ignored).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry on 127.0.0.1 for the test's lifetime.
struct Registry {
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

fn lock_sha256() -> String {
    let out = sh(
        "sha256sum",
        &[root().join("python/pylock.toml").to_str().unwrap()],
    );
    out.stdout.split_whitespace().next().unwrap().to_string()
}

/// A small image (FROM scratch: a file and the lock label) for one platform.
fn small_image(tag: &str, platform: &str, lock: &str) {
    let dir = scratch("small-image");
    std::fs::write(dir.join("hello.txt"), format!("{tag} {platform}\n")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM scratch\nCOPY hello.txt /hello.txt\nLABEL dev.lexalign.lock-sha256={lock} dev.lexalign.project=lexalign-e2e\n"),
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
fn pull(image: &str, registry: &str, extra: &[&str]) -> Run {
    let mut a = vec!["--image", image, "pull", "--registry", registry];
    a.extend_from_slice(extra);
    xtask(&a, &[])
}

fn push_and_pull_through_a_loopback_registry() {
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
            "{{index .Config.Labels \"dev.lexalign.lock-sha256\"}} {{.Architecture}}",
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
fn split_push_then_join_like_two_runners() {
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

/// A scratch python/ with a tiny model, data and configs for the multinode rehearsals.
fn multinode_tree() -> &'static Path {
    static TREE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TREE.get_or_init(|| tiny_project("multinode", "mn.jsonl", 64))
}

/// `cargo xtask --python-dir <the multinode tree> multinode --nodes 2 EXTRA -- finetune.py
/// --config CFG`, as arguments.
fn two_nodes_args<'a>(cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let (img, _) = built_image();
    let py = multinode_tree().to_str().unwrap();
    let mut a = vec![
        "--image",
        img.as_str(),
        "--python-dir",
        py,
        "multinode",
        "--nodes",
        "2",
    ];
    a.extend_from_slice(extra);
    a.extend(["--", "finetune.py", "--config", cfg]);
    a
}

fn two_nodes(cfg: &str, extra: &[&str]) -> Run {
    xtask(&two_nodes_args(cfg, extra), &[])
}

fn config(py: &Path, name: &str, steps: u32) -> String {
    let file = format!("{name}.yaml");
    std::fs::write(
        py.join(&file),
        format!(
            "model: tiny\ndataset: {{path: mn.jsonl}}\noutput_dir: outputs/{name}\nlora: {{r: 8, alpha: 16, dropout: 0.0}}\n\
             training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 1, save_steps: 4, seed: 7}}\n"
        ),
    )
    .unwrap();
    file
}

fn last_loss(out: &Path) -> f64 {
    let m = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line = m.lines().rev().find(|l| l.contains("\"loss\"")).unwrap();
    let v = line.split("\"loss\": ").nth(1).unwrap();
    v.split([',', '}']).next().unwrap().trim().parse().unwrap()
}

fn no_node_left() {
    let left = sh(
        &engine(),
        &["ps", "-aq", "--filter", "name=lexalign-multinode-"],
    )
    .stdout;
    assert!(left.trim().is_empty(), "multinode containers left: {left}");
}

fn two_nodes_train_like_two_processes_and_resume() {
    let py = multinode_tree();
    let cfg = config(py, "mn", 8);
    let hooks = "--engine-arg=--env=LEXALIGN_TESTING={\"rank_report\": \"/app/ranks-mn\"}";
    let r = two_nodes(&cfg, &[hooks]);
    assert_eq!(r.code, 0, "{}", r.all());
    no_node_left();
    let mut digests = Vec::new();
    for rank in 0..2 {
        let rep = std::fs::read_to_string(py.join(format!("ranks-mn/rank-{rank}.json"))).unwrap();
        assert!(
            rep.contains("\"world_size\": 2") && rep.contains("\"torch_world_size\": 2"),
            "{rep}"
        );
        let p = std::fs::read_to_string(py.join(format!("ranks-mn/params-{rank}.json"))).unwrap();
        let sha = p.split("\"trainable_sha256\": \"").nth(1).unwrap();
        digests.push(sha.split('"').next().unwrap().to_string());
    }
    assert_eq!(digests[0], digests[1], "LoRA weights differ across ranks");
    let run = std::fs::read_to_string(py.join("outputs/mn/run.json")).unwrap();
    assert!(run.contains("\"world_size\": 2"), "{run}");
    assert!(
        run.contains("\"image_id\": \"sha256:"),
        "the xtask names the image: {run}"
    );

    // the same training as 2 processes in one container
    let cfg1 = config(py, "sp", 8);
    let r = two_processes(py, &cfg1);
    assert_eq!(r.code, 0, "{}", r.all());
    let (a, b) = (
        last_loss(&py.join("outputs/mn")),
        last_loss(&py.join("outputs/sp")),
    );
    assert!((a - b).abs() <= 1e-3, "2 nodes {a} vs 2 processes {b}");

    // resume from the shared checkpoint with more steps
    let cfg = config(py, "mn", 12);
    let r = two_nodes(&cfg, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let run = std::fs::read_to_string(py.join("outputs/mn/run.json")).unwrap();
    assert!(
        run.contains("\"resumed_from_step\": 8") && run.contains("\"final_step\": 12"),
        "{run}"
    );
    no_node_left();
}

fn a_killed_node_stops_the_others() {
    let py = multinode_tree();
    let cfg = config(py, "killed", 400);
    let hooks = "--engine-arg=--env=LEXALIGN_TESTING={\"step_delay_s\": 0.2}";
    let mut child = xtask_cmd(&two_nodes_args(&cfg, &[hooks]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = py.join("outputs/killed/metrics.jsonl");
    let deadline = Instant::now() + Duration::from_secs(180);
    while !std::fs::read_to_string(&metrics).is_ok_and(|m| m.lines().count() >= 3) {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let node1 = sh(
        &engine(),
        &["ps", "-q", "--filter", "name=lexalign-multinode-node1-"],
    )
    .stdout;
    assert!(!node1.trim().is_empty());
    assert_eq!(sh(&engine(), &["kill", node1.trim()]).code, 0);
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the other node hangs after a kill"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success());
    let err = stderr_of(&mut child);
    assert!(err.contains("node1 exit"), "{err}");
    no_node_left();
}

fn nodes_in_different_environments_refuse_to_train() {
    let py = multinode_tree();
    let cfg = config(py, "envs", 4);
    let hooks = "--engine-arg=--env=LEXALIGN_TESTING={\"environment_on_node\": {\"node\": 1, \"lock_sha256\": \"feedface\"}}";
    let r = two_nodes(&cfg, &[hooks]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.all().contains("nodes run different environments"),
        "{}",
        r.all()
    );
    assert!(
        r.all().contains("node 1") && r.all().contains("feedface"),
        "{}",
        r.all()
    );
    assert!(!py.join("outputs/envs/run.json").exists());
    no_node_left();
}

fn bad_multinode_requests_exit_2_and_leave_nothing() {
    let (img, _) = built_image();
    let py = multinode_tree();
    let pyd = py.to_str().unwrap();
    for (args, msg) in [
        (vec!["--nodes", "0", "--", "finetune.py"], "--nodes 0"),
        (
            vec!["--nodes", "2", "--", "/etc/passwd"],
            "is not a file in",
        ),
        (
            vec!["--nodes", "2", "--", "../xtask.py"],
            "is not a file in",
        ),
        (vec!["--nodes", "500", "--", "finetune.py"], "cannot start"),
    ] {
        let mut a = vec!["--image", img.as_str(), "--python-dir", pyd, "multinode"];
        a.extend(args);
        let r = xtask(&a, &[]);
        assert_eq!(r.code, 2, "{a:?}: {}", r.all());
        assert!(r.stderr.contains(msg), "{}", r.stderr);
    }
    no_node_left();
}

/// A finetune under `cargo xtask run`, stopped the way clusters and people stop containers:
/// `docker stop` (SIGTERM to the container), or SIGTERM to the xtask (passed on to the
/// container). Either way: a checkpoint at the step it was on, run.json "preempted", exit 75.
fn stopped_runs_leave_a_resumable_checkpoint() {
    let (img, _) = built_image();
    let py = multinode_tree();
    let pyd = py.to_str().unwrap();
    for (name, how) in [
        ("stopped", "docker stop"),
        ("termed", "SIGTERM to the xtask"),
    ] {
        let cfg = config(py, name, 200);
        let project = format!("lexalign-stop-{name}");
        let mut child = xtask_cmd(&[
            "--image",
            img,
            "--python-dir",
            pyd,
            "run",
            "--engine-arg=--env=LEXALIGN_TESTING={\"step_delay_s\": 0.3}",
            "--",
            "python",
            "finetune.py",
            "--config",
            &cfg,
        ])
        .env("LEXALIGN_PROJECT", &project)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let out = py.join(format!("outputs/{name}"));
        let deadline = Instant::now() + Duration::from_secs(180);
        let seen = loop {
            let n = std::fs::read_to_string(out.join("metrics.jsonl"))
                .map(|m| m.lines().count())
                .unwrap_or(0);
            if n >= 5 {
                break n as u64;
            }
            assert!(
                Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                "{how}: training did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        if how == "docker stop" {
            let id = project_containers(&project);
            assert_eq!(id.len(), 1, "{id:?}");
            let r = sh(&engine(), &["stop", &id[0]]);
            assert_eq!(r.code, 0, "{}", r.all());
        } else {
            assert_eq!(sh("kill", &["-TERM", &child.id().to_string()]).code, 0);
        }
        let status = child.wait().unwrap();
        let err = stderr_of(&mut child);
        assert_eq!(status.code(), Some(75), "{how}: {err}");
        let run = std::fs::read_to_string(out.join("run.json")).unwrap();
        assert!(run.contains("\"status\": \"preempted\""), "{how}: {run}");
        let step: u64 = run
            .split("\"final_step\": ")
            .nth(1)
            .unwrap()
            .split([',', '\n'])
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            step >= seen && step <= seen + 2,
            "{how}: stopped at {step}, {seen} steps logged before"
        );
        assert!(
            out.join(format!("checkpoint-{step}/lexalign-checkpoint.json"))
                .is_file(),
            "{how}: a complete checkpoint at step {step}"
        );
        assert!(
            project_containers(&project).is_empty(),
            "{how}: container left"
        );
        let r = xtask(&["clean", "--volumes"], &[("LEXALIGN_PROJECT", &project)]);
        assert_eq!(r.code, 0, "{}", r.all());
    }
}

fn main() {
    let tests: Vec<(&str, fn())> = vec![
        (
            "stopped_runs_leave_a_resumable_checkpoint",
            stopped_runs_leave_a_resumable_checkpoint,
        ),
        (
            "push_and_pull_through_a_loopback_registry",
            push_and_pull_through_a_loopback_registry,
        ),
        (
            "split_push_then_join_like_two_runners",
            split_push_then_join_like_two_runners,
        ),
        (
            "two_nodes_train_like_two_processes_and_resume",
            two_nodes_train_like_two_processes_and_resume,
        ),
        (
            "a_killed_node_stops_the_others",
            a_killed_node_stops_the_others,
        ),
        (
            "nodes_in_different_environments_refuse_to_train",
            nodes_in_different_environments_refuse_to_train,
        ),
        (
            "bad_multinode_requests_exit_2_and_leave_nothing",
            bad_multinode_requests_exit_2_and_leave_nothing,
        ),
    ];
    run_docker_trials(tests, "registry/multi-node tests", true);
}

//! Multi-node rehearsals and stopped runs: `multinode` on 127.0.0.1, `docker stop` of
//! one- and two-process training containers.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A scratch python/ with a tiny model, data and configs for the multinode rehearsals.
pub(crate) fn multinode_tree() -> &'static Path {
    static TREE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TREE.get_or_init(|| tiny_project("multinode", "mn.jsonl", 64))
}

/// `cargo xtask --python-dir <the multinode tree> multinode --nodes 2 EXTRA -- finetune.py
/// --config CFG`, as arguments.
pub(crate) fn two_nodes_args<'a>(cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
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

pub(crate) fn two_nodes(cfg: &str, extra: &[&str]) -> Run {
    xtask(&two_nodes_args(cfg, extra), &[])
}

pub(crate) fn config(py: &Path, name: &str, steps: u32) -> String {
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

pub(crate) fn last_loss(out: &Path) -> f64 {
    let m = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line = m.lines().rev().find(|l| l.contains("\"loss\"")).unwrap();
    let v = line.split("\"loss\": ").nth(1).unwrap();
    v.split([',', '}']).next().unwrap().trim().parse().unwrap()
}

pub(crate) fn no_node_left() {
    let left = sh(
        &engine(),
        &["ps", "-aq", "--filter", "name=lexalign-multinode-"],
    )
    .stdout;
    assert!(left.trim().is_empty(), "multinode containers left: {left}");
}

pub(crate) fn two_nodes_train_like_two_processes_and_resume() {
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

pub(crate) fn a_killed_node_stops_the_others() {
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

pub(crate) fn nodes_in_different_environments_refuse_to_train() {
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

pub(crate) fn bad_multinode_requests_exit_2_and_leave_nothing() {
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
pub(crate) fn stopped_runs_leave_a_resumable_checkpoint() {
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

/// `docker stop` of a container running two training processes under the launcher (the way
/// multinode, SLURM and Kubernetes run them): the workers save at the step in flight, the
/// container exits 75 without a traceback, and the resumed run ends at the loss of an
/// uninterrupted one (1e-5), also when the stop falls after the first epoch (8 steps here).
pub(crate) fn a_stopped_two_process_container_exits_75_and_resumes_exactly() {
    let (img, _) = built_image();
    let py = multinode_tree();
    let pyd = py.to_str().unwrap();
    let r = two_processes(py, &config(py, "ref2", 20));
    assert_eq!(r.code, 0, "{}", r.all());
    let reference = last_loss(&py.join("outputs/ref2"));
    let cfg = config(py, "stop2", 20);
    let project = "lexalign-stop-two";
    let launch = |hooks: &str| {
        let mut args = vec!["--image", img, "--python-dir", pyd, "run"];
        args.push(hooks);
        args.extend([
            "--",
            "python",
            "-m",
            "lexalign.launch",
            "--standalone",
            "--nproc-per-node",
            "2",
            "finetune.py",
            "--config",
            &cfg,
        ]);
        xtask_cmd(&args)
            .env("LEXALIGN_PROJECT", project)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = launch("--engine-arg=--env=LEXALIGN_TESTING={\"step_delay_s\": 0.4}");
    let out = py.join("outputs/stop2");
    let deadline = Instant::now() + Duration::from_secs(240);
    while std::fs::read_to_string(out.join("metrics.jsonl"))
        .map(|m| m.lines().count())
        .unwrap_or(0)
        < 10
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = project_containers(project);
    assert_eq!(id.len(), 1, "{id:?}");
    assert_eq!(sh(&engine(), &["stop", "-t", "120", &id[0]]).code, 0);
    let status = child.wait().unwrap();
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(75), "{err}");
    assert!(
        !err.contains("Traceback") && !err.contains("SignalException"),
        "{err}"
    );
    let run = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(run.contains("\"status\": \"preempted\""), "{run}");
    let mut again = launch("--engine-arg=--env=LEXALIGN_TESTING={}");
    let status = again.wait().unwrap();
    let err = stderr_of(&mut again);
    assert_eq!(status.code(), Some(0), "{err}");
    let resumed = last_loss(&out);
    assert!(
        (resumed - reference).abs() <= 1e-5,
        "resumed {resumed} vs uninterrupted {reference}"
    );
    assert!(project_containers(project).is_empty(), "container left");
    let r = xtask(&["clean", "--volumes"], &[("LEXALIGN_PROJECT", project)]);
    assert_eq!(r.code, 0, "{}", r.all());
}

//! Dev runs: exit codes, signals (nothing left running), file ownership, HF_TOKEN by name, the entrypoint, stdin.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn exit_codes_propagate() {
    let (img, _) = built_image();
    let r = xtask(&["--image", img, "run", "--", "sh", "-c", "exit 7"], &[]);
    assert_eq!(r.code, 7, "{}", r.all());
    // a failing pytest run fails the task with pytest's code
    let py = scratch("failing-tests");
    copy_dir(&root().join("python"), &py);
    std::fs::write(
        py.join("tests/test_fails_on_purpose.py"),
        "def test_fails():\n    assert 1 == 2\n",
    )
    .unwrap();
    let r = xtask(
        &[
            "--image",
            img,
            "--python-dir",
            py.to_str().unwrap(),
            "test-unit",
            "--",
            "tests/test_fails_on_purpose.py",
            "-q",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("1 failed"), "{}", r.stdout);
    let r = xtask(
        &[
            "--image",
            img,
            "test-unit",
            "--",
            "-k",
            "no_test_has_this_name_xyz",
            "-q",
        ],
        &[],
    );
    assert_eq!(r.code, 5, "pytest's 'no tests' code: {}", r.all());
}

pub(crate) fn sigint_stops_and_removes_the_container() {
    let (img, _) = built_image();
    let project = "lexalign-sigint";
    let mut child = xtask_cmd(&["--image", img, "run", "--", "sleep", "60"])
        .env("LEXALIGN_PROJECT", project)
        .env_remove(policy::HF_VOLUME_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while project_containers(project).is_empty() {
        assert!(Instant::now() < deadline, "the container never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    sh("kill", &["-INT", &child.id().to_string()]);
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        project_containers(project).is_empty(),
        "a container was left behind"
    );
    // what the run created (its HF cache volume) goes too
    let r = xtask(&["clean", "--volumes"], &[("LEXALIGN_PROJECT", project)]);
    assert_eq!(r.code, 0, "{}", r.all());
}

/// A task interrupted between its own checks (smoke: unnamed containers, one after another)
/// leaves none of its containers running: the xtask removes what it started before it exits.
pub(crate) fn an_interrupted_smoke_leaves_no_container_running() {
    let (img, _) = built_image();
    let project = "lexalign-smoke-sigint";
    for id in project_containers(project) {
        sh(&engine(), &["rm", "-f", &id]); // an earlier, failed run's: not this run's
    }
    let mut child = xtask_cmd(&["--image", img, "smoke"])
        .env("LEXALIGN_PROJECT", project)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = || {
        sh(
            &engine(),
            &[
                "ps",
                "-q",
                "--filter",
                &format!("label={}={project}", policy::PROJECT_LABEL),
            ],
        )
        .stdout
        .split_whitespace()
        .count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while running() == 0 {
        assert!(Instant::now() < deadline, "smoke never started a container");
        assert!(
            child.try_wait().unwrap().is_none(),
            "smoke ended before a check ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sh("kill", &["-INT", &child.id().to_string()]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", stderr_of(&mut child));
    assert_eq!(running(), 0, "a container of the interrupted smoke runs on");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        project_containers(project).is_empty(),
        "a container was left behind"
    );
}

pub(crate) fn files_written_to_app_belong_to_the_invoking_user() {
    let py = scratch("owner");
    copy_dir(&root().join("python"), &py);
    let r = run_in(
        &py,
        &[
            "sh",
            "-c",
            &format!(
                "echo hi > /app/made-in-container && touch $HOME/ok && touch {}/ok",
                policy::HF_HOME
            ),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(py.join("made-in-container")).unwrap();
    let mine = std::fs::metadata(&py).unwrap();
    let me = sh("id", &["-u"]).stdout.trim().parse::<u32>().unwrap();
    assert_eq!(made.uid(), me);
    assert_eq!(mine.uid(), me);
}

pub(crate) fn hf_token_reaches_the_container_by_name_only() {
    let (img, _) = built_image();
    let r = xtask(
        &[
            "--image",
            img,
            "-v",
            "run",
            "--",
            "sh",
            "-c",
            "printf %s \"$HF_TOKEN\" | sha256sum",
        ],
        &[("HF_TOKEN", HF_CANARY)],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let want = {
        let mut c = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(HF_CANARY.as_bytes())
            .unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(
        r.stdout.split_whitespace().next(),
        want.split_whitespace().next(),
        "the token is visible inside"
    );
    assert!(
        !r.all().contains(HF_CANARY),
        "xtask's output (verbose) holds no token"
    );
    assert!(
        r.stderr.contains("-e HF_TOKEN"),
        "passed by name: {}",
        r.stderr
    );
    let dry = xtask(
        &["--image", img, "--dry-run", "test-e2e"],
        &[("HF_TOKEN", HF_CANARY)],
    );
    assert_eq!(dry.code, 0);
    assert!(dry.stdout.contains("-e HF_TOKEN") && !dry.all().contains(HF_CANARY));
    let inspect = sh(&engine(), &["inspect", img]).all();
    assert!(!inspect.contains(HF_CANARY));
}

pub(crate) fn entrypoint_warns_only_without_hf_token() {
    let (img, _) = built_image();
    let r = xtask(&["--image", img, "run", "--", "true"], &[]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("HF_TOKEN is not set"), "{}", r.stderr);
    let r = xtask(
        &["--image", img, "run", "--", "true"],
        &[("HF_TOKEN", HF_CANARY)],
    );
    assert_eq!(r.code, 0);
    assert!(!r.stderr.contains("HF_TOKEN is not set"), "{}", r.stderr);
    // no arguments: bash (it reads the script from stdin)
    let mut c = Command::new(engine())
        .args(["run", "--rm", "-i", img])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"echo $BASH_VERSION\n")
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().starts_with('5'),
        "bash by default"
    );
}

pub(crate) fn run_passes_stdin_through() {
    let (img, _) = built_image();
    let mut child = xtask_cmd(&["--image", img, "run", "--", "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped into the container\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PIPED INTO THE CONTAINER"
    );
}

//! `cargo xtask` against a fake engine (tests/src/bin/fake-engine.rs): engine discovery,
//! BuildKit and daemon errors, base selection, bad input, dry runs and failing builds —
//! everything that needs no Docker.

mod common;

use common::*;
use std::path::PathBuf;

const FAKE: &str = env!("CARGO_BIN_EXE_fake-engine");

fn fake(args: &[&str], envs: &[(&str, &str)]) -> (Run, Vec<String>) {
    let dir = scratch("fake");
    let log = dir.join("argv.log");
    let mut all: Vec<(&str, &str)> = vec![
        ("LEXALIGN_DOCKER", FAKE),
        ("FAKE_ENGINE_LOG", log.to_str().unwrap()),
    ];
    all.extend_from_slice(envs);
    let mut c = xtask_cmd(args);
    for (k, v) in &all {
        c.env(k, v);
    }
    // A CA bundle from the environment is fine, but keep runs deterministic.
    for k in policy::CA_ENV_VARS {
        c.env_remove(k);
    }
    let run: Run = c.output().unwrap().into();
    let lines = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    (run, lines)
}

#[test]
fn missing_engine_binary_is_one_line_with_the_fix() {
    let r = xtask(&["--engine", "/nonexistent/docker", "smoke"], &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("/nonexistent/docker") && r.stderr.contains("apt-get install docker.io"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn daemon_not_reachable_is_one_line_with_the_fix() {
    let (r, _) = fake(&["run", "--", "true"], &[("FAKE_DAEMON", "0")]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("cannot reach the Docker daemon"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("systemctl start docker"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn new_client_without_buildx_cannot_build() {
    let (r, argv) = fake(
        &["image"],
        &[
            ("FAKE_CLIENT_VERSION", "28.2.2"),
            ("FAKE_PRESENT", policy::SLIM_BASE),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("no buildx plugin")
            && r.stderr.contains("install buildx")
            && r.stderr.contains("LEXALIGN_DOCKER"),
        "{}",
        r.stderr
    );
    assert!(
        !argv.iter().any(|l| l.starts_with("build\t")),
        "no build was attempted: {argv:?}"
    );
    // with buildx it builds
    let (r, argv) = fake(
        &["image"],
        &[
            ("FAKE_CLIENT_VERSION", "28.2.2"),
            ("FAKE_BUILDX", "1"),
            (
                "FAKE_PRESENT",
                &format!("{},{}", policy::SLIM_BASE, policy::DEFAULT_IMAGE),
            ),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(argv.iter().any(|l| l.starts_with("build\t")), "{argv:?}");
}

#[test]
fn base_selection_prefers_local_slim_then_pull_then_debian() {
    let (r, argv) = fake(
        &["image"],
        &[(
            "FAKE_PRESENT",
            &format!("{},{}", policy::SLIM_BASE, policy::DEFAULT_IMAGE),
        )],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let build = argv.iter().find(|l| l.starts_with("build\t")).unwrap();
    assert!(build.contains(&format!("BASE_IMAGE={}", policy::SLIM_BASE)));
    assert!(!argv.iter().any(|l| l.starts_with("pull")));

    let (r, argv) = fake(
        &["image"],
        &[("FAKE_PULL", "1"), ("FAKE_PRESENT", policy::DEFAULT_IMAGE)],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(argv.iter().any(|l| l.starts_with("pull\t")));
    let build = argv.iter().find(|l| l.starts_with("build\t")).unwrap();
    assert!(build.contains(&format!("BASE_IMAGE={}", policy::SLIM_BASE)));

    let (r, argv) = fake(
        &["image"],
        &[(
            "FAKE_PRESENT",
            &format!("{},{}", policy::DEBIAN_BASE, policy::DEFAULT_IMAGE),
        )],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(argv
        .iter()
        .any(|l| l.contains(&format!("BASE_IMAGE={}", policy::DEBIAN_BASE))));
}

#[test]
fn image_sets_labels_and_passes_the_ca_bundle_as_a_secret() {
    let dir = scratch("ca-bundle");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let (r, argv) = fake(
        &[
            "image",
            "--ca-bundle",
            ca.to_str().unwrap(),
            "--no-cache",
            "--platform",
            "linux/amd64",
        ],
        &[
            (
                "FAKE_PRESENT",
                &format!("{},{}", policy::SLIM_BASE, policy::DEFAULT_IMAGE),
            ),
            ("HF_TOKEN", HF_CANARY),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let build = argv.iter().find(|l| l.starts_with("build\t")).unwrap();
    assert!(
        build.contains(&format!("--secret\tid=ca,src={}", ca.display())),
        "{build}"
    );
    for label in [
        &format!("{}=", policy::OCI_TITLE),
        "org.opencontainers.image.source=",
        "org.opencontainers.image.revision=",
        "org.opencontainers.image.created=",
        "org.opencontainers.image.version=",
        &format!("{}=", policy::LOCK_LABEL),
    ] {
        assert!(build.contains(label), "{label} missing: {build}");
    }
    assert!(build.contains("--no-cache") && build.contains("--platform\tlinux/amd64"));
    assert!(!build.contains(HF_CANARY) && !r.all().contains(HF_CANARY));
    // The summary names tag, id, size and time.
    for key in ["image:", "id:", "size:", "seconds:"] {
        assert!(r.stdout.contains(key), "{}", r.stdout);
    }
}

#[test]
fn bad_inputs_exit_2_naming_the_path() {
    let (r, _) = fake(&["image", "--ca-bundle", "/nonexistent/ca.pem"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("/nonexistent/ca.pem"));
    let (r, _) = fake(&["--image", "Bad Ref!", "image"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("Bad Ref!"));
    let empty = scratch("emptyroot");
    let (r, _) = fake(&["image"], &[("LEXALIGN_ROOT", empty.to_str().unwrap())]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("{}", empty.join(policy::DOCKERFILE).display())),
        "{}",
        r.stderr
    );
    let tree = scratch("nolock");
    std::fs::create_dir_all(tree.join("docker")).unwrap();
    std::fs::write(tree.join(policy::DOCKERFILE), "FROM scratch\n").unwrap();
    let (r, _) = fake(&["image"], &[("LEXALIGN_ROOT", tree.to_str().unwrap())]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains(policy::LOCKFILE), "{}", r.stderr);
}

#[test]
fn unknown_task_and_bad_flag_exit_2() {
    let r = xtask(&["no-such-task"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unrecognized subcommand"), "{}", r.stderr);
    let r = xtask(&["image", "--no-such-flag"], &[]);
    assert_eq!(r.code, 2);
}

#[test]
fn failing_build_exits_non_zero_with_the_engine_output() {
    let (r, _) = fake(
        &["image"],
        &[("FAKE_PRESENT", policy::SLIM_BASE), ("FAKE_FAIL", "build")],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.all().contains("failed to solve"),
        "engine output is visible: {}",
        r.all()
    );
    assert!(
        r.stderr.contains(&format!(
            "previous image tagged {} is unchanged",
            policy::DEFAULT_IMAGE
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn dry_run_prints_commands_and_runs_none() {
    let (r, argv) = fake(
        &["--dry-run", "run", "--", "sh", "-c", "exit 7"],
        &[("HF_TOKEN", HF_CANARY)],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        argv.iter().all(|l| !l.starts_with("run")),
        "nothing ran: {argv:?}"
    );
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(" run "))
        .expect("the run line is printed");
    assert!(
        line.contains("--rm") && line.contains("--init") && line.contains("-e HF_TOKEN"),
        "{line}"
    );
    assert!(line.contains(&format!("{TEST_HF_VOLUME}:{}", policy::HF_HOME)));
    assert!(line.ends_with("sh -c 'exit 7'"), "{line}");
    assert!(!r.all().contains(HF_CANARY));
}

#[test]
fn container_exit_code_is_the_task_exit_code() {
    let (r, argv) = fake(&["run", "--", "false"], &[("FAKE_RUN_EXIT", "7")]);
    assert_eq!(r.code, 7, "{}", r.all());
    assert!(argv.iter().any(|l| l.starts_with("run\t--rm\t--init")));
    let (r, _) = fake(&["test-unit", "--", "-k", "x"], &[("FAKE_RUN_EXIT", "5")]);
    assert_eq!(r.code, 5);
}

#[test]
fn doctor_reports_rows_and_fails_without_daemon() {
    let (r, _) = fake(
        &["doctor"],
        &[("FAKE_DAEMON", "0"), ("HF_TOKEN", HF_CANARY)],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    for row in [
        "engine client",
        "daemon",
        "BuildKit",
        "free disk",
        "base image",
        "CA bundle",
        "HF_TOKEN",
        "GPU runtime",
    ] {
        assert!(r.stdout.contains(row), "row {row}: {}", r.stdout);
    }
    assert!(r.stdout.contains("fix: start it"), "{}", r.stdout);
    assert!(r.stdout.contains("set (value hidden)"));
    assert!(!r.all().contains(HF_CANARY));
}

#[test]
fn pins_check_on_the_repository_is_in_sync() {
    let r = xtask(&["pins", "--check"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    // And a drifted copy fails with a diff, changing nothing.
    let dir = scratch("pins");
    let py: PathBuf = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(root().join(policy::PYPROJECT)).unwrap();
    let drifted = text.replace("\"trl==0.28.0\"", "\"trl>=0.20\"");
    assert_ne!(text, drifted);
    std::fs::write(&py, &drifted).unwrap();
    let lock = root().join(policy::LOCKFILE);
    let r = xtask(
        &[
            "pins",
            "--check",
            "--pyproject",
            py.to_str().unwrap(),
            "--lock",
            lock.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("-    \"trl>=0.20\",") && r.stdout.contains("+    \"trl==0.28.0\","),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(&py).unwrap(), drifted);
    let r = xtask(
        &[
            "pins",
            "--pyproject",
            py.to_str().unwrap(),
            "--lock",
            lock.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(&py).unwrap(), text);
    let r = xtask(&["pins", "--pyproject", "/nonexistent/pyproject.toml"], &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/pyproject.toml"));
}

/// Subcommands that change state; a dry run must never run one.
const CHANGING: [&str; 18] = [
    "build",
    "run",
    "rm",
    "rmi",
    "pull",
    "push",
    "tag",
    "create",
    "volume\tcreate",
    "volume\trm",
    "volume\tprune",
    "manifest",
    "builder",
    "kill",
    "stop",
    "login",
    "load",
    "exec",
];

fn git_status() -> String {
    sh(
        "git",
        &[
            "-C",
            root().to_str().unwrap(),
            "status",
            "--porcelain",
            "--untracked-files=all",
        ],
    )
    .stdout
}

#[test]
fn every_dry_run_exits_0_changes_nothing_even_when_the_engine_fails_every_call() {
    let before = git_status();
    let tasks: Vec<Vec<&str>> = vec![
        vec!["doctor"],
        vec!["base-image"],
        vec!["image"],
        vec!["image", "--base-image", policy::DEBIAN_BASE],
        vec!["smoke"],
        vec!["help-check"],
        vec!["test-unit"],
        vec!["test-e2e", "--", "-k", "x"],
        vec!["shell"],
        vec!["run", "--", "sh", "-c", "exit 7"],
        vec!["pins"],
        vec!["lock"],
        vec!["ci"],
        vec!["bench"],
        vec!["clean", "--volumes", "--force"],
        vec!["push", "--registry", "127.0.0.1:9/lexalign"],
        vec!["pull", "--registry", "127.0.0.1:9/lexalign"],
        vec!["multinode", "--nodes", "2", "--", "finetune.py"],
        vec!["sbom", "--output", "target/xtask-tests/dry-run-sbom.json"],
    ];
    for task in tasks {
        let mut args = vec!["--dry-run"];
        args.extend(task.iter());
        let (r, argv) = fake(&args, &[("FAKE_FAIL", "*")]);
        assert_eq!(r.code, 0, "--dry-run {}: {}", task.join(" "), r.all());
        for line in &argv {
            assert!(
                !CHANGING
                    .iter()
                    .any(|c| line.starts_with(&format!("{c}\t")) || line == c),
                "--dry-run {} ran `{line}`",
                task.join(" ")
            );
        }
    }
    assert_eq!(git_status(), before, "a dry run changed the working tree");
}

#[test]
fn dry_run_ci_lists_the_steps_as_planned() {
    let (r, _) = fake(&["--dry-run", "ci"], &[("FAKE_FAIL", "*")]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("passed"), "{}", r.stdout);
    assert!(
        r.stdout.contains("steps planned (dry run: nothing ran)"),
        "{}",
        r.stdout
    );
    let planned = r
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth_back(1) == Some("planned"))
        .count();
    // the steps of xtask::tasks::ci::STEPS; the arm64 leg is planned where this machine can run arm64 (natively, or with
    // QEMU registered in binfmt_misc), else skipped with the fix — decided here, not read
    // back from the output under test
    let native = std::env::consts::ARCH == "aarch64";
    let qemu = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|s| s.starts_with("enabled"));
    let runnable = native || qemu;
    let steps = xtask::tasks::ci::STEPS.len();
    assert_eq!(
        planned,
        if runnable { steps } else { steps - 1 },
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.contains("arm64: skipped — "),
        !runnable,
        "{}",
        r.stdout
    );
    // the commands of the steps are printed: cargo test, the build, the pytest runs
    // the cargo tests that need no engine come before the build, the engine's after it
    let fast = r
        .stdout
        .find("test --locked -p xtask")
        .expect("the fast cargo tests");
    let build = r.stdout.find(" build ").expect("the image build");
    let engine = r
        .stdout
        .find("--test docker")
        .expect("the engine's cargo tests");
    assert!(fast < build && build < engine, "{}", r.stdout);
    assert!(r.stdout.contains(" build "), "{}", r.stdout);
    assert!(r.stdout.contains("integration and not hub"), "{}", r.stdout);
}

#[test]
fn bench_only_accepts_every_id_it_can_print() {
    let (all, _) = fake(&["--dry-run", "bench"], &[]);
    assert_eq!(all.code, 0, "{}", all.all());
    let ids: Vec<String> = all
        .stdout
        .trim()
        .trim_start_matches("bench: would measure ")
        .split(", ")
        .map(String::from)
        .collect();
    assert!(
        ids.len() >= 20 && ids.contains(&"help-download".to_string()),
        "{ids:?}"
    );
    for id in &ids {
        let (r, _) = fake(&["--dry-run", "bench", "--only", id], &[]);
        assert_eq!(r.code, 0, "--only {id}: {}", r.all());
        assert_eq!(r.stdout.trim(), format!("bench: would measure {id}"));
    }
    let (r, _) = fake(&["bench", "--only", "no-such-row"], &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("unknown row") && r.stderr.contains("cold-build"));
}

#[test]
fn image_for_another_platform_gets_its_own_tag_and_base() {
    let (r, argv) = fake(&["--dry-run", "image", "--platform", "linux/arm64"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    // a dry run prints the build; it never runs it
    assert!(
        !argv.iter().any(|l| l.starts_with("build\t")),
        "a dry run ran a build: {argv:?}"
    );
    let build = r
        .stdout
        .lines()
        .find(|l| l.contains(" build ") && l.contains(policy::DOCKERFILE))
        .map(String::from)
        .unwrap_or_else(|| panic!("no dev image build planned: {}", r.stdout));
    assert!(build.contains("--platform linux/arm64"), "{build}");
    assert!(
        build.contains(&format!("{}-arm64", policy::DEFAULT_IMAGE)),
        "the native tag is left alone: {build}"
    );
    assert!(
        build.contains(&format!("BASE_IMAGE={}-arm64", policy::DEBIAN_BASE)),
        "{build}"
    );
    // the arm64 base is planned with mmdebstrap for arm64
    assert!(r.stdout.contains("--architectures=arm64"), "{}", r.stdout);
    // --image names it explicitly
    let (r, _) = fake(
        &[
            "--dry-run",
            "--image",
            "mine:arm",
            "image",
            "--platform",
            "linux/arm64",
        ],
        &[],
    );
    assert!(
        r.stdout.contains("-t mine:arm") || r.stdout.contains("--tag mine:arm"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_platform_the_stack_has_no_wheels_for_is_a_usage_error() {
    for p in ["linux/s390x", "arm64", "windows/amd64"] {
        let (r, argv) = fake(&["image", "--platform", p], &[]);
        assert_eq!(r.code, 2, "{p}: {}", r.all());
        assert!(
            r.stderr.contains("use linux/amd64 or linux/arm64"),
            "{}",
            r.stderr
        );
        assert!(
            !argv.iter().any(|l| l.starts_with("build\t")),
            "nothing built"
        );
    }
}

/// Ctrl-C stops a task that runs several commands in a row: the command in flight is stopped,
/// nothing starts after it, and the task exits 130 (smoke runs one container per check).
#[test]
fn ctrl_c_stops_a_multi_command_task_with_130_and_starts_nothing_more() {
    use std::time::{Duration, Instant};
    let dir = scratch("sigint");
    let log = dir.join("argv.log");
    let lock_sha = sh(
        "sha256sum",
        &[root().join(policy::LOCKFILE).to_str().unwrap()],
    )
    .stdout
    .split_whitespace()
    .next()
    .unwrap()
    .to_string();
    let mut c = xtask_cmd(&["smoke"]);
    for (k, v) in [
        ("LEXALIGN_DOCKER", FAKE),
        ("FAKE_ENGINE_LOG", log.to_str().unwrap()),
        ("FAKE_PRESENT", policy::DEFAULT_IMAGE),
        ("FAKE_RUN_SLEEP_S", "1.5"),
        ("FAKE_LOCK_LABEL", lock_sha.as_str()),
    ] {
        c.env(k, v);
    }
    let mut child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("run\t"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while runs() < 2 {
        assert!(Instant::now() < deadline, "smoke never ran a second check");
        assert!(child.try_wait().unwrap().is_none(), "smoke ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // the second check is in flight: interrupt it
    assert_eq!(sh("kill", &["-INT", &child.id().to_string()]).code, 0);
    let at_signal = runs();
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let err = stderr_of(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        runs(),
        at_signal,
        "a container was started after Ctrl-C: {err}"
    );
    assert!(!err.contains("all checks passed"), "{err}");
}

/// The end-to-end tests' dev runs mount their own HF cache volume, never the user's.
#[test]
fn tests_never_mount_the_users_hf_cache() {
    let (r, _) = fake(
        &["--dry-run", "run", "--", "true"],
        &[("FAKE_PRESENT", policy::DEFAULT_IMAGE)],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains(&format!("-v {TEST_HF_VOLUME}:{}", policy::HF_HOME)),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("-v lexalign-hf-cache:"), "{}", r.stdout);
}

/// multinode's nodes must share the host network: a --network it cannot honour is refused, not
/// silently replaced.
#[test]
fn multinode_refuses_another_network() {
    let (r, argv) = fake(
        &[
            "multinode",
            "--nodes",
            "2",
            "--network",
            "bridge",
            "--",
            "finetune.py",
        ],
        &[("FAKE_PRESENT", policy::DEFAULT_IMAGE)],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("--network bridge"), "{}", r.stderr);
    assert!(!argv.iter().any(|l| l.starts_with("run\t")), "{argv:?}");
}

/// `clean --volumes --force` with something to remove: the dry run says what would go and runs
/// no removal; the real run removes exactly that.
#[test]
fn clean_dry_run_with_something_to_remove_removes_nothing() {
    let envs = [
        ("FAKE_PS", "c0ffee lexalign-run-1 running"),
        ("FAKE_IMAGES", &format!("img1 {}", policy::DEFAULT_IMAGE)),
        ("FAKE_VOLUMES", "lexalign-hf-cache"),
    ];
    let removals = |argv: &[String]| -> Vec<String> {
        argv.iter()
            .filter(|l| {
                l.starts_with("rm\t") || l.starts_with("rmi\t") || l.starts_with("volume\trm")
            })
            .cloned()
            .collect()
    };
    let (r, argv) = fake(&["--dry-run", "clean", "--volumes", "--force"], &envs);
    assert_eq!(r.code, 0, "{}", r.all());
    for what in [
        "would remove container lexalign-run-1",
        &format!("would remove image {}", policy::DEFAULT_IMAGE),
        "would remove volume lexalign-hf-cache",
    ] {
        assert!(r.stdout.contains(what), "{what}: {}", r.stdout);
    }
    assert!(removals(&argv).is_empty(), "a dry run removed: {argv:?}");
    let (r, argv) = fake(&["clean", "--volumes", "--force"], &envs);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        removals(&argv),
        [
            "rm\t-f\tc0ffee",
            &format!("rmi\t{}", policy::DEFAULT_IMAGE),
            "volume\trm\tlexalign-hf-cache",
            // the tests' own cache volume (LEXALIGN_HF_VOLUME) is the project's too
            &format!("volume\trm\t{TEST_HF_VOLUME}"),
        ],
        "{}",
        r.all()
    );
}

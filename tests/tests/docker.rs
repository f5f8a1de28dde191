//! End-to-end tests against the real engine that CI starts. Each fails (not skips) when no
//! engine is reachable, unless LEXALIGN_SKIP_DOCKER_TESTS=1: then every test is reported as
//! ignored (skipped), by name, never as passed. A custom harness (libtest-mimic) because the
//! standard one cannot skip at run time.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lock_sha256() -> String {
    // the label must equal the lockfile's hash; sha256sum is coreutils
    let r = sh(
        "sha256sum",
        &[root().join("python/pylock.toml").to_str().unwrap()],
    );
    r.stdout.split_whitespace().next().unwrap().to_string()
}

fn base_image_builds_from_debian_packages() {
    let tag = "lexalign-e2e/python:base-test";
    let r = xtask(&["base-image", "--tag", tag], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = sh(
        &engine(),
        &[
            "run",
            "--rm",
            tag,
            "python3.11",
            "-c",
            "import venv, ssl, sys; print(sys.version_info[:2])",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.trim(), "(3, 11)");
    let r = sh(
        &engine(),
        &[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dev.lexalign.project\"}}",
            tag,
        ],
    );
    assert_eq!(r.stdout.trim(), "lexalign");
    sh(&engine(), &["rmi", "-f", tag]);
}

fn image_builds_imports_the_stack_and_carries_labels() {
    let (img, _) = built_image();
    let r = sh(
        &engine(),
        &[
            "run",
            "--rm",
            img,
            "python",
            "-c",
            "import torch, transformers, trl, peft; print('ok')",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.trim(), "ok");
    let r = sh(
        &engine(),
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            img,
        ],
    );
    for key in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.created",
        "org.opencontainers.image.version",
        "org.opencontainers.image.licenses",
    ] {
        assert!(r.stdout.contains(key), "{key}: {}", r.stdout);
    }
    assert!(
        r.stdout
            .contains("\"org.opencontainers.image.licenses\":\"Apache-2.0\""),
        "python/pyproject.toml's license: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "\"dev.lexalign.lock-sha256\":\"{}\"",
            lock_sha256()
        )),
        "{}",
        r.stdout
    );
}

fn editing_a_py_file_reuses_the_dependency_layer() {
    let (img, _) = built_image();
    let tree = copy_build_tree("touched");
    let f = tree.join("python/lexalign/__init__.py");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("\n# touched by the e2e test\n");
    std::fs::write(&f, text).unwrap();
    let tag = "lexalign-e2e:touched";
    let started = Instant::now();
    let r = xtask(
        &["--image", tag, "image"],
        &[("LEXALIGN_ROOT", tree.to_str().unwrap())],
    );
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("deps:    cached"),
        "the dependency layer was rebuilt:\n{}",
        r.all()
    );
    eprintln!("rebuild after a .py edit: {took:?}");
    let r = sh(
        &engine(),
        &[
            "run",
            "--rm",
            tag,
            "tail",
            "-1",
            "/app/lexalign/__init__.py",
        ],
    );
    assert!(r.stdout.contains("touched by the e2e test"));
    // the shared image is untouched
    let r = sh(
        &engine(),
        &[
            "run",
            "--rm",
            img,
            "tail",
            "-1",
            "/app/lexalign/__init__.py",
        ],
    );
    assert!(!r.stdout.contains("touched by the e2e test"));
    sh(&engine(), &["rmi", "-f", tag]);
}

fn no_secret_in_history_inspect_or_layers() {
    let (img, ca_canary) = built_image();
    let history = sh(&engine(), &["history", "--no-trunc", img]).all();
    let inspect = sh(&engine(), &["inspect", img]).all();
    for (what, text) in [("docker history", &history), ("docker inspect", &inspect)] {
        assert!(!text.contains(HF_CANARY), "HF_TOKEN canary in {what}");
        assert!(!text.contains(ca_canary.as_str()), "CA bundle in {what}");
    }
    // Every layer: stream `docker save` through grep (fixed strings, binary as text).
    let mut save = Command::new(engine())
        .args(["save", img])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let grep = Command::new("grep")
        .args(["-a", "-c", "-F", "-e", HF_CANARY, "-e", ca_canary.as_str()])
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(save.wait().unwrap().success(), "docker save failed");
    let matches = String::from_utf8_lossy(&grep.stdout).trim().to_string();
    assert_eq!(matches, "0", "a secret is in a layer of the saved image");
    assert_eq!(
        grep.status.code(),
        Some(1),
        "grep found no match (exit 1), and did not fail (exit 2)"
    );
}

fn failed_build_keeps_the_previous_image() {
    let (img, _) = built_image();
    let before = sh(&engine(), &["image", "inspect", "--format", "{{.Id}}", img]).stdout;
    let tree = copy_build_tree("broken");
    let df = tree.join("docker/Dockerfile");
    let text = std::fs::read_to_string(&df).unwrap().replace(
        "\nUSER 1000:1000",
        "\nRUN echo 'deliberate failure' && false\nUSER 1000:1000",
    );
    assert!(text.contains("deliberate failure"));
    std::fs::write(&df, text).unwrap();
    let r = xtask(
        &["--image", img, "image"],
        &[("LEXALIGN_ROOT", tree.to_str().unwrap())],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.all().contains("deliberate failure"),
        "engine output visible: {}",
        r.all()
    );
    assert!(r.stderr.contains("is unchanged"));
    let after = sh(&engine(), &["image", "inspect", "--format", "{{.Id}}", img]).stdout;
    assert_eq!(before, after);
    assert_eq!(sh(&engine(), &["run", "--rm", img, "true"]).code, 0);
}

fn exit_codes_propagate() {
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

fn sigint_stops_and_removes_the_container() {
    let (img, _) = built_image();
    let project = "lexalign-sigint";
    let mut child = xtask_cmd(&["--image", img, "run", "--", "sleep", "60"])
        .env("LEXALIGN_PROJECT", project)
        .env_remove("LEXALIGN_HF_VOLUME")
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
fn an_interrupted_smoke_leaves_no_container_running() {
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
                &format!("label=dev.lexalign.project={project}"),
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

fn files_written_to_app_belong_to_the_invoking_user() {
    let py = scratch("owner");
    copy_dir(&root().join("python"), &py);
    let r = run_in(
        &py,
        &[
            "sh",
            "-c",
            "echo hi > /app/made-in-container && touch $HOME/ok && touch /cache/huggingface/ok",
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

fn hf_token_reaches_the_container_by_name_only() {
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

fn entrypoint_warns_only_without_hf_token() {
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

fn smoke_passes_and_fails_on_a_stale_image() {
    let (img, _) = built_image();
    let r = xtask(&["--image", img, "smoke"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("✓ import torch") && r.stdout.contains("✓ pip check"),
        "{}",
        r.stdout
    );
    // a lockfile that differs from the one the image was built from
    let tree = copy_build_tree("stale");
    let lock = tree.join("python/pylock.toml");
    let mut text = std::fs::read_to_string(&lock).unwrap();
    text.push_str("\n# changed\n");
    std::fs::write(&lock, text).unwrap();
    let r = xtask(
        &["--image", img, "smoke"],
        &[("LEXALIGN_ROOT", tree.to_str().unwrap())],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("stale") && r.stderr.contains("run `cargo xtask image`"),
        "{}",
        r.stderr
    );
}

fn help_check_passes_and_fails_on_a_broken_cli() {
    let (img, _) = built_image();
    let r = xtask(&["--image", img, "help-check"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout.matches('✓').count(), 5, "{}", r.stdout);
    let py = scratch("broken-cli");
    copy_dir(&root().join("python"), &py);
    std::fs::write(py.join("align.py"), "import sys\nsys.exit(3)\n").unwrap();
    let r = xtask(
        &[
            "--image",
            img,
            "--python-dir",
            py.to_str().unwrap(),
            "help-check",
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("✗ align.py --help: exit 3"),
        "{}",
        r.stdout
    );
    for ok in ["download", "finetune", "export", "generate"] {
        assert!(
            r.stdout.contains(&format!("✓ {ok}.py --help")),
            "all five reported: {}",
            r.stdout
        );
    }
}

fn clean_removes_what_the_tasks_created() {
    let (img, _) = built_image();
    let project = "lexalign-cleantest";
    let tag = "lexalign-cleantest:e2e";
    let envs = [("LEXALIGN_PROJECT", project)];
    // leftovers of an earlier, interrupted run of this test
    for id in project_containers(project) {
        sh(&engine(), &["rm", "-f", &id]);
    }
    let r = xtask(&["--image", tag, "image"], &envs);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = xtask(&["--image", tag, "run", "--", "true"], &envs);
    assert_eq!(r.code, 0, "{}", r.all());
    // a leftover container, as if a run had been killed hard (it carries the run mark)
    let r = sh(
        &engine(),
        &[
            "create",
            "--label",
            &format!("dev.lexalign.project={project}"),
            "--label",
            &format!("dev.lexalign.run={project}"),
            tag,
            "true",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!project_containers(project).is_empty());
    // a container started from the image by hand inherits its labels, but not the run mark
    let foreign = sh(&engine(), &["create", tag, "true"]);
    assert_eq!(foreign.code, 0, "{}", foreign.all());
    let foreign = foreign.stdout.trim().to_string();
    let dry = xtask(&["--dry-run", "clean", "--volumes"], &envs);
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout.contains("would remove image")
            && dry
                .stdout
                .contains("would remove volume lexalign-cleantest-hf-cache"),
        "{}",
        dry.stdout
    );
    assert!(
        !project_containers(project).is_empty(),
        "dry run removed nothing"
    );
    // without --volumes the HF cache stays
    let kept = xtask(&["--dry-run", "clean"], &envs);
    assert!(
        kept.stdout
            .contains("kept volume lexalign-cleantest-hf-cache"),
        "{}",
        kept.stdout
    );
    // the image stays while a container the xtask did not start still uses it: exit 1, saying so
    let r = xtask(&["clean", "--volumes"], &envs);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout.contains("removed container") && r.stdout.contains("removed volume"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("could not remove image lexalign-cleantest:e2e")
            && r.stderr.contains("is using"),
        "{}",
        r.stderr
    );
    // the foreign container survived, and with it the image it uses (rmi without -f)
    assert_eq!(project_containers(project), vec![foreign[..12].to_string()]);
    sh(&engine(), &["rm", "-f", &foreign]);
    let r = xtask(&["clean"], &envs);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_ne!(
        sh(&engine(), &["image", "inspect", tag]).code,
        0,
        "image removed"
    );
    assert_ne!(
        sh(
            &engine(),
            &["volume", "inspect", "lexalign-cleantest-hf-cache"]
        )
        .code,
        0,
        "volume removed"
    );
    // the shared dev image is still there
    assert_eq!(sh(&engine(), &["image", "inspect", img]).code, 0);
}

fn lock_keeps_versions_upgrades_one_package_and_fails_cleanly() {
    let tree = copy_build_tree("lock");
    let env = [("LEXALIGN_ROOT", tree.to_str().unwrap())];
    let py = tree.join("python/pyproject.toml");
    let lock = tree.join("python/pylock.toml");
    let text = std::fs::read_to_string(&py).unwrap();
    let rich = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("\"rich==")
                .map(|v| v.trim_end_matches("\",").to_string())
        })
        .expect("rich is pinned");
    std::fs::write(
        &py,
        text.replace(&format!("\"rich=={rich}\""), "\"rich==13.9.4\""),
    )
    .unwrap();
    let r = xtask(&["lock"], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(&format!("{rich} -> 13.9.4")),
        "{}",
        r.stdout
    );
    assert!(std::fs::read_to_string(&lock)
        .unwrap()
        .contains("name = \"rich\"\nversion = \"13.9.4\""));
    // a plain re-lock keeps every version
    let before = std::fs::read_to_string(&lock).unwrap();
    let r = xtask(&["lock"], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("no version changed"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), before);
    // --upgrade-package moves only that package, and the pin follows
    let r = xtask(&["lock", "--upgrade-package", "rich"], &env);
    assert_eq!(r.code, 0, "{}", r.all());
    let moved: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains(" -> ") && !l.starts_with("pinned"))
        .collect();
    assert_eq!(moved.len(), 1, "only rich moved: {}", r.stdout);
    assert!(
        moved[0].starts_with("rich") && moved[0].contains("13.9.4 -> "),
        "{}",
        r.stdout
    );
    let pinned = std::fs::read_to_string(&py).unwrap();
    assert!(!pinned.contains("\"rich==13.9.4\"") && pinned.contains("\"rich=="));
    assert_eq!(xtask(&["pins", "--check"], &env).code, 0);
    // a resolver failure (TLS with a useless CA bundle) leaves the lock untouched
    let bad_ca = tree.join("bad-ca.pem");
    std::fs::write(&bad_ca, "not a certificate\n").unwrap();
    let before = std::fs::read_to_string(&lock).unwrap();
    let r = xtask(
        &["lock", "--upgrade", "--ca-bundle", bad_ca.to_str().unwrap()],
        &env,
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("is unchanged"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), before);
}

fn run_passes_stdin_through() {
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

/// The image's SBOM: valid CycloneDX 1.6 (checked here with cyclonedx-python-lib's own schema
/// validator, which also rejects a damaged copy), with the versions the image really has (asked
/// from the image), the lock's hashes, and the image as its subject.
fn sbom_validates_and_lists_what_the_image_has() {
    let (img, _) = built_image();
    let dir = root().join("target/xtask-tests/sbom");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("image.cdx.json");
    let r = xtask(
        &["--image", img, "sbom", "--output", out.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let bom: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.6");
    // validity, by the official schema (and the validator does reject a broken document)
    let tools = std::fs::read_dir(root().join("target/sbom"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("cyclonedx").is_dir())
        .expect("sbom installed its tools under target/sbom");
    let mut broken = bom.clone();
    broken["components"][0]["type"] = "not-a-type".into();
    std::fs::write(dir.join("broken.cdx.json"), broken.to_string()).unwrap();
    let validate = |file: &str| {
        sh(
            &engine(),
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                &format!("{}:/tools:ro", tools.display()),
                "-v",
                &format!("{}:/sbom:ro", dir.display()),
                "--entrypoint",
                "/opt/venv/bin/python",
                img,
                "-c",
                &format!(
                    "import sys; sys.path.insert(0, '/tools')\n\
                     from cyclonedx.schema import SchemaVersion\n\
                     from cyclonedx.validation.json import JsonStrictValidator\n\
                     e = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open('/sbom/{file}').read())\n\
                     print('valid' if e is None else f'invalid: {{e}}'[:300])"
                ),
            ],
        )
    };
    let good = validate("image.cdx.json");
    assert_eq!(good.stdout.trim(), "valid", "{}", good.all());
    let bad = validate("broken.cdx.json");
    assert!(bad.stdout.starts_with("invalid"), "{}", bad.all());
    // versions as the image has them
    let asked = sh(
        &engine(),
        &[
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            img,
            "-c",
            "/opt/venv/bin/python -c \"import importlib.metadata as m; print(*[m.version(p) for p in ('torch','transformers','trl','peft')])\"; dpkg-query -W -f '${Version} ' python3.11; dpkg-query -W -f '${Version} ' libc6",
        ],
    );
    assert_eq!(asked.code, 0, "{}", asked.all());
    let v: Vec<&str> = asked.stdout.split_whitespace().collect();
    assert_eq!(v.len(), 6, "{}", asked.all());
    let comps = bom["components"].as_array().unwrap();
    let find = |kind: &str, name: &str| {
        comps
            .iter()
            .find(|c| c["name"] == name && c["purl"].as_str().unwrap_or("").starts_with(kind))
            .unwrap_or_else(|| panic!("{kind}{name} is not in the SBOM"))
    };
    for (i, name) in ["torch", "transformers", "trl", "peft"].iter().enumerate() {
        let c = find("pkg:pypi/", name);
        assert_eq!(c["version"], v[i], "{name}");
        assert_eq!(c["purl"], format!("pkg:pypi/{name}@{}", v[i]));
        let sha = c["hashes"][0]["content"].as_str().unwrap_or("");
        assert!(
            sha.len() == 64
                && std::fs::read_to_string(root().join("python/pylock.toml"))
                    .unwrap()
                    .contains(sha),
            "{name}: the lock's sha256, got {sha:?}"
        );
    }
    for (i, name) in ["python3.11", "libc6"].iter().enumerate() {
        let c = find("pkg:deb/debian/", name);
        assert_eq!(c["version"], v[4 + i], "{name}");
    }
    // the subject: the image itself (its registry digest once pushed, else its id)
    let ids = sh(
        &engine(),
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{range .RepoDigests}}{{.}} {{end}}",
            img,
        ],
    );
    let words: Vec<&str> = ids.stdout.split_whitespace().collect();
    let digest = words
        .get(1)
        .and_then(|d| d.split_once('@'))
        .map(|(_, d)| d)
        .unwrap_or(words[0]);
    let subject = &bom["metadata"]["component"];
    assert_eq!(subject["type"], "container");
    assert_eq!(
        subject["hashes"][0]["content"],
        digest.trim_start_matches("sha256:")
    );
    // an image that is not there: exit 1 and the fix
    let r = xtask(
        &[
            "--image",
            "lexalign-e2e/no-such-image:nope",
            "sbom",
            "--output",
            dir.join("x.json").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("cargo xtask image"), "{}", r.stderr);
    assert!(!dir.join("x.json").exists());
}

fn main() {
    let tests: Vec<(&str, fn())> = vec![
        (
            "sbom_validates_and_lists_what_the_image_has",
            sbom_validates_and_lists_what_the_image_has,
        ),
        (
            "base_image_builds_from_debian_packages",
            base_image_builds_from_debian_packages,
        ),
        (
            "image_builds_imports_the_stack_and_carries_labels",
            image_builds_imports_the_stack_and_carries_labels,
        ),
        (
            "editing_a_py_file_reuses_the_dependency_layer",
            editing_a_py_file_reuses_the_dependency_layer,
        ),
        (
            "no_secret_in_history_inspect_or_layers",
            no_secret_in_history_inspect_or_layers,
        ),
        (
            "failed_build_keeps_the_previous_image",
            failed_build_keeps_the_previous_image,
        ),
        ("exit_codes_propagate", exit_codes_propagate),
        (
            "sigint_stops_and_removes_the_container",
            sigint_stops_and_removes_the_container,
        ),
        (
            "an_interrupted_smoke_leaves_no_container_running",
            an_interrupted_smoke_leaves_no_container_running,
        ),
        (
            "files_written_to_app_belong_to_the_invoking_user",
            files_written_to_app_belong_to_the_invoking_user,
        ),
        (
            "hf_token_reaches_the_container_by_name_only",
            hf_token_reaches_the_container_by_name_only,
        ),
        (
            "entrypoint_warns_only_without_hf_token",
            entrypoint_warns_only_without_hf_token,
        ),
        (
            "smoke_passes_and_fails_on_a_stale_image",
            smoke_passes_and_fails_on_a_stale_image,
        ),
        (
            "help_check_passes_and_fails_on_a_broken_cli",
            help_check_passes_and_fails_on_a_broken_cli,
        ),
        (
            "clean_removes_what_the_tasks_created",
            clean_removes_what_the_tasks_created,
        ),
        (
            "lock_keeps_versions_upgrades_one_package_and_fails_cleanly",
            lock_keeps_versions_upgrades_one_package_and_fails_cleanly,
        ),
        ("run_passes_stdin_through", run_passes_stdin_through),
    ];
    run_docker_trials(tests, "Docker tests", false);
}

//! The tasks that check and tidy: smoke, help-check, clean, lock.

use crate::common::*;

pub(crate) fn smoke_passes_and_fails_on_a_stale_image() {
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
    let lock = tree.join(policy::LOCKFILE);
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

pub(crate) fn help_check_passes_and_fails_on_a_broken_cli() {
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

pub(crate) fn clean_removes_what_the_tasks_created() {
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
            &format!("{}={project}", policy::PROJECT_LABEL),
            "--label",
            &format!("{}={project}", policy::RUN_LABEL),
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

pub(crate) fn lock_keeps_versions_upgrades_one_package_and_fails_cleanly() {
    let tree = copy_build_tree("lock");
    let env = [("LEXALIGN_ROOT", tree.to_str().unwrap())];
    let py = tree.join(policy::PYPROJECT);
    let lock = tree.join(policy::LOCKFILE);
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

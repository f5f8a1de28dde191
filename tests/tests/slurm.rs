//! The SLURM hand-off, for real: each run starts its own two-node SLURM cluster on this machine
//! (munged, slurmctld and two slurmd from Debian's slurm-wlm, ports chosen free, state in a
//! temporary folder, everything on 127.0.0.1, every daemon stopped at the end) and submits the
//! file users submit, cluster/lexalign-finetune.sbatch, with the `engine` launcher.
//! Fails loudly without Docker or SLURM unless LEXALIGN_SKIP_DOCKER_TESTS=1 or
//! LEXALIGN_SKIP_SLURM_TESTS=1 (then reported as ignored).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running two-node cluster; its daemons are stopped when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the SLURM tests need `{program}`: apt-get install {package} (or set LEXALIGN_SKIP_SLURM_TESTS=1 to skip)"
    );
}

impl Cluster {
    fn start() -> Cluster {
        for (p, pkg) in [
            ("munged", "munge"),
            ("mungekey", "munge"),
            ("slurmctld", "slurm-wlm"),
            ("slurmd", "slurm-wlm"),
            ("sbatch", "slurm-wlm"),
        ] {
            need(p, pkg);
        }
        // a short path: the munge socket's must fit a unix socket address
        let mut dir = std::env::temp_dir().join(format!("lexalign-slurm-{}", std::process::id()));
        if dir.as_os_str().len() > 60 {
            dir = PathBuf::from(format!("/tmp/lexalign-slurm-{}", std::process::id()));
        }
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("munge")).unwrap();
        std::fs::create_dir_all(dir.join("ctld")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("munge"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let d = dir.display();
        let r = sh("mungekey", &["-c", "-k", &format!("{d}/munge/munge.key")]);
        assert_eq!(r.code, 0, "mungekey: {}", r.all());
        let r = sh(
            "munged",
            &[
                "-f",
                &format!("--socket={d}/munge/sock"),
                &format!("--key-file={d}/munge/munge.key"),
                &format!("--log-file={d}/munge/log"),
                &format!("--pid-file={d}/munge/pid"),
                &format!("--seed-file={d}/munge/seed"),
            ],
        );
        assert_eq!(r.code, 0, "munged: {}", r.all());
        let (ctl, p1, p2) = (free_port(), free_port(), free_port());
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=lexaligntest\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={ctl}\n\
                 SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nCredType=cred/munge\n\
                 AuthInfo=socket={d}/munge/sock\nStateSaveLocation={d}/ctld\nSlurmdSpoolDir={d}/slurmd-%n\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd-%n.pid\n\
                 SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd-%n.log\n\
                 ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_CPU\nMpiDefault=none\nReturnToService=2\nJobCompType=jobcomp/none\n\
                 AccountingStorageType=accounting_storage/none\nKillWait=30\n\
                 NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port={p1} CPUs=1 State=UNKNOWN\n\
                 NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port={p2} CPUs=1 State=UNKNOWN\n\
                 PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP\n"
            ),
        )
        .unwrap();
        let cluster = Cluster {
            dir: dir.clone(),
            conf: conf.clone(),
        };
        let c = conf.to_str().unwrap();
        for args in [
            vec!["slurmctld", "-f", c],
            vec!["slurmd", "-f", c, "-N", "n1"],
            vec!["slurmd", "-f", c, "-N", "n2"],
        ] {
            let r = sh(args[0], &args[1..]);
            assert_eq!(r.code, 0, "{}: {}", args[0], r.all());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = cluster.cmd("sinfo", &["-h", "-o", "%T %D"]);
            if r.stdout.trim() == "idle 2" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster did not come up: {}\n{}",
                r.all(),
                std::fs::read_to_string(dir.join("slurmctld.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        cluster
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf).env_remove("HF_TOKEN");
        c
    }

    fn cmd(&self, program: &str, args: &[&str]) -> Run {
        self.command(program).args(args).output().unwrap().into()
    }

    /// `sbatch` from `cwd` with the engine launcher, as the checks submit it.
    fn sbatch(&self, cwd: &Path, wait: bool, envs: &[(&str, &str)], args: &[&str]) -> Run {
        let script = root().join("cluster/lexalign-finetune.sbatch");
        let mut c = self.command("sbatch");
        c.current_dir(cwd)
            .env("LEXALIGN_LAUNCHER", "engine")
            .env("LEXALIGN_ENGINE", engine())
            .env("LEXALIGN_IMAGE", &built_image().0)
            .env("LEXALIGN_HF_CACHE", cwd.join(".hf-cache"))
            .env("GLOO_SOCKET_IFNAME", "lo");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.args([
            "--nodes=2",
            "--gpus-per-node=0",
            "--cpus-per-task=1",
            script.to_str().unwrap(),
        ]);
        c.args(args);
        let mut r: Run = c.output().unwrap().into();
        // `wait`: what `sbatch --wait` gives (the job's exit code), without its polling, which
        // backs off to 32 s between looks (a 15 s job was seen finished ~30 s late)
        if wait && r.code == 0 {
            let job = Self::job_id(&r);
            let (_, record) = self.wait_final(&job, Duration::from_secs(300));
            r.code = exit_code(&record);
        }
        r
    }

    /// The job id sbatch printed.
    fn job_id(r: &Run) -> String {
        r.stdout
            .split_whitespace()
            .last()
            .unwrap_or_else(|| panic!("no job id: {}", r.all()))
            .to_string()
    }

    /// Wait until the job has left the queue (finished, failed or cancelled).
    /// Wait until the job has finished for good (a terminal JobState in `scontrol show job`,
    /// which keeps the record for MinJobAge); its state. A query that fails (slurmctld busy)
    /// is asked again, never taken for "gone"; a requeued job is not finished.
    fn wait_done(&self, job: &str, limit: Duration) -> String {
        self.wait_final(job, limit).0
    }

    /// `wait_done`'s state and the job's `scontrol show job` record.
    fn wait_final(&self, job: &str, limit: Duration) -> (String, String) {
        const TERMINAL: [&str; 7] = [
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "BOOT_FAIL",
        ];
        let deadline = Instant::now() + limit;
        loop {
            let r = self.cmd("scontrol", &["show", "job", job]);
            let state = r
                .stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix("JobState="))
                .unwrap_or("")
                .to_string();
            if r.code == 0 && TERMINAL.contains(&state.as_str()) {
                return (state, r.stdout);
            }
            assert!(
                Instant::now() < deadline,
                "job {job} still {state:?}: {}",
                r.all()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Cluster {
    /// Cancel every job, stop the daemons, remove the state.
    fn stop(&self) {
        let _ = self.cmd("scancel", &["--user", "root"]);
        for pid in [
            "slurmd-n1.pid",
            "slurmd-n2.pid",
            "slurmctld.pid",
            "munge/pid",
        ] {
            if let Ok(p) = std::fs::read_to_string(self.dir.join(pid)) {
                let _ = Command::new("kill").arg(p.trim()).output();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A finished job's exit status from its record (`ExitCode=CODE:SIGNAL`), as `sbatch --wait`
/// reports it: the code, or 128 + the signal that ended it.
fn exit_code(record: &str) -> i32 {
    let field = record
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ExitCode="))
        .unwrap_or_else(|| panic!("no ExitCode in {record}"));
    let (code, signal) = field.split_once(':').unwrap_or((field, "0"));
    let (code, signal): (i32, i32) = (code.parse().unwrap(), signal.parse().unwrap());
    if code == 0 && signal != 0 {
        128 + signal
    } else {
        code
    }
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

/// A scratch project folder (python/ with a tiny model and data), the submit folder.
fn project() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| tiny_project("slurm", "sl.jsonl", 64))
}

fn config(name: &str, steps: u32) -> String {
    config_with(name, steps, "")
}

/// A config with more `training:` keys (", sharding: zero3").
fn config_with(name: &str, steps: u32, training: &str) -> String {
    let file = format!("{name}.yaml");
    std::fs::write(
        project().join(&file),
        format!(
            "model: tiny\ndataset: {{path: sl.jsonl}}\noutput_dir: outputs/{name}\nlora: {{r: 8, alpha: 16, dropout: 0.0}}\n\
             training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 1, save_steps: 4, seed: 7{training}}}\n"
        ),
    )
    .unwrap();
    file
}

fn losses(out: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((v.get("step")?.as_u64()?, v.get("loss")?.as_f64()?))
        })
        .collect()
}

fn run_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap()
}

fn job_log(job: &str) -> String {
    std::fs::read_to_string(project().join(format!("lexalign-{job}.log"))).unwrap_or_default()
}

fn no_container_left() {
    let left = sh(&engine(), &["ps", "-aq", "--filter", "name=lexalign-"]).stdout;
    assert!(left.trim().is_empty(), "containers left: {left}");
}

const STEPS: u32 = 12;

/// The uninterrupted two-node run (12 steps): its final loss is the reference.
fn reference_loss() -> f64 {
    static L: OnceLock<f64> = OnceLock::new();
    *L.get_or_init(|| {
        let cfg = config("ref", STEPS);
        let hooks = "{\"rank_report\": \"/app/ranks-ref\"}";
        let r = cluster().sbatch(project(), true, &[("LEXALIGN_TESTING", hooks)], &[&cfg]);
        let job = Cluster::job_id(&r);
        assert_eq!(r.code, 0, "{}\n{}", r.all(), job_log(&job));
        let out = project().join("outputs/ref");
        let l = losses(&out);
        assert_eq!(l.len(), STEPS as usize, "{}", job_log(&job));
        l.last().unwrap().1
    })
}

fn two_nodes_train_like_two_processes() {
    let loss = reference_loss();
    let py = project();
    let out = py.join("outputs/ref");
    let run = run_json(&out);
    assert_eq!(run["world_size"], 2, "{run}");
    assert_eq!(run["status"], "completed");
    // the engine launcher knows the image id for sure; a local build has no registry digest
    assert!(
        run["environment"]["image_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("sha256:")),
        "{run}"
    );
    assert!(run["environment"]["image_digest"].is_null(), "{run}");
    let mut digests = Vec::new();
    for rank in 0..2 {
        let rep: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(py.join(format!("ranks-ref/rank-{rank}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(rep["world_size"], 2, "{rep}");
        assert_eq!(rep["torch_world_size"], 2, "{rep}");
        let p: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(py.join(format!("ranks-ref/params-{rank}.json"))).unwrap(),
        )
        .unwrap();
        digests.push(p["trainable_sha256"].as_str().unwrap().to_string());
    }
    assert_eq!(digests[0], digests[1], "LoRA weights differ across ranks");
    assert!(out.join("adapter_model.safetensors").is_file());
    no_container_left();

    // the same training as 2 processes in one container
    let r = two_processes(py, &config("sp", STEPS));
    assert_eq!(r.code, 0, "{}", r.all());
    let sp = losses(&py.join("outputs/sp")).last().unwrap().1;
    assert!(
        (loss - sp).abs() <= 1e-3,
        "2 nodes {loss} vs 2 processes {sp}"
    );
}

/// The reference training again, sharded with ZeRO-3 across the two nodes: the config's
/// `sharding` travels with it (no new knob), and the losses are DDP's.
fn two_nodes_train_with_zero3_like_ddp() {
    let loss = reference_loss();
    let cfg = config_with("z3", STEPS, ", sharding: zero3");
    let r = cluster().sbatch(project(), true, &[], &[&cfg]);
    let job = Cluster::job_id(&r);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), job_log(&job));
    let out = project().join("outputs/z3");
    let run = run_json(&out);
    assert_eq!(run["distributed"]["strategy"], "zero3", "{run}");
    assert_eq!(run["distributed"]["world_size"], 2, "{run}");
    let z3 = losses(&out);
    assert_eq!(z3.len(), STEPS as usize, "{}", job_log(&job));
    let last = z3.last().unwrap().1;
    assert!(
        (last - loss).abs() <= 1e-4,
        "2 nodes ZeRO-3 {last} vs DDP {loss}"
    );
    no_container_left();
}

/// Wait until the job's training logged `n` steps.
fn wait_steps(job: &str, out: &Path, n: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let l = losses(out);
        if l.len() >= n {
            return l.last().unwrap().0;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} did not train: {}",
            job_log(job)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn a_signalled_job_saves_and_a_resubmission_ends_at_the_same_loss() {
    let reference = reference_loss();
    let c = cluster();
    let cfg = config("pre", STEPS);
    let out = project().join("outputs/pre");
    let slow = [("LEXALIGN_TESTING", "{\"step_delay_s\": 0.5}")];
    let r = c.sbatch(project(), false, &slow, &[&cfg]);
    assert_eq!(r.code, 0, "{}", r.all());
    let job = Cluster::job_id(&r);
    let seen = wait_steps(&job, &out, 4);
    // what SLURM sends on scancel and at the time limit, to the job's steps
    let r = c.cmd("scancel", &["--signal=TERM", &job]);
    assert_eq!(r.code, 0, "{}", r.all());
    c.wait_done(&job, Duration::from_secs(120));
    let run = run_json(&out);
    assert_eq!(run["status"], "preempted", "{run}\n{}", job_log(&job));
    let stopped = run["final_step"].as_u64().unwrap();
    assert!(
        stopped >= seen && stopped < u64::from(STEPS),
        "stopped at {stopped}, last logged {seen}"
    );
    assert!(
        out.join(format!("checkpoint-{stopped}/lexalign-checkpoint.json"))
            .is_file(),
        "a complete checkpoint at the step it was on"
    );
    no_container_left();

    let r = c.sbatch(project(), true, &[], &[&cfg]);
    let job2 = Cluster::job_id(&r);
    assert_eq!(r.code, 0, "{}\n{}", r.all(), job_log(&job2));
    let run = run_json(&out);
    assert_eq!(run["status"], "completed");
    assert_eq!(run["resumed_from_step"].as_u64(), Some(stopped), "{run}");
    let l = losses(&out);
    let steps: Vec<u64> = l.iter().map(|x| x.0).collect();
    assert_eq!(steps, (1..=u64::from(STEPS)).collect::<Vec<_>>());
    let last = l.last().unwrap().1;
    assert!(
        (last - reference).abs() <= 1e-5,
        "preempted and resumed {last} vs uninterrupted {reference}"
    );
    no_container_left();
}

fn usr1_before_the_time_limit_requeues_and_the_job_resumes_by_itself() {
    let c = cluster();
    let cfg = config("rq", STEPS);
    let out = project().join("outputs/rq");
    let slow = [("LEXALIGN_TESTING", "{\"step_delay_s\": 0.5}")];
    let r = c.sbatch(project(), false, &slow, &[&cfg]);
    let job = Cluster::job_id(&r);
    wait_steps(&job, &out, 3);
    // what `#SBATCH --signal=B:USR1@300` delivers 5 minutes before the time limit
    let r = c.cmd("scancel", &["--batch", "--signal=USR1", &job]);
    assert_eq!(r.code, 0, "{}", r.all());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = c.cmd("scontrol", &["show", "job", &job]);
        if r.stdout.contains("Restarts=1") && r.stdout.contains("JobState=PENDING") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not requeued: {}\n{}",
            r.all(),
            job_log(&job)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(run_json(&out)["status"], "preempted");
    // SLURM holds a requeued job back for a while; let it start now — but not within the second
    // of the requeue: a launch whose credential is as old as the revocation of the previous
    // one is killed ("Job credential revoked"), which is what the hold protects against
    std::thread::sleep(Duration::from_secs(2));
    let r = c.cmd(
        "scontrol",
        &["update", &format!("jobid={job}"), "starttime=now"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let state = c.wait_done(&job, Duration::from_secs(180));
    assert_eq!(
        state,
        "COMPLETED",
        "{}\n{}",
        c.cmd("scontrol", &["show", "job", &job]).stdout,
        job_log(&job)
    );
    let run = run_json(&out);
    assert_eq!(run["status"], "completed", "{run}\n{}", job_log(&job));
    assert!(run["resumed_from_step"].as_u64().is_some(), "{run}");
    assert!(
        job_log(&job).contains("restart 1"),
        "the same job ran again: {}",
        job_log(&job)
    );
    assert_eq!(
        job_log(&job).matches("signal received").count(),
        1,
        "the batch shell acts on the signal once: {}",
        job_log(&job)
    );
    no_container_left();
}

fn bad_submissions_fail_with_one_line_and_leave_nothing() {
    let c = cluster();
    let cfg = config("bad", 4);
    for (envs, msg) in [
        (
            vec![("LEXALIGN_LAUNCHER", "kubernetes")],
            "unknown LEXALIGN_LAUNCHER=kubernetes",
        ),
        (
            // on loopback: nothing listens there, so the pull fails at once
            vec![("LEXALIGN_IMAGE", "127.0.0.1:9/lexalign/none:missing")],
            "cannot be pulled",
        ),
    ] {
        let r = c.sbatch(project(), true, &envs, &[&cfg]);
        let job = Cluster::job_id(&r);
        assert_eq!(r.code, 2, "{envs:?}: {}\n{}", r.all(), job_log(&job));
        let log = job_log(&job);
        assert!(log.contains(msg), "{log}");
        assert_eq!(
            log.lines()
                .filter(|l| l.contains("lexalign-finetune.sbatch:"))
                .count(),
            1,
            "one line: {log}"
        );
    }
    let r = c.sbatch(project(), true, &[], &["config/nope.yaml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(job_log(&Cluster::job_id(&r)).contains("config config/nope.yaml not found"));
    // outside a SLURM job
    let r: Run = Command::new("bash")
        .arg(root().join("cluster/lexalign-finetune.sbatch"))
        .arg(&cfg)
        .current_dir(project())
        .env_remove("SLURM_JOB_ID")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("not inside a SLURM job"), "{}", r.stderr);
    assert!(!project().join("outputs/bad").exists());
    no_container_left();
}

fn main() {
    let tests: Vec<(&str, fn())> = vec![
        (
            "slurm_two_nodes_train_like_two_processes",
            two_nodes_train_like_two_processes,
        ),
        (
            "slurm_two_nodes_train_with_zero3_like_ddp",
            two_nodes_train_with_zero3_like_ddp,
        ),
        (
            "slurm_a_signalled_job_saves_and_a_resubmission_ends_at_the_same_loss",
            a_signalled_job_saves_and_a_resubmission_ends_at_the_same_loss,
        ),
        (
            "slurm_usr1_before_the_time_limit_requeues_and_the_job_resumes_by_itself",
            usr1_before_the_time_limit_requeues_and_the_job_resumes_by_itself,
        ),
        (
            "slurm_bad_submissions_fail_with_one_line_and_leave_nothing",
            bad_submissions_fail_with_one_line_and_leave_nothing,
        ),
    ];
    if std::env::var("LEXALIGN_SKIP_SLURM_TESTS").as_deref() == Ok("1") {
        // SAFETY: no other thread runs yet
        unsafe { std::env::set_var("LEXALIGN_SKIP_DOCKER_TESTS", "1") };
    }
    run_docker_trials_then(tests, "SLURM tests", true, || {
        // the cluster is a static (statics are never dropped): stop its daemons here
        if let Some(c) = CLUSTER.get() {
            c.stop();
        }
    });
}

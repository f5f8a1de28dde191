//! `cargo xtask multinode --nodes N [--nproc-per-node K] -- SCRIPT ARGS…`: a multi-node
//! rehearsal on one machine. N containers from the same image act as N nodes; each runs
//! `python -m lexalign.launch --nnodes N --nproc-per-node K --rdzv-backend c10d …` (torchrun's
//! arguments and agent, LexAlign's exit codes) on SCRIPT (a file in the
//! mounted python/ folder, so `output_dir` is shared). The nodes share the host network and
//! rendezvous on 127.0.0.1 (gloo binds the loopback interface): no byte leaves the machine.
//! When one node fails, the others are stopped (no hang); on Ctrl-C all are removed.

use crate::cli::MultinodeArgs;
use crate::ctx::Ctx;
use crate::devrun;
use crate::engine::cmd::{self, RunSpec};
use crate::error::{code, fail, usage, Result};
use crate::exec::Member;
use std::path::Path;

/// Memory one training process needs at least (torch, a tiny model, gloo buffers).
const MEM_PER_PROCESS: u64 = 1 << 30;

/// The launch command line of one node (torchrun's arguments; pure).
pub fn torchrun_cmd(
    nodes: u32,
    nproc: u32,
    port: u16,
    rdzv_id: &str,
    node: u32,
    script: &[String],
) -> Vec<String> {
    let mut c: Vec<String> = crate::policy::LAUNCHER
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.extend([
        "--nnodes".into(),
        nodes.to_string(),
        "--nproc-per-node".into(),
        nproc.to_string(),
        "--rdzv-backend".into(),
        "c10d".into(),
        "--rdzv-endpoint".into(),
        format!("127.0.0.1:{port}"),
        "--rdzv-id".into(),
        rdzv_id.into(),
        // node 0 hosts the rendezvous store; the others join it (or give up after 2 minutes)
        "--rdzv-conf".into(),
        format!("is_host={},join_timeout=120", if node == 0 { 1 } else { 0 }),
        // the workers' MASTER_ADDR: loopback, never the machine's other addresses
        "--local-addr".into(),
        "127.0.0.1".into(),
        "--max-restarts".into(),
        "0".into(),
    ]);
    c.extend(script.iter().cloned());
    c
}

/// Check the request (pure): counts, and SCRIPT must be a file in the mounted folder.
pub fn check(
    nodes: u32,
    nproc: u32,
    script: &[String],
    python_dir: &Path,
    cpus: Option<u64>,
    mem: Option<u64>,
) -> std::result::Result<(), String> {
    if nodes == 0 {
        return Err("--nodes 0: give at least 1 node (2 or more to rehearse multi-node)".into());
    }
    if nproc == 0 {
        return Err("--nproc-per-node 0: give at least 1 process per node".into());
    }
    let Some(first) = script.first() else {
        return Err("no SCRIPT: `cargo xtask multinode --nodes 2 -- finetune.py --config config/finetune.yaml`".into());
    };
    let rel = first.strip_prefix("/app/").unwrap_or(first);
    let in_app = !rel.starts_with('/') && !rel.split('/').any(|p| p == "..");
    if !in_app || !python_dir.join(rel).is_file() {
        return Err(format!(
            "SCRIPT {first} is not a file in {} (mounted at /app in every node); give its path relative to it, e.g. finetune.py",
            python_dir.display()
        ));
    }
    let procs = u64::from(nodes) * u64::from(nproc);
    if let Some(c) = cpus {
        if procs > c * 4 {
            return Err(format!(
                "{nodes} nodes × {nproc} processes = {procs} processes on an engine with {c} CPUs: this machine cannot start them usefully; use fewer nodes or raise the engine's CPU limit"
            ));
        }
    }
    if let Some(m) = mem {
        if procs * MEM_PER_PROCESS > m {
            return Err(format!(
                "{procs} training processes need about {} GiB; the engine has {:.1} GiB: use fewer nodes or raise the engine's memory limit",
                (procs * MEM_PER_PROCESS) >> 30,
                m as f64 / (1u64 << 30) as f64
            ));
        }
    }
    Ok(())
}

/// Threads per training process when N×K processes share `cpus` (pure; at least 1).
pub fn omp_threads(cpus: Option<u64>, nodes: u32, nproc: u32) -> u64 {
    let procs = u64::from(nodes.max(1)) * u64::from(nproc.max(1));
    (cpus.unwrap_or(1) / procs).max(1)
}

/// A free TCP port on 127.0.0.1 for the rendezvous store.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

pub fn run(ctx: &Ctx, args: &MultinodeArgs) -> Result<()> {
    let e = ctx.engine_ready()?;
    let res = ctx
        .capture(cmd::info(e, &ctx.sh, "{{.NCPU}} {{.MemTotal}}"))?
        .answer()
        .unwrap_or_default();
    let mut it = res.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (cpus, mem) = (it.next().flatten(), it.next().flatten());
    check(
        args.nodes,
        args.nproc_per_node,
        &args.cmd,
        &ctx.python_dir,
        cpus,
        mem,
    )
    .map_err(usage)?;
    let mut script = args.cmd.clone();
    if let Some(rel) = script[0].strip_prefix("/app/") {
        script[0] = rel.to_string();
    }
    let port = free_port()?;
    let rdzv_id = format!("lexalign-{}", std::process::id());
    let mut members = Vec::new();
    let mut names = Vec::new();
    for node in 0..args.nodes {
        let s = node_spec(ctx, args, &script, (port, &rdzv_id), node, cpus)?;
        names.push(s.name.clone().unwrap_or_default());
        members.push(Member {
            label: format!("node{node}"),
            proc: cmd::run(e, &ctx.sh, &s),
        });
    }
    let removers = |names: &[String]| -> Vec<crate::exec::Proc> {
        names.iter().map(|n| cmd::rm(e, &ctx.sh, n, true)).collect()
    };
    ctx.info(format!(
        "multinode: {} nodes × {} processes, rendezvous 127.0.0.1:{port} ({rdzv_id}), image {}",
        args.nodes,
        args.nproc_per_node,
        ctx.image()
    ));
    let codes = ctx
        .exec
        .group(members, removers(&names), removers(&names))?;
    // Whatever happened, no node is left behind.
    for p in removers(&names) {
        let _ = ctx.capture(p);
    }
    if ctx.dry_run() {
        return Ok(());
    }
    report(&codes, args.nodes)
}

/// One node's container: torchrun with c10d rendezvous, the host network and PID namespace,
/// its share of the machine's CPUs.
fn node_spec(
    ctx: &Ctx,
    args: &MultinodeArgs,
    script: &[String],
    (port, rdzv_id): (u16, &str),
    node: u32,
    cpus: Option<u64>,
) -> Result<RunSpec> {
    let task = format!("multinode-node{node}");
    let mut s: RunSpec = devrun::new(
        ctx,
        &task,
        torchrun_cmd(args.nodes, args.nproc_per_node, port, rdzv_id, node, script),
    );
    s.env.push(("LEXALIGN_NODE_RANK".into(), node.to_string()));
    // gloo (CPU) binds the loopback interface; NCCL keeps its own choice on GPUs
    s.env.push(("GLOO_SOCKET_IFNAME".into(), "lo".into()));
    // torchrun sets OMP_NUM_THREADS=1 only for several processes per node; here all the
    // nodes share one machine, so split its CPUs between every process (no oversubscription).
    s.env.push((
        "OMP_NUM_THREADS".into(),
        omp_threads(cpus, args.nodes, args.nproc_per_node).to_string(),
    ));
    let mut dev = args.dev.clone();
    if let Some(n) = dev.network.as_deref().filter(|n| *n != "host") {
        return Err(usage(format!(
                "--network {n}: the nodes of a rehearsal share the host network (they rendezvous on 127.0.0.1); drop --network"
            )));
    }
    dev.network = Some("host".into());
    dev.shm_size.get_or_insert_with(|| "1g".into());
    devrun::apply_opts(&mut s, &dev)?;
    // The host's PID namespace too: torchrun names a node by address and pid, and every
    // container's torchrun would otherwise be the same pid on the same address.
    s.opts.pid = Some("host".into());
    Ok(s)
}

/// The nodes' exit codes as the task's result: which nodes failed, a hint when one was
/// killed for memory, 130 when interrupted.
fn report(codes: &[i32], nodes: u32) -> Result<()> {
    let failed: Vec<String> = codes
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0)
        .map(|(i, c)| format!("node{i} exit {c}"))
        .collect();
    if failed.is_empty() {
        println!("multinode: all {nodes} nodes finished");
        return Ok(());
    }
    for c in codes {
        if let Some(hint) = crate::engine::killed_hint(*c) {
            eprintln!("multinode: {hint}");
            break;
        }
    }
    let first = codes.iter().copied().find(|c| *c != 0).unwrap_or(1);
    eprintln!(
        "multinode: {}; the other nodes were stopped",
        failed.join(", ")
    );
    if first == 130 {
        return Err(code(130));
    }
    Err(fail(format!("multinode failed: {}", failed.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchrun_per_node() {
        let c = torchrun_cmd(
            2,
            1,
            29500,
            "rid",
            1,
            &["finetune.py".into(), "-c".into(), "x.yaml".into()],
        )
        .join(" ");
        assert!(c.starts_with("python -m lexalign.launch --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:29500 --rdzv-id rid"));
        assert!(c.contains("--rdzv-conf is_host=0,join_timeout=120"));
        assert!(c.contains("--local-addr 127.0.0.1"));
        assert!(c.ends_with("finetune.py -c x.yaml"));
        let c0 = torchrun_cmd(2, 1, 29500, "rid", 0, &["a.py".into()]).join(" ");
        assert!(c0.contains("is_host=1"));
    }

    #[test]
    fn cpus_are_split_between_processes() {
        assert_eq!(omp_threads(Some(2), 2, 1), 1);
        assert_eq!(omp_threads(Some(16), 2, 2), 4);
        assert_eq!(omp_threads(None, 2, 1), 1);
        assert_eq!(omp_threads(Some(3), 4, 1), 1);
    }

    #[test]
    fn bad_requests_are_refused() {
        let dir = std::env::temp_dir().join(format!("mn-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("finetune.py"), "").unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check(2, 1, &s(&["finetune.py"]), &dir, Some(2), Some(8 << 30)).is_ok());
        assert!(check(2, 1, &s(&["/app/finetune.py"]), &dir, None, None).is_ok());
        assert!(check(0, 1, &s(&["finetune.py"]), &dir, None, None)
            .unwrap_err()
            .contains("--nodes 0"));
        assert!(check(2, 1, &s(&[]), &dir, None, None)
            .unwrap_err()
            .contains("no SCRIPT"));
        for bad in ["nope.py", "/etc/passwd", "../finetune.py"] {
            assert!(check(2, 1, &s(&[bad]), &dir, None, None)
                .unwrap_err()
                .contains("is not a file in"));
        }
        assert!(check(64, 1, &s(&["finetune.py"]), &dir, Some(2), None)
            .unwrap_err()
            .contains("cannot start"));
        assert!(
            check(8, 2, &s(&["finetune.py"]), &dir, Some(64), Some(4 << 30))
                .unwrap_err()
                .contains("GiB")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

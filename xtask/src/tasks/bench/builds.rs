//! The build rows of the bench: a cold build against its floor (uv syncing the same lock on the
//! host), rebuilds after a `.py` edit and with nothing changed, and rebuilds after a lock change.

use super::measure::Bench;
use super::report::{Row, Target};
use crate::engine::cmd;
use crate::error::Result;
use crate::exec::Proc;
use crate::lockfile::{Lock, Locked};
use crate::policy;
use crate::util::now_rfc3339;
use std::path::PathBuf;

/// uv for the cold-build floor: installed from PyPI into target/bench (never on the host).
fn floor_uv(b: &Bench) -> Result<PathBuf, String> {
    let venv = b.ctx.root.join("target/bench/uv-tool");
    let uv = venv.join("bin/uv");
    if uv.is_file() {
        return Ok(uv);
    }
    let sh = &b.ctx.sh;
    let made = b
        .ctx
        .capture(Proc::change(
            sh.cmd("python3").args(["-m", "venv"]).arg(&venv),
        ))
        .map_err(|e| e.to_string())?;
    if !made.ok() {
        return Err("not measured: python3 with venv is needed for the floor (apt-get install python3-venv)".into());
    }
    let pip = b
        .ctx
        .capture(Proc::change(sh.cmd(venv.join("bin/pip")).args([
            "install",
            "-q",
            &format!("uv=={}", policy::UV_VERSION),
        ])))
        .map_err(|e| e.to_string())?;
    if !pip.ok() {
        return Err(format!(
            "not measured: cannot install uv from PyPI into target/bench ({}); check the network or PIP_CERT",
            pip.first_error_line()
        ));
    }
    Ok(uv)
}

/// One cold build as a first run meets it: the build cache and cache mounts emptied
/// (`docker builder prune -af`), no earlier lexalign-bench:cold for the build to replace
/// (removing a replaced 6.7 GB image is ~5 s of disk work a first run does not do) and no
/// dirty pages left to write back, then `image --no-cache` as lexalign-bench:cold; seconds.
pub(super) fn cold_image(b: &Bench) -> Result<f64> {
    let _ = b
        .ctx
        .capture(cmd::rmi(&b.engine, &b.ctx.sh, "lexalign-bench:cold"));
    b.time_ok(
        cmd::builder_prune(&b.engine, &b.ctx.sh, true, None),
        "docker builder prune",
    )?;
    b.settle();
    let image = b.xtask(&[
        "--image",
        "lexalign-bench:cold",
        "-q",
        "image",
        "--no-cache",
    ]);
    Ok(b.time_ok(image, "cold image build")?.0)
}

pub fn cold_build(b: &Bench, quick: bool) -> Result<Vec<Row>> {
    let mut row = Row::new("cold-build", "cold image build", "s");
    row.target = Some(Target::RatioAtMost(1.25));
    row.peer_name = "uv pip sync on the host";
    if quick {
        return Ok(vec![row.unavailable("not measured: skipped with --quick")]);
    }
    let uv = match floor_uv(b) {
        Ok(uv) => uv,
        Err(why) => return Ok(vec![row.unavailable(why)]),
    };
    let sh = &b.ctx.sh;
    let cold_runs = b.runs.min(2);
    for i in 0..cold_runs {
        b.ctx.info(format!(
            "bench: cold build {}/{cold_runs} (build cache and cache mounts emptied)",
            i + 1
        ));
        row.samples.push(cold_image(b)?);
        let venv = b.ctx.root.join("target/bench/floor-venv");
        let cache = b.ctx.root.join("target/bench/floor-uv-cache");
        let _ = b.ctx.exec.remove_dir_all(&venv);
        let _ = b.ctx.exec.remove_dir_all(&cache);
        b.settle();
        let (t1, _) = b.time_ok(
            Proc::change(
                sh.cmd(&uv)
                    .args(["venv", "-q", "--python", "3.11"])
                    .arg(&venv),
            )
            .env("UV_CACHE_DIR", &cache),
            "uv venv",
        )?;
        let (t2, _) = b.time_ok(
            Proc::change(
                sh.cmd(&uv)
                    .args([
                        "pip",
                        "sync",
                        "-q",
                        "--require-hashes",
                        "--compile-bytecode",
                        "--python",
                    ])
                    .arg(venv.join("bin/python"))
                    .arg(b.ctx.path(policy::LOCKFILE)),
            )
            .env("UV_CACHE_DIR", &cache)
            .env("UV_LINK_MODE", "copy"),
            "uv pip sync (floor)",
        )?;
        row.peer.push(t1 + t2);
        let _ = b.ctx.exec.remove_dir_all(&cache);
    }
    let _ = b
        .ctx
        .capture(cmd::rmi(&b.engine, sh, "lexalign-bench:cold"));
    row.note = "cold = the last bench image removed, `docker builder prune -af`, `sync`, then `image --no-cache`; includes apt, uv download+install, bytecode compile and layer export; the floor is uv (installed into target/bench) syncing the same lock into a host venv (after a `sync` too)".into();
    Ok(vec![row])
}

/// Rebuild after a `.py` edit, and a no-op rebuild, on a scratch copy of the tree.
pub fn rebuilds(b: &Bench) -> Result<Vec<Row>> {
    b.prepare_tree()?;
    b.time_ok(b.tree_image("lexalign-bench:tree"), "tree image build")?;
    let mut rows = Vec::new();
    if b.wanted("warm-rebuild") {
        let mut row = Row::new("warm-rebuild", "rebuild after a .py edit", "s");
        row.target = Some(Target::AtMost(10.0));
        row.chart = true;
        let file = b.tree.join("python/lexalign/__init__.py");
        let mut cached = 0;
        for i in 0..b.runs {
            let mut text = std::fs::read_to_string(&file)?;
            text.push_str(&format!("# bench edit {i}\n"));
            b.ctx.exec.write(&file, text)?;
            let (t, o) = b.time_ok(b.tree_image("lexalign-bench:tree"), "warm rebuild")?;
            if o.stdout.contains("deps:    cached") {
                cached += 1;
            }
            row.samples.push(t);
        }
        row.note = format!(
            "dependency stages reported cached in {cached}/{} runs",
            b.runs
        );
        rows.push(row);
    }
    if b.wanted("noop-rebuild") {
        let mut row = Row::new("noop-rebuild", "no-op rebuild", "s");
        row.target = Some(Target::AtMost(3.0));
        row.chart = true;
        for _ in 0..b.runs {
            let (t, _) = b.time_ok(b.tree_image("lexalign-bench:tree"), "no-op rebuild")?;
            row.samples.push(t);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Rebuild after a mid-size package's entry in the lock changes (a comment unique to the run,
/// in transformers' block): the layers a bump of it rebuilds are rebuilt, its wheel from the uv
/// cache. The lock is put back afterwards.
fn mid_package_change(b: &Bench, lock: &std::path::Path, lock_a: &str) -> Result<Row> {
    let mut mid = Row::new(
        "lock-change-mid",
        "rebuild after transformers' lock entry changes (uv cache warm)",
        "s",
    );
    mid.target = Some(Target::AtMost(15.0));
    let marker = "name = \"transformers\"\n";
    for n in 0..b.runs {
        let stamp = format!("{marker}# bench mid run {n} at {}\n", now_rfc3339());
        b.ctx.exec.write(lock, lock_a.replacen(marker, &stamp, 1))?;
        let (t, _) = b.time_ok(
            b.tree_image("lexalign-bench:tree"),
            "lock-change-mid rebuild",
        )?;
        mid.samples.push(t);
    }
    b.ctx.exec.write(lock, lock_a)?;
    mid.note = "transformers' entry in the lock changed: the deps-big and deps layers are rebuilt (the packages under 15 MB), deps-heavy and deps-huge stay cached".into();
    Ok(mid)
}

/// Rebuild after a one-package lock change, with the uv cache mount warm and emptied.
pub fn lock_change(b: &Bench) -> Result<Vec<Row>> {
    b.prepare_tree()?;
    let mut warm = Row::new(
        "lock-change",
        "rebuild after a lock change (uv cache warm)",
        "s",
    );
    warm.target = Some(Target::AtMost(5.0));
    warm.chart = true;
    let mut cold = Row::new(
        "lock-change-nocache",
        "rebuild after a lock change (uv cache emptied)",
        "s",
    );
    cold.chart = true;
    let lock = b.tree.join(policy::LOCKFILE);
    let py = b.tree.join(policy::PYPROJECT);
    let lock_a = std::fs::read_to_string(&lock)?;
    let py_a = std::fs::read_to_string(&py)?;
    let alt = if py_a.contains("\"rich==13.9.4\"") {
        "14.0.0"
    } else {
        "13.9.4"
    };
    // Move the `rich` pin with the pin rewriter itself (a one-package lock), then re-lock.
    let one = Lock {
        packages: vec![Locked {
            name: "rich".into(),
            version: alt.into(),
            marker: None,
            wheels: Vec::new(),
            sdist: false,
        }],
    };
    let py_b = crate::pinning::sync(&py_a, &py, &one, false)?.text;
    b.ctx.exec.write(&py, &py_b)?;
    let (_, o) = b.time(b.xtask(&["-q", "lock"]).env("LEXALIGN_ROOT", &b.tree))?;
    if !o.ok() {
        let why = format!(
            "not measured: could not make a second lock ({}); PyPI must be reachable",
            o.first_error_line()
        );
        return Ok(vec![warm.unavailable(why.clone()), cold.unavailable(why)]);
    }
    let lock_b = std::fs::read_to_string(&lock)?;
    b.time_ok(b.tree_image("lexalign-bench:tree"), "tree image build")?;
    let mut flip = false;
    let mut n = 0;
    for (row, empty_cache) in [(&mut warm, false), (&mut cold, true)] {
        for _ in 0..b.runs {
            flip = !flip;
            n += 1;
            // A comment unique to this run: the build cache must not already hold it.
            let text = format!(
                "{}# bench run {n} at {}\n",
                if flip { &lock_b } else { &lock_a },
                now_rfc3339()
            );
            b.ctx.exec.write(&lock, text)?;
            if empty_cache {
                b.time_ok(
                    cmd::builder_prune(&b.engine, &b.ctx.sh, false, Some("type=exec.cachemount")),
                    "emptying the cache mounts",
                )?;
            }
            let (t, _) = b.time_ok(b.tree_image("lexalign-bench:tree"), "lock-change rebuild")?;
            row.samples.push(t);
        }
    }
    let mid = mid_package_change(b, &lock, &lock_a)?;
    warm.note = format!("rich {alt} ⇄ current, each lock new to the build cache; only the last dependency layer (the packages whose artifacts are all under 1 MB) is reinstalled from the uv cache, the heavy, huge and big layers stay cached");
    cold.peer_name = "uv cache warm";
    cold.peer = warm.samples.clone();
    cold.note = "the same with the uv cache mount emptied first: what the cache mount saves".into();
    Ok(vec![warm, cold, mid])
}

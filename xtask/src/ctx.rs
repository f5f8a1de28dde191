//! The task context: repository paths, global flags, the engine client, and the execution
//! layer every task runs its commands through.

use crate::cli::Global;
use crate::engine::{self, cmd, Engine};
use crate::error::{fail, usage, Result};
use crate::exec::{Captured, Exec, Io, Proc};
use crate::policy;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use xshell::Shell;

pub struct Ctx {
    pub root: PathBuf,
    pub python_dir: PathBuf,
    pub g: Global,
    pub sh: Shell,
    /// Value of the project label (`LEXALIGN_PROJECT`, default `lexalign`).
    pub project: String,
    pub exec: Exec,
    engine: OnceCell<Engine>,
    daemon: OnceCell<String>,
}

impl Ctx {
    pub fn new(g: &Global) -> Result<Ctx> {
        crate::exec::install_signal_flag();
        if let Some(image) = &g.image {
            if let Err(e) = engine::validate_image_ref(image) {
                return Err(usage(format!("--image {image:?}: {e}")));
            }
        }
        let root = find_root()?;
        let python_dir = match &g.python_dir {
            Some(p) => std::path::absolute(p)?,
            None => root.join("python"),
        };
        let project = std::env::var("LEXALIGN_PROJECT")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| policy::DEFAULT_PROJECT.to_string());
        let sh = Shell::new()?;
        sh.change_dir(&root);
        Ok(Ctx {
            root,
            python_dir,
            exec: Exec {
                dry_run: g.dry_run,
                verbose: g.verbose,
            },
            g: g.clone(),
            sh,
            project,
            engine: OnceCell::new(),
            daemon: OnceCell::new(),
        })
    }

    pub fn dry_run(&self) -> bool {
        self.g.dry_run
    }

    pub fn image(&self) -> &str {
        self.g.image.as_deref().unwrap_or(policy::DEFAULT_IMAGE)
    }

    /// Was `--image` given (rather than the default)?
    pub fn image_explicit(&self) -> bool {
        self.g.image.is_some()
    }

    /// The engine's own architecture (`info`'s Architecture), when the daemon answers.
    pub fn engine_arch(&self) -> Option<crate::platform::Arch> {
        let e = self.engine().ok()?;
        let a = self
            .capture(cmd::info(e, &self.sh, "{{.Architecture}}"))
            .ok()?
            .answer()?;
        crate::platform::Arch::from_engine(&a)
    }

    /// An image's Architecture (None when the image is missing).
    pub fn image_arch(&self, reference: &str) -> Option<String> {
        let e = self.engine().ok()?;
        self.capture(cmd::image_inspect(
            e,
            &self.sh,
            "{{.Architecture}}",
            reference,
        ))
        .ok()?
        .answer()
    }

    pub fn project_label(&self) -> String {
        policy::project_label(&self.project)
    }

    pub fn hf_volume(&self) -> String {
        policy::hf_volume(&self.project)
    }

    /// A repository path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Progress on stderr (silent with -q).
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.g.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Run and capture (a query runs even in a dry run; a change is printed instead).
    pub fn capture(&self, p: Proc) -> Result<Captured> {
        self.exec.capture(p)
    }

    /// Run with inherited output; the exit code.
    pub fn status(&self, p: Proc, io: Io) -> Result<i32> {
        self.exec.status(p, io)
    }

    /// `status`, and a non-zero exit becomes the task's exit code.
    pub fn status_ok(&self, p: Proc) -> Result<()> {
        match self.status(p, Io::default())? {
            0 => Ok(()),
            n => Err(crate::error::code(n)),
        }
    }

    /// The engine client (found, not yet checked against a daemon). A dry run needs no client:
    /// without one it plans with the name it would use.
    pub fn engine(&self) -> Result<&Engine> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let env = std::env::var("LEXALIGN_DOCKER").ok();
        let found = engine::resolve(self.g.engine.as_deref(), env.as_deref(), |n| {
            which::which(n).ok()
        });
        let program = match found {
            Ok(p) => p,
            Err(_) if self.g.dry_run => {
                PathBuf::from(self.g.engine.clone().or(env).unwrap_or("docker".into()))
            }
            Err(msg) => return Err(fail(msg)),
        };
        Ok(self.engine.get_or_init(|| Engine::new(program)))
    }

    /// After Ctrl-C or SIGTERM: remove every container this process started (the owner label
    /// of engine::cmd), so none runs on after the task exits. Nothing in a dry run.
    pub fn remove_owned_containers(&self) {
        let Some(engine) = self.engine.get() else {
            return; // no engine was ever used: nothing was started
        };
        if self.g.dry_run {
            return;
        }
        let listed = self
            .exec
            .capture_cleanup(engine::cmd::owned_containers(engine, &self.sh));
        for id in listed
            .map(|c| c.stdout)
            .unwrap_or_default()
            .split_whitespace()
        {
            let _ = self
                .exec
                .capture_cleanup(engine::cmd::rm(engine, &self.sh, id, true));
        }
    }

    /// The engine, with its daemon reachable (checked once). A dry run does not insist.
    pub fn engine_ready(&self) -> Result<&Engine> {
        let engine = self.engine()?;
        if self.g.dry_run || self.daemon.get().is_some() {
            return Ok(engine);
        }
        // Fast path: ping the local Docker socket (~1 ms instead of a ~20 ms client run);
        // anything else (contexts, remote hosts, podman) asks the client.
        if engine::fast_ping_applies(&engine.program) && engine::docker_socket_ping() {
            let _ = self.daemon.set("reachable".into());
            return Ok(engine);
        }
        let out = self.capture(cmd::server_version(engine, &self.sh))?;
        match out.answer() {
            Some(v) => {
                let _ = self.daemon.set(v);
                Ok(engine)
            }
            None => Err(fail(
                engine.daemon_unreachable_message(&out.first_error_line()),
            )),
        }
    }

    /// The image id under a reference, if any (a query).
    pub fn image_id(&self, reference: &str) -> Option<String> {
        let e = self.engine().ok()?;
        self.capture(cmd::image_inspect(e, &self.sh, "{{.Id}}", reference))
            .ok()?
            .answer()
    }

    /// One label of an image ("" when unset; None when the image is missing).
    /// Every label of an image (none when it is missing).
    pub fn image_labels(&self, reference: &str) -> std::collections::BTreeMap<String, String> {
        let Ok(e) = self.engine() else {
            return Default::default();
        };
        self.capture(cmd::image_inspect(
            e,
            &self.sh,
            "{{json .Config.Labels}}",
            reference,
        ))
        .ok()
        .and_then(|c| c.answer())
        .map(|j| crate::oci::parse(&j))
        .unwrap_or_default()
    }

    pub fn image_label(&self, reference: &str, key: &str) -> Option<String> {
        let e = self.engine().ok()?;
        let out = self
            .capture(cmd::image_inspect(
                e,
                &self.sh,
                &format!("{{{{index .Config.Labels \"{key}\"}}}}"),
                reference,
            ))
            .ok()?;
        out.ok().then(|| out.stdout.trim().to_string())
    }
}

/// The repository root: `$LEXALIGN_ROOT`, else the nearest folder above the current one that
/// holds `xtask/Cargo.toml`, else the folder this xtask was compiled in.
fn find_root() -> Result<PathBuf> {
    if let Some(r) = std::env::var_os("LEXALIGN_ROOT").filter(|s| !s.is_empty()) {
        let r = std::path::absolute(PathBuf::from(r))?;
        if !r.is_dir() {
            return Err(usage(format!(
                "LEXALIGN_ROOT={} is not a folder; unset it or point it at a LexAlign checkout",
                r.display()
            )));
        }
        return Ok(r);
    }
    if let Ok(mut dir) = std::env::current_dir() {
        loop {
            if dir.join("xtask/Cargo.toml").is_file() && dir.join("Cargo.toml").is_file() {
                return Ok(dir);
            }
            if !dir.pop() {
                break;
            }
        }
    }
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf())
}

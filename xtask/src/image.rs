//! `cargo xtask image`: build docker/Dockerfile into the dev image.

use crate::base_image;
use crate::cli::ImageArgs;
use crate::ctx::{self, Ctx, LOCK_LABEL};
use crate::engine::{validate_image_ref, BuildKit, Engine};
use crate::util::{human_bytes, secs, sha256_hex};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xshell::{Cmd, Shell};

/// The upstream base, used when present locally or pullable.
pub const SLIM: &str = "python:3.11-slim";
/// A step of the dependency layer is recognised in the build log by this text.
const DEPS_MARKER: &str = "uv pip sync";

/// Everything one build needs; `build_cmd` turns it into a command line.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub root: PathBuf,
    pub tag: String,
    pub base: String,
    pub labels: Vec<(String, String)>,
    pub ca_bundle: Option<PathBuf>,
    pub no_cache: bool,
    pub platform: Option<String>,
}

/// `<engine> build …` for the dev image (pure).
pub fn build_cmd<'a>(engine: &Engine, sh: &'a Shell, mode: BuildKit, spec: &BuildSpec) -> Cmd<'a> {
    let mut cmd = engine.build_cmd(sh, mode);
    if mode != BuildKit::Podman {
        cmd = cmd.arg("--progress=plain");
    }
    cmd = cmd
        .arg("-f")
        .arg(spec.root.join("docker/Dockerfile"))
        .args(["-t", &spec.tag])
        .args(["--build-arg", &format!("BASE_IMAGE={}", spec.base)]);
    for (k, v) in &spec.labels {
        cmd = cmd.args(["--label", &format!("{k}={v}")]);
    }
    if let Some(ca) = &spec.ca_bundle {
        cmd = cmd.args(["--secret", &format!("id=ca,src={}", ca.display())]);
    }
    if spec.no_cache {
        cmd = cmd.arg("--no-cache");
    }
    if let Some(p) = &spec.platform {
        cmd = cmd.args(["--platform", p]);
    }
    cmd.arg(&spec.root)
}

/// The first CA bundle named by SSL_CERT_FILE, PIP_CERT or REQUESTS_CA_BUNDLE that is a file.
pub fn ca_bundle_from_env() -> Option<PathBuf> {
    ["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE"]
        .iter()
        .filter_map(std::env::var_os)
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// `--ca-bundle` must name a readable file (exit 2 otherwise); without it, the environment's.
pub fn resolve_ca_bundle(flag: Option<&Path>) -> Result<Option<PathBuf>> {
    match flag {
        Some(p) => match std::fs::File::open(p) {
            Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => {
                Ok(Some(std::path::absolute(p)?))
            }
            Ok(_) => Err(ctx::usage(format!(
                "--ca-bundle {}: not a file; pass the path of a PEM bundle",
                p.display()
            ))),
            Err(e) => Err(ctx::usage(format!(
                "--ca-bundle {}: cannot read it ({e}); pass the path of a readable PEM bundle",
                p.display()
            ))),
        },
        None => Ok(ca_bundle_from_env()),
    }
}

/// What the base-selection logic can ask about the machine.
pub trait BaseProbe {
    fn present(&mut self, reference: &str) -> bool;
    fn pull(&mut self, reference: &str) -> bool;
    fn can_build_debian_base(&mut self) -> bool;
}

/// The chosen base: the reference, whether it must be built first, and why (printed).
#[derive(Debug, PartialEq, Eq)]
pub struct BaseChoice {
    pub reference: String,
    pub build_first: bool,
    pub why: String,
}

/// Base selection (pure over the probe). `auto`: python:3.11-slim if present or pullable,
/// else the Debian-built base (built on the spot when missing and possible).
pub fn choose_base(requested: &str, probe: &mut dyn BaseProbe) -> Result<BaseChoice, String> {
    let debian = base_image::DEFAULT_TAG;
    if requested != "auto" {
        if requested == debian && !probe.present(debian) {
            if probe.can_build_debian_base() {
                return Ok(BaseChoice {
                    reference: debian.into(),
                    build_first: true,
                    why: "requested with --base-image and not present: building it with mmdebstrap"
                        .into(),
                });
            }
            return Err(format!(
                "base image {debian} is not present and mmdebstrap is missing; install it \
                 (`apt-get install mmdebstrap`) or run `cargo xtask base-image` on a Debian/Ubuntu host"
            ));
        }
        return Ok(BaseChoice {
            reference: requested.into(),
            build_first: false,
            why: "requested with --base-image".into(),
        });
    }
    if probe.present(SLIM) {
        return Ok(BaseChoice {
            reference: SLIM.into(),
            build_first: false,
            why: format!("{SLIM} is present locally"),
        });
    }
    if probe.pull(SLIM) {
        return Ok(BaseChoice {
            reference: SLIM.into(),
            build_first: false,
            why: format!("{SLIM} was pulled from its registry"),
        });
    }
    if probe.present(debian) {
        return Ok(BaseChoice {
            reference: debian.into(),
            build_first: false,
            why: format!("{SLIM} is neither present nor pullable; {debian} is present locally"),
        });
    }
    if probe.can_build_debian_base() {
        return Ok(BaseChoice {
            reference: debian.into(),
            build_first: true,
            why: format!(
                "{SLIM} is neither present nor pullable; building {debian} from Debian packages"
            ),
        });
    }
    Err(format!(
        "no base image: {SLIM} cannot be pulled, {debian} is missing and mmdebstrap is not installed; \
         install mmdebstrap (`apt-get install mmdebstrap`) and run `cargo xtask base-image`, or pass --base-image REF"
    ))
}

struct EngineProbe<'a> {
    ctx: &'a Ctx,
    engine: &'a Engine,
}

impl BaseProbe for EngineProbe<'_> {
    fn present(&mut self, reference: &str) -> bool {
        image_present(self.ctx, self.engine, reference)
    }
    fn pull(&mut self, reference: &str) -> bool {
        self.ctx.info(format!("base: trying to pull {reference} …"));
        let cmd: Command = self
            .engine
            .cmd(&self.ctx.sh)
            .args(["pull", "-q", reference])
            .into();
        capture_with_timeout(cmd, pull_timeout()).is_some_and(|c| c == 0)
    }
    fn can_build_debian_base(&mut self) -> bool {
        which::which("mmdebstrap").is_ok()
    }
}

fn pull_timeout() -> Duration {
    let s = std::env::var("LEXALIGN_PULL_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(s)
}

/// Run a command with output discarded; give up (kill it) after `limit`.
fn capture_with_timeout(mut cmd: Command, limit: Duration) -> Option<i32> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(ctx::exit_code(st));
        }
        if Instant::now() > deadline || ctx::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Select the base (and build the Debian one when needed); returns its reference.
pub fn resolve_base(ctx: &Ctx, engine: &Engine, requested: &str) -> Result<String> {
    if ctx.g.dry_run {
        return Ok(if requested == "auto" {
            SLIM.into()
        } else {
            requested.into()
        });
    }
    let choice = choose_base(requested, &mut EngineProbe { ctx, engine }).map_err(ctx::fail)?;
    ctx.info(format!("base: {} ({})", choice.reference, choice.why));
    if choice.build_first {
        base_image::build(ctx, &choice.reference, "bookworm", None)?;
    }
    Ok(choice.reference)
}

pub fn image_present(ctx: &Ctx, engine: &Engine, reference: &str) -> bool {
    ctx.capture_quiet(
        engine
            .cmd(&ctx.sh)
            .args(["image", "inspect", "--format", "{{.Id}}", reference]),
    )
    .map(|c| c.ok())
    .unwrap_or(false)
}

/// The labels every dev image carries.
pub fn labels(ctx: &Ctx, lock: &[u8]) -> Vec<(String, String)> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&ctx.root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    let mut revision = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_some() {
        revision.push_str("-dirty");
    }
    // The source's date, not the wall clock: the same commit gives the same image config.
    let created = git(&["log", "-1", "--format=%cI"]).unwrap_or_else(now_rfc3339);
    let source = git(&["config", "--get", "remote.origin.url"])
        .filter(|u| u.starts_with("https://"))
        .unwrap_or_else(|| "https://github.com/lexalign/lexalign".into());
    let version =
        project_version(&ctx.root.join("python/pyproject.toml")).unwrap_or("0.0.0".into());
    vec![
        (
            "org.opencontainers.image.title".into(),
            "lexalign-dev".into(),
        ),
        ("org.opencontainers.image.source".into(), source),
        ("org.opencontainers.image.revision".into(), revision),
        ("org.opencontainers.image.created".into(), created),
        ("org.opencontainers.image.version".into(), version),
        (LOCK_LABEL.into(), sha256_hex(lock)),
        (ctx::PROJECT_LABEL.into(), ctx.project.clone()),
    ]
}

fn project_version(pyproject: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pyproject).ok()?;
    let v: toml::Table = text.parse().ok()?;
    Some(v.get("project")?.get("version")?.as_str()?.to_string())
}

/// Current UTC time as RFC 3339 (no date crate for one timestamp).
pub fn now_rfc3339() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(t)
}

pub fn rfc3339(t: i64) -> String {
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Whether the build log shows the dependency layer as cached.
pub fn deps_layer_cached(log: &str) -> Option<bool> {
    let mut ids = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            if let Some((id, desc)) = rest.split_once(' ') {
                if desc.starts_with('[') && desc.contains(DEPS_MARKER) {
                    ids.push(id.to_string());
                }
            }
        }
    }
    if ids.is_empty() {
        return None;
    }
    Some(
        ids.iter()
            .any(|id| log.lines().any(|l| l.trim_end() == format!("#{id} CACHED"))),
    )
}

/// The BuildKit mode of the engine, or the one-line error naming both fixes.
pub fn buildkit(ctx: &Ctx, engine: &Engine) -> Result<BuildKit> {
    if engine.kind == crate::engine::Kind::Podman {
        return Ok(BuildKit::Podman);
    }
    let version = ctx.capture_quiet(engine.client_version_cmd(&ctx.sh));
    let version = match version {
        Ok(v) if v.ok() => v.stdout.trim().to_string(),
        // A dry run without a client: assume what a BuildKit client would do.
        _ if ctx.g.dry_run => return Ok(BuildKit::LegacyEnv),
        Ok(v) => {
            return Err(ctx::fail(format!(
                "`{} version` failed: {}",
                engine.program.display(),
                v.first_error_line()
            )))
        }
        Err(e) => return Err(e),
    };
    let has_buildx = ctx
        .capture_quiet(engine.buildx_version_cmd(&ctx.sh))
        .map(|c| c.ok())
        .unwrap_or(false);
    crate::engine::buildkit_mode(engine.kind, &version, has_buildx, &engine.program)
        .map_err(ctx::fail)
}

/// Required inputs of a build (exit 2 with the path when missing).
pub fn check_inputs(root: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let dockerfile = root.join("docker/Dockerfile");
    if !dockerfile.is_file() {
        return Err(ctx::usage(format!(
            "{} not found; run from a LexAlign checkout (or set LEXALIGN_ROOT)",
            dockerfile.display()
        )));
    }
    let lock_path = root.join("python/pylock.toml");
    let lock = std::fs::read(&lock_path).map_err(|e| {
        ctx::usage(format!(
            "{}: {e}; generate it with `cargo xtask lock`",
            lock_path.display()
        ))
    })?;
    Ok((dockerfile, lock))
}

pub fn run(ctx: &Ctx, args: &ImageArgs) -> Result<()> {
    let started = Instant::now();
    let tag = args.tag.clone().unwrap_or_else(|| ctx.image().to_string());
    validate_image_ref(&tag).map_err(|e| ctx::usage(format!("--tag {tag:?}: {e}")))?;
    if args.base_image != "auto" {
        validate_image_ref(&args.base_image)
            .map_err(|e| ctx::usage(format!("--base-image {:?}: {e}", args.base_image)))?;
    }
    let (_, lock) = check_inputs(&ctx.root)?;
    let ca_bundle = resolve_ca_bundle(args.ca_bundle.as_deref())?;
    let engine = ctx.engine()?;
    let mode = buildkit(ctx, engine)?;
    ctx.engine_ready()?;

    let base = resolve_base(ctx, engine, &args.base_image)?;

    let spec = BuildSpec {
        root: ctx.root.clone(),
        tag: tag.clone(),
        base: base.clone(),
        labels: labels(ctx, &lock),
        ca_bundle: ca_bundle.clone(),
        no_cache: args.no_cache,
        platform: args.platform.clone(),
    };
    if let Some(ca) = &ca_bundle {
        ctx.info(format!(
            "CA bundle: {} (as a build secret, not stored in the image)",
            ca.display()
        ));
    }
    let cmd: Command = build_cmd(engine, &ctx.sh, mode, &spec).into();
    if ctx.g.dry_run {
        ctx.show(&cmd);
        return Ok(());
    }
    let (code, log) = stream_build(ctx, cmd)?;
    if code != 0 {
        return Err(ctx::Exit {
            code,
            msg: Some(format!(
                "image build failed (exit {code}); see the engine output above. Any previous image tagged {tag} is unchanged"
            )),
        }
        .into());
    }
    let inspect = ctx.capture_quiet(engine.cmd(&ctx.sh).args([
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Size}}",
        &tag,
    ]))?;
    let mut parts = inspect.stdout.split_whitespace();
    let id = parts.next().unwrap_or("?").to_string();
    let size: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    // The HF cache volume, labelled so `clean` finds it.
    let _ = ctx.capture_quiet(engine.cmd(&ctx.sh).args([
        "volume",
        "create",
        "--label",
        &ctx.project_label(),
        &ctx.hf_volume(),
    ]));
    let deps = match deps_layer_cached(&log) {
        Some(true) => "cached",
        Some(false) => "rebuilt",
        None => "unknown",
    };
    println!("image:   {tag}");
    println!("id:      {id}");
    println!("size:    {} ({size} bytes)", human_bytes(size));
    println!("base:    {base}");
    println!("deps:    {deps}");
    println!("seconds: {:.1}", started.elapsed().as_secs_f64());
    ctx.info(format!("built {tag} in {}", secs(started.elapsed())));
    Ok(())
}

/// Run the build, echoing its output as it comes (unless --quiet) and keeping it for analysis.
fn stream_build(ctx: &Ctx, mut cmd: Command) -> Result<(i32, String)> {
    ctx.show(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the image build")?;
    let log = Arc::new(Mutex::new(String::new()));
    let quiet = ctx.g.quiet;
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(&log);
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if !quiet {
                    eprintln!("{line}");
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        }));
    }
    let code = ctx.wait_child(&mut child, None)?;
    for r in readers {
        let _ = r.join();
    }
    let log = Arc::try_unwrap(log)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default();
    if code != 0 && quiet {
        let lines: Vec<&str> = log.lines().collect();
        for l in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("{l}");
        }
    }
    Ok((code, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        present: Vec<&'static str>,
        pullable: bool,
        mmdebstrap: bool,
        pulled: Vec<String>,
    }
    impl BaseProbe for Fake {
        fn present(&mut self, r: &str) -> bool {
            self.present.contains(&r)
        }
        fn pull(&mut self, r: &str) -> bool {
            self.pulled.push(r.into());
            self.pullable
        }
        fn can_build_debian_base(&mut self) -> bool {
            self.mmdebstrap
        }
    }
    fn fake(present: Vec<&'static str>, pullable: bool, mmdebstrap: bool) -> Fake {
        Fake {
            present,
            pullable,
            mmdebstrap,
            pulled: vec![],
        }
    }

    #[test]
    fn base_prefers_local_slim_without_pulling() {
        let mut f = fake(vec![SLIM], true, true);
        let c = choose_base("auto", &mut f).unwrap();
        assert_eq!(c.reference, SLIM);
        assert!(!c.build_first);
        assert!(f.pulled.is_empty());
    }

    #[test]
    fn base_pulls_slim_when_possible() {
        let mut f = fake(vec![], true, true);
        let c = choose_base("auto", &mut f).unwrap();
        assert_eq!(c.reference, SLIM);
        assert_eq!(f.pulled, vec![SLIM.to_string()]);
        assert!(c.why.contains("pulled"));
    }

    #[test]
    fn base_falls_back_to_debian() {
        let mut f = fake(vec![base_image::DEFAULT_TAG], false, false);
        let c = choose_base("auto", &mut f).unwrap();
        assert_eq!(c.reference, base_image::DEFAULT_TAG);
        assert!(!c.build_first);
        let mut f = fake(vec![], false, true);
        let c = choose_base("auto", &mut f).unwrap();
        assert!(c.build_first);
        assert!(c.why.contains("neither present nor pullable"));
        let mut f = fake(vec![], false, false);
        let e = choose_base("auto", &mut f).unwrap_err();
        assert!(e.contains("apt-get install mmdebstrap"));
    }

    #[test]
    fn explicit_base_is_used_as_is() {
        let mut f = fake(vec![], false, false);
        let c = choose_base("debian:bookworm", &mut f).unwrap();
        assert_eq!(c.reference, "debian:bookworm");
        assert!(f.pulled.is_empty());
        let mut f = fake(vec![], false, true);
        assert!(
            choose_base(base_image::DEFAULT_TAG, &mut f)
                .unwrap()
                .build_first
        );
    }

    #[test]
    fn build_command_line() {
        let sh = Shell::new().unwrap();
        let e = Engine::new(PathBuf::from("/usr/bin/docker"));
        let spec = BuildSpec {
            root: PathBuf::from("/repo"),
            tag: "lexalign-dev:latest".into(),
            base: SLIM.into(),
            labels: vec![(LOCK_LABEL.into(), "abc".into())],
            ca_bundle: Some(PathBuf::from("/etc/ssl/certs/ca.crt")),
            no_cache: true,
            platform: Some("linux/amd64".into()),
        };
        let argv = ctx::argv(build_cmd(&e, &sh, BuildKit::LegacyEnv, &spec));
        let line = argv.join(" ");
        assert_eq!(&argv[..3], ["/usr/bin/docker", "build", "--progress=plain"]);
        assert!(line.contains("-f /repo/docker/Dockerfile"));
        assert!(line.contains("-t lexalign-dev:latest"));
        assert!(line.contains("--build-arg BASE_IMAGE=python:3.11-slim"));
        assert!(line.contains("--label dev.lexalign.lock-sha256=abc"));
        assert!(line.contains("--secret id=ca,src=/etc/ssl/certs/ca.crt"));
        assert!(line.contains("--no-cache"));
        assert!(line.contains("--platform linux/amd64"));
        assert_eq!(argv.last().unwrap(), "/repo");
        assert!(!line.contains("HF_TOKEN"), "no secret is a build arg");
    }

    #[test]
    fn ca_bundle_flag_must_be_readable() {
        let e = resolve_ca_bundle(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        let exit = e.downcast_ref::<ctx::Exit>().unwrap();
        assert_eq!(exit.code, 2);
        assert!(exit.msg.as_ref().unwrap().contains("/nonexistent/ca.pem"));
        let e = resolve_ca_bundle(Some(Path::new("/"))).unwrap_err();
        assert_eq!(e.downcast_ref::<ctx::Exit>().unwrap().code, 2);
    }

    #[test]
    fn cached_dependency_layer_is_detected() {
        let log = "#7 [4/9] RUN --mount=type=cache uv pip sync /opt/lexalign/pylock.toml\n#7 CACHED\n#8 [5/9] COPY python/ /app/\n#8 DONE 0.1s\n";
        assert_eq!(deps_layer_cached(log), Some(true));
        let log = "#7 [4/9] RUN uv pip sync x\n#7 0.3 Resolved\n#7 DONE 30s\n";
        assert_eq!(deps_layer_cached(log), Some(false));
        assert_eq!(deps_layer_cached("nothing"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

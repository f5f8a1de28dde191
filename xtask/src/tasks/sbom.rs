//! `cargo xtask sbom [--image REF] [--output FILE]`: a CycloneDX 1.6 JSON SBOM of the image,
//! made inside a container of the image itself (`--network none`) by docker/sbom.py:
//! cyclonedx-py for the Python environment (with the lock's sha256 of each installed wheel),
//! the image's dpkg database for Debian packages, the image's digest as the subject, validated
//! against the CycloneDX 1.6 schema before it is written.
//!
//! The tools (docker/sbom-tools.txt, exact pins) are installed once per architecture into
//! `target/sbom/tools-<arch>-<pins hash>` with the image's own uv, never into the image.

use crate::cli::SbomArgs;
use crate::ctx::Ctx;
use crate::devrun;
use crate::engine::cmd::{self, RunOpts, RunSpec};
use crate::error::{fail, Result};
use crate::policy;
use crate::util::sha256_hex;
use std::path::{Path, PathBuf};

/// What `image inspect` says of the image (the SBOM's subject).
#[derive(Debug, PartialEq)]
pub struct ImageFacts {
    pub id: String,
    /// The first registry digest (`repo@sha256:…`), once pushed or pulled.
    pub digest: Option<String>,
    pub arch: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
}

pub const INSPECT_FORMAT: &str = r#"{"id":{{json .Id}},"digests":{{json .RepoDigests}},"arch":{{json .Architecture}},"labels":{{json .Config.Labels}}}"#;

/// The facts from one `image inspect --format INSPECT_FORMAT` answer (pure).
pub fn parse_inspect(text: &str) -> Option<ImageFacts> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    let digest = v["digests"]
        .as_array()
        .and_then(|d| d.iter().filter_map(|x| x.as_str()).next())
        .and_then(|d| d.split_once('@').map(|(_, h)| h.to_string()));
    Some(ImageFacts {
        id: v["id"].as_str()?.to_string(),
        digest,
        arch: v["arch"].as_str().unwrap_or("unknown").to_string(),
        labels: v["labels"].as_object().cloned().unwrap_or_default(),
    })
}

/// Where the SBOM goes without --output: target/sbom/<image, made a file name>.cdx.json (pure).
pub fn default_output(root: &Path, image: &str) -> PathBuf {
    let name: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join("target/sbom").join(format!("{name}.cdx.json"))
}

/// The tools folder for these pins on this architecture (pure).
pub fn tools_dir(root: &Path, arch: &str, pins: &str) -> PathBuf {
    let hash = sha256_hex(pins.as_bytes());
    root.join("target/sbom")
        .join(format!("tools-{arch}-{}", &hash[..12]))
}

/// Installing the pinned tools into `dest` (mounted at /tools) with the image's uv (pure).
pub fn install_spec(
    project: &str,
    image: &str,
    dest: &Path,
    pins: &Path,
    ca: Option<&Path>,
    user: Option<(u32, u32)>,
) -> RunSpec {
    let mut s = RunSpec {
        name: Some(policy::container_name(project, "sbom-tools")),
        labels: devrun::labels(project, "sbom-tools"),
        user,
        volumes: vec![
            format!("{}:/tools", dest.display()),
            format!("{}:/sbom-tools.txt:ro", pins.display()),
        ],
        env: vec![("HOME".into(), "/tmp".into())],
        image: image.to_string(),
        cmd: [
            "/opt/uv/bin/uv",
            "pip",
            "install",
            "--quiet",
            "--no-cache",
            "--no-deps",
            "--python",
            "/opt/venv/bin/python",
            "--target",
            "/tools",
            "-r",
            "/sbom-tools.txt",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    if let Some(ca) = ca {
        devrun::ca_mount(&mut s, ca);
    }
    s
}

/// Making the SBOM: the script, the tools and the lock read-only, no network, the result in
/// `out` (mounted at /out) (pure).
pub struct MakeRun<'a> {
    pub project: &'a str,
    pub image: &'a str,
    pub tools: &'a Path,
    pub script: &'a Path,
    pub lock: &'a Path,
    pub out: &'a Path,
    pub subject_json: &'a str,
    pub user: Option<(u32, u32)>,
}

pub fn make_spec(r: &MakeRun<'_>) -> RunSpec {
    RunSpec {
        name: Some(policy::container_name(r.project, "sbom")),
        labels: devrun::labels(r.project, "sbom"),
        user: r.user,
        volumes: vec![
            format!("{}:/tools:ro", r.tools.display()),
            format!("{}:/sbom/sbom.py:ro", r.script.display()),
            format!("{}:/sbom/pylock.toml:ro", r.lock.display()),
            format!("{}:/out", r.out.display()),
        ],
        env: vec![("HOME".into(), "/tmp".into())],
        opts: RunOpts {
            network: Some("none".into()),
            ..Default::default()
        },
        image: r.image.to_string(),
        cmd: vec![
            "/opt/venv/bin/python".into(),
            "/sbom/sbom.py".into(),
            "/tools".into(),
            "/sbom/pylock.toml".into(),
            "/out/sbom.json".into(),
            r.subject_json.to_string(),
        ],
        ..Default::default()
    }
}

fn ensure_tools(ctx: &Ctx, args: &SbomArgs, facts: &ImageFacts) -> Result<PathBuf> {
    let pins_path = ctx.path(policy::SBOM_TOOLS);
    let pins = std::fs::read_to_string(&pins_path)
        .map_err(|e| fail(format!("{}: {e}", policy::SBOM_TOOLS)))?;
    let dir = tools_dir(&ctx.root, &facts.arch, &pins);
    if dir.join("cyclonedx_py").is_dir() || ctx.dry_run() {
        return Ok(dir);
    }
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = ctx.exec.remove_dir_all(&tmp);
    ctx.exec.create_dir_all(&tmp)?;
    let ca = policy::resolve_ca_bundle(args.ca_bundle.as_deref())?;
    ctx.info(format!(
        "sbom: installing the SBOM tools ({}) into {} (once per architecture)",
        policy::SBOM_TOOLS,
        dir.strip_prefix(&ctx.root).unwrap_or(&dir).display()
    ));
    let e = ctx.engine_ready()?;
    let spec = install_spec(
        &ctx.project,
        ctx.image(),
        &tmp,
        &pins_path,
        ca.as_deref(),
        policy::host_ids(),
    );
    let out = ctx.capture(cmd::run(e, &ctx.sh, &spec))?;
    if !out.ok() {
        let _ = ctx.exec.remove_dir_all(&tmp);
        return Err(fail(format!(
            "sbom: cannot install the SBOM tools from PyPI ({}); check the network, or pass the proxy's CA with --ca-bundle",
            out.first_error_line()
        )));
    }
    ctx.exec.rename(&tmp, &dir)?;
    Ok(dir)
}

/// The image's id, digest, architecture and labels (placeholders in a dry run without it).
fn image_facts(ctx: &Ctx, e: &crate::engine::Engine, image: &str) -> Result<ImageFacts> {
    let inspected = ctx.capture(cmd::image_inspect(e, &ctx.sh, INSPECT_FORMAT, image))?;
    match inspected.answer().as_deref().and_then(parse_inspect) {
        Some(f) => Ok(f),
        None if ctx.dry_run() => Ok(ImageFacts {
            id: "sha256:unknown".into(),
            digest: None,
            arch: "unknown".into(),
            labels: Default::default(),
        }),
        None => Err(fail(format!(
            "sbom: there is no image {image} here; build it with `cargo xtask image` (or `cargo xtask pull`), or name another with --image"
        ))),
    }
}

pub fn run(ctx: &Ctx, args: &SbomArgs) -> Result<()> {
    let image = ctx.image();
    let e = ctx.engine_ready()?;
    let facts = image_facts(ctx, e, image)?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&ctx.root, image));
    let tools = ensure_tools(ctx, args, &facts)?;
    let work = ctx
        .root
        .join("target/sbom")
        .join(format!("run-{}", std::process::id()));
    let _ = ctx.exec.remove_dir_all(&work);
    ctx.exec.create_dir_all(&work)?;
    let subject = serde_json::json!({
        "name": image,
        "id": facts.id,
        "digest": facts.digest.clone().unwrap_or_default(),
        "labels": facts.labels,
    })
    .to_string();
    let spec = make_spec(&MakeRun {
        project: &ctx.project,
        image,
        tools: &tools,
        script: &ctx.path(policy::SBOM_SCRIPT),
        lock: &ctx.path(policy::LOCKFILE),
        out: &work,
        subject_json: &subject,
        user: policy::host_ids(),
    });
    ctx.info(format!("sbom: {image} ({})", facts.arch));
    let made = ctx.capture(cmd::run(e, &ctx.sh, &spec));
    if ctx.dry_run() {
        return made.map(|_| ());
    }
    let made = made?;
    let result = std::fs::read(work.join("sbom.json"));
    let _ = ctx.exec.remove_dir_all(&work);
    if !made.ok() {
        return Err(fail(format!(
            "sbom: making the SBOM of {image} failed: {}",
            made.stderr
                .lines()
                .rev()
                .find(|l| l.starts_with("sbom:"))
                .map(String::from)
                .unwrap_or_else(|| made.first_error_line())
        )));
    }
    let bytes = result.map_err(|e| fail(format!("sbom: the SBOM was not written: {e}")))?;
    write_report(ctx, &output, &bytes, &made.stdout, &facts)
}

/// The SBOM in place (temp + rename), and one line saying what it holds.
fn write_report(
    ctx: &Ctx,
    output: &Path,
    bytes: &[u8],
    stdout: &str,
    facts: &ImageFacts,
) -> Result<()> {
    if let Some(dir) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        ctx.exec.create_dir_all(dir)?;
    }
    ctx.exec.write(output, bytes)?;
    let counts: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap_or_default();
    println!(
        "sbom: wrote {} (CycloneDX 1.6: {} Python and {} Debian packages; subject {})",
        output.display(),
        counts["pypi"],
        counts["deb"],
        facts.digest.as_deref().unwrap_or(&facts.id)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_answers() {
        let f = parse_inspect(
            r#"{"id":"sha256:ab","digests":["127.0.0.1:5000/x/lexalign-dev@sha256:cd"],"arch":"arm64","labels":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(f.id, "sha256:ab");
        assert_eq!(f.digest.as_deref(), Some("sha256:cd"));
        assert_eq!(f.arch, "arm64");
        assert_eq!(f.labels["a"], "b");
        let local =
            parse_inspect(r#"{"id":"sha256:ab","digests":[],"arch":"amd64","labels":null}"#)
                .unwrap();
        assert_eq!(local.digest, None);
        assert!(local.labels.is_empty());
        assert_eq!(parse_inspect("Error: No such image"), None);
    }

    #[test]
    fn output_and_tools_paths() {
        let root = Path::new("/r");
        assert_eq!(
            default_output(root, "ghcr.io/lexalign/lexalign-dev:latest"),
            Path::new("/r/target/sbom/ghcr.io_lexalign_lexalign-dev_latest.cdx.json")
        );
        let a = tools_dir(root, "amd64", "x==1\n");
        let b = tools_dir(root, "arm64", "x==1\n");
        let c = tools_dir(root, "amd64", "x==2\n");
        assert!(a != b && a != c);
        assert!(a
            .to_string_lossy()
            .starts_with("/r/target/sbom/tools-amd64-"));
    }

    #[test]
    fn the_sbom_run_has_no_network_and_reads_only_what_it_needs() {
        let spec = make_spec(&MakeRun {
            project: "lexalign",
            image: "img",
            tools: Path::new("/t"),
            script: Path::new("/s.py"),
            lock: Path::new("/l.toml"),
            out: Path::new("/o"),
            subject_json: "{}",
            user: Some((1000, 1000)),
        });
        assert_eq!(spec.opts.network.as_deref(), Some("none"));
        assert!(spec.volumes.contains(&"/t:/tools:ro".to_string()));
        assert!(spec.volumes.contains(&"/o:/out".to_string()));
        assert!(spec.volumes.iter().filter(|v| !v.ends_with(":ro")).count() == 1);
        assert_eq!(spec.cmd.last().map(String::as_str), Some("{}"));
        let install = install_spec(
            "lexalign",
            "img",
            Path::new("/d"),
            Path::new("/p"),
            None,
            None,
        );
        assert!(install.cmd.windows(2).any(|w| w == ["--target", "/tools"]));
        assert!(install.cmd.contains(&"--no-deps".to_string()));
        assert!(
            install.env_names.is_empty(),
            "no secret reaches the tool install"
        );
    }
}

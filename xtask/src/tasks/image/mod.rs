//! `cargo xtask image`: build docker/Dockerfile into the dev image, and say which base it used,
//! whether the dependency stages came from the cache, and the image's id, size and build time.
//! Over 400 lines: the build, its cold-build companion and the summary share one build spec and
//! one log; half the file is their pure, unit-tested helpers and tests.

use crate::build::{base, buildkit, target};
use crate::cli::ImageArgs;
use crate::ctx::Ctx;
use crate::engine::cmd::{self, BuildSpec};
use crate::engine::{validate_image_ref, BuildKit};
use crate::error::{exit, usage, Result};
use crate::git;
use crate::policy;
use crate::util::{human_bytes, now_rfc3339, secs, sha256_hex};
use std::path::Path;
use std::time::Instant;

/// The labels every dev image carries.
pub fn labels(ctx: &Ctx, lock: &[u8]) -> Vec<(String, String)> {
    let q = |args: &[&str]| git::answer(&ctx.exec, &ctx.sh, &ctx.root, args);
    let mut revision = git::head(&ctx.exec, &ctx.sh, &ctx.root).unwrap_or_else(|| "unknown".into());
    if git::dirty(&ctx.exec, &ctx.sh, &ctx.root) {
        revision.push_str("-dirty");
    }
    // The source's date, not the wall clock: the same commit gives the same image config.
    let created = q(&["log", "-1", "--format=%cI"]).unwrap_or_else(now_rfc3339);
    let source = q(&["config", "--get", "remote.origin.url"])
        .filter(|u| u.starts_with("https://"))
        .unwrap_or_else(|| "https://github.com/lexalign/lexalign".into());
    let (version, licenses) = project_meta(&ctx.path(policy::PYPROJECT));
    vec![
        (policy::OCI_TITLE.into(), policy::IMAGE_TITLE.into()),
        ("org.opencontainers.image.source".into(), source),
        ("org.opencontainers.image.revision".into(), revision),
        ("org.opencontainers.image.created".into(), created),
        ("org.opencontainers.image.version".into(), version),
        ("org.opencontainers.image.licenses".into(), licenses),
        (policy::LOCK_LABEL.into(), sha256_hex(lock)),
        (policy::PROJECT_LABEL.into(), ctx.project.clone()),
    ]
}

/// The project's version and SPDX license expression, from pyproject.toml (`license = {text}`
/// or a PEP 639 string); "0.0.0" and "NOASSERTION" when absent.
fn project_meta(pyproject: &Path) -> (String, String) {
    let table: Option<toml::Table> = std::fs::read_to_string(pyproject)
        .ok()
        .and_then(|t| t.parse().ok());
    let project = table.as_ref().and_then(|t| t.get("project"));
    let version = project
        .and_then(|p| p.get("version")?.as_str())
        .unwrap_or("0.0.0");
    let license = project.and_then(|p| p.get("license")).and_then(|l| {
        l.as_str()
            .or_else(|| l.get("text").and_then(|t| t.as_str()))
    });
    (
        version.to_string(),
        license.unwrap_or("NOASSERTION").to_string(),
    )
}

/// For each dependency stage found in a BuildKit plain log: (stage, every step cached?). Steps
/// are recognised by their stage name (`#9 [deps-heavy 2/2] RUN …`), not by the RUN text.
pub fn deps_stages(log: &str) -> Vec<(&'static str, bool)> {
    let mut out = Vec::new();
    for stage in policy::DEPS_STAGES {
        let prefix = format!("[{stage} ");
        let ids: Vec<&str> = log
            .lines()
            .filter_map(|l| l.strip_prefix('#')?.split_once(' '))
            .filter(|(_, desc)| desc.starts_with(&prefix))
            .map(|(id, _)| id)
            .collect();
        if !ids.is_empty() {
            let cached = ids.iter().all(|id| {
                let done = format!("#{id} CACHED");
                log.lines().any(|l| l.trim_end() == done)
            });
            out.push((stage, cached));
        }
    }
    out
}

/// "cached" when every dependency stage was, else which were rebuilt (pure).
pub fn deps_summary(log: &str) -> String {
    let stages = deps_stages(log);
    if stages.is_empty() {
        return "unknown".into();
    }
    if stages.iter().all(|(_, c)| *c) {
        return "cached".into();
    }
    let parts: Vec<String> = stages
        .iter()
        .map(|(n, c)| format!("{n} {}", if *c { "cached" } else { "rebuilt" }))
        .collect();
    format!("rebuilt ({})", parts.join(", "))
}

/// Whether to run, beside the build, a second one of the heavy stage alone (pure): on a cold
/// build the engine exports the 5 GB heavy layer while the other layers install (the two
/// builds share every step; measured 61 → 55 s here, docs/benchmarks-notes.md). Only when
/// the image is new or built with --no-cache (else the heavy layer is cached: nothing to
/// overlap) and the result goes to the engine's own store (not a cache export).
pub fn heavy_export_beside(mode: BuildKit, spec: &BuildSpec, image_exists: bool) -> bool {
    mode != BuildKit::Podman
        && spec.cache_from.is_none()
        && spec.cache_to.is_none()
        && spec.target.is_none()
        && (spec.no_cache || !image_exists)
}

/// The companion build: the same inputs up to the heavy stage, untagged, its id written to a
/// file in the temporary folder.
pub fn heavy_spec(spec: &BuildSpec) -> BuildSpec {
    let iid = std::env::temp_dir().join(format!(
        "lexalign-heavy-{}-{}.iid",
        std::process::id(),
        spec.tag.replace(['/', ':'], "_")
    ));
    BuildSpec {
        target: Some(policy::DEPS_STAGES[0].to_string()),
        iidfile: Some(iid),
        tag: String::new(),
        ..spec.clone()
    }
}

/// Two BuildKit logs as one for `deps_stages`: the step ids of the second renumbered past the
/// first's (pure).
pub fn merge_logs(first: &str, second: &str) -> String {
    let offset = first
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split_once(' ')?.0.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let mut out = String::from(first);
    for l in second.lines() {
        let renumbered = l
            .strip_prefix('#')
            .and_then(|r| r.split_once(' '))
            .and_then(|(id, rest)| Some(format!("#{} {rest}", id.parse::<u64>().ok()? + offset)));
        out.push('\n');
        out.push_str(renumbered.as_deref().unwrap_or(l));
    }
    out
}

/// Required inputs of a build (exit 2 with the path when missing): the lock's bytes.
pub fn check_inputs(root: &Path) -> Result<Vec<u8>> {
    let dockerfile = root.join(policy::DOCKERFILE);
    if !dockerfile.is_file() {
        return Err(usage(format!(
            "{} not found; run from a LexAlign checkout (or set LEXALIGN_ROOT)",
            dockerfile.display()
        )));
    }
    let lock_path = root.join(policy::LOCKFILE);
    std::fs::read(&lock_path).map_err(|e| {
        usage(format!(
            "{}: {e}; generate it with `cargo xtask lock`",
            lock_path.display()
        ))
    })
}

pub fn run(ctx: &Ctx, args: &ImageArgs) -> Result<()> {
    let started = Instant::now();
    if let Some(tag) = &args.tag {
        validate_image_ref(tag).map_err(|e| usage(format!("--tag {tag:?}: {e}")))?;
    }
    if args.base_image != "auto" {
        validate_image_ref(&args.base_image)
            .map_err(|e| usage(format!("--base-image {:?}: {e}", args.base_image)))?;
    }
    let lock = check_inputs(&ctx.root)?;
    let (spec, mode, base) = build_spec(ctx, args, &lock)?;
    let engine = ctx.engine()?;
    let tag = spec.tag.clone();
    let previous = ctx.image_id(&tag);
    let quiet = ctx.g.quiet;
    let beside = heavy_export_beside(mode, &spec, previous.is_some());
    let heavy = beside.then(|| heavy_spec(&spec));
    let start_companion = |h: &BuildSpec| ctx.exec.companion(cmd::build(engine, &ctx.sh, mode, h));
    // a dry run lists the main build first (nothing runs, so the order is only what it shows)
    let companion = match &heavy {
        Some(h) if !ctx.dry_run() => {
            ctx.info("a cold build: the heavy layer is exported while the other layers install");
            Some(start_companion(h)?)
        }
        _ => None,
    };
    let (code, mut log) = ctx
        .exec
        .lines(cmd::build(engine, &ctx.sh, mode, &spec), move |l| {
            if !quiet {
                eprintln!("{l}");
            }
        })?;
    if ctx.dry_run() {
        if let Some(h) = &heavy {
            start_companion(h)?;
        }
        return Ok(());
    }
    // the main build is done with the heavy layer, so its companion is too (or is stopped
    // here when the main build failed); its own image is only an export vehicle
    if let (Some(c), Some(h), 0) = (companion, &heavy, code) {
        if let Some((_, heavy_log)) = c.finish() {
            log = merge_logs(&log, &heavy_log);
        }
        let iid = h
            .iidfile
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok());
        if let Some(id) = iid.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
            let _ = ctx.capture(cmd::rmi(engine, &ctx.sh, id));
        }
    }
    if let Some(f) = heavy.as_ref().and_then(|h| h.iidfile.as_ref()) {
        let _ = ctx.exec.remove_file(f);
    }
    if code != 0 {
        if quiet {
            let lines: Vec<&str> = log.lines().collect();
            for l in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{l}");
            }
        }
        return Err(exit(
            code,
            format!(
                "image build failed (exit {code}); see the engine output above. Any previous image tagged {tag} is unchanged"
            ),
        ));
    }
    report(ctx, engine, &tag, previous, &base, &log, started)
}

/// What to build: the target platform, its base, the labels, the CA bundle as a secret; with
/// the BuildKit mode and the base image named.
fn build_spec(ctx: &Ctx, args: &ImageArgs, lock: &[u8]) -> Result<(BuildSpec, BuildKit, String)> {
    let ca_bundle = policy::resolve_ca_bundle(args.ca_bundle.as_deref())?;
    let engine = ctx.engine()?;
    let mode = buildkit(ctx, engine)?;
    let caching = args.cache_from.is_some() || args.cache_to.is_some();
    if caching && mode == BuildKit::LegacyEnv && !ctx.dry_run() {
        return Err(usage(
            "--cache-from/--cache-to need the buildx plugin (a docker-container builder for type=gha); this client builds with DOCKER_BUILDKIT=1, which cannot import or export cache",
        ));
    }
    if !ctx.dry_run() {
        ctx.engine_ready()?;
    }
    let target = target::resolve(ctx, args.platform.as_deref())?;
    let tag = target::image_tag(ctx, args.tag.as_deref(), &target);
    if target.foreign() {
        ctx.info(format!(
            "platform: {} on a {} engine, {} — expect a slower build",
            target.arch().platform(),
            target.native.platform(),
            target.emulation.describe()
        ));
    }
    let base = base::resolve_base(ctx, &args.base_image, target.arch(), target.native)?;
    if let Some(ca) = &ca_bundle {
        ctx.info(format!(
            "CA bundle: {} (as a build secret, not stored in the image)",
            ca.display()
        ));
    }
    let spec = BuildSpec {
        dockerfile: Some(ctx.path(policy::DOCKERFILE)),
        context: ctx.root.clone(),
        tag,
        build_args: vec![("BASE_IMAGE".into(), base.clone())],
        labels: labels(ctx, lock),
        secrets: ca_bundle
            .iter()
            .map(|p| (policy::CA_SECRET_ID.to_string(), p.clone()))
            .collect(),
        no_cache: args.no_cache,
        platform: target.platform_arg(),
        cache_from: args.cache_from.clone(),
        cache_to: args.cache_to.clone(),
        ..Default::default()
    };
    Ok((spec, mode, base))
}

/// The built image's id, size, architecture (and the replaced one removed), the HF cache
/// volume, and the summary lines.
fn report(
    ctx: &Ctx,
    engine: &crate::engine::Engine,
    tag: &str,
    previous: Option<String>,
    base: &str,
    log: &str,
    started: Instant,
) -> Result<()> {
    let inspect = ctx
        .capture(cmd::image_inspect(
            engine,
            &ctx.sh,
            "{{.Id}} {{.Size}} {{.Architecture}}",
            tag,
        ))?
        .stdout;
    let mut parts = inspect.split_whitespace();
    let id = parts.next().unwrap_or("?").to_string();
    let size: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let built_arch = parts.next().unwrap_or("?").to_string();
    // The image this build replaced is untagged now: remove it rather than leak gigabytes per
    // rebuild (`rmi` without -f: kept when a container or another tag still uses it).
    if let Some(old) = previous.filter(|old| *old != id) {
        let tags = ctx.capture(cmd::image_inspect(
            engine,
            &ctx.sh,
            "{{len .RepoTags}}",
            &old,
        ))?;
        if tags.answer().as_deref() == Some("0")
            && ctx.capture(cmd::rmi(engine, &ctx.sh, &old))?.ok()
            && ctx.g.verbose
        {
            eprintln!("removed the previous image {old}");
        }
    }
    // The HF cache volume, labelled so `clean` finds it.
    let _ = ctx.capture(cmd::volume_create(
        engine,
        &ctx.sh,
        &ctx.hf_volume(),
        &ctx.project_label(),
    ));
    println!("image:   {tag}");
    println!("id:      {id}");
    println!("size:    {} ({size} bytes)", human_bytes(size));
    println!("arch:    {built_arch}");
    println!("base:    {base}");
    println!("deps:    {}", deps_summary(log));
    println!("seconds: {:.1}", started.elapsed().as_secs_f64());
    ctx.info(format!("built {tag} in {}", secs(started.elapsed())));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_license_from_pyproject() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/xtask-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("meta-{}.toml", std::process::id()));
        for (text, want) in [
            (
                "[project]\nversion = \"1.2\"\nlicense = {text = \"MIT\"}\n",
                ("1.2", "MIT"),
            ),
            (
                "[project]\nversion = \"1.3\"\nlicense = \"Apache-2.0\"\n",
                ("1.3", "Apache-2.0"),
            ),
            ("[project]\nname = \"x\"\n", ("0.0.0", "NOASSERTION")),
        ] {
            std::fs::write(&p, text).unwrap();
            let (v, l) = project_meta(&p);
            assert_eq!((v.as_str(), l.as_str()), want);
        }
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn cached_dependency_stages_are_detected_by_stage_name() {
        let log = "#7 [deps-heavy 1/2] COPY --from=lock-split /a /a\n#7 CACHED\n\
                   #8 [deps-heavy 2/2] RUN set -eu; anything at all\n#8 CACHED\n\
                   #9 [deps 1/2] COPY python/pylock.toml /opt/lexalign/pylock.toml\n#9 CACHED\n\
                   #10 [deps 2/2] RUN whatever the text says\n#10 CACHED\n\
                   #11 [dev 3/5] COPY python/ /app/\n#11 DONE 0.1s\n";
        assert_eq!(deps_summary(log), "cached");
        let rebuilt = log.replace("#10 CACHED", "#10 0.3 Resolved\n#10 DONE 3s");
        assert_eq!(
            deps_summary(&rebuilt),
            "rebuilt (deps-heavy cached, deps rebuilt)"
        );
        assert_eq!(deps_summary("nothing"), "unknown");
        // a stage merely named like a prefix does not count
        assert_eq!(deps_summary("#3 [deps-other 1/1] RUN x\n"), "unknown");
    }

    #[test]
    fn the_heavy_layer_is_exported_beside_only_a_cold_build_into_the_engine_store() {
        let spec = BuildSpec {
            tag: "lexalign-dev:latest".into(),
            ..Default::default()
        };
        assert!(heavy_export_beside(BuildKit::LegacyEnv, &spec, false));
        assert!(!heavy_export_beside(BuildKit::LegacyEnv, &spec, true));
        let no_cache = BuildSpec {
            no_cache: true,
            ..spec.clone()
        };
        assert!(heavy_export_beside(BuildKit::Buildx, &no_cache, true));
        assert!(!heavy_export_beside(BuildKit::Podman, &no_cache, false));
        let gha = BuildSpec {
            cache_to: Some("type=gha".into()),
            ..no_cache.clone()
        };
        assert!(!heavy_export_beside(BuildKit::Buildx, &gha, false));
        let h = heavy_spec(&no_cache);
        assert!(
            !heavy_export_beside(BuildKit::LegacyEnv, &h, false),
            "no companion's companion"
        );
        assert_eq!(h.target.as_deref(), Some("deps-heavy"));
        assert!(h.no_cache && h.tag.is_empty());
        let line = cmd::build(
            &crate::engine::Engine::new("docker".into()),
            &xshell::Shell::new().unwrap(),
            BuildKit::LegacyEnv,
            &h,
        )
        .line();
        assert!(line.contains("--target deps-heavy --iidfile "), "{line}");
        assert!(
            !line.contains(" -t "),
            "the companion's image is not tagged: {line}"
        );
    }

    #[test]
    fn a_companion_log_counts_for_the_stages_it_rebuilt() {
        let main =
            "#9 [deps-heavy 2/2] RUN uv pip sync\n#9 CACHED\n#12 [deps 2/2] RUN uv\n#12 CACHED\n";
        let heavy = "#9 [deps-heavy 2/2] RUN uv pip sync\n#9 DONE 21.4s\n";
        assert_eq!(deps_summary(main), "cached");
        let both = merge_logs(main, heavy);
        assert!(both.contains("#21 [deps-heavy 2/2]") && both.contains("#21 DONE 21.4s"));
        assert_eq!(
            deps_summary(&both),
            "rebuilt (deps-heavy rebuilt, deps cached)"
        );
    }
}

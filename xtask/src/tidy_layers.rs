//! Tidy checks of the image's dependency layers: docker/lock_subset.py (what the Dockerfile's
//! lock-split stage runs) cuts the real lock by the heavy rule and the weight tiers of
//! `policy`. Unit tests; they need the host's python3 (3.11 or newer).

use crate::policy;
use crate::tidy::repo;
use std::path::Path;

/// Run docker/lock_subset.py (what the lock-split stage runs) on the real lock with the heavy
/// patterns (and a weight, if given); the subset's text.
fn lock_subset(tag: &str, min_mb: Option<u32>) -> String {
    let out = std::env::temp_dir().join(format!("tidy-{tag}-{}.toml", std::process::id()));
    let sh = xshell::Shell::new().unwrap();
    let mut cmd = sh
        .cmd("python3")
        .arg(repo().join("docker/lock_subset.py"))
        .arg(repo().join(policy::LOCKFILE))
        .arg(&out)
        .arg(policy::HEAVY_PACKAGES.join(" "));
    if let Some(mb) = min_mb {
        cmd = cmd.arg(mb.to_string());
    }
    let run = crate::exec::Exec::default()
        .capture(crate::exec::Proc::query(cmd))
        .unwrap();
    assert!(
        run.ok(),
        "python3 docker/lock_subset.py failed (python3 ≥ 3.11 is needed): {}",
        run.first_error_line()
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    text
}

#[test]
fn the_build_stage_splits_the_lock_by_the_heavy_rule() {
    // the heavy subset against policy::is_heavy over the same lock
    let subset = lock_subset("heavy", None);
    let lock_path = repo().join(policy::LOCKFILE);
    let lock =
        crate::lockfile::parse(&lock_path, &std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    let mut want: Vec<&str> = lock
        .packages
        .iter()
        .filter(|p| policy::is_heavy(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    let parsed = crate::lockfile::parse(Path::new("heavy.toml"), &subset).unwrap();
    let mut got: Vec<&str> = parsed.packages.iter().map(|p| p.name.as_str()).collect();
    want.sort();
    got.sort();
    assert!(want.contains(&"torch"));
    assert_eq!(got, want);
}

/// The size of a lock package's largest artifact (any wheel, or the sdist), in bytes.
fn largest_artifact(p: &toml::Value) -> i64 {
    let wheels = p
        .get("wheels")
        .and_then(|w| w.as_array())
        .cloned()
        .unwrap_or_default();
    let sdist = p
        .get("sdist")
        .and_then(|s| s.get("size"))
        .and_then(|s| s.as_integer());
    wheels
        .iter()
        .filter_map(|w| w.get("size").and_then(|s| s.as_integer()))
        .chain(sdist)
        .max()
        .unwrap_or(0)
}

/// "name version" of each package, sorted.
fn names(packages: &[toml::Value]) -> Vec<String> {
    let mut out: Vec<String> = packages
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    out.sort();
    out
}

/// docker/lock_subset.py's cut of the real lock at `mb` (the heavy packages included): its
/// packages and its text.
fn cut_tier(mb: u32, run: u32) -> (Vec<String>, String) {
    let text = lock_subset(&format!("tier-{mb}-{run}"), Some(mb));
    let v: toml::Value = toml::from_str(&text).unwrap();
    (names(v["packages"].as_array().unwrap()), text)
}

/// The tiers above the heavy one, as docker/lock_subset.py cuts them from the real lock: each
/// contains the one below; a package is in a tier when it is heavy or its largest artifact in
/// the lock reaches the tier's weight (read here from the lock with the toml crate, not the
/// script); the same lock gives the same bytes.
#[test]
fn the_dependency_tiers_follow_the_weight_rule() {
    let lock_path = repo().join(policy::LOCKFILE);
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    let packages = lock["packages"].as_array().unwrap();
    let mut below: Option<Vec<String>> = None;
    for (_, mb) in policy::LAYER_TIERS_MB {
        let (got, text) = cut_tier(mb, 1);
        assert_eq!(
            text,
            cut_tier(mb, 2).1,
            "the {mb} MB tier is not deterministic"
        );
        let chosen: Vec<toml::Value> = packages
            .iter()
            .filter(|p| {
                policy::is_heavy(p["name"].as_str().unwrap())
                    || largest_artifact(p) >= i64::from(mb) * 1_000_000
            })
            .cloned()
            .collect();
        assert_eq!(got, names(&chosen), "the {mb} MB tier");
        if let Some(b) = &below {
            assert!(b.iter().all(|n| got.contains(n)), "tiers must nest");
            assert!(got.len() > b.len(), "the {mb} MB tier adds nothing");
        }
        below = Some(got);
    }
    let big = below.unwrap();
    let has = |name: &str| big.iter().any(|n| n.starts_with(&format!("{name} ")));
    assert!(has("transformers") && has("pyarrow") && has("torch"));
    assert!(
        !has("rich") && !has("click"),
        "small packages belong to the last layer"
    );
}

//! The registry of benchmark groups: what each measures and the row ids it prints. `--only`
//! takes any printed id (or a group's id), so what the bench prints is what it accepts.

/// A group of rows measured together (they share set-up, or one row is the other's peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    ColdBuild,
    Rebuilds,
    LockChange,
    Startup,
    CliHelp,
    ImageSize,
    XtaskCompile,
    TrainOverhead,
    Packing,
    Preview,
    Sharding,
    Download,
    Arm64,
    Push,
    Multinode,
    HfPeer,
}

impl Group {
    /// The row ids this group prints, in order (the first is the group's own id).
    pub fn ids(self) -> &'static [&'static str] {
        match self {
            Group::ColdBuild => &["cold-build"],
            Group::Rebuilds => &["warm-rebuild", "noop-rebuild"],
            Group::LockChange => &["lock-change", "lock-change-nocache", "lock-change-mid"],
            Group::Startup => &[
                "container-start",
                "true-direct",
                "xtask-run",
                "cargo-xtask-run",
                "xtask-overhead",
                "cargo-xtask-overhead",
            ],
            Group::CliHelp => &[
                "help-download",
                "help-finetune",
                "help-align",
                "help-export",
                "help-generate",
            ],
            Group::ImageSize => &["image-size"],
            Group::XtaskCompile => &["xtask-compile", "xtask-help"],
            Group::TrainOverhead => &["train-overhead"],
            Group::Packing => &["packing"],
            Group::Preview => &["preview-1k"],
            Group::Sharding => &["sharding-memory", "sharding-steps"],
            Group::Download => &["download", "download-fixed", "download-1g", "download-link"],
            Group::Arm64 => &["arm64-image-size", "arm64-build"],
            Group::Push => &["push-cold", "push-warm", "pull-cold"],
            Group::Multinode => &["multinode"],
            Group::HfPeer => &["download-sharded", "download-large"],
        }
    }
}

/// Every group, in the order the report lists them.
pub const GROUPS: [Group; 16] = [
    Group::ColdBuild,
    Group::Rebuilds,
    Group::LockChange,
    Group::Startup,
    Group::CliHelp,
    Group::ImageSize,
    Group::XtaskCompile,
    Group::TrainOverhead,
    Group::Packing,
    Group::Preview,
    Group::Sharding,
    Group::Download,
    Group::Arm64,
    Group::Push,
    Group::Multinode,
    Group::HfPeer,
];

/// Every id the bench can print.
pub fn all_ids() -> Vec<&'static str> {
    GROUPS
        .iter()
        .flat_map(|g| g.ids().iter().copied())
        .collect()
}

/// The groups `--only` selects (all when empty); an unknown id is an error listing the known.
pub fn select(only: &[String]) -> Result<Vec<Group>, String> {
    if only.is_empty() {
        return Ok(GROUPS.to_vec());
    }
    let mut out = Vec::new();
    for o in only {
        let g = GROUPS
            .iter()
            .find(|g| g.ids().contains(&o.as_str()))
            .ok_or_else(|| format!("--only {o}: unknown row; rows: {}", all_ids().join(", ")))?;
        if !out.contains(g) {
            out.push(*g);
        }
    }
    Ok(out)
}

/// Whether a printed row is wanted (every row of the selected groups without --only).
pub fn wanted(only: &[String], id: &str) -> bool {
    only.is_empty() || only.iter().any(|o| o == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_id_is_accepted_and_unique() {
        let ids = all_ids();
        let mut dedup = ids.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), ids.len(), "ids are unique");
        for id in ids {
            let g = select(&[id.to_string()]).unwrap();
            assert_eq!(g.len(), 1);
            assert!(g[0].ids().contains(&id));
        }
        let e = select(&["nope".into()]).unwrap_err();
        assert!(e.contains("unknown row") && e.contains("help-download"));
        assert_eq!(select(&[]).unwrap().len(), GROUPS.len());
        let two = select(&["help-align".into(), "help-download".into()]).unwrap();
        assert_eq!(two, vec![Group::CliHelp]);
    }
}

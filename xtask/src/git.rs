//! git queries (pure builders; the execution layer runs them). Used for image labels, the base
//! image's SOURCE_DATE_EPOCH and the bench's metadata.

use crate::exec::{Exec, Proc};
use std::path::Path;
use xshell::Shell;

/// `git -C ROOT ARGS…` (read-only).
pub fn query(sh: &Shell, root: &Path, args: &[&str]) -> Proc {
    Proc::query(sh.cmd("git").arg("-C").arg(root).args(args))
}

/// The trimmed answer of a git query, None when git fails or says nothing.
pub fn answer(exec: &Exec, sh: &Shell, root: &Path, args: &[&str]) -> Option<String> {
    exec.capture(query(sh, root, args)).ok()?.answer()
}

pub fn head(exec: &Exec, sh: &Shell, root: &Path) -> Option<String> {
    answer(exec, sh, root, &["rev-parse", "HEAD"])
}

/// Tracked files differ from HEAD.
pub fn dirty(exec: &Exec, sh: &Shell, root: &Path) -> bool {
    answer(
        exec,
        sh,
        root,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_some()
}

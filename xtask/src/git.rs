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

/// HEAD's commit read from the repository's files (no process: a dev run asks it before every
/// start); None where they say something this does not follow (then ask git: `head`).
pub fn head_from_files(root: &Path) -> Option<String> {
    let dot = root.join(".git");
    let dir = if dot.is_file() {
        // a worktree or submodule: `gitdir: PATH`
        let text = std::fs::read_to_string(&dot).ok()?;
        root.join(text.strip_prefix("gitdir:")?.trim())
    } else {
        dot
    };
    let head = std::fs::read_to_string(dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref:").map(str::trim) else {
        return is_sha(head).then(|| head.to_string());
    };
    if let Ok(sha) = std::fs::read_to_string(dir.join(name)) {
        return Some(sha.trim().to_string()).filter(|s| is_sha(s));
    }
    let packed = std::fs::read_to_string(dir.join("packed-refs")).ok()?;
    packed
        .lines()
        .find_map(|l| l.strip_suffix(name)?.strip_suffix(' '))
        .filter(|s| is_sha(s))
        .map(String::from)
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_from_files_follows_refs_packed_refs_and_detached_heads() {
        let dir = std::env::temp_dir().join(format!("git-head-{}", std::process::id()));
        let git = dir.join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(git.join("refs/heads/main"), format!("{a}\n")).unwrap();
        assert_eq!(head_from_files(&dir), Some(a.clone()));
        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs\n{b} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(head_from_files(&dir), Some(b.clone()));
        std::fs::write(git.join("HEAD"), format!("{a}\n")).unwrap();
        assert_eq!(head_from_files(&dir), Some(a));
        std::fs::write(git.join("HEAD"), "ref: refs/heads/gone\n").unwrap();
        assert_eq!(head_from_files(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
        // this repository: the same answer as git's
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sh = Shell::new().unwrap();
        if let Some(from_git) = head(&Exec::default(), &sh, root) {
            assert_eq!(head_from_files(root), Some(from_git));
        }
    }
}

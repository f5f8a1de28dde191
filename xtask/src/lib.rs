//! The LexAlign dev-environment automation as a library: the `xtask` binary (main.rs) parses
//! and dispatches; the end-to-end tests in tests/ import `policy` (names, labels, paths) and the
//! pure command builders instead of retyping them.
//!
//! Dependencies run one way (docs/architecture.md):
//!   main → tasks → {build, pinning, ctx, devrun, engine, exec, git, lockfile, policy} → error
//! each task lives in `tasks/` with one entry point; `exec` is the only module that starts
//! processes; `engine::cmd` is the only place engine argv is spelled; `policy` holds the names,
//! labels and paths shared with docker/.

pub mod build;
pub mod cli;
pub mod ctx;
pub mod devrun;
pub mod engine;
pub mod error;
pub mod exec;
pub mod git;
pub mod lockfile;
// The lock group lives in lockfile/ (pylock.toml, PEP 508 requirements and markers, the pin
// rewriter, diffs): pure code that tasks use and that uses nothing of theirs.
pub use lockfile::{diff, marker, pinning, requirement};
pub mod oci;
pub mod platform;
pub mod policy;
pub mod registry;
pub mod signals;
pub mod tasks;
pub mod util;

#[cfg(test)]
pub mod docs_check;
#[cfg(test)]
pub mod tidy;
#[cfg(test)]
pub mod tidy_layers;

//! File effects of the tasks, through the execution layer like processes: under `--dry-run`
//! each is printed (`# would write …`) and none is made; with `-v` each is echoed.

use super::Exec;
use std::io;
use std::path::Path;

impl Exec {
    /// true when the effect must not happen (a dry run), after saying what it would be.
    fn file_effect(&self, what: &str, path: &Path) -> bool {
        if self.dry_run {
            println!("# would {what} {}", path.display());
        } else if self.verbose {
            eprintln!("+ {what} {}", path.display());
        }
        self.dry_run
    }

    /// Write a whole file atomically (temp file + rename).
    pub fn write(
        &self,
        path: impl AsRef<Path>,
        bytes: impl AsRef<[u8]>,
    ) -> crate::error::Result<()> {
        let path = path.as_ref();
        if self.file_effect("write", path) {
            return Ok(());
        }
        crate::util::atomic_write(path, bytes.as_ref())
    }

    pub fn create_dir_all(&self, path: impl AsRef<Path>) -> io::Result<()> {
        if self.file_effect("create", path.as_ref()) {
            return Ok(());
        }
        std::fs::create_dir_all(path)
    }

    pub fn remove_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        if self.file_effect("remove", path.as_ref()) {
            return Ok(());
        }
        std::fs::remove_file(path)
    }

    pub fn remove_dir_all(&self, path: impl AsRef<Path>) -> io::Result<()> {
        if self.file_effect("remove", path.as_ref()) {
            return Ok(());
        }
        std::fs::remove_dir_all(path)
    }

    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let what = format!("move {} to", from.as_ref().display());
        if self.file_effect(&what, to.as_ref()) {
            return Ok(());
        }
        std::fs::rename(from, to)
    }

    pub fn copy(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
        let what = format!("copy {} to", from.as_ref().display());
        if self.file_effect(&what, to.as_ref()) {
            return Ok(0);
        }
        std::fs::copy(from, to)
    }
}

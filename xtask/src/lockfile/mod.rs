//! Reading lockfiles: PEP 751 `pylock.toml` (serde + toml) or requirements-style
//! `name==version` lines (with `--hash` continuations and markers).

pub mod diff;
pub mod marker;
pub mod pinning;
pub mod requirement;

use crate::error::usage;
use anyhow::Result;
use serde::Deserialize;
use std::path::Path;

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// A marker in a comparable form: no whitespace, one quote style.
pub fn normalize_marker(marker: &str) -> String {
    marker
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// Normalised name.
    pub name: String,
    pub version: String,
    pub marker: Option<String>,
    /// Wheel file names (pylock.toml only; empty for requirements files).
    pub wheels: Vec<String>,
    /// The lock carries a hash-checked source archive (pylock.toml `sdist`).
    pub sdist: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Lock {
    pub packages: Vec<Locked>,
}

impl Lock {
    pub fn entries(&self, normalized: &str) -> Vec<&Locked> {
        self.packages
            .iter()
            .filter(|p| p.name == normalized)
            .collect()
    }
    pub fn versions_of(&self, name: &str) -> Vec<&str> {
        let n = normalize(name);
        self.packages
            .iter()
            .filter(|p| p.name == n)
            .map(|p| p.version.as_str())
            .collect()
    }
}

#[derive(Deserialize)]
struct PyLock {
    #[serde(rename = "lock-version")]
    lock_version: Option<String>,
    #[serde(default)]
    packages: Vec<PyLockPackage>,
}

#[derive(Deserialize)]
struct PyLockPackage {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    #[serde(default)]
    wheels: Vec<PyLockWheel>,
    sdist: Option<toml::Value>,
}

#[derive(Deserialize)]
struct PyLockWheel {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
}

impl PyLockWheel {
    fn file_name(&self) -> Option<String> {
        if let Some(n) = &self.name {
            return Some(n.clone());
        }
        let loc = self.url.as_deref().or(self.path.as_deref())?;
        Some(
            loc.rsplit('/')
                .next()?
                .split(['?', '#'])
                .next()?
                .to_string(),
        )
    }
}

/// Line and column (1-based) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parse a lockfile; the format follows the file name (`.toml` → PEP 751). Errors exit 2.
pub fn parse(path: &Path, text: &str) -> Result<Lock> {
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if is_toml {
        parse_pylock(path, text)
    } else {
        parse_requirements(path, text)
    }
}

fn parse_pylock(path: &Path, text: &str) -> Result<Lock> {
    let raw: PyLock = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        usage(format!(
            "{}:{line}:{col}: invalid pylock.toml: {}",
            path.display(),
            e.message()
        ))
    })?;
    match raw.lock_version.as_deref() {
        Some(v) if v.split('.').next() == Some("1") => {}
        Some(v) => {
            return Err(usage(format!(
                "{}: unsupported lock-version {v:?} (this tool reads PEP 751 lock-version 1.x)",
                path.display()
            )))
        }
        None => {
            return Err(usage(format!(
                "{}: no `lock-version` key, so this is not a PEP 751 pylock.toml; regenerate it with `cargo xtask lock`",
                path.display()
            )))
        }
    }
    let mut packages = Vec::new();
    for p in raw.packages {
        // Packages without a version (direct URL/VCS sources) cannot be pinned.
        if let Some(version) = p.version {
            packages.push(Locked {
                name: normalize(&p.name),
                version,
                marker: p.marker,
                wheels: p.wheels.iter().filter_map(PyLockWheel::file_name).collect(),
                sdist: p.sdist.is_some(),
            });
        }
    }
    Ok(Lock { packages })
}

fn parse_requirements(path: &Path, text: &str) -> Result<Lock> {
    let mut packages = Vec::new();
    let mut logical = String::new();
    let mut start_line = 1;
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        if logical.is_empty() {
            start_line = i + 1;
        }
        let line = raw.trim_end_matches('\r');
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            logical.push(' ');
            if i + 1 < lines.len() {
                continue;
            }
        } else {
            logical.push_str(line);
        }
        let entry = std::mem::take(&mut logical);
        // Comments: `#` at the start or after whitespace.
        let content = match entry.find(" #") {
            Some(i) => &entry[..i],
            None => entry.as_str(),
        };
        let content = content.trim();
        if content.is_empty() || content.starts_with('#') || content.starts_with('-') {
            continue;
        }
        let words: Vec<&str> = content
            .split_whitespace()
            .filter(|w| !w.starts_with("--hash"))
            .collect();
        let req = words.join(" ");
        let (spec, marker) = match req.split_once(';') {
            Some((s, m)) => (s.trim(), Some(m.trim().to_string())),
            None => (req.trim(), None),
        };
        let Some((name, version)) = spec.split_once("==") else {
            return Err(usage(format!(
                "{}:{start_line}: `{spec}` is not an exact `name==version` pin; a lock must pin every package",
                path.display()
            )));
        };
        let name = name.split('[').next().unwrap_or(name).trim();
        let version = version.trim_start_matches('=').trim();
        if name.is_empty() || version.is_empty() || version.contains([',', '<', '>', '*']) {
            return Err(usage(format!(
                "{}:{start_line}: `{spec}` is not an exact `name==version` pin",
                path.display()
            )));
        }
        packages.push(Locked {
            name: normalize(name),
            version: version.to_string(),
            marker,
            wheels: Vec::new(),
            sdist: false,
        });
    }
    if packages.is_empty()
        && !text.trim().is_empty()
        && !text.lines().any(|l| l.trim_start().starts_with('#'))
    {
        return Err(usage(format!(
            "{}: unknown lockfile format (expected pylock.toml or `name==version` lines)",
            path.display()
        )));
    }
    Ok(Lock { packages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503() {
        assert_eq!(normalize("PyYAML"), "pyyaml");
        assert_eq!(normalize("ruamel.yaml"), "ruamel-yaml");
        assert_eq!(normalize("huggingface_hub"), "huggingface-hub");
        assert_eq!(normalize("Foo__Bar-.baz"), "foo-bar-baz");
    }

    #[test]
    fn pylock_with_markers() {
        let text = r#"
lock-version = "1.0"
created-by = "uv"
[[packages]]
name = "numpy"
version = "2.4.6"
marker = "python_full_version < '3.12'"
[[packages]]
name = "numpy"
version = "2.5.5"
marker = "python_full_version >= '3.12'"
[[packages]]
name = "PyYAML"
version = "6.0.2"
[[packages]]
name = "local-thing"
"#;
        let lock = parse(Path::new("pylock.toml"), text).unwrap();
        assert_eq!(lock.versions_of("numpy"), vec!["2.4.6", "2.5.5"]);
        assert_eq!(lock.versions_of("pyyaml"), vec!["6.0.2"]);
        assert!(lock.versions_of("local-thing").is_empty());
    }

    #[test]
    fn pylock_errors_exit_2_with_location() {
        let e = parse(
            Path::new("x/pylock.toml"),
            "lock-version = \"1.0\"\n[[packages]\n",
        )
        .unwrap_err();
        let exit = e.downcast_ref::<crate::error::Exit>().unwrap();
        assert_eq!(exit.code, 2);
        let m = exit.msg.clone().unwrap();
        assert!(m.starts_with("x/pylock.toml:2:"), "{m}");
        let e = parse(Path::new("p.toml"), "lock-version = \"2.0\"\n").unwrap_err();
        assert!(e.to_string().contains("unsupported lock-version"));
        let e = parse(Path::new("p.toml"), "[tool]\n").unwrap_err();
        assert!(e.to_string().contains("lock-version"));
    }

    #[test]
    fn requirements_style() {
        let text = "# comment\n--index-url https://x\ntorch==2.6.0+cu124 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\nPyYAML==6.0.2 ; sys_platform == 'linux'\nfoo[bar]==1.0rc1  # trailing\n";
        let lock = parse(Path::new("requirements.lock"), text).unwrap();
        assert_eq!(lock.packages.len(), 3);
        assert_eq!(lock.packages[0].version, "2.6.0+cu124");
        assert_eq!(lock.packages[1].name, "pyyaml");
        assert_eq!(
            lock.packages[1].marker.as_deref(),
            Some("sys_platform == 'linux'")
        );
        assert_eq!(lock.packages[2].version, "1.0rc1");
        let e = parse(Path::new("req.txt"), "torch>=2.0\n").unwrap_err();
        assert!(e.to_string().contains("req.txt:1"));
    }

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("x", 0), (1, 1));
    }
}

//! The pin rewriter (a library: `pins` and `lock` use it, and bench's floor build): write
//! `==VERSION` from the lockfile into a pyproject.toml's text, or relax pins into lower bounds.
//!
//! Only the changed strings are rewritten, in place, in the original text (spans from
//! toml_edit's parser), so comments, ordering, quoting, array layout, trailing commas and
//! CRLF line endings survive byte for byte. The write is atomic; a second run is a no-op.

use crate::error::usage;
use crate::lockfile::{self, line_col, normalize, normalize_marker, Lock};
use crate::requirement;
use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where: `project.dependencies[3]`.
    pub at: String,
    pub package: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Default)]
pub struct Synced {
    pub text: String,
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
}

/// A requirement string found in the document.
struct Found {
    at: String,
    list: String,
    value: String,
    span: std::ops::Range<usize>,
}

fn collect(doc: &toml_edit::Document<&str>) -> Vec<Found> {
    let mut found = Vec::new();
    let mut take = |list: String, arr: &toml_edit::Array| {
        for (i, v) in arr.iter().enumerate() {
            // `{include-group = "…"}` and anything that is not a string is left alone.
            if let (Some(s), Some(span)) = (v.as_str(), v.span()) {
                found.push(Found {
                    at: format!("{list}[{i}]"),
                    list: list.clone(),
                    value: s.to_string(),
                    span,
                });
            }
        }
    };
    if let Some(project) = doc.get("project").and_then(|p| p.as_table_like()) {
        if let Some(arr) = project.get("dependencies").and_then(|d| d.as_array()) {
            take("project.dependencies".into(), arr);
        }
        if let Some(opt) = project
            .get("optional-dependencies")
            .and_then(|o| o.as_table_like())
        {
            for (k, v) in opt.iter() {
                if let Some(arr) = v.as_array() {
                    take(format!("project.optional-dependencies.{k}"), arr);
                }
            }
        }
    }
    if let Some(groups) = doc.get("dependency-groups").and_then(|g| g.as_table_like()) {
        for (k, v) in groups.iter() {
            if let Some(arr) = v.as_array() {
                take(format!("dependency-groups.{k}"), arr);
            }
        }
    }
    found
}

/// Re-encode `value` in the quoting style of `raw` (the original TOML string token).
fn encode_like(raw: &str, value: &str) -> String {
    let basic = |delim: &str| {
        let mut s = String::from(delim);
        for c in value.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\t' => s.push_str("\\t"),
                '\n' if delim.len() == 1 => s.push_str("\\n"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    s.push_str(&format!("\\u{:04X}", c as u32))
                }
                c => s.push(c),
            }
        }
        s.push_str(delim);
        s
    };
    if raw.starts_with("'''") && !value.contains("'''") {
        format!("'''{value}'''")
    } else if raw.starts_with('\'') && !raw.starts_with("'''") && !value.contains(['\'', '\n']) {
        format!("'{value}'")
    } else if raw.starts_with("\"\"\"") {
        basic("\"\"\"")
    } else {
        basic("\"")
    }
}

/// Pick the locked version for a requirement (pure). Two versions under different markers
/// map by the requirement's marker, or are an error naming both — never collapsed.
fn choose<'l>(
    lock_entries: &[&'l lockfile::Locked],
    marker: Option<&str>,
    name: &str,
) -> Result<&'l str, String> {
    let mut versions: Vec<&str> = lock_entries.iter().map(|e| e.version.as_str()).collect();
    versions.dedup();
    versions.sort();
    versions.dedup();
    if versions.len() == 1 {
        return Ok(&lock_entries[0].version);
    }
    if let Some(m) = marker {
        let want = normalize_marker(m);
        if let Some(e) = lock_entries
            .iter()
            .find(|e| e.marker.as_deref().map(normalize_marker).as_deref() == Some(want.as_str()))
        {
            return Ok(&e.version);
        }
    }
    let listed: Vec<String> = lock_entries
        .iter()
        .map(|e| {
            format!(
                "{} (marker {})",
                e.version,
                e.marker.as_deref().unwrap_or("none")
            )
        })
        .collect();
    Err(format!(
        "`{name}` is locked at {}; list it in pyproject.toml once per marker, with the lock's markers",
        listed.join(" and ")
    ))
}

/// `text` parsed, with a [project] table (pure). Errors exit 2 and say where.
fn project_document<'a>(text: &'a str, path: &Path) -> Result<toml_edit::Document<&'a str>> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let (line, col) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        usage(format!(
            "{}:{line}:{col}: invalid TOML: {}",
            path.display(),
            e.message().trim()
        ))
    })?;
    if doc.get("project").and_then(|p| p.as_table_like()).is_none() {
        return Err(usage(format!(
            "{}:1:1: no [project] table; pins are written to [project.dependencies]",
            path.display()
        )));
    }
    Ok(doc)
}

/// Sync `text` (a pyproject.toml) with `lock` (pure). Errors exit 2.
pub fn sync(text: &str, path: &Path, lock: &Lock, strict: bool) -> Result<Synced> {
    let found = collect(&project_document(text, path)?);
    let mut out = Synced::default();
    let mut errors = Vec::new();
    let mut seen: HashMap<(String, String, String), String> = HashMap::new();
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for f in &found {
        let Some(req) = requirement::parse(&f.value) else {
            continue; // paths and other non-PEP 508 strings
        };
        let norm = normalize(req.name);
        let key = (
            f.list.clone(),
            norm.clone(),
            req.marker.map(normalize_marker).unwrap_or_default(),
        );
        if let Some(prev) = seen.insert(key, f.value.clone()) {
            errors.push(format!(
                "{}: duplicate requirement for `{norm}` in {}: {prev:?} and {:?}; keep one",
                path.display(),
                f.list,
                f.value
            ));
            continue;
        }
        if req.is_url {
            continue;
        }
        let entries = lock.entries(&norm);
        if entries.is_empty() {
            let msg = format!("{}: `{}` is not in the lock", f.at, req.name);
            if strict {
                errors.push(format!("{}: {msg}; run `cargo xtask lock`", path.display()));
            } else {
                out.warnings.push(msg);
            }
            continue;
        }
        let version = match choose(&entries, req.marker, req.name) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{}: {}: {e}", path.display(), f.at));
                continue;
            }
        };
        let new = req.pinned(version);
        if new != f.value {
            let raw = &text[f.span.clone()];
            edits.push((f.span.clone(), encode_like(raw, &new)));
            out.changes.push(Change {
                at: f.at.clone(),
                package: req.name.to_string(),
                old: f.value.clone(),
                new,
            });
        }
    }
    if !errors.is_empty() {
        return Err(usage(errors.join("\nerror: ")));
    }
    let mut result = text.to_string();
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    for (span, raw) in edits {
        result.replace_range(span, &raw);
    }
    out.text = result;
    Ok(out)
}

/// For `lock --upgrade[-package]`: turn the `==V` pins of the named packages (all when `names`
/// is None) into `>=V`, so the resolver may move them up (pure; same in-place editing).
pub fn relax(text: &str, path: &Path, names: Option<&[String]>) -> Result<String> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        usage(format!(
            "{}: invalid TOML: {}",
            path.display(),
            e.message().trim()
        ))
    })?;
    let wanted: Option<Vec<String>> = names.map(|n| n.iter().map(|s| normalize(s)).collect());
    let mut edits = Vec::new();
    for f in collect(&doc) {
        let Some(req) = requirement::parse(&f.value) else {
            continue;
        };
        if req.is_url {
            continue;
        }
        if let Some(w) = &wanted {
            if !w.contains(&normalize(req.name)) {
                continue;
            }
        }
        if let Some(v) = req.spec.strip_prefix("==") {
            if !v.contains([',', '*']) {
                let new = format!(
                    "{}>={}{}",
                    f.value[..req.head_end].trim_end(),
                    v.trim(),
                    &f.value[req.tail_start..]
                );
                edits.push((f.span.clone(), encode_like(&text[f.span.clone()], &new)));
            }
        }
    }
    let mut out = text.to_string();
    edits.sort_by_key(|(s, _)| std::cmp::Reverse(s.start));
    for (span, raw) in edits {
        out.replace_range(span, &raw);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

//! Keeps README.md and docs/ honest (tests only): every `cargo xtask …` command line they show
//! parses with the real clap definition, every repository path they name or link exists, and
//! the README's first-run block is the one python/tests/test_first_run.py runs.

use crate::cli::Cli;
use clap::Parser;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// README.md and docs/*.md, as (relative path, text).
fn documents() -> Vec<(String, String)> {
    let mut out = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(repo().join("README.md")).unwrap(),
    )];
    let mut docs: Vec<_> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for p in docs {
        let rel = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        out.push((rel, std::fs::read_to_string(&p).unwrap()));
    }
    out
}

/// Split a shell line into words: quotes group, a `#` outside quotes starts a comment.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if cur.is_empty() => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (_, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Command lines shown as commands: lines of fenced code blocks, and inline code spans, that
/// start with `cargo xtask`. Spans that describe syntax (`[…]`, `A|B`, `…`, `<x>`) are not
/// command lines and are skipped; so are lines continued with `\`.
fn xtask_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let mut candidates = Vec::new();
        if fenced {
            candidates.push(line.trim().to_string());
        } else {
            candidates.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        }
        for c in candidates {
            let c = c.trim().to_string();
            let syntax = ['[', '|', '…', '<'].iter().any(|s| c.contains(*s)) || c.ends_with('\\');
            if c.starts_with("cargo xtask") && !syntax {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn every_xtask_command_line_in_the_docs_parses() {
    let mut seen = 0;
    let mut bad = Vec::new();
    for (file, text) in documents() {
        for line in xtask_lines(&text) {
            let words = shell_words(&line);
            // "cargo xtask ARGS" → argv[0] = "cargo xtask"
            let argv: Vec<String> = std::iter::once("cargo xtask".to_string())
                .chain(words.into_iter().skip(2))
                .collect();
            if argv.len() == 1 {
                continue; // `cargo xtask` alone, as a name
            }
            seen += 1;
            if let Err(e) = Cli::try_parse_from(&argv) {
                if !matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) {
                    bad.push(format!(
                        "{file}: `{line}`: {}",
                        e.to_string().lines().next().unwrap_or("")
                    ));
                }
            }
        }
    }
    assert!(
        seen > 20,
        "found only {seen} command lines; is the extraction broken?"
    );
    assert!(
        bad.is_empty(),
        "command lines the CLI rejects:\n{}",
        bad.join("\n")
    );
}

/// Repository paths named in backticks (`docker/compose.yaml`) or linked (a markdown link to a path).
fn named_paths(file: &str, text: &str) -> Vec<PathBuf> {
    const ROOTS: [&str; 9] = [
        "docker/",
        "python/",
        "docs/",
        "xtask/",
        "tests/",
        ".ci/",
        ".github/",
        ".devcontainer/",
        ".cargo/",
    ];
    // Folders the first run creates (git-ignored), named as where outputs go.
    const CREATED: [&str; 2] = ["python/models", "python/outputs"];
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let span = span.trim().trim_end_matches('/');
        let plain = !span.contains(['*', '<', '…', ' ', '{', '$', '|', '[']);
        let created = CREATED.iter().any(|c| span.starts_with(c));
        if plain && !created && ROOTS.iter().any(|r| span.starts_with(r)) {
            out.push(repo().join(span));
        }
    }
    for link in text.split("](").skip(1) {
        let target = link
            .split(')')
            .next()
            .unwrap_or("")
            .split('#')
            .next()
            .unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(repo().join(base).join(target));
        }
    }
    out
}

#[test]
fn every_repository_path_in_the_docs_exists() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for (file, text) in documents() {
        for p in named_paths(&file, &text) {
            seen += 1;
            if !p.exists() {
                missing.push(format!(
                    "{file}: {}",
                    p.strip_prefix(repo()).unwrap_or(&p).display()
                ));
            }
        }
    }
    assert!(
        seen > 20,
        "found only {seen} paths; is the extraction broken?"
    );
    assert!(
        missing.is_empty(),
        "paths the docs name that do not exist:\n{}",
        missing.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces → `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings.
fn anchors(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `file.md#anchor` targets of markdown links: (file the link resolves to, anchor).
fn linked_sections(file: &str, text: &str) -> Vec<(PathBuf, String)> {
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for link in text.split("](").skip(1) {
        let target = link.split(')').next().unwrap_or("");
        let Some((path, anchor)) = target.split_once('#') else {
            continue;
        };
        if target.contains("://") {
            continue;
        }
        let doc = if path.is_empty() {
            repo().join(file)
        } else {
            repo().join(base).join(path)
        };
        out.push((doc, anchor.to_string()));
    }
    out
}

#[test]
fn every_section_the_docs_link_exists() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for (file, text) in documents() {
        for (doc, anchor) in linked_sections(&file, &text) {
            seen += 1;
            if !anchors(&doc).contains(&anchor) {
                missing.push(format!("{file}: {}#{anchor}", doc.display()));
            }
        }
    }
    assert!(
        seen >= 2,
        "found only {seen} section links; is the extraction broken?"
    );
    assert!(
        missing.is_empty(),
        "links to sections that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Source files whose comments may cite documents: the xtask, the Python package and its
/// tests, the Rust tests, docker/.
fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("__pycache__") {
                    walk(&p, out);
                }
            } else if p
                .extension()
                .is_some_and(|x| x == "rs" || x == "py" || x == "sh")
                || p.file_name().is_some_and(|n| n == "Dockerfile")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for d in [
        "xtask/src",
        "python/lexalign",
        "python/tests",
        "tests/tests",
        "docker",
    ] {
        walk(&repo().join(d), &mut out);
    }
    out
}

#[test]
fn code_cites_only_documents_and_sections_that_exist() {
    // spelled in two halves, so this file does not cite it itself
    let outside = format!("design {}", '§');
    let mut problems = Vec::new();
    for f in sources() {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        if text.contains(&outside) {
            problems.push(format!(
                "{name}: cites \"{outside}\" of a document that is not in this repository"
            ));
        }
        for word in text.split(|c: char| c.is_whitespace() || "(),;`'\"[]".contains(c)) {
            let Some(at) = word.find("docs/") else {
                continue;
            };
            let cited = word[at..].trim_end_matches(['.', ':']);
            let (path, anchor) = cited.split_once('#').unwrap_or((cited, ""));
            if !path.ends_with(".md") || path.contains(['*', '<', '{', '…']) {
                continue;
            }
            let doc = repo().join(path);
            if !doc.is_file() {
                problems.push(format!("{name}: cites {path}, which does not exist"));
            } else if !anchor.is_empty() && !anchors(&doc).contains(&anchor.to_string()) {
                problems.push(format!(
                    "{name}: cites {path}#{anchor}, which has no such section"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_first_run_is_the_one_its_test_runs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block = readme
        .split("## First run")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let test = std::fs::read_to_string(repo().join("python/tests/test_first_run.py")).unwrap();
    let steps: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("cargo xtask run -- python "))
        .collect();
    assert_eq!(steps.len(), 5, "{block}");
    for s in steps {
        assert!(
            test.contains(&format!("\n{s}\n")),
            "test_first_run.py does not run `{s}`"
        );
    }
}

#[test]
fn shipped_configs_point_at_files_that_exist() {
    for (cfg, key) in [
        ("python/config/finetune.yaml", "path:"),
        ("python/config/align.yaml", "path:"),
    ] {
        let text = std::fs::read_to_string(repo().join(cfg)).unwrap();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        let path = line
            .trim_start()
            .trim_start_matches(key)
            .split('#')
            .next()
            .unwrap()
            .trim();
        assert!(
            repo().join("python").join(path).is_file(),
            "{cfg}: {path} does not exist"
        );
    }
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(r#"a "b c" 'd' e # note"#),
        ["a", "b c", "d", "e"]
    );
    assert_eq!(
        shell_words(r#"x -m "not integration""#),
        ["x", "-m", "not integration"]
    );
    assert_eq!(shell_words(r#"x """#), ["x", ""]);
}

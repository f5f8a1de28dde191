//! Tidy checks (in the spirit of rust-analyzer's `tidy.rs`): the layout rules of this crate and
//! the python package, and every fact docker/ shares with `policy`. They read files; they run
//! as unit tests. Over 400 lines: every layout rule lives here, next to the others, one
//! self-contained test each.

use crate::policy;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if !p.ends_with("__pycache__") {
                files(&p, ext, out);
            }
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Code without `#[cfg(test)] mod tests { … }` (test code may start processes freely).
fn product_part(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i])
}

#[test]
fn only_the_execution_layer_starts_processes() {
    let mut rs = Vec::new();
    files(&repo().join("xtask/src"), "rs", &mut rs);
    // std's and xshell's ways to start a process (xshell's `Cmd` runs with .run()/.read()…)
    let patterns = [
        "Command::new",
        ".spawn()",
        ".output()",
        ".status()",
        "Command::from(",
        ".run()",
        ".read()",
        ".read_stderr()",
        ".run_echo()",
        "cmd!(",
        "process::Command",
        "execvp",
    ];
    let mut found = Vec::new();
    for f in rs {
        let name = f.strip_prefix(repo()).unwrap().display().to_string();
        if name.starts_with("xtask/src/exec/") || name == "xtask/src/tidy.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in product_part(&text).lines().enumerate() {
            if patterns.iter().any(|p| line.contains(p)) && !line.trim_start().starts_with("//") {
                found.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "processes start outside xtask/src/exec/:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_file_is_too_long() {
    let mut all = Vec::new();
    files(&repo().join("xtask/src"), "rs", &mut all);
    files(&repo().join("python/lexalign"), "py", &mut all);
    let mut problems = Vec::new();
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        let n = text.lines().count();
        let name = f.strip_prefix(repo()).unwrap().display();
        if n > 600 {
            problems.push(format!("{name}: {n} lines (max 600): split it"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The file effects a task may make only through the execution layer (exec/files.rs), which
/// prints them under --dry-run instead of making them.
const FILE_EFFECTS: [&str; 9] = [
    "fs::write(",
    "fs::create_dir(",
    "fs::create_dir_all(",
    "fs::remove_file(",
    "fs::remove_dir(",
    "fs::remove_dir_all(",
    "fs::rename(",
    "fs::copy(",
    "atomic_write(",
];

#[test]
fn tasks_change_files_only_through_the_execution_layer() {
    let mut all = Vec::new();
    files(&repo().join("xtask/src/tasks"), "rs", &mut all);
    files(&repo().join("xtask/src/build"), "rs", &mut all);
    let mut problems = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(repo()).unwrap().display().to_string();
        for (i, line) in product_part(&text).lines().enumerate() {
            if let Some(call) = FILE_EFFECTS.iter().find(|c| line.contains(**c)) {
                problems.push(format!(
                    "{rel}:{}: `{call}…`: use ctx.exec.{} (printed under --dry-run)",
                    i + 1,
                    call.trim_start_matches("fs::")
                        .trim_end_matches('(')
                        .replace("atomic_", "")
                ));
            }
        }
    }
    assert!(all.len() > 20, "found only {} task files", all.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Lines a product function may take (signature to closing brace).
const FUNCTION_LIMIT: usize = 80;

/// (line, name, length) of every function in `text` longer than FUNCTION_LIMIT that the line
/// above does not excuse with a `// long: …` comment (pure).
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let after_vis = body
            .strip_prefix("pub(crate) ")
            .or_else(|| body.strip_prefix("pub(super) "))
            .or_else(|| body.strip_prefix("pub "))
            .unwrap_or(body);
        let Some(rest) = after_vis.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        let Some(end) = (i + 1..lines.len()).find(|&j| lines[j] == close) else {
            continue; // a declaration without a body
        };
        let excused = i > 0 && lines[i - 1].trim_start().starts_with("// long:");
        if end - i + 1 > FUNCTION_LIMIT && !excused {
            out.push((i + 1, name, end - i + 1));
        }
    }
    out
}

#[test]
fn no_product_function_is_too_long() {
    let mut all = Vec::new();
    files(&repo().join("xtask/src"), "rs", &mut all);
    let mut problems = Vec::new();
    for f in all {
        let rel = f.strip_prefix(repo()).unwrap().display().to_string();
        if rel.ends_with("tidy.rs") || rel.ends_with("docs_check.rs") {
            continue; // test modules
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, name, n) in long_functions(product_part(&text)) {
            problems.push(format!(
                "{rel}:{line} fn {name}: {n} lines (max {FUNCTION_LIMIT}): split it into named steps, or say why above it (`// long: …`)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // the rule sees what it must
    let long = format!("fn f() {{\n{}}}\n", "    x();\n".repeat(FUNCTION_LIMIT));
    assert_eq!(long_functions(&long).len(), 1);
    assert!(long_functions(&format!("// long: a state machine\n{long}")).is_empty());
}

/// Top-level module of a file under xtask/src (`tasks/image/mod.rs` → `tasks`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn module_dependencies_run_one_way() {
    let src = repo().join("xtask/src");
    let mut rs = Vec::new();
    files(&src, "rs", &mut rs);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rs {
        let rel = f.strip_prefix(&src).unwrap().to_path_buf();
        let from = module_of(&rel);
        if from == "tidy" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = graph.entry(from.clone()).or_default();
        for part in product_part(&text).split("crate::").skip(1) {
            let target: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let targets: Vec<String> = if target.is_empty() {
                // `use crate::{a, b::c}`
                part.trim_start_matches('{')
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                    .collect()
            } else {
                vec![target]
            };
            for t in targets.into_iter().filter(|t| !t.is_empty() && *t != from) {
                deps.insert(t);
            }
        }
    }
    // Nothing below the tasks reaches into them.
    for (m, deps) in &graph {
        if m != "main" && m != "tasks" {
            assert!(
                !deps.contains("tasks"),
                "{m} depends on tasks: dependencies must run main → tasks → the rest"
            );
        }
        if m != "main" {
            assert!(!deps.contains("main"), "{m} depends on main");
        }
    }
    assert!(
        graph["error"].iter().all(|d| d.is_empty()),
        "error depends on nothing: {:?}",
        graph["error"]
    );
    // No cycle (depth-first search).
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("module cycle: {} → {m}", path[i..].join(" → "));
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

/// The task a file under xtask/src/tasks belongs to (`image/mod.rs` → image, `pins.rs` → pins).
fn task_of(rel: &Path) -> String {
    rel.components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// What one task uses of other tasks (`other::name` paths): only their entry points (`run`) and
/// the types in those signatures; anything else belongs below `tasks/`.
fn task_to_task_uses(task: &str, text: &str, tasks: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    let b = text.as_bytes();
    for other in tasks.iter().filter(|t| *t != task) {
        let pat = format!("{other}::");
        let mut from = 0;
        while let Some(i) = text[from..].find(&pat) {
            let at = from + i;
            from = at + pat.len();
            let before = if at == 0 { b' ' } else { b[at - 1] };
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue; // part of another name (devrun::, xshell::)
            }
            let item: String = text[from..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let entry_point = item == "run" || item.starts_with(|c: char| c.is_ascii_uppercase());
            if !entry_point {
                found.push(format!("{task} uses {other}::{item}"));
            }
        }
    }
    found
}

#[test]
fn tasks_do_not_reach_into_each_other() {
    let dir = repo().join("xtask/src/tasks");
    let mut rs = Vec::new();
    files(&dir, "rs", &mut rs);
    let tasks: BTreeSet<String> = rs
        .iter()
        .map(|f| task_of(f.strip_prefix(&dir).unwrap()))
        .filter(|t| t != "mod")
        .collect();
    assert!(tasks.contains("image") && tasks.contains("pins") && tasks.contains("ci"));
    let mut found = Vec::new();
    for f in &rs {
        let task = task_of(f.strip_prefix(&dir).unwrap());
        if task == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        found.extend(task_to_task_uses(&task, product_part(&text), &tasks));
    }
    assert!(
        found.is_empty(),
        "tasks reach into each other (move what they share below tasks/: build, pinning, policy, engine…):\n{}",
        found.join("\n")
    );
    // the rule itself catches what it is for
    let t: BTreeSet<String> = ["image", "doctor", "run"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        task_to_task_uses("doctor", "use crate::tasks::image::probe_buildkit;", &t),
        ["doctor uses image::probe_buildkit"]
    );
    assert!(task_to_task_uses(
        "ci",
        "image::run(ctx, &a)?; devrun::exec(x); cmd::run(e)",
        &t
    )
    .is_empty());
}

#[test]
fn the_dockerfile_agrees_with_policy() {
    let df = read(policy::DOCKERFILE);
    let must = [
        format!("ARG UV_VERSION={}", policy::UV_VERSION),
        format!(
            "ARG HEAVY_PACKAGES=\"{}\"",
            policy::HEAVY_PACKAGES.join(" ")
        ),
        format!("ARG BASE_IMAGE={}", policy::SLIM_BASE),
        format!(
            "ARG {}={}",
            policy::LAYER_TIERS_MB[0].0,
            policy::LAYER_TIERS_MB[0].1
        ),
        format!(
            "ARG {}={}",
            policy::LAYER_TIERS_MB[1].0,
            policy::LAYER_TIERS_MB[1].1
        ),
        format!("HF_HOME={}", policy::HF_HOME),
        format!("--python {}", policy::VENV_PYTHON),
        format!("COPY python/pylock.toml {}", policy::LOCK_IN_IMAGE),
        format!("ENTRYPOINT [\"{}\"]", policy::ENTRYPOINT),
        format!("USER {0}:{0}", policy::IMAGE_UID),
        format!("WORKDIR {}", policy::APP_DIR),
        format!("--mount=type=secret,id={}", policy::CA_SECRET_ID),
        format!("org.opencontainers.image.title=\"{}\"", policy::IMAGE_TITLE),
    ];
    for m in &must {
        assert!(
            df.contains(m.as_str()),
            "docker/Dockerfile lacks `{m}` (xtask/src/policy.rs)"
        );
    }
    for stage in policy::DEPS_STAGES {
        assert!(
            df.lines()
                .any(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {stage}"))),
            "docker/Dockerfile has no stage `{stage}`"
        );
    }
    let ignore = read(".dockerignore");
    for copied in df.lines().filter_map(|l| l.strip_prefix("COPY ")) {
        for src in copied
            .split_whitespace()
            .filter(|w| w.starts_with("docker/") || w.starts_with("python/"))
        {
            let allowed = ignore.lines().any(|l| {
                l == format!("!{src}")
                    || src.starts_with(l.trim_start_matches('!')) && l.starts_with('!')
            });
            assert!(
                allowed,
                ".dockerignore keeps out {src}, which the Dockerfile copies"
            );
        }
    }
}

/// docker/tier_sync.py points uv at the cache mount of the step that runs it: a mount moved in
/// the Dockerfile alone would leave uv's cache inside the layer (hundreds of MB, silently).
#[test]
fn tier_sync_uses_the_cache_mount_of_its_steps() {
    let script = read("docker/tier_sync.py");
    let dir = script
        .split("UV_CACHE_DIR=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("docker/tier_sync.py sets UV_CACHE_DIR=\"…\"");
    let df = read(policy::DOCKERFILE);
    let lines: Vec<&str> = df.lines().collect();
    let runs: Vec<usize> = (1..lines.len())
        .filter(|&i| lines[i].contains("/tier_sync.py ") && !lines[i].starts_with("COPY"))
        .collect();
    assert_eq!(
        runs.len(),
        3,
        "the deps-huge, deps-big and deps steps run tier_sync.py"
    );
    for i in runs {
        let mount = format!("--mount=type=cache,target={dir},");
        assert!(
            lines[i - 1].starts_with("RUN ") && lines[i - 1].contains(&mount),
            "docker/Dockerfile:{}: the step running tier_sync.py mounts no cache at {dir}",
            i
        );
    }
}

#[test]
fn compose_and_base_agree_with_policy() {
    let compose = read(policy::COMPOSE_FILE);
    for m in [
        format!("{}: {}", policy::PROJECT_LABEL, policy::DEFAULT_PROJECT),
        format!(":{}", policy::HF_HOME),
        format!("name: {}", policy::hf_volume(policy::DEFAULT_PROJECT)),
        format!("${{LEXALIGN_IMAGE:-{}}}", policy::DEFAULT_IMAGE),
        format!(":{}", policy::APP_DIR),
    ] {
        assert!(
            compose.contains(&m),
            "docker/compose.yaml lacks `{m}` (xtask/src/policy.rs)"
        );
    }
    assert!(read(policy::BASE_DOCKERFILE).contains("FROM scratch"));
}

/// docs/architecture.md names every module that exists (xtask/src/**.rs, python/lexalign/**.py)
/// and none that does not.
#[test]
fn the_architecture_page_lists_the_modules_that_exist() {
    let page = read("docs/architecture.md");
    let mut files_now = Vec::new();
    files(&repo().join("xtask/src"), "rs", &mut files_now);
    files(&repo().join("python/lexalign"), "py", &mut files_now);
    let mut missing = Vec::new();
    let mut names = BTreeSet::new();
    for f in &files_now {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        names.insert(name.clone());
        if !page.contains(&name) {
            missing.push(f.strip_prefix(repo()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not mention: {missing:?}"
    );
    // every `name.rs` / `name.py` in the page's module listings exists
    let mut gone = Vec::new();
    for block in page.split("```").skip(1).step_by(2) {
        for word in block.split(|c: char| c.is_whitespace() || "(),:;+".contains(c)) {
            let w = word.trim_end_matches('.').rsplit('/').next().unwrap_or("");
            if (w.ends_with(".rs") || w.ends_with(".py")) && !names.contains(w) {
                gone.push(w.to_string());
            }
        }
    }
    assert!(
        gone.is_empty(),
        "docs/architecture.md lists modules that do not exist: {gone:?}"
    );
}

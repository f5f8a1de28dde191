//! Table-driven pin-sync cases (input pyproject + lock → expected pyproject, byte-exact) and
//! a property test.

use super::*;
use crate::diff;
use proptest::prelude::*;

const LOCK: &str = r#"lock-version = "1.0"
created-by = "uv"

[[packages]]
name = "torch"
version = "2.6.0+cu124"

[[packages]]
name = "pyyaml"
version = "6.0.2"

[[packages]]
name = "ruamel-yaml"
version = "0.18.6"

[[packages]]
name = "huggingface-hub"
version = "0.36.2"

[[packages]]
name = "numpy"
version = "2.4.6"
marker = "python_full_version < '3.12'"

[[packages]]
name = "numpy"
version = "2.5.5"
marker = "python_full_version >= '3.12'"

[[packages]]
name = "rich"
version = "14.0.0rc1"

[[packages]]
name = "click"
version = "8.1.8.post1"

[[packages]]
name = "pytest"
version = "8.4.0.dev3"

[[packages]]
name = "setuptools"
version = "80.0.0"

[[packages]]
name = "bitsandbytes"
version = "0.45.5"
marker = "sys_platform == 'linux'"
"#;

fn lock() -> Lock {
    lockfile::parse(Path::new("pylock.toml"), LOCK).unwrap()
}

fn pins(input: &str) -> String {
    sync(input, Path::new("pyproject.toml"), &lock(), false)
        .unwrap()
        .text
}

fn err(input: &str, strict: bool) -> String {
    let e = sync(input, Path::new("pyproject.toml"), &lock(), strict).unwrap_err();
    let exit = e
        .downcast_ref::<crate::error::Exit>()
        .expect("an Exit error");
    assert_eq!(exit.code, 2);
    exit.msg.clone().unwrap()
}

#[test]
fn table_of_cases() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "pep503 names keep their spelling",
            "[project]\ndependencies = [\"PyYAML>=6\", \"ruamel.yaml\", \"huggingface_hub<1.0\"]\n",
            "[project]\ndependencies = [\"PyYAML==6.0.2\", \"ruamel.yaml==0.18.6\", \"huggingface_hub==0.36.2\"]\n",
        ),
        (
            "extras kept",
            "[project]\ndependencies = [\"torch[opt-einsum,cuda]>=2\"]\n",
            "[project]\ndependencies = [\"torch[opt-einsum,cuda]==2.6.0+cu124\"]\n",
        ),
        (
            "markers kept",
            "[project]\ndependencies = [\"bitsandbytes>=0.45; sys_platform == 'linux'\"]\n",
            "[project]\ndependencies = [\"bitsandbytes==0.45.5; sys_platform == 'linux'\"]\n",
        ),
        (
            "two locked versions map line by line by marker",
            "[project]\ndependencies = [\n  \"numpy>=2; python_full_version < '3.12'\",\n  \"numpy>=2; python_full_version >= \\\"3.12\\\"\",\n]\n",
            "[project]\ndependencies = [\n  \"numpy==2.4.6; python_full_version < '3.12'\",\n  \"numpy==2.5.5; python_full_version >= \\\"3.12\\\"\",\n]\n",
        ),
        (
            "pre, post and dev releases",
            "[project]\ndependencies = ['rich', 'click>8', 'pytest']\n",
            "[project]\ndependencies = ['rich==14.0.0rc1', 'click==8.1.8.post1', 'pytest==8.4.0.dev3']\n",
        ),
        (
            "direct URL and path requirements untouched",
            "[project]\ndependencies = [\"torch @ https://example.org/torch.whl\", \"./local\", \"pyyaml\"]\n",
            "[project]\ndependencies = [\"torch @ https://example.org/torch.whl\", \"./local\", \"pyyaml==6.0.2\"]\n",
        ),
        (
            "optional deps and dependency groups, include-group untouched",
            "[project]\ndependencies = []\n[project.optional-dependencies]\nyaml = [\"pyyaml\"]\n[dependency-groups]\ndev = [\"pytest>=8\", {include-group = \"lint\"}]\nlint = [\"rich\"]\n",
            "[project]\ndependencies = []\n[project.optional-dependencies]\nyaml = [\"pyyaml==6.0.2\"]\n[dependency-groups]\ndev = [\"pytest==8.4.0.dev3\", {include-group = \"lint\"}]\nlint = [\"rich==14.0.0rc1\"]\n",
        ),
        (
            "build-system.requires untouched",
            "[build-system]\nrequires = [\"setuptools>=69\"]\n[project]\ndependencies = [\"setuptools\"]\n",
            "[build-system]\nrequires = [\"setuptools>=69\"]\n[project]\ndependencies = [\"setuptools==80.0.0\"]\n",
        ),
        (
            "comments, trailing commas, quoting, CRLF survive",
            "# top\r\n[project]\r\nname = 'x'  # name\r\ndependencies = [\r\n    # ml\r\n    'torch',   # the big one\r\n    \"pyyaml >= 6\" ,\r\n]\r\n",
            "# top\r\n[project]\r\nname = 'x'  # name\r\ndependencies = [\r\n    # ml\r\n    'torch==2.6.0+cu124',   # the big one\r\n    \"pyyaml==6.0.2\" ,\r\n]\r\n",
        ),
        (
            "already pinned is a no-op",
            "[project]\ndependencies = [\"pyyaml==6.0.2\"]\n",
            "[project]\ndependencies = [\"pyyaml==6.0.2\"]\n",
        ),
        (
            "whitespace before the marker kept",
            "[project]\ndependencies = [\"Rich >= 13 ; python_version >= '3.8'\"]\n",
            "[project]\ndependencies = [\"Rich==14.0.0rc1 ; python_version >= '3.8'\"]\n",
        ),
    ];
    for (name, input, expected) in cases {
        let got = pins(input);
        assert_eq!(&got, expected, "case: {name}");
        // idempotent
        assert_eq!(pins(&got), got, "second run changes nothing: {name}");
    }
}

#[test]
fn two_versions_without_markers_is_an_error_naming_both() {
    let m = err("[project]\ndependencies = [\"numpy>=2\"]\n", false);
    assert!(m.contains("2.4.6") && m.contains("2.5.5"), "{m}");
    assert!(m.contains("once per marker"));
}

#[test]
fn missing_from_lock_warns_or_fails_with_strict() {
    let s = sync(
        "[project]\ndependencies = [\"nothere>=1\"]\n",
        Path::new("p.toml"),
        &lock(),
        false,
    )
    .unwrap();
    assert!(s.changes.is_empty());
    assert_eq!(s.warnings.len(), 1);
    assert!(s.warnings[0].contains("nothere"));
    let m = err("[project]\ndependencies = [\"nothere>=1\"]\n", true);
    assert!(m.contains("nothere") && m.contains("not in the lock"));
}

#[test]
fn duplicates_after_normalisation_are_an_error() {
    let m = err(
        "[project]\ndependencies = [\"PyYAML>=5\", \"pyyaml\"]\n",
        false,
    );
    assert!(m.contains("duplicate requirement for `pyyaml`"), "{m}");
    // the same package in two different lists is fine
    pins("[project]\ndependencies = [\"pyyaml\"]\n[project.optional-dependencies]\nx = [\"PyYAML\"]\n");
}

#[test]
fn invalid_toml_and_missing_project_name_the_location() {
    let m = err("[project]\ndependencies = [\"a\"\n", false);
    assert!(m.starts_with("pyproject.toml:"), "{m}");
    let (line, _) = m["pyproject.toml:".len()..].split_once(':').unwrap();
    assert!(line.parse::<usize>().unwrap() >= 2, "{m}");
    let m = err("[tool.x]\na = 1\n", false);
    assert!(m.contains("no [project] table"), "{m}");
}

#[test]
fn requirements_style_lock_works_too() {
    let lock = lockfile::parse(
        Path::new("requirements.txt"),
        "torch==2.6.0 \\\n  --hash=sha256:00\nPyYAML==6.0.2\n",
    )
    .unwrap();
    let s = sync(
        "[project]\ndependencies = [\"torch\", \"pyyaml\"]\n",
        Path::new("p.toml"),
        &lock,
        false,
    )
    .unwrap();
    assert_eq!(
        s.text,
        "[project]\ndependencies = [\"torch==2.6.0\", \"pyyaml==6.0.2\"]\n"
    );
}

#[test]
fn check_diff_shows_the_change() {
    let before = "[project]\ndependencies = [\n  \"pyyaml\",\n]\n";
    let after = pins(before);
    let d = diff::unified(before, &after, "a/pyproject.toml", "b/pyproject.toml");
    assert!(d.contains("-  \"pyyaml\",\n+  \"pyyaml==6.0.2\",\n"), "{d}");
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "torch",
        "PyYAML",
        "ruamel.yaml",
        "huggingface_hub",
        "rich",
        "unknown-pkg",
        "Click",
    ])
    .prop_map(String::from)
}

fn req_strategy() -> impl Strategy<Value = String> {
    (
        name_strategy(),
        prop::sample::select(vec![
            "", ">=1", " >= 1.0 ", "==2", "~=1.2", "[a,b]>=1", " (>=1)",
        ]),
        prop::sample::select(vec![
            "",
            "; sys_platform == 'linux'",
            " ; python_version >= '3.8'",
        ]),
    )
        .prop_map(|(n, s, m)| format!("{n}{s}{m}"))
}

proptest! {
    #[test]
    fn sync_never_panics_and_is_idempotent(
        reqs in prop::collection::vec(req_strategy(), 0..6),
        single in any::<bool>(),
        crlf in any::<bool>(),
        comment in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let items: Vec<String> = reqs.iter().map(|r| {
            if single && !r.contains('\'') { format!("'{r}'") } else { format!("{r:?}") }
        }).collect();
        let body = if comment {
            format!("dependencies = [{nl}  # c{nl}  {}{nl}]{nl}", items.join(&format!(",{nl}  ")))
        } else {
            format!("dependencies = [{}]{nl}", items.join(", "))
        };
        let input = format!("[project]{nl}name = \"x\"{nl}{body}");
        // The one input the rewriter must refuse: a package listed twice under one marker
        // (docs/dependencies.md). Everything else it must accept.
        let key = |r: &str| {
            let name: String = r
                .chars()
                .take_while(|c| c.is_alphanumeric() || "-_.".contains(*c))
                .map(|c| if "_.".contains(c) { '-' } else { c.to_ascii_lowercase() })
                .collect();
            (name, r.split_once(';').map(|(_, m)| m.trim().to_string()))
        };
        let mut seen = std::collections::HashSet::new();
        let duplicate = reqs.iter().any(|r| !seen.insert(key(r)));
        let first = sync(&input, Path::new("p.toml"), &lock(), false);
        if duplicate {
            let err = first.err().map(|e| e.to_string()).unwrap_or_default();
            prop_assert!(err.contains("duplicate requirement"), "accepted a duplicate: {:?}", input);
            return Ok(());
        }
        prop_assert!(first.is_ok(), "rejected {:?}: {:?}", input, first.err());
        let first = first.unwrap();
        let second = sync(&first.text, Path::new("p.toml"), &lock(), false).unwrap();
        prop_assert_eq!(&second.text, &first.text);
        prop_assert!(second.changes.is_empty());
        // Only the changed strings differ: the line count is unchanged.
        prop_assert_eq!(first.text.lines().count(), input.lines().count());
        prop_assert!(toml_edit::Document::parse(first.text.as_str()).is_ok());
    }
}

#[test]
fn relax_turns_pins_into_lower_bounds() {
    let text = "[project]\ndependencies = [\"torch==2.6.0\", 'Rich==14.0.0 ; python_version >= \"3.8\"', \"pyyaml>=6\"]\n";
    let all = relax(text, Path::new("p.toml"), None).unwrap();
    assert_eq!(all, "[project]\ndependencies = [\"torch>=2.6.0\", 'Rich>=14.0.0 ; python_version >= \"3.8\"', \"pyyaml>=6\"]\n");
    let one = relax(text, Path::new("p.toml"), Some(&["rich".to_string()])).unwrap();
    assert!(one.contains("\"torch==2.6.0\"") && one.contains("'Rich>=14.0.0 ;"));
}

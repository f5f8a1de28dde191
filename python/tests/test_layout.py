"""The package's own layout rule: no import cycle between lexalign's modules (module-level
imports, TYPE_CHECKING ones included; a function-level lazy import is not a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "lexalign"


def _graph() -> dict[str, set[str]]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.parse(f.read_text()).body:
            body = node.body if isinstance(node, ast.If) else [node]
            for n in body:
                if not (isinstance(n, ast.ImportFrom) and n.level):
                    continue
                base = pkg
                for _ in range(n.level - 1):
                    base = base.rsplit(".", 1)[0]
                target = f"{base}.{n.module}" if n.module else base
                subs = [f"{target}.{a.name}" for a in n.names if f"{target}.{a.name}" in mods]
                for t in subs or ([target] if target in mods else []):
                    if t != m and not m.startswith(t + "."):  # a package's own __init__
                        graph[m].add(t)
    return graph


def test_no_import_cycle_between_modules():
    graph = _graph()
    assert "lexalign.download.files" in graph and "lexalign.train.loop" in graph
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n) :] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


LIMIT = 80  # lines of a function, decorators and docstring included


def test_no_product_function_is_longer_than_the_limit():
    """Functions read as named steps: none in lexalign/ is over LIMIT lines, unless the line
    above its `def` says why it must be long (`# long: …`)."""
    long = []
    for f in sorted(ROOT.rglob("*.py")):
        lines = f.read_text().splitlines()
        for n in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([n.lineno, *(d.lineno for d in n.decorator_list)])
            size = n.end_lineno - first + 1
            said = first >= 2 and lines[first - 2].strip().startswith("# long:")
            if size > LIMIT and not said:
                long.append(f"{f.relative_to(ROOT.parent)}:{n.lineno} {n.name} ({size} lines)")
    assert not long, "functions over the limit: " + "; ".join(long)

"""The "done means" of the clarity redesign, kept true by tests (docs/architecture.md):

* the dependency picture in docs/architecture.md is the real one: its solid arrows are exactly the
  transitive reduction of the import graph between our packages, so a new dependency that no existing
  arrow already implies (or a new back edge) fails here until the picture shows it;
* no function in ``fipo_engine``, ``webapp`` or ``worker`` reaches 100 lines;
* no tracked file points at a repository path that does not exist.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from tests.test_import_graph import PACKAGES, ROOT, import_graph

DOC = ROOT / "docs" / "architecture.md"
MAX_FUNCTION_LINES = 100

# Top-level engine modules grouped the way the picture draws them.
_ENGINE_GROUPS = {"registry": "registry", "config": "config", "metrics_catalog": "config",
                  "token_channels": "config", "cli": "cli"}
_WEBAPP_PROJECT = {"settings", "urls", "asgi", "wsgi"}


def component(module: str) -> str:
    """The box of the picture a module belongs to (a package, or a group of small top-level modules)."""
    parts = module.split(".")
    top, sub = parts[0], parts[1] if len(parts) > 1 else ""
    if top == "fipo_engine":
        if sub and (ROOT / top / sub).is_dir():
            return f"fipo_engine.{sub}"
        return f"fipo_engine.{_ENGINE_GROUPS.get(sub, 'util')}"
    if top == "webapp":
        return "webapp.project" if not sub or sub in _WEBAPP_PROJECT else f"webapp.{sub}"
    return "worker.launchers" if sub == "launchers" else "worker.core"


def component_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        graph.setdefault(component(module), set())  # every box appears, even one that imports nothing
        for target in targets:
            if component(module) != component(target):
                graph[component(module)].add(component(target))
    return dict(graph)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def transitive_reduction(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Edges a -> b of an acyclic graph that no longer path a -> ... -> b already implies."""
    edges = set()
    for a, targets in graph.items():
        for b in targets:
            if not any(b in _reachable(graph, c) for c in targets if c != b):
                edges.add((a, b))
    return edges


def documented_edges(text: str) -> set[tuple[str, str]]:
    """The solid arrows (``-->``) of the mermaid picture, as (from, to) labels."""
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no mermaid picture"
    labels = dict(re.findall(r'(\w+)\["([^"]+)"\]', block.group(1)))
    edges = set()
    for a, b in re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", block.group(1), re.M):
        edges.add((labels.get(a, a), labels.get(b, b)))
    return edges


def test_the_package_graph_has_no_cycle() -> None:
    graph = component_graph()
    for node in graph:
        assert node not in _reachable(graph, node), f"{node} depends on itself through other packages"


def test_the_picture_shows_every_dependency_direction() -> None:
    real = transitive_reduction(component_graph())
    drawn = documented_edges(DOC.read_text(encoding="utf-8"))
    assert not real - drawn, f"add to the picture in docs/architecture.md: {sorted(real - drawn)}"
    assert not drawn - real, f"the picture shows arrows the code no longer has: {sorted(drawn - real)}"


def test_reduction_keeps_only_arrows_no_path_implies() -> None:
    assert transitive_reduction({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == {("a", "b"), ("b", "c")}


def _functions() -> list[tuple[int, str]]:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    found.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return found


def test_no_function_reaches_a_hundred_lines() -> None:
    too_long = sorted((n, where) for n, where in _functions() if n >= MAX_FUNCTION_LINES)
    assert not too_long, f"split these into named steps: {too_long}"


# A path written in a tracked file: a known top folder, then folders, then a file with an extension.
_PATH = re.compile(r"(?<![\w/.:-])((?:\.\./)?(?:[\w.-]+/)+[\w.-]+\.(?:md|py|js|sh|txt|toml|json|css|html|yml|yaml))\b")
_TOP = {"fipo_engine", "webapp", "worker", "tests", "bench", "docs", "frontend", "requirements", "migrations", ".ci"}
# Paths that are not this repository's: other projects' files cited by docs/spec.md, and outputs written
# at run time (bench/out/).
_ELSEWHERE = ("docs/source_en/", "bench/out/")


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    skip = (".png", ".gguf", ".min.js", ".sqlite3", ".parquet", ".jsonl")
    return [ROOT / f for f in out.split() if not f.endswith(skip) and not f.startswith("tests/engine/fixtures/")]


def test_no_reference_to_a_file_that_is_not_in_the_repository() -> None:
    missing: dict[str, set[str]] = defaultdict(set)
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for ref in _PATH.findall(text):
            if ref.split("/")[0] not in _TOP and not ref.startswith("../"):
                continue
            if ref.startswith(_ELSEWHERE):
                continue
            candidates = (ROOT / ref, path.parent / ref, ROOT / "frontend" / "static" / ref)
            if not any(c.exists() for c in candidates):
                missing[ref].add(str(path.relative_to(ROOT)))
    assert not missing, f"references to files not in the repository: {dict(missing)}"

"""The house plan (docs/internals.md) as checks: no import cycle between any two modules, no module
reaching for another's private names, command modules that only parse and print. The layer contract
itself is import-linter's (`lint-imports`, pyproject.toml), run by `tox -e lint` and .ci/run; the first test
runs it here too so that a plain `pytest` sees a broken layer."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "detectors", "lfm", "lae")


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([lint], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_any_two_modules():
    # grimp (import-linter's graph) sees imports inside functions as well as at the top of a file
    graph = grimp.build_graph(*PACKAGES)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert cycles(graph) == [["a.x", "a.y", "a.z"]]


def python_files():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_imports(path: Path) -> list[str]:
    """`from x import _name` where x is another module of the project (a package's own children may
    share private names with it: `from bench.demo.staging import _lock` inside bench.demo.staging only)."""
    here = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and node.module != here:
                    found.append(f"{here}: from {node.module} import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names():
    found = [line for path in python_files() for line in private_imports(path)]
    assert found == []


def test_the_private_name_check_sees_a_planted_import(tmp_path):
    planted = REPO / "bench" / "engine" / "_planted_for_test.py"
    planted.write_text("from bench.engine.runner import _row\n")
    try:
        assert private_imports(planted) == ["bench.engine._planted_for_test: from bench.engine.runner import _row"]
    finally:
        planted.unlink()


ALLOWED_IN_COMMANDS = ("add_arguments", "run", "config_from_args")
"""A command module defines its parser (`add_*`, `parse_*`, `config_from_args`) and its `run`; anything else it
defines renders, formats or prints."""


@pytest.mark.parametrize("path", sorted((REPO / "bench" / "commands").glob("*.py")), ids=lambda p: p.name)
def test_command_modules_only_parse_and_print(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    others = [name for name in functions
              if name not in ALLOWED_IN_COMMANDS
              and not name.startswith(("add_", "parse_", "render", "print", "_format", "_render", "_print"))]
    assert others == [], f"{path.name} defines {others}: work belongs in bench.api's layers"


def test_every_public_api_name_resolves():
    from bench import api

    unresolved = [name for name in api.__all__ if getattr(api, name, None) is None]
    assert unresolved == []
    assert set(dir(api)) == set(api.__all__)
    with pytest.raises(AttributeError):
        api.no_such_thing  # noqa: B018

"""The package layout: no import cycles, no re-export facades, no private names across modules.

The import graph is read from the source (every ``import`` statement, those inside functions and
under ``TYPE_CHECKING`` included). An import of ``a.b.c`` is an edge to ``a/b/c.py``; a name taken
from a package is an edge to the module that defines it (a package ``__init__`` counts only for
the names it defines itself).
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "korth_bench"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: Dict[str, Path] = {module_name(p): p for p in PACKAGE.rglob("*.py")}
TREES: Dict[str, ast.Module] = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def defined_names(tree: ast.Module) -> Set[str]:
    """Names a module binds itself at top level (not by importing them)."""
    names: Set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
    return names


def reexported_from(package: str, name: str) -> Optional[str]:
    """The module a package ``__init__`` imports ``name`` from, if it does."""
    for node in TREES[package].body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any((alias.asname or alias.name) == name for alias in node.names):
                return node.module
    return None


def resolve(module: str, name: Optional[str]) -> Optional[str]:
    """The module an import of ``module`` (or of ``name`` from it) depends on."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    if module not in MODULES:
        return None
    if name is None or not is_package(module) or name in defined_names(TREES[module]):
        return module
    source = reexported_from(module, name)
    return resolve(source, name) if source else module


def imports(tree: ast.Module) -> List[Tuple[str, Optional[str], int]]:
    """(module, name or None, line) of every import in a tree, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def edges() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {name: set() for name in MODULES}
    for name, tree in TREES.items():
        for module, imported, _ in imports(tree):
            target = resolve(module, imported)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    state: Dict[str, int] = {}  # 1 on the current path, 2 done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_name_from_a_package_is_an_edge_to_its_defining_module():
    assert resolve("korth_bench.trial", "run_trial") == "korth_bench.trial.loop"
    assert resolve("korth_bench.trial", "robustness") == "korth_bench.trial.robustness"
    assert resolve("korth_bench.config", "TrialConfig") == "korth_bench.config"


def used_names(tree: ast.Module) -> Set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not is_package(n)))
def test_a_module_imports_only_names_it_uses_and_no_private_ones(name):
    """No facades: what a module imports from korth-bench it uses itself; and it never reaches
    into another module's ``_private`` names."""
    tree = TREES[name]
    used = used_names(tree) | {a.value.id for a in ast.walk(tree)
                               if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)}
    for module, imported, line in imports(tree):
        if not module.startswith("korth_bench") or imported is None:
            continue
        assert not imported.startswith("_"), f"{name}:{line} imports the private {module}.{imported}"
        assert imported in used, f"{name}:{line} imports {imported} from {module} without using it"


def test_package_inits_export_only_their_public_api():
    for name in (n for n in MODULES if is_package(n)):
        for module, imported, line in imports(TREES[name]):
            if module.startswith("korth_bench") and imported is not None:
                assert not imported.startswith("_"), f"{name}:{line} exports the private {imported}"


TESTS = {p.name: ast.parse(p.read_text()) for p in (ROOT / "tests").glob("*.py")}


@pytest.mark.parametrize("test_file", sorted(TESTS))
def test_tests_import_names_from_their_real_home(test_file):
    for module, imported, line in imports(TESTS[test_file]):
        if not module.startswith("korth_bench") or imported is None or not is_package(module):
            continue
        home = resolve(module, imported)
        assert home in (module, f"{module}.{imported}"), (
            f"{test_file}:{line}: import {imported} from {home}, where it is defined, not {module}")


PUBLIC_API = {  # the README's Python API and the entry points of the CLI layers
    "korth_bench.trial": ["run_trial", "train_and_measure", "TrialRecord"],
    "korth_bench.regularizers": ["get", "names", "register", "describe", "check", "Regularizer"],
    "korth_bench.models": ["build", "names", "register", "valid_depths", "check"],
    "korth_bench.data": ["load", "names", "register", "check", "pack", "cifar10_parquet"],
    "korth_bench.spaces": ["load", "names", "find", "Space", "dry_run_text"],
    "korth_bench.sweep": ["run"],
    "korth_bench.analysis": ["analyze"],
    "korth_bench.report": ["build_report", "build_report_from_frames"],
    "korth_bench.measures": ["layer_rows", "feature_map_rows", "summarize"],
}


@pytest.mark.parametrize("package", sorted(PUBLIC_API))
def test_the_public_api_keeps_its_names(package):
    import importlib

    module = importlib.import_module(package)
    for name in PUBLIC_API[package]:
        assert callable(getattr(module, name)), f"{package}.{name}"

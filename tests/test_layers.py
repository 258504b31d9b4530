"""The package is a house with floors, and each floor is a folder: every import points down.

A package (a folder of aiblib) sits on one floor (README's library table, and its ``__init__``
says which); its modules may import one another and any package of a lower floor, never a
package of their own floor or above. Only the ground floor's modules (``errors``, ``paths``)
and the entry point ``__main__`` lie at the top level: any other module there has no floor and
fails. From outside a package, names are imported from the package, not from its modules
(in the library, the notebooks and the benchmarks; the tests may reach into a module to test
it). The test parses every module, counting imports anywhere in it.
"""

from __future__ import annotations

import ast
import importlib
import json
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "aiblib"

# package or top-level module -> floor; a module is on its package's floor (the longest prefix)
FLOORS = {
    "aiblib": 0, "aiblib.errors": 0, "aiblib.paths": 0,
    "aiblib.model": 1,
    "aiblib.data": 2,
    "aiblib.storage": 3, "aiblib.config": 3,
    "aiblib.reporting": 4,
    "aiblib.evaluation": 5,
    "aiblib.training": 6,
    "aiblib.tools": 7, "aiblib.notebooks": 7,
    "aiblib.sweeps": 8,
    "aiblib.cli": 9, "aiblib.__main__": 10,
}
TOP_LEVEL = {"aiblib", "aiblib.errors", "aiblib.paths", "aiblib.__main__"}
# modules imported by their own path from outside their package (they load heavy optional libraries; a sweep's
# status and runner load the notebook stack, which a sweep's job process, importing aiblib.sweeps, does without)
BY_PATH = {"aiblib.data.corruptions", "aiblib.evaluation.robustness", "aiblib.sweeps.status", "aiblib.sweeps.runner"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package(name: str) -> str:
    """The floor's package (or top-level module) that ``name`` belongs to; KeyError when none."""
    if name in TOP_LEVEL:
        return name
    prefixes = [p for p in FLOORS if p not in TOP_LEVEL and (name == p or name.startswith(p + "."))]
    if not prefixes:
        raise KeyError(name)
    return max(prefixes, key=len)


def floor(name: str) -> int:
    return FLOORS[package(name)]


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the aiblib modules an ``ImportFrom`` reads (``from aiblib import viz`` reads aiblib.reporting.viz)."""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    names = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in MODULES]
    return names or [source]


def imports(module: str) -> dict[str, list[int]]:
    """aiblib modules imported anywhere in ``module`` -> the lines importing them."""
    tree = ast.parse(MODULES[module].read_text())
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = _resolve(module, node)
        else:
            continue
        for target in targets:
            if target == "aiblib" or target.startswith("aiblib."):
                found.setdefault(target, []).append(node.lineno)
    return found


def test_every_module_has_a_floor():
    unknown = []
    for name in MODULES:
        try:
            floor(name)
        except KeyError:
            unknown.append(name)
    assert not unknown, f"modules without a floor (a top-level module, or a package missing from FLOORS): {unknown}"


def test_every_package_says_its_floor():
    """Each floor's ``__init__`` states what lives there and which floor it is (what it may import)."""
    wrong = [p for p in FLOORS if p not in TOP_LEVEL
             and f"Floor {FLOORS[p]}:" not in (ast.get_docstring(ast.parse(MODULES[p].read_text())) or "")]
    assert not wrong, f"packages whose __init__ docstring does not say 'Floor N:' with their floor: {wrong}"


def test_imports_point_down_the_floors():
    bad = [f"{m}:{lines} imports {t} (floor {floor(m)} -> {floor(t)})"
           for m in MODULES for t, lines in imports(m).items()
           if package(t) != package(m) and floor(t) >= floor(m) and package(m) != "aiblib"]
    assert not bad, "\n".join(bad)


def _outside_imports(source: str, own: str | None) -> list[str]:
    """``from aiblib.P.module import ...`` in ``source`` where P is not ``own``'s package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("aiblib.") or node.level:
            continue
        target = node.module
        if target in MODULES and MODULES[target].name != "__init__.py" and target not in TOP_LEVEL | BY_PATH \
                and (own is None or package(own) != package(target)):
            found.append(f"line {node.lineno}: from {target} import ...")
    return found


def _code_cells(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_outside_a_package_names_come_from_the_package():
    bad = {m: found for m in MODULES if (found := _outside_imports(MODULES[m].read_text(), m))}
    bad |= {str(p.relative_to(REPO)): found for p in sorted((REPO / "benchmarks").glob("*.py"))
            if (found := _outside_imports(p.read_text(), None))}
    bad |= {str(p.relative_to(REPO)): found for p in sorted((REPO / "notebooks").glob("*.ipynb"))
            if (found := _outside_imports(_code_cells(p), None))}
    assert not bad, f"import these names from their package instead: {bad}"


def test_no_import_cycle():
    graph = {m: [t for t in imports(m) if t in MODULES and t != m] for m in MODULES}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for start in graph:
        if start not in state:
            cycle = visit(start, [])
            assert cycle is None, " -> ".join(cycle)


# The one dynamic import: the entry point loads only the command it runs, so that train, evaluate and
# gpu-check work where the notebook stack (papermill, Jupyter) is not installed. Nothing imports it.
LOADS_ONE_COMMAND = {"aiblib.__main__"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_inside_a_function_and_no_dynamic_import(module):
    tree = ast.parse(MODULES[module].read_text())
    bad = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bad += [f"line {n.lineno} in {fn.name}()" for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
    bad += [f"line {n.lineno}: {ast.unparse(n.func)}" for n in ast.walk(tree)
            if isinstance(n, ast.Call) and ast.unparse(n.func) in ("importlib.import_module", "__import__")
            and module not in LOADS_ONE_COMMAND]
    assert not bad, f"{module}: imports inside functions or dynamic imports: {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_readable(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module} has {len(text.splitlines())} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checker_sees_what_it_forbids():
    """The rules above would fail on an upward import, a stray top-level module and a reach into a package."""
    assert floor("aiblib.model.segmentor") < floor("aiblib.cli.train")
    assert floor("aiblib.data.synth.scene") == 2 and floor("aiblib.reporting.viz") == 4
    assert floor("aiblib.evaluation.evaluate") < floor("aiblib.training.loop")
    with pytest.raises(KeyError):
        floor("aiblib.trainstats")
    assert _outside_imports("from aiblib.storage.checkpoint import load_model", "aiblib.evaluation.evaluate")
    assert not _outside_imports("from aiblib.storage.atomic import atomic_write", "aiblib.storage.checkpoint")
    assert not _outside_imports("from aiblib.storage import load_model", None)


@pytest.mark.parametrize("name", sorted(p for p in FLOORS if p not in TOP_LEVEL))
def test_a_package_name_never_hides_one_of_its_modules(name):
    """``from aiblib.tools import prepare`` must not mean a module in one place and a function in another."""
    package_ = importlib.import_module(name)
    modules = [m.stem for m in MODULES[name].parent.glob("*.py") if m.stem != "__init__"]
    hidden = [m for m in modules if hasattr(package_, m) and not isinstance(getattr(package_, m), types.ModuleType)]
    assert not hidden, f"{name} exports names that are also its modules' names: {hidden}"

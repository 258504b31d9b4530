"""The package is a house with floors: every import points down (or sideways without a cycle).

Floors (README's module table): 1 model, 2 data, 3 losses/metrics/config/checkpoint/runlog/viz,
4 runtime/inference/evaluate/sampling/trainstats/train/launch, 5 report/prepare/bench,
6 the command line. The test parses every module, counting imports anywhere in it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aiblib"

# module name (or package prefix) -> floor; the longest matching prefix wins
FLOORS = {
    "aiblib": 0, "aiblib.errors": 0, "aiblib.paths": 0,
    "aiblib.model": 1,
    "aiblib.data": 2, "aiblib.data.corruptions": 2,
    "aiblib.losses": 3, "aiblib.metrics": 3, "aiblib.config": 3, "aiblib.checkpoint": 3, "aiblib.runlog": 3,
    "aiblib.viz": 3, "aiblib.calibration": 3, "aiblib.storage": 3, "aiblib.runlock": 3, "aiblib.rundir": 4, "aiblib.stopping": 4, "aiblib.trainsetup": 4,
    "aiblib.runtime": 4, "aiblib.inference": 4, "aiblib.evaluate": 4, "aiblib.sampling": 4,
    "aiblib.trainstats": 4, "aiblib.train": 4, "aiblib.launch": 4, "aiblib.parameters": 4, "aiblib.robustness": 4,
    "aiblib.report": 5, "aiblib.prepare": 5, "aiblib.bench": 5, "aiblib.gpucheck": 5, "aiblib.comparison": 5, "aiblib.notebooks": 5, "aiblib.widgets": 5,
    "aiblib.cli": 6, "aiblib.__main__": 6,
}
# pairs on one floor that must not meet in either direction of import
NEVER = {("aiblib.evaluate", "aiblib.train")}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def floor(name: str) -> int:
    prefixes = [p for p in FLOORS if name == p or name.startswith(p + ".")]
    if not prefixes:
        raise KeyError(name)
    return FLOORS[max(prefixes, key=len)]


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names of the aiblib modules an ``ImportFrom`` reads (``from aiblib import viz`` reads aiblib.viz)."""
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
    assert not unknown, f"modules without a floor in FLOORS: {unknown}"


def test_imports_point_down_the_floors():
    upward = [f"{m}:{lines} imports {t} (floor {floor(m)} -> {floor(t)})"
              for m in MODULES for t, lines in imports(m).items() if floor(t) > floor(m)]
    forbidden = [f"{m} imports {t}" for m in MODULES for t in imports(m)
                 if any(m.startswith(a) and t.startswith(b) for a, b in NEVER)]
    assert not upward and not forbidden, "\n".join(upward + forbidden)


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


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_inside_a_function_and_no_dynamic_import(module):
    tree = ast.parse(MODULES[module].read_text())
    bad = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bad += [f"line {n.lineno} in {fn.name}()" for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
    bad += [f"line {n.lineno}: {ast.unparse(n.func)}" for n in ast.walk(tree)
            if isinstance(n, ast.Call) and ast.unparse(n.func) in ("importlib.import_module", "__import__")]
    assert not bad, f"{module}: imports inside functions or dynamic imports: {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_readable(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module} has {len(text.splitlines())} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rules above would fail on a floor-1 module importing the command line."""
    assert floor("aiblib.model.segmentor") < floor("aiblib.cli.train")
    assert floor("aiblib.data.synth.scene") == 2 and floor("aiblib.viz") == 3

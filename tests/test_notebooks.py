"""Notebooks: committed clean, one documented parameters cell, and a papermill smoke run of all five.

The smoke run executes 00 -> 01 (baseline and AIBR) -> 02 -> 03 -> 04 with ``params/smoke.yaml``
in a temporary folder, as ``make reproduce`` does with the real parameter files.
"""

from __future__ import annotations

import ast
import json
import re
import typing
from pathlib import Path

import nbformat
import pytest
import yaml

from aiblib.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["00-prepare-data", "01-train", "02-evaluate-cross-domain", "03-visualize-attention", "04-report"]
PARAM_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<type>[^=]+?) = (?P<value>.+?)  # (?P<doc>\S.*)$")


def _parameters(path: Path) -> list[re.Match]:
    book = nbformat.read(path, as_version=4)
    cells = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    matches = []
    for line in cells[0].source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = PARAM_LINE.match(line)
        assert m, f"{path.name}: parameter line is not 'name: type = literal  # comment': {line!r}"
        ast.literal_eval(m["value"])  # a literal, not a derived value
        matches.append(m)
    return matches


def test_the_five_notebooks_exist_in_order():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} carries outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_typed_commented_literals_that_match_the_config(path):
    hints = typing.get_type_hints(Config)
    for m in _parameters(path):
        if m["name"] in hints:  # a config key: same type as the configuration declares
            declared = m["type"].strip()
            expected = _type_text(hints[m["name"]])
            assert declared == expected, f"{path.name}: {m['name']} is {declared}, Config says {expected}"
            Config.from_dict({m["name"]: ast.literal_eval(m["value"])})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_documents_every_parameter(path):
    from papermill.inspection import inspect_notebook

    inferred = inspect_notebook(str(path))
    for m in _parameters(path):
        assert m["name"] in inferred, f"{path.name}: papermill cannot parse the line of {m['name']!r}"
        assert inferred[m["name"]]["help"] == m["doc"].strip()


def _type_text(tp) -> str:
    if typing.get_origin(tp) is list:
        return f"list[{typing.get_args(tp)[0].__name__}]"
    return tp.__name__


@pytest.mark.parametrize("path", sorted((ROOT / "params").rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT / "params")))
def test_every_parameter_file_is_a_valid_configuration(path):
    cfg = load_config(path)
    data = yaml.safe_load(path.read_text())
    assert set(data) <= set(cfg.to_dict())
    for target in cfg.eval_targets:
        dataset, _, split = target.partition(":")
        assert dataset in ("cityscapes", "bdd100k", "nightcity") and split in ("train", "val")


@pytest.mark.slow
def test_papermill_smoke_run_of_every_notebook(tmp_path):
    import papermill as pm

    common = {"data_root": str(tmp_path / "data"), "runs_root": str(tmp_path / "runs"),
              "results_root": str(tmp_path / "results")}
    smoke = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    out = tmp_path / "results"

    def run(notebook: str, target: str, **params) -> None:
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(out / target),
                            parameters={**smoke, **common, **params}, kernel_name="python3", cwd=str(ROOT),
                            progress_bar=False)

    run("00-prepare-data", "00-prepare-data.ipynb")
    assert (tmp_path / "data" / "cityscapes").is_dir() and (tmp_path / "data" / "aiblib_summary.csv").is_file()
    for variant, attention in (("baseline", False), ("aib", True)):
        name = f"smoke-{variant}"
        run("01-train", f"{name}/01-train.ipynb", name=name, attention=attention)
        assert (tmp_path / "runs" / name / "checkpoints" / "last.pth").is_file()
        run("02-evaluate-cross-domain", f"{name}/02-evaluate-cross-domain.ipynb", name=name)
        scores = json.loads((out / name / "scores.json").read_text())
        assert set(scores["scores"]) == set(smoke["eval_targets"]) and scores["attention"] is attention
        assert all(0.0 <= s["mIoU"] <= 100.0 for s in scores["scores"].values())
    run("03-visualize-attention", "smoke-attention/03-visualize-attention.ipynb",
        baseline_name="smoke-baseline", aib_name="smoke-aib", interactive=False)
    assert list((out / "smoke-aib-attention").glob("*.png"))
    run("04-report", "04-report.ipynb", results_root=str(out))
    assert (out / "summary.csv").is_file() and "| protocol |" in (out / "README.md").read_text()

"""Notebooks: committed clean, one documented parameters cell, the one rule for parameters,
paths under the project root, and a papermill smoke run of all five the user's way.

The smoke run executes 00 -> 01 (baseline and AIBR) -> 02 -> 03 -> 04 in a temporary copy of the
project (``AIBR_ROOT``), each kernel started in its ``notebooks/`` as Jupyter starts it, with the
default parameters apart from ``params_file`` (``params/smoke.yaml``) and the run names ``make`` uses.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import typing
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from aiblib.config import Config, load_config
from aiblib.data import CAMVID_SPLITS, DataError, build_dataset
from aiblib.notebooks import notebook_config
from aiblib.paths import ROOT_VARIABLE, project_path, project_relative, project_root

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["00-prepare-data", "01-train", "02-evaluate-cross-domain", "03-visualize-attention", "04-report",
            "05-robustness"]
PARAM_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<type>[^=]+?) = (?P<value>.+?)  # (?P<doc>\S.*)$")
OPTIONAL_IMPORT = "from typing import Optional"  # the one statement a parameters cell may hold besides parameters


def _parameters(path: Path) -> list[re.Match]:
    book = nbformat.read(path, as_version=4)
    cells = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    matches = []
    for line in cells[0].source.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line.strip() == OPTIONAL_IMPORT:
            continue
        m = PARAM_LINE.match(line)
        assert m, f"{path.name}: parameter line is not 'name: type = literal  # comment': {line!r}"
        ast.literal_eval(m["value"])  # a literal, not a derived value
        matches.append(m)
    return matches


def test_the_six_notebooks_exist_in_order():
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
        declared, value = m["type"].strip(), ast.literal_eval(m["value"])
        optional = re.fullmatch(r"Optional\[(.+)\]", declared)
        assert (value is None) == bool(optional), f"{path.name}: {m['name']}: None is the default of Optional[...] only"
        if m["name"] in hints:  # a config key: same type as the configuration declares
            expected = _type_text(hints[m["name"]])
            assert (optional[1] if optional else declared) == expected, \
                f"{path.name}: {m['name']} is {declared}, Config says {expected}"
            if value is not None:
                Config.from_dict({m["name"]: value})


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
        splits = CAMVID_SPLITS if dataset == "camvid" else ("train", "val")
        assert dataset in ("cityscapes", "bdd100k", "nightcity", "camvid") and split in splits


def _parameters_namespace(notebook: str, **given) -> dict:
    """The variables of a notebook's parameters cell as it is committed, then ``given`` (papermill's -p)."""
    book = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    namespace: dict = {}
    exec(next(c.source for c in book.cells if "parameters" in c.metadata.get("tags", [])), namespace)
    return {**namespace, **given}


def test_01_as_committed_trains_what_make_run_trains():
    """Run as it is, 01's configuration is the embedded default's file (make run NAME=dg-aib), nothing else."""
    cfg = notebook_config(_parameters_namespace("01-train"))
    assert cfg == load_config(ROOT / "params" / "synthetic-dg.yaml", {"name": "dg-aib"})
    assert (cfg.skip_channels, cfg.aux_channels, cfg.amp, cfg.attention) == (16, 32, "off", True)
    night = notebook_config(_parameters_namespace("01-train", params_file="params/synthetic-night.yaml",
                                                  name="night-baseline", attention=False))
    assert night == load_config("params/synthetic-night.yaml", {"name": "night-baseline", "attention": False})


def test_02_and_03_take_the_runs_saved_configuration_and_only_given_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path))
    saved = load_config(ROOT / "params" / "paper" / "dg-r50.yaml", {"name": "paper-dg-r50"})
    (tmp_path / "runs" / "paper-dg-r50").mkdir(parents=True)
    saved.save(tmp_path / "runs" / "paper-dg-r50" / "config.yaml")
    cfg = notebook_config(_parameters_namespace("02-evaluate-cross-domain", name="paper-dg-r50"), run="paper-dg-r50")
    assert (cfg.base_size, cfg.data_root, cfg.depth, cfg.eval_targets) == ([1024, 2048], "data", 50, saved.eval_targets)
    cfg = notebook_config(_parameters_namespace("02-evaluate-cross-domain", name="paper-dg-r50", eval_mode="slide"),
                          run="paper-dg-r50")
    assert cfg == saved.replace(eval_mode="slide")
    aib = notebook_config(_parameters_namespace("03-visualize-attention", aib_name="paper-dg-r50"), run="paper-dg-r50")
    assert aib == saved
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "runs" / "dg-aib" / "config.yaml"))):
        notebook_config(_parameters_namespace("02-evaluate-cross-domain"), run="dg-aib")
    # the authors' checkpoint: no run, a parameter file (relative to the project root, here the temporary one)
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "mine.yaml").write_text("depth: 101\nbase_size: [512, 1024]\n")
    cfg = notebook_config(_parameters_namespace("02-evaluate-cross-domain", params_file="params/mine.yaml"), run="x")
    assert (cfg.depth, cfg.base_size) == (101, [512, 1024])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "params" / "nope.yaml"))):
        notebook_config({"params_file": "params/nope.yaml"})


def test_relative_paths_resolve_against_the_project_root_wherever_the_process_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_root() == ROOT and project_path("runs/x") == ROOT / "runs" / "x"
    assert project_path(tmp_path / "a") == tmp_path / "a" and project_relative(ROOT / "runs" / "x") == "runs/x"
    assert load_config("params/smoke.yaml").data_root == "data/smoke"  # read from the root, not from tmp_path
    assert Config(name="r").resolved_run_dir() == ROOT / "runs" / "r"
    with pytest.raises(DataError, match=re.escape(str(ROOT / "no-such-root"))):
        build_dataset("cityscapes", "no-such-root", "val")
    monkeypatch.setenv(ROOT_VARIABLE, str(tmp_path))
    assert project_path("results") == tmp_path / "results" and project_relative("/elsewhere/x") == "/elsewhere/x"


@pytest.mark.slow
def test_papermill_smoke_run_of_every_notebook_from_notebooks_folder(tmp_path, monkeypatch):
    """The user's way: kernels start in notebooks/, default parameters, the run names make uses; every
    output lands in the project's data/, runs/ and results/, nothing under notebooks/."""
    import papermill as pm

    project = tmp_path / "project"
    for folder in ("notebooks", "params"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("kernel-*", ".ipynb_checkpoints"))
    monkeypatch.setenv(ROOT_VARIABLE, str(project))
    smoke = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    out = project / "results"

    def run(notebook: str, target: str, **params) -> None:
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(str(project / "notebooks" / f"{notebook}.ipynb"), str(out / target), parameters=params,
                            kernel_name="python3", cwd=str(project / "notebooks"), progress_bar=False)

    run("00-prepare-data", "00-prepare-data.ipynb", params_file="params/smoke.yaml")
    assert (project / "data" / "smoke" / "cityscapes").is_dir() and (project / "data" / "smoke" / "aiblib_summary.csv").is_file()
    for name, attention in (("dg-baseline", False), ("dg-aib", None)):  # None: 01's default (the file's: AIBR)
        run("01-train", f"{name}/01-train.ipynb", params_file="params/smoke.yaml", name=name,
            **({"attention": attention} if attention is not None else {}))
        assert (project / "runs" / name / "checkpoints" / "last.pth").is_file()
        run("02-evaluate-cross-domain", f"{name}/02-evaluate-cross-domain.ipynb", name=name)
        scores = json.loads((out / name / "scores.json").read_text())
        assert set(scores["scores"]) == set(smoke["eval_targets"]) and scores["attention"] is (name == "dg-aib")
        assert scores["checkpoint"] == f"runs/{name}/checkpoints/last.pth"
        assert all(0.0 <= s["mIoU"] <= 100.0 for s in scores["scores"].values())
    run("03-visualize-attention", "dg-aib-attention/03-visualize-attention.ipynb")  # interactive: the browser too
    figures = sorted(p.name for p in (out / "dg-aib-attention").glob("*.png"))
    assert figures == sorted([*(f"{t.replace(':', '-')}_{i}_{kind}.png" for t in smoke["eval_targets"] for i in range(2)
                                for kind in ("prediction", "uncertainty")), "mu_per_class.png"])
    executed = nbformat.read(out / "dg-aib-attention" / "03-visualize-attention.ipynb", as_version=4)
    assert "application/vnd.jupyter.widget-view+json" in executed.cells[-1].outputs[0]["data"]
    run("04-report", "04-report.ipynb")
    assert (out / "summary.csv").is_file() and "| protocol |" in (out / "README.md").read_text()
    attention = pd.read_csv(out / "attention.csv")  # the AIBR run's diagnostics per domain, from 02's scores.json
    assert sorted(attention["domain"]) == sorted(smoke["eval_targets"]) and (attention["seeds"] == 1).all()
    assert attention["mu_mean mean"].between(0, 1).all()
    assert sorted(p.name for p in (project / "notebooks").iterdir()) == [f"{n}.ipynb" for n in EXPECTED]


def _jupyter_settings() -> dict:
    """The namespace of .jupyter/jupyter_server_config.py (make lab's JupyterLab settings), as Jupyter reads it."""
    from traitlets.config import Config as JupyterConfig

    path = ROOT / ".jupyter" / "jupyter_server_config.py"
    namespace = {"get_config": JupyterConfig, "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_jupyterlab_saves_a_run_notebook_of_notebooks_as_committed(path):
    settings = _jupyter_settings()
    c = settings["c"]
    assert c.ServerApp.root_dir == str(ROOT) and c.ServerApp.allow_root and c.LabApp.default_url == "/lab/tree/notebooks"
    book = nbformat.read(path, as_version=4)
    book.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                      "codemirror_mode": {"name": "ipython", "version": 3}, "pygments_lexer": "ipython3"}
    book.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for i, cell in enumerate(book.cells):
        cell.metadata["execution"] = {"iopub.status.idle": "2026-11-25T10:00:00Z"}
        if cell.cell_type == "code":
            cell.execution_count = i
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    model = {"type": "notebook", "content": book}
    settings["save_clean"](model=model, path=f"notebooks/{path.name}", contents_manager=None)
    assert nbformat.writes(model["content"]) + "\n" == path.read_text()
    elsewhere = {"type": "notebook", "content": nbformat.read(path, as_version=4)}
    elsewhere["content"].cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    settings["save_clean"](model=elsewhere, path=f"results/{path.name}", contents_manager=None)
    assert elsewhere["content"].cells[1].outputs  # an executed copy outside notebooks/ keeps its outputs

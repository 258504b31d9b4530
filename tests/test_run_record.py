"""A finished run is skipped when its inputs match: the parameter file, the -p values and the digest of the code that
shapes training and evaluation, not the commit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO

from aiblib.notebooks.runner import SHAPING_CODE, code_digest, completed, run_record


def _copy_tree(tmp_path: Path) -> tuple[Path, Path]:
    package, notebooks = tmp_path / "aiblib", tmp_path / "notebooks"
    shutil.copytree(REPO / "aiblib", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "notebooks", notebooks)
    return package, notebooks


def test_the_digest_follows_the_code_that_shapes_a_run_and_nothing_else(tmp_path):
    package, notebooks = _copy_tree(tmp_path)
    before = code_digest(package=package, notebooks=notebooks)
    assert before == code_digest(package=package, notebooks=notebooks)
    # reports, the CLI and a notebook's outputs do not change what a run computes
    (package / "reporting" / "report.py").write_text((package / "reporting" / "report.py").read_text() + "\n# note\n")
    (package / "cli" / "run.py").write_text((package / "cli" / "run.py").read_text() + "\n# note\n")
    nb = json.loads((notebooks / "01-train.ipynb").read_text())
    nb["metadata"]["saved_by"] = "jupyterlab"
    (notebooks / "01-train.ipynb").write_text(json.dumps(nb))
    assert code_digest(package=package, notebooks=notebooks) == before
    # the training loop and the training notebook's code do
    loop = package / "training" / "loop.py"
    loop.write_text(loop.read_text().replace("def _step(", "def _step_(", 1))
    changed = code_digest(package=package, notebooks=notebooks)
    assert changed != before
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["source"] = ["x = 1\n", *code["source"]]
    (notebooks / "01-train.ipynb").write_text(json.dumps(nb))
    assert code_digest(package=package, notebooks=notebooks) not in (before, changed)
    assert {"model", "data", "training", "evaluation", "01-train.ipynb"} <= set(SHAPING_CODE)


def test_completed_compares_inputs_not_the_commit(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\n")
    record = run_record(params_file=params, given={"name": "x", "seed": 1})
    marker = tmp_path / "run.json"
    assert not completed(marker, record)
    marker.write_text(json.dumps({**record, "commit": "0" * 40, "seconds": 3.0, "training": [{"precision": "bf16"}]}))
    assert completed(marker, record)  # another commit, the same code and parameters: skipped
    marker.write_text(json.dumps({**record, "code_digest": "f" * 64}))
    assert not completed(marker, record)  # the code that shapes the run changed: run again
    marker.write_text(json.dumps({k: v for k, v in record.items() if k != "code_digest"}))
    assert not completed(marker, record)  # a record from before the digest: run again
    marker.write_text(json.dumps(record))
    assert not completed(marker, run_record(params_file=params, given={"name": "x", "seed": 2}))
    params.write_text("seed: 1\n")
    assert not completed(marker, run_record(params_file=params, given={"name": "x", "seed": 1}))
    marker.write_text("{not json")
    assert not completed(marker, record)

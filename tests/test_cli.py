"""The command line's error policy: a user's mistake is one line on stderr and exit status 2, no traceback,
and nothing already written is touched; a bug is one line naming the file that holds its traceback, exit status 1.
Relative paths given to a command are under the project root, wherever it starts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, subprocess_env, tiny_checkpoint

from aiblib.__main__ import main
from aiblib.cli import parse_size
from aiblib.config import load_config
from aiblib.data import DataError, build_dataset
from aiblib.data.synth import generate
from aiblib.errors import ConfigError, MissingFile, UserError
from aiblib.model import ModelConfig
from aiblib.paths import ROOT_VARIABLE
from aiblib.storage import load_model, read_log, safe_load


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), err
    assert "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv, culprit", [
    (["train", "-p", "beta", "-1"], "'beta' has an invalid value -1.0; expected >= 0"),
    (["train", "-p", "iterations", "many"], "'iterations' expects int"),
    (["train", "-p", "atention", "true"], "did you mean 'attention'"),
    (["train", "-f", "params/nope.yaml"], "nope.yaml"),
    (["evaluate", "-f", "params/smoke.yaml", "--checkpoint", "no/such/file.pth"], "checkpoint not found"),
    (["synth", "--size", "64", "--root", "unused"], "HEIGHTxWIDTH"),
    (["notebook", "09-nothing", "out.ipynb"], "no notebook '09-nothing'"),
    (["run", "x", "-f", "params/smoke.yaml", "--step", "three"], "expected K/N"),
])
def test_a_user_mistake_is_one_line_and_exit_2(argv, culprit, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    if argv[0] == "synth":  # argparse's own usage error: usage line, then the message, status 2
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and culprit in capsys.readouterr().err
        return
    assert main([*argv, "-p", "run_dir", str(tmp_path / "run")] if argv[0] == "train" else argv) == 2
    assert culprit in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()  # nothing was written


def test_malformed_yaml_names_the_file_and_the_line(tmp_path, capsys):
    params = tmp_path / "bad.yaml"
    params.write_text("depth: 18\niterations: [1, 2\n")
    assert main(["train", "-f", str(params)]) == 2
    line = _one_error_line(capsys)
    assert str(params) in line and "not valid YAML" in line and "line 3" in line


def test_a_missing_data_root_lists_the_layout_expected(tmp_path, capsys):
    assert main(["prepare", "--root", str(tmp_path / "nodata")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: data root {tmp_path / 'nodata'} does not exist") and "Traceback" not in err
    assert "cityscapes/leftImg8bit/<split>" in err and "nightcity-fine/<split>/lbl" in err


def test_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    fake = tmp_path / "iter_40000.pth"
    fake.write_text("this is not a checkpoint\n")
    out = tmp_path / "converted.pth"
    assert main(["convert", str(fake), str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(fake) in line and not out.exists()


def test_evaluate_refuses_a_non_checkpoint_and_writes_nothing(synthetic_root, tmp_path, capsys):
    cfg, _ = tiny_checkpoint(synthetic_root, tmp_path)
    fake = tmp_path / "model.pth"
    torch.save({"hello": torch.zeros(1)}, fake)
    assert main(["evaluate", "-p", "data_root", str(synthetic_root), "-p", "run_dir", str(tmp_path / "run"),
                 "--checkpoint", str(fake)]) == 2
    assert str(fake) in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="beta"):
        main(["train", "-p", "beta", "-1", "--debug"])


def test_through_the_interpreter_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "aiblib", "train", "-p", "beta", "-1"], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: command-line override: model key 'beta' has an invalid value -1.0; expected >= 0"]


def test_make_run_without_a_name_says_what_to_give():
    proc = subprocess.run(["make", "--no-print-directory", "run"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "error: make run needs NAME=" in proc.stderr


# Runs python -m aiblib's main for each command given (with --help), with the notebook stack made unimportable
# (as on a GPU machine with torch alone); prints each command's exit status, then the hidden modules loaded.
_WITHOUT_NOTEBOOK_STACK = """
import importlib.abc, sys
HIDDEN = {"papermill", "nbformat", "nbclient", "ipykernel", "ipywidgets", "IPython", "jupyter_client", "jupyterlab"}
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
from aiblib.__main__ import main
for command in sys.argv[1:]:
    try:
        status = main([command, "--help"])
    except SystemExit as exit_:  # argparse's --help
        status = exit_.code
    print(f"status {command}: {status}", flush=True)
print("loaded:", sorted(name for name in sys.modules if name.split(".")[0] in HIDDEN))
"""


def _without_notebook_stack(*commands: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITHOUT_NOTEBOOK_STACK, *commands], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)


def test_train_evaluate_gpu_check_and_the_tools_run_without_papermill_or_jupyter():
    commands = ["train", "evaluate", "gpu-check", "profile", "prepare", "bench"]
    result = _without_notebook_stack(*commands)
    assert result.returncode == 0, result.stderr
    assert all(f"status {c}: 0" in result.stdout for c in commands), result.stdout + result.stderr
    assert "usage:" in result.stdout and "loaded: []" in result.stdout, result.stdout


def test_a_notebook_command_without_papermill_says_what_is_missing_in_one_line():
    result = _without_notebook_stack("notebook")
    assert "status notebook: 2" in result.stdout, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: python -m aiblib notebook needs the Python package"), \
        result.stderr
    assert "make setup" in lines[0]


# --- a bug is not a user's mistake: one line naming the file that holds its traceback, exit status 1 ------------

def _bug_line(capsys) -> tuple[str, Path]:
    """The one ``error:`` line of a bug and the traceback file it names."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    found = re.fullmatch(r"error: (\w+: .*) \(a bug; the full traceback is in (\S+)\)", lines[0])
    assert found, lines[0]
    return found[1], Path(found[2])


def test_a_bug_inside_a_command_names_its_type_and_the_file_holding_its_traceback(monkeypatch, capsys):
    """A ValueError from a library (not aiblib's ConfigError) is a bug, not a user's mistake."""
    def broken(*args, **kwargs):
        raise ValueError("broken inside the library")

    monkeypatch.setattr("aiblib.cli.common.load_config", broken)
    assert main(["train"]) == 1
    message, path = _bug_line(capsys)
    try:
        assert message == "ValueError: broken inside the library"
        text = path.read_text()
        assert text.startswith("Traceback (most recent call last)") and "in config_from_args" in text
        assert text.rstrip().endswith("ValueError: broken inside the library")
    finally:
        path.unlink()
    with pytest.raises(ValueError, match="broken inside"):  # --debug lets it through with its traceback
        main(["train", "--debug"])
    monkeypatch.setenv("AIBLIB_DEBUG", "1")
    with pytest.raises(ValueError, match="broken inside"):
        main(["train"])


def test_a_bug_in_a_run_leaves_its_traceback_in_the_runs_results_folder(tmp_path, monkeypatch, capsys):
    def broken(notebook, output, **kwargs):
        output.parent.mkdir(parents=True, exist_ok=True)
        raise KeyError("no such cell")

    monkeypatch.setattr("aiblib.cli.run.run_notebook", broken)
    assert main(["run", "r", "-f", "params/smoke.yaml", "--results", str(tmp_path / "results")]) == 1
    message, path = _bug_line(capsys)
    assert message == "KeyError: 'no such cell'" and path == tmp_path / "results" / "r" / "traceback.txt"
    assert "in broken" in path.read_text() and not (tmp_path / "results" / "r" / "run.json").exists()


def _not_a_model(tmp_path: Path) -> Path:
    """A torch file that holds no state dict."""
    torch.save({"hello": "world"}, tmp_path / "state.pth")
    return tmp_path / "state.pth"


@pytest.mark.parametrize("mistake, kind, builtin", [
    (lambda tmp: load_config(None, {"atention": True}), ConfigError, ValueError),
    (lambda tmp: load_config(None, {"iterations": "many"}), ConfigError, ValueError),
    (lambda tmp: load_config(tmp / "nope.yaml"), MissingFile, FileNotFoundError),
    (lambda tmp: load_config((tmp / "bad.yaml", (tmp / "bad.yaml").write_text("a: [1\n"))[0]), ConfigError, ValueError),
    (lambda tmp: ModelConfig(depth=7), ConfigError, ValueError),
    (lambda tmp: build_dataset("cityscapes", tmp / "nodata", "val"), DataError, ValueError),
    (lambda tmp: build_dataset("kitti", tmp, "val"), ConfigError, ValueError),
    (lambda tmp: safe_load(tmp / "none.pth"), MissingFile, FileNotFoundError),
    (lambda tmp: load_model(_not_a_model(tmp)), ConfigError, ValueError),
    (lambda tmp: generate(tmp / "s", n_train=1, n_val=1, size=(8, 8)), ConfigError, ValueError),
    (lambda tmp: read_log(tmp), MissingFile, FileNotFoundError),
    (lambda tmp: parse_size("64", option="--size"), ConfigError, ValueError),
], ids=["unknown-key", "wrong-type", "missing-params", "damaged-yaml", "model-value", "missing-data-root",
        "unknown-dataset", "missing-checkpoint", "not-a-checkpoint", "synth-size", "missing-log", "size"])
def test_the_checks_of_what_a_user_gives_raise_aiblibs_error_kinds(mistake, kind, builtin, tmp_path):
    """What the command line prints as one line is a UserError; each kind is still the builtin callers catch."""
    with pytest.raises(kind) as caught:
        mistake(tmp_path)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, builtin)


# --- relative paths given to the command line are under the project root -------------------------------------

@pytest.mark.slow
def test_run_from_another_folder_keeps_every_file_of_the_run_in_one_results_folder(tmp_path, synthetic_root):
    """``python -m aiblib run`` started outside the project: the executed notebooks, run.json and 02's scores.json
    land in <project root>/results/NAME (not under the working folder), and --skip-done finds them there."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    for folder in ("notebooks", "params"):
        shutil.copytree(REPO / folder, project / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    elsewhere.mkdir()
    command = [sys.executable, "-m", "aiblib", "run", "r", "-f", "params/smoke.yaml", "--results", "results",
               "-p", "data_root", str(synthetic_root), "-p", "iterations", "2", "--skip-done"]
    env = subprocess_env() | {ROOT_VARIABLE: str(project)}
    done = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = project / "results" / "r"
    written = {p.name for p in out.iterdir()}
    assert {"01-train.ipynb", "02-evaluate-cross-domain.ipynb", "run.json", "scores.json"} <= written, written
    assert (project / "runs" / "r" / "checkpoints" / "last.pth").is_file() and not any(elsewhere.iterdir())
    again = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already done" in again.stdout and "01-train: running" not in again.stdout, \
        again.stdout[-3000:] + again.stderr[-3000:]

"""The command line's error policy: a user's mistake is one line on stderr and exit status 2, no traceback,
and nothing already written is touched."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO, subprocess_env, tiny_checkpoint

from aiblib.__main__ import main


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
        "error: model key 'beta' has an invalid value -1.0; expected >= 0"]


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

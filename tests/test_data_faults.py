"""Damaged data never hangs a run (issue 22), through the command line ``python -m aiblib``.

A truncated image, a truncated label, files removed after the dataset was listed, a read that never
returns (``data_timeout``) and a data-loader worker killed by SIGKILL, with ``num_workers`` 0 and 2
and under a two-process ``torchrun`` on the CPU: each case asserts the one line, the exit status,
that the command ended within a time limit (a hang fails the test, it does not hang CI), that no
process of the command is left (its process group is empty) and that the run directory's lock is
released (it can be taken at once). Also: a second Ctrl-C with workers alive, evaluation with
workers, ``prepare --check-images`` (a FIFO listed, never opened) and the notebook runner's line for
a dead worker.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, as_args, subprocess_env, tiny_checkpoint, tiny_overrides
from papermill.exceptions import PapermillExecutionError
from PIL import Image

from aiblib.__main__ import main
from aiblib.config import load_config
from aiblib.data import CHECK_HINT
from aiblib.errors import UserError, WorkerFailed
from aiblib.notebooks import runner
from aiblib.storage import RunLock, verify_checkpoint
from aiblib.training import loop
from aiblib.training.torchrun import launch_failure

LIMIT_S = 120.0      # a whole command, start-up included (about 10 s each here)
STOPPED_S = 20.0     # from the fault to the exit (the workers are given 2 s before SIGKILL)
GONE_S = 5.0         # for the process group to empty after the exit


# ---------------------------------------------------------------- helpers
def _damaged_root(synthetic_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    return root


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.glob(pattern))[0]


def _start(command: list[str]) -> tuple[subprocess.Popen, float]:
    child = subprocess.Popen(command, env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    return child, time.monotonic()


def _end(child: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait at most ``timeout`` s (then kill the whole group and fail); assert the group empties."""
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        _, err = child.communicate()
        raise AssertionError(f"the command did not end within {timeout} s (a hang): {err[-3000:]}") from None
    end = time.monotonic() + GONE_S
    while _group_alive(child.pid):
        if time.monotonic() > end:
            os.killpg(child.pid, signal.SIGKILL)
            raise AssertionError(f"processes of the command outlived it (data-loader workers?): {err[-3000:]}")
        time.sleep(0.05)
    return child.returncode, err


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _train_command(root: Path, run: Path, **changes) -> list[str]:
    return [sys.executable, "-m", "aiblib", "train", *as_args(tiny_overrides(root, run, **changes))]


def _torchrun_command(root: Path, run: Path, **changes) -> list[str]:
    return [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m", "aiblib",
            "train", *as_args(tiny_overrides(root, run, images_per_iteration=4, **changes))]


def _error_lines(err: str, *, torchrun: bool = False) -> set[str]:
    """The distinct ``error:`` lines; no traceback but, under torchrun, the launcher's own summary of the failure."""
    assert err.count("Traceback") == int(torchrun), err[-3000:]
    if torchrun:
        assert "torch.distributed.elastic.multiprocessing.errors.ChildFailedError" in err, err[-3000:]
    return {line for line in err.splitlines() if line.startswith("error: ")}


def _root_cause_status(err: str) -> int:
    """The exit status torchrun's summary gives for the first rank that ended (the other may be ended by it)."""
    return int(err.split("Root Cause")[1].split("exitcode  :")[1].split()[0])


def _lock_released(run: Path) -> None:
    assert not (run / ".lock").exists()
    with RunLock(run):  # a rerun could start now
        pass


def _wait_for(path: Path, child: subprocess.Popen, timeout: float = LIMIT_S) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert child.poll() is None, f"the command ended ({child.returncode}) before {path} appeared"
        if time.monotonic() > end:
            os.killpg(child.pid, signal.SIGKILL)
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.02)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _damaged_line(kind: str, path: Path) -> str:
    return f"error: cannot read {kind} {path}: "


# ---------------------------------------------------------------- a damaged image or label
@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["image", "label"])
def test_a_truncated_file_ends_training_in_one_line_naming_it(synthetic_root, tmp_path, kind, workers):
    root, run = _damaged_root(synthetic_root, tmp_path), tmp_path / "run"
    folder = "leftImg8bit" if kind == "image" else "gtFine"
    damaged = _truncate(_first(root, f"cityscapes/{folder}/train/*/*{'leftImg8bit' if kind == 'image' else 'labelTrainIds'}.png"))
    child, start = _start(_train_command(root, run, num_workers=workers))
    status, err = _end(child, LIMIT_S)
    assert status == 2, err[-3000:]
    (line,) = _error_lines(err)
    assert line.startswith(_damaged_line(kind, damaged)) and line.endswith(f"({CHECK_HINT})"), line
    assert err.strip().splitlines()[-1] == line and time.monotonic() - start < LIMIT_S
    _lock_released(run)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_files_removed_after_the_listing_end_training_in_one_line_and_the_checkpoint_stays(synthetic_root, tmp_path,
                                                                                           workers):
    root, run = _damaged_root(synthetic_root, tmp_path), tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    child, start = _start(_train_command(root, run, num_workers=workers, iterations=200))
    _wait_for(last, child)  # the dataset was listed long ago; now every training image goes
    shutil.rmtree(root / "cityscapes" / "leftImg8bit" / "train")
    gone = time.monotonic()
    status, err = _end(child, LIMIT_S)
    assert status == 2 and time.monotonic() - gone < STOPPED_S, err[-3000:]
    (line,) = _error_lines(err)
    assert line.startswith(f"error: cannot read image {root / 'cityscapes' / 'leftImg8bit' / 'train'}/"), line
    assert "No such file or directory" in line, line
    assert verify_checkpoint(last) is None  # the last good checkpoint is whole
    _lock_released(run)


# ---------------------------------------------------------------- a read that never returns
# torchvision's reader stats a file before it opens it and refuses one of size 0, so a FIFO fails at once; a reader
# that opens first (as a read on a stalled network file system, whose open or read never returns) blocks on it
_OPENING_READER = """
import sys
import torch
from aiblib.__main__ import main
from aiblib.data import files
def read_file(path):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
files.read_file = read_file
sys.exit(main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_a_read_that_never_returns_ends_training_in_one_line_after_data_timeout(synthetic_root, tmp_path):
    root, run = _damaged_root(synthetic_root, tmp_path), tmp_path / "run"
    child, _ = _start([sys.executable, "-c", _OPENING_READER,
                       *as_args(tiny_overrides(root, run, num_workers=2, iterations=200, data_timeout=3.0))])
    _wait_for(run / "checkpoints" / "last.pth", child)  # listed long ago; now a training image blocks when opened
    fifo = _first(root, "cityscapes/leftImg8bit/train/*/*.png")
    os.mkfifo(tmp_path / "fifo")
    os.replace(tmp_path / "fifo", fifo)
    swapped = time.monotonic()
    status, err = _end(child, LIMIT_S)
    assert status == 2 and time.monotonic() - swapped < 3.0 + STOPPED_S, err[-3000:]
    (line,) = _error_lines(err)
    assert line.startswith("error: no batch within data_timeout=3 s: a data-loader worker is stuck reading image "
                           f"{fifo} (label "), line
    assert err.strip().splitlines()[-1] == line
    _lock_released(run)  # and _end saw no process of the command left: the stuck worker was ended too


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
def test_data_timeout_must_be_seconds_of_zero_or_more(seconds):
    with pytest.raises(ValueError, match=r"config key 'data_timeout': expected seconds >= 0 \(0 = wait forever\)"):
        load_config(None, {"data_timeout": seconds})
    assert load_config(None, {"data_timeout": 0}).data_timeout == 0.0  # waits forever, as DataLoader's own default


# ---------------------------------------------------------------- a dead worker, Ctrl-C with workers
def _killed_line(worker: int) -> str:
    """The one line of a run whose data-loader worker ``worker`` was SIGKILLed."""
    return (f"error: data-loader worker {worker} was killed by SIGKILL (the kernel's OOM killer sends SIGKILL when "
            "memory runs out: lower num_workers); the run stopped")


@pytest.mark.slow
def test_a_worker_killed_by_sigkill_ends_training_in_one_line_with_status_1(synthetic_root, tmp_path):
    run = tmp_path / "run"
    child, _ = _start(_train_command(synthetic_root, run, num_workers=2, iterations=200))
    _wait_for(run / "checkpoints" / "last.pth", child)
    worker = _children(child.pid)[0]
    os.kill(worker, signal.SIGKILL)  # what the OOM killer does
    killed = time.monotonic()
    status, err = _end(child, LIMIT_S)
    assert status == 1 and time.monotonic() - killed < STOPPED_S, err[-3000:]
    assert _error_lines(err) == {_killed_line(worker)}
    assert verify_checkpoint(run / "checkpoints" / "last.pth") is None
    _lock_released(run)


@pytest.mark.slow
def test_kill_9_of_the_training_takes_its_workers_with_it_and_the_rerun_takes_over_the_lock(synthetic_root, tmp_path,
                                                                                           capsys):
    run = tmp_path / "run"
    child, _ = _start(_train_command(synthetic_root, run, num_workers=2, iterations=200))
    _wait_for(run / "checkpoints" / "last.pth", child)
    assert len(_children(child.pid)) == 2
    os.kill(child.pid, signal.SIGKILL)
    status, _ = _end(child, LIMIT_S)  # the group empties: the workers die with their parent
    assert status == -signal.SIGKILL and (run / ".lock").exists()
    with RunLock(run):
        pass
    assert f"warning: taking over the stale lock {run / '.lock'}" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once_with_workers_alive(synthetic_root, tmp_path, capsys, monkeypatch):
    """In this process (two SIGINTs sent to a child at once arrive as one): both during the loss of step 3."""
    run = tmp_path / "run"
    real, calls = loop.segmentation_loss, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            assert len(multiprocessing.active_children()) == 2  # the workers are alive
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "segmentation_loss", loss)
    pressed = time.monotonic()
    assert main(["train", *as_args(tiny_overrides(synthetic_root, run, num_workers=2))]) == 130
    assert time.monotonic() - pressed < LIMIT_S and multiprocessing.active_children() == []
    assert [line for line in capsys.readouterr().err.splitlines() if line] == ["error: interrupted (Ctrl-C)"]
    assert verify_checkpoint(run / "checkpoints" / "last.pth") is None
    _lock_released(run)


# ---------------------------------------------------------------- torchrun
@pytest.mark.slow
@pytest.mark.parametrize("split", ["train", "val"])
def test_under_torchrun_a_truncated_image_ends_both_ranks_with_one_line(synthetic_root, tmp_path, split):
    """A training image (read in the loop) or a validation image (read by one rank while scoring)."""
    root, run = _damaged_root(synthetic_root, tmp_path), tmp_path / "ddp"
    damaged = _truncate(_first(root, f"cityscapes/leftImg8bit/{split}/*/*.png"))
    child, _ = _start(_torchrun_command(root, run, num_workers=2, val_interval=2 if split == "val" else 0))
    status, err = _end(child, LIMIT_S)
    assert status != 0
    (line,) = _error_lines(err, torchrun=True)
    assert line.startswith(_damaged_line("image", damaged)), err[-3000:]
    assert _root_cause_status(err) == 2, err[-3000:]  # the first rank to end did with a data problem's status
    _lock_released(run)


@pytest.mark.slow
def test_under_torchrun_a_worker_killed_by_sigkill_ends_both_ranks(synthetic_root, tmp_path):
    run = tmp_path / "ddp"
    child, _ = _start(_torchrun_command(synthetic_root, run, num_workers=2, iterations=200))
    _wait_for(run / "checkpoints" / "last.pth", child)
    rank = _children(child.pid)[-1]
    worker = _children(rank)[0]
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    status, err = _end(child, LIMIT_S)
    assert status != 0 and time.monotonic() - killed < STOPPED_S, err[-3000:]
    assert _error_lines(err, torchrun=True) == {_killed_line(worker)}
    assert _root_cause_status(err) == 1, err[-3000:]
    assert verify_checkpoint(run / "checkpoints" / "last.pth") is None
    _lock_released(run)


# ---------------------------------------------------------------- evaluation, the check, notebooks
@pytest.mark.slow
def test_evaluation_with_workers_ends_in_one_line_naming_a_damaged_image(synthetic_root, tmp_path):
    root = _damaged_root(synthetic_root, tmp_path)
    damaged = _truncate(_first(root, "cityscapes/leftImg8bit/val/*/*.png"))
    _, checkpoint = tiny_checkpoint(root, tmp_path)
    command = [sys.executable, "-m", "aiblib", "evaluate", "--checkpoint", str(checkpoint), "--dataset", "cityscapes",
               "--split", "val", *as_args(tiny_overrides(root, tmp_path / "run", num_workers=2))]
    child, _ = _start(command)
    status, err = _end(child, LIMIT_S)
    assert status == 2, err[-3000:]
    (line,) = _error_lines(err)
    assert line.startswith(_damaged_line("image", damaged)), line


def test_check_images_lists_every_damaged_file_in_one_report(synthetic_root, tmp_path, capsys):
    assert main(["prepare", "--check-images", "--root", str(synthetic_root), "--workers", "2"]) == 0
    assert "damaged" in capsys.readouterr().out
    root = _damaged_root(synthetic_root, tmp_path)
    image = _truncate(_first(root, "bdd100k/images/10k/train/*.jpg"))
    label = _truncate(_first(root, "nightcity-fine/val/lbl/*.png"))
    empty = _first(root, "cityscapes/leftImg8bit/val/*/*.png")
    empty.write_bytes(b"")
    small = _first(root, "bdd100k/labels/sem_seg/masks/val/*.png")
    with Image.open(small) as im:
        im.resize((im.width // 2, im.height // 2), Image.NEAREST).save(small)
    assert main(["prepare", "--check-images", "--root", str(root), "--workers", "2"]) == 1
    out, err = capsys.readouterr()
    listed = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(listed) == 4 and "4 problem(s)" in err, err
    assert {next(line for line in listed if str(p) in line).split(":")[0] for p in (image, label, empty)} == {
        f"cannot read image {image}", f"cannot read label {label}", f"cannot read image {empty}"}
    assert any(line.startswith(f"label {small} is ") and "but its image" in line for line in listed), listed
    rows = {tuple(line.split()[:2]): int(line.split()[-1]) for line in out.splitlines()[2:]}
    assert rows[("bdd100k", "train")] == 1 and rows[("nightcity", "val")] == 1 and rows[("cityscapes", "val")] == 1
    assert rows[("bdd100k", "val")] == 1 and sum(rows.values()) == 4


def test_check_images_lists_a_fifo_as_not_a_regular_file_without_opening_it(synthetic_root, tmp_path):
    """In a child process with a time limit: opening the FIFO would wait for a writer forever."""
    root = _damaged_root(synthetic_root, tmp_path)
    fifo = _first(root, "bdd100k/images/10k/val/*.jpg")
    fifo.unlink()
    os.mkfifo(fifo)
    child, start = _start([sys.executable, "-m", "aiblib", "prepare", "--check-images", "--root", str(root),
                           "--workers", "1"])
    status, err = _end(child, LIMIT_S)
    assert status == 1 and time.monotonic() - start < LIMIT_S, err[-3000:]
    listed = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert f"{fifo} is a FIFO (named pipe), not a regular file; it was not opened" in listed, listed
    assert "2 problem(s)" in err and any(line.endswith("has no image (looked for it in "
                                                       f"{fifo.parent})") for line in listed), listed


def test_check_images_of_a_camvid_folder(camvid_root, tmp_path, capsys):
    assert main(["prepare", "--check-images", "--camvid", str(camvid_root), "--workers", "1"]) == 0
    copy = tmp_path / "camvid"
    shutil.copytree(camvid_root, copy)
    label = _truncate(_first(copy, "testannot/*.png"))
    assert main(["prepare", "--check-images", "--camvid", str(copy), "--workers", "1"]) == 1
    assert f"cannot read label {label}" in capsys.readouterr().err


def test_a_dead_worker_in_a_notebook_is_one_line_with_status_1(tmp_path):
    exc = PapermillExecutionError(cell_index=3, exec_count=2, source="train(cfg)", ename="WorkerFailed",
                                  evalue="data-loader worker 7 was killed by SIGKILL", traceback=["..."])
    failed = runner._failure(Path("01-train.ipynb"), tmp_path / "out.ipynb", exc)
    assert failed.user_mistake and failed.exit_status == 1
    assert str(failed).startswith("01-train.ipynb, cell 2: WorkerFailed: data-loader worker 7 was killed by SIGKILL")


def test_a_notebook_launching_torchrun_gets_the_ranks_one_line():
    """``aiblib.training.launch`` (01 on several processes) raises the line, not torchrun's 150-line tail."""
    summary = ["Traceback (most recent call last):\n", "torch.distributed.elastic...ChildFailedError:\n"]
    damaged = launch_failure(["torchrun"], 1, ["step\n", "error: cannot read image a.png: corrupted\n", *summary])
    assert type(damaged) is UserError and str(damaged) == "cannot read image a.png: corrupted"
    dead = launch_failure(["torchrun"], 1, ["error: data-loader worker 7 was killed by SIGKILL\n", *summary])
    assert isinstance(dead, WorkerFailed) and dead.exit_status == 1
    bug = launch_failure(["torchrun"], 1, ["Traceback (most recent call last):\n", "KeyError: 'x'\n", *summary])
    assert type(bug) is RuntimeError and "KeyError" in str(bug)

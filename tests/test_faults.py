"""Training that survives faults (issue 14), through the command line ``python -m aiblib train``:
a damaged checkpoint, a full disk, two writers, Ctrl-C and SIGTERM (also under torchrun).

Each case asserts the one line on stderr, the exit status, that the previous checkpoint still
loads, that no stray file (lock, temporary file) is left, and that the rerun reaches the end.
Most run the command in this process (``aiblib.__main__.main``, what ``python -m aiblib`` calls);
the signals and the size limit are also sent to real child processes.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import pathlib
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TINY, as_args, read_checkpoint, subprocess_env, tiny_overrides

from aiblib.__main__ import main
from aiblib.config import load_config
from aiblib.errors import RunLockedError
from aiblib.storage import RunLock, atomic, read_log, runlog, verify_checkpoint
from aiblib.training import loop

LAST_WORDS = "run the same command (or notebook) again to resume"


# ---------------------------------------------------------------- helpers
def _train(args: list[str]) -> int:
    return main(["train", *args])


def _error_line(err: str) -> str:
    """The one ``error:`` line, which ends stderr; no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err, err
    return errors[0]


def _stray(run: Path) -> list[str]:
    """The lock and any temporary file left in the run directory."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp")


def _iteration(path: Path) -> int:
    assert verify_checkpoint(path) is None, path
    return read_checkpoint(path)["iteration"]


def _same_weights(a: dict, b: dict) -> None:
    assert a["iteration"] == b["iteration"] and a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


def _events(run: Path) -> list[str]:
    return list(read_log(run, "event")["event"])


def _train_iterations(run: Path) -> list[int]:
    return list(read_log(run, "train")["iteration"])


def _signal_at(monkeypatch, call: int, *signals: int) -> None:
    """Send ``signals`` to this process during the loss of step ``call`` (1-based)."""
    real, calls = loop.segmentation_loss, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            for number in signals:
                os.kill(os.getpid(), number)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "segmentation_loss", loss)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _wait_for(predicate, child: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if child.poll() is not None:
            raise AssertionError(f"the child exited ({child.returncode}) before {what}: {child.communicate()}")
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def _has_train_record(run: Path):
    log = run / "log.jsonl"
    return lambda: log.exists() and '"kind": "train"' in log.read_text()


# ---------------------------------------------------------------- a damaged checkpoint
@pytest.mark.slow
def test_damaged_newest_checkpoints_are_skipped_and_the_rerun_ends_as_an_unbroken_run(synthetic_root, tmp_path, capsys):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    args = as_args(tiny_overrides(synthetic_root, run))
    assert _train(args) == 0
    unbroken = read_checkpoint(ckpts / "last.pth")
    last, newest = ckpts / "last.pth", ckpts / "iter_000006.pth"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # half copied
    flipped = bytearray(newest.read_bytes())
    flipped[len(flipped) // 2] ^= 1  # one bit of a tensor: torch.load alone reads it without a word
    newest.write_bytes(bytes(flipped))
    capsys.readouterr()

    assert _train(args) == 0
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith("warning: skipped")]
    assert len(skipped) == 2, err
    assert skipped[0].startswith(f"warning: skipped {last} (damaged: not a complete archive")
    assert skipped[1].startswith(f"warning: skipped {newest} (damaged: checksum mismatch in its record")
    assert all(line.endswith("; resuming from iter_000004.pth at iteration 4") for line in skipped)
    _same_weights(read_checkpoint(last), unbroken)  # resumed from iteration 4, bit for bit the same end
    assert sorted(p.name for p in ckpts.iterdir()) == ["iter_000002.pth", "iter_000004.pth", "iter_000006.pth",
                                                       "last.pth"]
    assert _iteration(newest) == _iteration(last) == TINY["iterations"] and _stray(run) == []
    assert _events(run) == ["start", "end", "resume", "end"]
    assert _train_iterations(run) == list(range(1, TINY["iterations"] + 1))


def test_when_no_checkpoint_is_whole_one_line_names_each_and_how_to_start_afresh(synthetic_root, tmp_path, capsys):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "last.pth").write_bytes(b"PK\x03\x04 the first bytes of a zip archive")
    (ckpts / "iter_000002.pth").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in ckpts.iterdir()}
    assert _train(as_args(tiny_overrides(synthetic_root, run))) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot resume {run}: no checkpoint in {ckpts} is whole (last.pth: damaged: ")
    assert "; iter_000002.pth: damaged: " in line and line.endswith(f"to start afresh, delete {ckpts} (or train "
                                                                     "under another name)")
    assert {p.name: p.read_bytes() for p in ckpts.iterdir()} == before and _stray(run) == []


# ---------------------------------------------------------------- a full disk
@pytest.mark.slow
def test_too_little_free_space_refuses_before_writing_and_keeps_the_previous_checkpoint(
        synthetic_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    assert _train(as_args(tiny_overrides(synthetic_root, run, iterations=2))) == 0
    size = last.stat().st_size
    real = shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: real(path)._replace(free=2**20))
    args = as_args(tiny_overrides(synthetic_root, run))
    capsys.readouterr()

    assert _train(args) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: not enough free space in {last.parent} for the checkpoint of iteration 4: 1.0 MiB free, about "
        f"{2 * size / 2**20:.1f} MiB needed; the previous checkpoint {last} is intact; free some space, then run "
        "the same command again to resume")
    assert _iteration(last) == 2 and sorted(p.name for p in last.parent.iterdir()) == ["iter_000002.pth", "last.pth"]
    assert _stray(run) == []
    monkeypatch.undo()
    assert _train(args) == 0 and _iteration(last) == TINY["iterations"]


@pytest.mark.slow
def test_a_file_size_limit_while_saving_is_one_line_and_the_previous_checkpoint_stays(synthetic_root, tmp_path):
    """EFBIG from the operating system, in a real ``python -m aiblib train`` (what ENOSPC and quotas look like)."""
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    assert _train(as_args(tiny_overrides(synthetic_root, run, iterations=2))) == 0
    limit = last.stat().st_size // 2

    def limited() -> None:  # in the child: files may not grow past half a checkpoint
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    args = as_args(tiny_overrides(synthetic_root, run))
    proc = subprocess.run([sys.executable, "-m", "aiblib", "train", *args], env=subprocess_env(), cwd=REPO,
                          capture_output=True, text=True, preexec_fn=limited, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = _error_line(proc.stderr)
    assert line.startswith(f"error: cannot write {last.parent / 'iter_000004.pth'}: file too large"), line
    assert line.endswith(f"[EFBIG]; the previous checkpoint {last} is intact; free some space, then run the same "
                         "command again to resume"), line
    assert _iteration(last) == 2 and sorted(p.name for p in last.parent.iterdir()) == ["iter_000002.pth", "last.pth"]
    assert _stray(run) == []
    assert _train(args) == 0 and _iteration(last) == TINY["iterations"]


@pytest.mark.slow
def test_a_full_disk_while_writing_the_log_is_one_line_and_the_rerun_ends(synthetic_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    appends = {"n": 0}

    class FullDisk:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_after_four(path, mode="r", *args, **kwargs):
        file = open(path, mode, *args, **kwargs)
        appends["n"] += "a" in mode
        return FullDisk(file) if appends["n"] == 5 else file  # the start event, iterations 1-3, then full

    monkeypatch.setattr(runlog, "open", full_after_four, raising=False)
    args = as_args(tiny_overrides(synthetic_root, run))
    assert _train(args) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"error: cannot write {run / 'log.jsonl'}: no space left on the device [ENOSPC]; free some space, then run "
        "the same command again to resume")
    assert _iteration(last) == 2 and _stray(run) == []
    monkeypatch.undo()
    assert _train(args) == 0 and _iteration(last) == TINY["iterations"]
    assert _train_iterations(run) == list(range(1, TINY["iterations"] + 1))


# ---------------------------------------------------------------- two writers
def _holder(lock_file: Path) -> dict:
    return json.loads(lock_file.read_text())


def test_the_lock_names_a_live_holder_and_takes_over_a_dead_ones(tmp_path, capsys):
    lock_file, host = tmp_path / ".lock", socket.gethostname()
    with RunLock(tmp_path):
        assert _holder(lock_file)["pid"] == os.getpid() and _holder(lock_file)["host"] == host
        with pytest.raises(RunLockedError, match=re.escape(f"{tmp_path} is in use by process {os.getpid()} on {host} ")):
            RunLock(tmp_path).acquire()
    assert not lock_file.exists()
    # a holder that died, and a process id now used by another process (started at another time)
    for holder in ({"pid": _dead_pid(), "host": host}, {"pid": os.getppid(), "host": host, "pid_started": "1"}):
        lock_file.write_text(json.dumps(holder))
        with RunLock(tmp_path):
            assert _holder(lock_file)["pid"] == os.getpid()
        assert capsys.readouterr().err == (f"warning: taking over the stale lock {lock_file} (of process "
                                           f"{holder['pid']} on {host}, not running)\n")
        assert not lock_file.exists()
    # a holder on another host cannot be checked from here
    lock_file.write_text(json.dumps({"pid": 4242, "host": "elsewhere", "started": "2026-01-01T00:00:00"}))
    with pytest.raises(RunLockedError, match=f"in use by process 4242 on elsewhere .*delete {re.escape(str(lock_file))}$"):
        RunLock(tmp_path).acquire()
    assert lock_file.exists()


RACERS = 8


def _race_for_the_lock(run_dir: Path, start, done, results) -> None:
    """One of the racing processes: take ``run_dir``'s lock when all are ready; hold it until all have tried."""
    unlink = pathlib.Path.unlink

    def slow_unlink(self, missing_ok=False):  # a slow shared file system: what a takeover does next comes late
        time.sleep(0.3)
        unlink(self, missing_ok=missing_ok)

    pathlib.Path.unlink = slow_unlink
    start.wait(timeout=60)
    try:
        lock = RunLock(run_dir).acquire()
    except RunLockedError as exc:
        results.put(("refused", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("failed", repr(exc)))
        return
    results.put(("took", os.getpid()))
    done.wait(timeout=60)
    lock.release()


def test_racing_processes_take_a_stale_lock_over_exactly_once(tmp_path):
    """8 processes released at once try to take over a dead process's lock: one takes it, 7 are refused."""
    lock_file, host = tmp_path / ".lock", socket.gethostname()
    lock_file.write_text(json.dumps({"pid": _dead_pid(), "host": host, "started": "2026-01-01T00:00:00"}))
    context = multiprocessing.get_context("fork")  # the racers only open files: no threads of this process needed
    start, done, results = context.Barrier(RACERS), context.Event(), context.Queue()
    racers = [context.Process(target=_race_for_the_lock, args=(tmp_path, start, done, results)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    try:
        outcomes = [results.get(timeout=60) for _ in racers]
    finally:
        done.set()
        for racer in racers:
            racer.join(timeout=30)
    assert all(racer.exitcode == 0 for racer in racers)
    took = [who for kind, who in outcomes if kind == "took"]
    refused = [message for kind, message in outcomes if kind == "refused"]
    assert len(took) == 1 and len(refused) == RACERS - 1, outcomes
    assert all(m.startswith(f"run directory {tmp_path} is in use by process {took[0]} on {host} ") for m in refused), \
        refused  # each names the holder, not the dead process whose lock it took over
    assert not lock_file.exists()  # released by the one holder


_PAUSED = """
import os, sys, time
from aiblib.training import loop as T
from aiblib.__main__ import main
save = T.save_training_checkpoint
def save_then_wait(state, ckpt_dir, *, keep_copy):
    path = save(state, ckpt_dir, keep_copy=keep_copy)
    if state["iteration"] == 2:
        open(sys.argv[1], "w").close()  # mid-run, holding the lock
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.05)
    return path
T.save_training_checkpoint = save_then_wait
sys.exit(main(["train", *sys.argv[3:]]))
"""


@pytest.mark.slow
def test_a_second_training_on_the_run_directory_refuses_and_the_first_is_untouched(synthetic_root, tmp_path, capsys):
    run = tmp_path / "run"
    paused, go = tmp_path / "paused", tmp_path / "go"
    args = as_args(tiny_overrides(synthetic_root, run))
    first = subprocess.Popen([sys.executable, "-c", _PAUSED, str(paused), str(go), *args], env=subprocess_env(),
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(paused.exists, first, "the first training to reach iteration 2")
        log = (run / "log.jsonl").read_bytes()
        assert _train(args) == 2  # the same command in a second terminal
        line = _error_line(capsys.readouterr().err)
        assert line.startswith(f"error: run directory {run} is in use by process {first.pid} on {socket.gethostname()} ")
        assert line.endswith(f"wait for it to finish or stop it; if no such process runs, delete {run / '.lock'}")
        assert (run / "log.jsonl").read_bytes() == log
    finally:
        go.touch()
        out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert _events(run) == ["start", "end"] and _train_iterations(run) == list(range(1, TINY["iterations"] + 1))
    assert _iteration(run / "checkpoints" / "last.pth") == TINY["iterations"] and _stray(run) == []
    # a lock left by a process that is gone (kill -9, a power cut) is taken over, saying so
    (run / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    assert _train(args) == 0
    assert f"warning: taking over the stale lock {run / '.lock'}" in capsys.readouterr().err and _stray(run) == []


# ---------------------------------------------------------------- Ctrl-C and SIGTERM
@pytest.mark.slow
def test_ctrl_c_saves_the_step_under_way_and_the_rerun_ends_as_an_unbroken_run(synthetic_root, tmp_path, capsys,
                                                                             monkeypatch):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    args = as_args(tiny_overrides(synthetic_root, run))
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _signal_at(monkeypatch, 3, signal.SIGINT)
    assert _train(args) == 130
    assert _error_line(capsys.readouterr().err) == (
        f"error: training stopped by SIGINT after iteration 3 of 6; {last} holds iteration 3; {LAST_WORDS}")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # a kernel lives on
    assert _iteration(last) == 3 and sorted(p.name for p in last.parent.iterdir()) == ["iter_000002.pth", "last.pth"]
    assert _events(run) == ["start", "interrupted"] and _train_iterations(run) == [1, 2, 3] and _stray(run) == []
    monkeypatch.undo()
    assert _train(args) == 0
    unbroken = loop.train(load_config(None, tiny_overrides(synthetic_root, tmp_path / "unbroken")))
    _same_weights(read_checkpoint(last), read_checkpoint(unbroken / "checkpoints" / "last.pth"))
    assert _events(run) == ["start", "interrupted", "resume", "end"]
    assert _train_iterations(run) == list(range(1, TINY["iterations"] + 1))


def test_a_second_ctrl_c_stops_at_once_and_a_repeated_sigterm_does_not(synthetic_root, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    _signal_at(monkeypatch, 3, signal.SIGINT, signal.SIGINT)
    assert _train(as_args(tiny_overrides(synthetic_root, run))) == 130
    assert _error_line(capsys.readouterr().err).startswith("error: interrupted")
    assert _iteration(last) == 2 and _stray(run) == [] and _events(run) == ["start"]  # the step under way is lost
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    # pre-emption: SIGTERM, sent twice (a launcher passing on the one it got), finishes the step and saves
    _signal_at(monkeypatch, 1, signal.SIGTERM, signal.SIGTERM)
    assert _train(as_args(tiny_overrides(synthetic_root, run))) == 143
    assert _error_line(capsys.readouterr().err) == (
        f"error: training stopped by SIGTERM after iteration 3 of 6; {last} holds iteration 3; {LAST_WORDS}")
    assert _iteration(last) == 3 and _stray(run) == [] and _events(run) == ["start", "resume", "interrupted"]


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_reaches_the_data_loader_workers_too(synthetic_root, tmp_path):
    """SIGINT to the whole process group of a real ``python -m aiblib train`` with 2 data-loader workers."""
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pth"
    args = as_args(tiny_overrides(synthetic_root, run, num_workers=2))
    child = subprocess.Popen([sys.executable, "-m", "aiblib", "train", *args], env=subprocess_env(), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(_has_train_record(run), child, "the first train record")
    os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 130, err[-3000:]
    stop = int(read_log(run, "event").iloc[-1]["iteration"])
    assert _error_line(err) == (f"error: training stopped by SIGINT after iteration {stop} of 6; {last} holds "
                                f"iteration {stop}; {LAST_WORDS}")
    assert 1 <= stop < TINY["iterations"] and _iteration(last) == stop and _stray(run) == []
    assert _events(run) == ["start", "interrupted"]
    assert _train(args) == 0 and _iteration(last) == TINY["iterations"]
    assert _train_iterations(run) == list(range(1, TINY["iterations"] + 1))


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_both_ranks_after_the_same_iteration_and_the_rerun_ends(synthetic_root, tmp_path):
    """Pre-emption under ``torchrun --nproc_per_node=2`` (gloo, CPU): the launcher gets SIGTERM and passes it on."""
    run = tmp_path / "ddp"
    last = run / "checkpoints" / "last.pth"
    iterations = 8
    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m",
                "aiblib", "train", *as_args(tiny_overrides(synthetic_root, run, iterations=iterations,
                                                                images_per_iteration=4))]
    agent = subprocess.Popen(torchrun, env=subprocess_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    _wait_for(_has_train_record(run), agent, "the first train record")
    agent.send_signal(signal.SIGTERM)
    out, err = agent.communicate(timeout=300)
    assert agent.returncode != 0
    events = read_log(run, "event")
    assert list(events["event"]) == ["start", "interrupted"], err[-3000:]
    stop = int(events.iloc[-1]["iteration"])
    assert 1 <= stop < iterations and _iteration(last) == stop, err[-3000:]
    lines = {line for line in err.splitlines() if line.startswith("error: ")}
    assert lines == {f"error: training stopped by SIGTERM after iteration {stop} of {iterations}; {last} holds "
                     f"iteration {stop}; {LAST_WORDS}"}, err[-3000:]
    state = read_checkpoint(last)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and _stray(run) == []
    # the same command again resumes on both ranks and ends with identical replicas
    proc = subprocess.run(torchrun, env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _iteration(last) == iterations and _stray(run) == []
    events = read_log(run, "event")
    assert list(events["event"]) == ["start", "interrupted", "resume", "end"] and events.iloc[-1]["replicas_identical"]
    assert _train_iterations(run) == list(range(1, iterations + 1))

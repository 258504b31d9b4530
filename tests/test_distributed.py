"""Distributed training and evaluation under torchrun (2 processes, gloo, CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, as_args, read_checkpoint, subprocess_env, tiny_overrides

from aiblib.storage import read_log


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(synthetic_root, tmp_path, capsys, monkeypatch):
    """``launch`` runs ``torchrun --standalone --nproc_per_node=2 -m aiblib train -f ...``."""
    from aiblib.config import load_config
    from aiblib.training import launch

    for key, value in subprocess_env().items():
        monkeypatch.setenv(key, value)
    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "ddp", iterations=4, val_interval=4,
                                           images_per_iteration=4))
    run = launch(cfg, 2)
    assert run == tmp_path / "ddp"
    assert capsys.readouterr().out.count("run directory:") == 1  # rank 1 is quiet
    events = read_log(run, "event")
    assert list(events["event"]) == ["start", "end"]  # written once
    assert events.iloc[0]["world_size"] == 2 and events.iloc[0]["batch_norm"] == "BatchNorm"  # no SyncBN on CPU
    assert events.iloc[0]["images_per_iteration"] == 4 and events.iloc[0]["images_per_process"] == 2
    end = events.iloc[-1]
    assert end["replicas_identical"] and len(end["replica_digests"]) == 2
    assert list(read_log(run, "train")["iteration"]) == [1, 2, 3, 4]
    assert len(read_log(run, "val")) == 1
    state = read_checkpoint(run / "checkpoints" / "last.pth")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "log.jsonl"]


@pytest.mark.slow
def test_torchrun_evaluation_reduces_the_confusion_matrix(synthetic_root, tmp_path):
    """Two processes score disjoint halves; the reduced result equals one process's."""
    import torch

    from aiblib.config import load_config
    from aiblib.evaluation import evaluate_checkpoint
    from aiblib.model import build_model
    from aiblib.storage import model_checkpoint, save_atomic

    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "run"))
    torch.manual_seed(0)
    model = build_model(cfg.model_config())
    ckpt = tmp_path / "model.pth"
    save_atomic(model_checkpoint(model), ckpt)
    single = evaluate_checkpoint(cfg, ckpt, dataset="bdd100k", split="val", out_dir=tmp_path / "one", quiet=True)
    torchrun = Path(sys.executable).with_name("torchrun")
    args = as_args(tiny_overrides(synthetic_root, tmp_path / "run"))
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "aiblib", "evaluate", *args,
                           "--checkpoint", str(ckpt), "-p", "dataset", "bdd100k", "--out", str(tmp_path / "two")],
                          env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["inference"]["world_size"] == 2
    assert two["mIoU"] == single["mIoU"] and two["per_class"] == single["per_class"]


_LAGGING_RANK = """
import os, sys
from pathlib import Path
from aiblib.__main__ import main
from aiblib.training import loop, rundir
if os.environ["RANK"] == "1":  # this rank's listing lags (a shared file system's attribute cache): only iter_000002
    listing = rundir.training_checkpoints
    rundir.training_checkpoints = lambda folder: [p for p in listing(folder) if p.name == "iter_000002.pth"]
opened = loop.open_run_dir
def noting_the_start(cfg, proc, run_dir, checkpoint):
    start = opened(cfg, proc, run_dir, checkpoint)
    Path(sys.argv[1], f"rank{proc.rank}").write_text(str(start))
    return start
loop.open_run_dir = noting_the_start
sys.exit(main(["train", *sys.argv[2:]]))
"""


def _kill_ranks(script: Path) -> None:
    """SIGKILL every process running ``script`` (torchrun starts its ranks in sessions of their own)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(script).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone meanwhile


@pytest.mark.slow
def test_every_rank_resumes_from_the_checkpoint_rank_0_chose(synthetic_root, tmp_path):
    """Rank 1's view of the checkpoint folder lags behind rank 0's; both start from rank 0's choice (iteration 4)."""
    from aiblib.__main__ import main

    run, starts = tmp_path / "run", tmp_path / "starts"
    starts.mkdir()
    first = tiny_overrides(synthetic_root, run, iterations=4, images_per_iteration=4)
    assert main(["train", *as_args(first)]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_000002.pth", "iter_000004.pth", "last.pth"]
    script = tmp_path / "lagging_rank.py"
    script.write_text(_LAGGING_RANK)
    torchrun, stderr = Path(sys.executable).with_name("torchrun"), tmp_path / "stderr"
    with stderr.open("w") as err_file:
        child = subprocess.Popen([str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(starts),
                                  *as_args({**first, "iterations": 6})], env=subprocess_env(), cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True)
        try:
            child.wait(timeout=300)
        except subprocess.TimeoutExpired:  # ranks at different iterations wait on each other's collectives
            os.killpg(child.pid, signal.SIGKILL)
            _kill_ranks(script)
            child.wait()
            raise AssertionError(f"the resumed run hung: {stderr.read_text()[-3000:]}") from None
    assert child.returncode == 0, stderr.read_text()[-3000:]
    assert {p.name: p.read_text() for p in starts.iterdir()} == {"rank0": "4", "rank1": "4"}
    assert list(read_log(run, "train")["iteration"]) == [1, 2, 3, 4, 5, 6]
    events = read_log(run, "event")
    assert list(events["event"]) == ["start", "end", "resume", "end"]
    assert events.iloc[-1]["replicas_identical"]  # the same optimizer state on both ranks
    assert read_checkpoint(run / "checkpoints" / "last.pth")["iteration"] == 6

"""Distributed training and evaluation under torchrun (2 processes, gloo, CPU)."""

from __future__ import annotations

import json
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

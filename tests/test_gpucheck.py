"""make gpu-check: says so and exits 0 without CUDA; its steps run (on the CPU at toy sizes, or on CUDA)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO, subprocess_env

from aiblib.storage import RunLog
from aiblib.tools import cuda_plan, format_report, run_gpu_check, tiny_plan
from aiblib.tools.gpucheck import _summary


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_the_check_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "aiblib", "gpu-check", "--out", str(out)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU here" in proc.stdout and "nothing was run" in proc.stdout
    assert not out.exists()


def test_the_training_summary_reads_speed_and_memory_after_the_first_two_records(tmp_path):
    # On CUDA the first records' peak also holds cuDNN's algorithm search and what ran before the training.
    log = RunLog(tmp_path / "log.jsonl", enabled=True)
    log.write("event", 0, event="start", world_size=1, batch_norm="BatchNorm", images_per_process=8)
    for i, (speed, memory) in enumerate([(5.0, 90000.0), (50.0, 136000.0), (100.0, 30000.0), (102.0, 31000.0)]):
        log.write("train", i + 1, loss=2.0 - i / 10, images_per_s=speed, memory_mb=memory, memory_kind="cuda_peak")
    summary = _summary(tmp_path)
    assert summary["memory_mb"] == 31000.0 and summary["images_per_s"] == 101.0
    assert (summary["first_loss"], summary["last_loss"]) == (2.0, 1.7)


@pytest.mark.slow
def test_the_checks_steps_run_on_the_cpu_at_toy_sizes(tmp_path):
    result = run_gpu_check(tiny_plan(tmp_path))
    json.dumps(result)  # what the command writes
    assert set(result["training"]) == {"off", "bf16"}
    assert all(r["images_per_process"] == 2 and r["batch_norm"] == "BatchNorm" for r in result["training"].values())
    assert "skipped" in result["distributed"]
    assert result["resume"]["identical"], result["resume"]  # kill -9 then rerun ends as an unbroken run on the CPU
    assert result["logits"]["channels_last"]["relative_error"] < 1e-5
    assert set(result["logits"]) == {"bf16", "channels_last"}  # compiled logits: test_model.py
    assert 0 < result["logits"]["bf16"]["relative_error"] < 0.1
    report = format_report(result)
    assert "kill -9 at iteration" in report and "| fp32 |" in report


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_full_check_on_cuda(tmp_path):
    result = run_gpu_check(cuda_plan(tmp_path))
    assert result["resume"]["max_weight_difference"] < 1e-3
    assert result["logits"]["channels_last"]["relative_error"] < 1e-4
    assert result["training"]["off"]["images_per_process"] * result["training"]["off"]["world_size"] == 8

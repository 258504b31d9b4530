"""make gpu-check: says so and exits 0 without CUDA; its steps run (on the CPU at toy sizes, or on CUDA)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO, subprocess_env

from aiblib.gpucheck import cuda_plan, format_report, run_gpu_check, tiny_plan


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_the_check_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "aiblib", "gpu-check", "--out", str(out)], cwd=REPO,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU here" in proc.stdout and "nothing was run" in proc.stdout
    assert not out.exists()


@pytest.mark.slow
def test_the_checks_steps_run_on_the_cpu_at_toy_sizes(tmp_path):
    result = run_gpu_check(tiny_plan(tmp_path))
    json.dumps(result)  # what the command writes
    assert set(result["training"]) == {"off", "bf16"}
    assert all(r["images_per_process"] == 2 and r["batch_norm"] == "BatchNorm" for r in result["training"].values())
    assert "skipped" in result["distributed"]
    assert result["resume"]["identical"], result["resume"]  # kill -9 then rerun ends as an unbroken run on the CPU
    assert result["logits"]["channels_last"]["relative_error"] < 1e-5
    assert result["logits"]["compiled"]["relative_error"] < 1e-5
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

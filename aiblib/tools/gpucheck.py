"""``make gpu-check``: the paper's recipe on a CUDA machine, checked and measured in one command.

On a CUDA device (R50-D8, AIBR attention, 512x1024 crops, 8 images per iteration):

1. ``data``: synthetic street scenes at the crop size, generated into a work folder;
2. ``training``: a short training with the project's engine, fp32 then bf16 autocast
   (images/s, peak memory, first and last loss, from the run's log);
3. ``distributed``: with 2 or more GPUs the same training under torchrun (NCCL, SyncBatchNorm,
   8 images per iteration split across the processes);
4. ``resume``: a training killed with SIGKILL after its first checkpoint, then rerun, against an
   unbroken one (deterministic algorithms): the largest weight difference at the end;
5. ``logits``: one eval-mode forward at 1024x2048, fp32 eager (the reference's execution) against
   bf16 autocast, channels_last and ``torch.compile``: relative error and argmax agreement;
6. ``modes``: the rows of :func:`aiblib.tools.bench.bench_row` (training step and inference images/s,
   peak memory) for each mode at the reference's 2 images per GPU.

:func:`run_gpu_check` returns the results as a dict (written to JSON by the command line) and
:func:`format_report` prints them as tables. :func:`tiny_plan` runs the same steps on the CPU at
toy sizes (what the tests do); on a machine without CUDA the command line runs nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from aiblib.config import Config
from aiblib.data.synth import generate
from aiblib.evaluation import forward, noise_generator
from aiblib.model import ModelConfig, build_model
from aiblib.reporting import markdown_table
from aiblib.storage import last_checkpoint, read_log, safe_load
from aiblib.tools.bench import bench_row, release_memory
from aiblib.tools.preparation import prepare
from aiblib.training import launch, train

__all__ = ["Plan", "cuda_plan", "tiny_plan", "run_gpu_check", "format_report"]

LOGIT_MODES = ("bf16", "channels_last", "compiled")


@dataclass(frozen=True)
class Plan:
    """What the check runs: sizes are (h, w)."""

    device: str                      # "cuda" or "cpu"
    work: Path                       # data and run folders
    depth: int = 50
    crop: tuple[int, int] = (512, 1024)
    test_size: tuple[int, int] = (1024, 2048)
    images_per_iteration: int = 8
    bench_batch: int = 2             # images per GPU in the mode rows (the reference's)
    iterations: int = 20
    train_images: int = 16
    num_workers: int = 4
    gpus: int = 1
    modes: tuple[str, ...] = ("fp32", "bf16", "channels_last")
    logit_modes: tuple[str, ...] = LOGIT_MODES


def cuda_plan(work: Path) -> Plan:
    """The plan for this machine's GPUs."""
    return Plan(device="cuda", work=work, gpus=torch.cuda.device_count(),
                num_workers=min(8, max(1, (os.cpu_count() or 2) // max(torch.cuda.device_count(), 1))))


def tiny_plan(work: Path) -> Plan:
    """The same steps on the CPU at toy sizes (seconds, not minutes)."""
    return Plan(device="cpu", work=work, depth=18, crop=(64, 128), test_size=(64, 128), images_per_iteration=2,
                bench_batch=2, iterations=4, train_images=4, num_workers=0, gpus=1, modes=("fp32",),
                # compiling the model takes most of a CPU check's minutes; test_model.py checks compiled logits
                logit_modes=("bf16", "channels_last"))


def _config(plan: Plan, name: str, **changes) -> Config:
    """The training configuration of the check (paper recipe at the plan's sizes)."""
    keys = dict(depth=plan.depth, attention=True, beta=1e-4, output_stride=8, crop_size=list(plan.crop),
                base_size=list(plan.crop), images_per_iteration=plan.images_per_iteration, iterations=plan.iterations,
                val_interval=0, checkpoint_interval=0, log_interval=1, num_workers=plan.num_workers, device=plan.device,
                data_root=str(plan.work / "data"), run_dir=str(plan.work / name), progress=False, pretrained="",
                test_samples=4, amp="off")
    return Config(**{**keys, **changes})


def make_data(plan: Plan) -> dict:
    """Synthetic domains at the crop size in ``work/data`` (kept between calls)."""
    root = plan.work / "data"
    if not (root / "cityscapes").is_dir():
        generate(root, n_train=plan.train_images, n_val=2, size=plan.crop, seed=0,
                 workers=max(1, min(8, os.cpu_count() or 1)))
        prepare(root, verbose=False)
    return {"root": str(root), "images": plan.train_images, "size": list(plan.crop)}


def _summary(run: Path) -> dict:
    """images/s (median after the first two iterations), peak memory (the largest after them: the first
    records also hold cuDNN's algorithm search and, on CUDA, what ran before the training) and losses
    from a run's log."""
    records = read_log(run, "train")
    steady = records.iloc[2:] if len(records) > 2 else records
    start = read_log(run, "event").iloc[0]
    return {"images_per_s": float(steady["images_per_s"].median()), "memory_mb": float(steady["memory_mb"].max()),
            "memory_kind": str(records["memory_kind"].iloc[-1]), "first_loss": float(records["loss"].iloc[0]),
            "last_loss": float(records["loss"].iloc[-1]), "world_size": int(start["world_size"]),
            "batch_norm": str(start["batch_norm"]), "images_per_process": int(start["images_per_process"])}


def training(plan: Plan) -> dict:
    """The short training in this process, fp32 then bf16 autocast."""
    return {amp: _summary(train(_config(plan, f"train-{amp}", amp=amp))) for amp in ("off", "bf16")}


def distributed(plan: Plan) -> dict:
    """The fp32 training under torchrun on every GPU that divides the iteration (2 or more)."""
    gpus = max((n for n in range(1, plan.gpus + 1) if plan.images_per_iteration % n == 0), default=1)
    if gpus < 2:
        return {"skipped": f"{plan.gpus} GPU: torchrun with NCCL and SyncBatchNorm needs 2 or more"}
    return _summary(launch(_config(plan, f"ddp-{gpus}"), gpus))


def _train_command(params: Path) -> list[str]:
    return [sys.executable, "-m", "aiblib", "train", "-f", str(params)]


def _kill_after_first_checkpoint(params: Path, run: Path, timeout: float) -> int:
    """Start a training, SIGKILL it once its first checkpoint is on disk; the iteration it was killed at."""
    child = subprocess.Popen(_train_command(params), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline:
        if (run / "checkpoints" / "last.pth").is_file() and len(read_log(run, "train")) > 3:
            break
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    return int(read_log(run, "train")["iteration"].max())


def resume(plan: Plan, timeout: float = 600.0) -> dict:
    """Kill -9 after the first checkpoint, rerun, and compare the end weights with an unbroken run."""
    results = {}
    for name in ("unbroken", "killed"):
        cfg = _config(plan, f"resume-{name}", deterministic_algorithms=True, checkpoint_interval=2,
                      iterations=max(plan.iterations // 2, 6), num_workers=0)
        params = plan.work / f"resume-{name}.yaml"
        cfg.save(params)
        run = cfg.resolved_run_dir()
        if name == "killed":
            results["killed_at"] = _kill_after_first_checkpoint(params, run, timeout)
        subprocess.run(_train_command(params), check=True, stdout=subprocess.DEVNULL, timeout=timeout)
        results[name] = safe_load(last_checkpoint(run))["model"]
    unbroken, killed = results.pop("unbroken"), results.pop("killed")
    diff = max(float((unbroken[k].double() - killed[k].double()).abs().max()) for k in unbroken)
    return {**results, "max_weight_difference": diff, "identical": diff == 0.0}


def _rel(a: torch.Tensor, b: torch.Tensor) -> dict:
    return {"relative_error": float((a - b).norm() / b.norm()),
            "argmax_agreement": float((a.argmax(1) == b.argmax(1)).float().mean())}


@torch.no_grad()
def logits(plan: Plan) -> dict:
    """Eval-mode logits at the test size: each of the plan's ``logit_modes`` against fp32 eager."""
    device = torch.device(plan.device)
    torch.manual_seed(0)
    model = build_model(ModelConfig(depth=plan.depth, attention=True, output_stride=8, test_samples=4)).to(device).eval()
    image = torch.randn(1, 3, *plan.test_size, generator=torch.Generator().manual_seed(1)).to(device)

    def run(net, x, bf16=False) -> torch.Tensor:
        return forward(net, x, generator=noise_generator(device, 0, 0), use_bf16=bf16)["out"]

    reference = run(model, image)
    out = {}
    if "bf16" in plan.logit_modes:
        out["bf16"] = _rel(run(model, image, bf16=True), reference)
    if "channels_last" in plan.logit_modes:
        model.to(memory_format=torch.channels_last)
        out["channels_last"] = _rel(run(model, image.contiguous(memory_format=torch.channels_last)), reference)
        model.to(memory_format=torch.contiguous_format)
    if "compiled" in plan.logit_modes:
        out["compiled"] = _rel(run(torch.compile(model), image), reference)
    return out


def modes(plan: Plan) -> list[dict]:
    """One bench row per mode: training step and inference at the reference's batch per GPU."""
    rows = []
    for mode in plan.modes:
        rows.append(bench_row(depth=plan.depth, attention=True, mode=mode, crop=plan.crop, batch=plan.bench_batch,
                              test_size=plan.test_size, samples=4, device=torch.device(plan.device), output_stride=8,
                              warmup=2, iters=5, widths={}))
        release_memory()
    return rows


def run_gpu_check(plan: Plan) -> dict:
    """Every step of the module docstring, in order; the results."""
    plan.work.mkdir(parents=True, exist_ok=True)
    card = torch.cuda.get_device_name(0) if plan.device == "cuda" else "cpu"
    result = {"device": card, "gpus": plan.gpus, "torch": torch.__version__, "plan": {
        "depth": plan.depth, "crop": list(plan.crop), "test_size": list(plan.test_size),
        "images_per_iteration": plan.images_per_iteration, "iterations": plan.iterations}}
    result["data"] = make_data(plan)
    result["training"] = training(plan)
    result["distributed"] = distributed(plan)
    result["resume"] = resume(plan)
    result["logits"] = logits(plan)
    result["modes"] = modes(plan)
    return result


def _table(header: list[str], rows: list[list]) -> str:
    """Rows of formatted cells as a markdown table (:func:`aiblib.reporting.report.markdown_table`)."""
    return markdown_table(pd.DataFrame(rows, columns=header))


def format_report(result: dict) -> str:
    """The results as markdown tables (what ``make gpu-check`` prints)."""
    plan = result["plan"]
    parts = [f"device: {result['device']} x {result['gpus']}, torch {result['torch']}; R{plan['depth']}-D8 AIBR, "
             f"crop {plan['crop'][0]}x{plan['crop'][1]}, {plan['images_per_iteration']} images per iteration, "
             f"{plan['iterations']} iterations"]
    runs = dict(result["training"])
    if "skipped" not in result["distributed"]:
        runs["torchrun fp32"] = result["distributed"]
    parts.append(_table(
        ["training", "processes x images", "batch norm", "images/s", "peak memory MiB", "loss first -> last"],
        [[name, f"{r['world_size']} x {r['images_per_process']}", r["batch_norm"], f"{r['images_per_s']:.2f}",
          f"{r['memory_mb']:.0f} ({r['memory_kind']})", f"{r['first_loss']:.4f} -> {r['last_loss']:.4f}"]
         for name, r in runs.items()]))
    if "skipped" in result["distributed"]:
        parts.append(f"torchrun: skipped ({result['distributed']['skipped']})")
    res = result["resume"]
    parts.append(f"kill -9 at iteration {res['killed_at']} then rerun: "
                 + ("weights identical to an unbroken run" if res["identical"]
                    else f"largest weight difference {res['max_weight_difference']:.3g}"))
    parts.append(_table(["logits vs fp32 eager", "relative error", "argmax agreement"],
                        [[mode, f"{r['relative_error']:.2e}", f"{r['argmax_agreement'] * 100:.3f} %"]
                         for mode, r in result["logits"].items()]))
    parts.append(_table(["mode", "train step ms", "train img/s", "train peak MiB", "infer img/s", "infer peak MiB"],
                        [[r["mode"], f"{r['step_ms']:.0f}", f"{r['train_img_s']:.2f}", f"{r['train_peak_mb']:.0f}",
                          f"{r['infer_img_s']:.2f}", f"{r['infer_peak_mb']:.0f}"] for r in result["modes"]]))
    return "\n\n".join(parts)

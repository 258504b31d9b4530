"""What training and evaluation both need from the process they run in.

- :class:`Process` and :func:`process_group`: where this process sits (torchrun's ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``) and its device; the group is joined on entry and left on
  exit when this call joined it.
- :func:`resolve_precision`: bf16 autocast and channels_last from the configuration's switches
  (:func:`native_bf16`: whether the device computes bf16 natively); :func:`compiled`: ``torch.compile`` if asked.
- :func:`environment`: what a record says about where a run computed (precision, device, CPU model, torch).
- :func:`torch_settings`: threads, deterministic algorithms and cuDNN benchmark, restored on
  exit (a notebook kernel lives on after a run).
- :func:`rng_state` / :func:`set_rng_state` / :func:`seed_everything`: every RNG this project draws from.
- :func:`memory_mb`, :func:`sync`: measuring.
- :func:`broadcast_buffers`, :func:`state_digest`: keeping replicas identical, and checking it.
- :func:`raise_on_every_rank`: a failure on one rank (a damaged file) raised on all, before any waits on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import random
import resource
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from aiblib.errors import ConfigError

__all__ = [
    "raise_on_every_rank", "Process", "process_group", "barrier", "native_bf16", "resolve_precision", "environment", "compiled", "torch_settings", "rng_state", "set_rng_state",
    "seed_everything", "memory_mb", "sync", "broadcast_buffers", "state_digest",
]


@dataclass(frozen=True)
class Process:
    """Where this process sits: ``rank`` among ``world_size``, ``local_rank`` on its node, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _current_process(device: str) -> Process:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (one process when torchrun did not set them)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda' but torch sees no CUDA device")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    return Process(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[Process]:
    """This process, joined to its torchrun group (NCCL on CUDA, gloo on CPU) while inside.

    ``device``: "auto" (CUDA when available), "cpu" or "cuda". A group that already exists
    (a caller joined it) is used and left as it is.
    """
    proc = _current_process(device)
    joined = proc.distributed and not dist.is_initialized()
    if joined:
        dist.init_process_group(backend="nccl" if proc.device.type == "cuda" else "gloo")
    try:
        yield proc
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def barrier(proc: Process) -> None:
    """Wait for every process of the group (nothing to wait for in one process)."""
    if proc.distributed:
        dist.barrier()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA with bf16 support, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(amp: str, channels_last: bool | str, device: torch.device) -> tuple[bool, bool]:
    """``(bf16 autocast, channels_last)`` for the configuration's ``amp`` and ``channels_last`` on ``device``.

    ``amp``: "off" fp32 (the reference), "bf16" on, "auto" on where :func:`native_bf16`;
    ``channels_last``: True / False, or "auto" (on CUDA).
    """
    use_bf16 = amp == "bf16" or (amp == "auto" and native_bf16(device))
    return use_bf16, (device.type == "cuda" if channels_last == "auto" else bool(channels_last))


def cpu_model() -> str:
    """The CPU's model name as the operating system reports it (``/proc/cpuinfo`` on Linux), else
    :func:`platform.processor`, else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device, *, use_bf16: bool) -> dict[str, str | bool]:
    """Where and how a run computed, for its records (the training log's start and resume events,
    ``scores.json``, ``run.json``): ``precision`` ("bf16" autocast or "fp32"), ``device`` (with the GPU's
    name on CUDA), ``cpu`` (model name), ``native_bf16`` (whether this device computes bf16 in hardware:
    without it, bf16 is emulated: the same number format, computed more slowly) and the ``torch`` version."""
    name = str(device)
    if device.type == "cuda":
        name = f"{device} ({torch.cuda.get_device_name(device)})"
    return {"precision": "bf16" if use_bf16 else "fp32", "device": name, "cpu": cpu_model(),
            "native_bf16": native_bf16(device), "torch": torch.__version__}


def compiled(net: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(net)`` when ``enabled`` (the configuration's ``compile``), else ``net`` itself."""
    return torch.compile(net) if enabled else net


@contextlib.contextmanager
def torch_settings(*, threads: int = 0, deterministic_algorithms: bool = False,
                   device: torch.device | None = None) -> Iterator[None]:
    """Set torch's process-wide switches while inside, and restore them on exit.

    ``threads`` > 0 sets ``torch.set_num_threads``; ``deterministic_algorithms`` turns on
    ``torch.use_deterministic_algorithms`` (and off cuDNN benchmark); otherwise cuDNN
    benchmark is on for CUDA devices.
    """
    saved = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.backends.cudnn.benchmark)
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic_algorithms:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif device is not None and device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.set_num_threads(saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def rng_state() -> dict:
    """This process's RNG states (torch, CUDA, numpy, python) as plain containers and tensors."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, pystate, pygauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(pystate), "gauss": pygauss},
    }


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global RNG and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def memory_mb(device: torch.device) -> tuple[float, str]:
    """``(megabytes, kind)``: CUDA peak allocated on a CUDA device ("cuda_peak"), else this
    process's resident memory ("rss", or "rss_peak" where /proc is missing)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_peak"
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, "rss"
    except OSError:  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_peak"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (for timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def broadcast_buffers(model: torch.nn.Module, proc: Process) -> None:
    """Give every rank rank 0's buffers (plain-BN running statistics drift apart under DDP on CPU)."""
    if proc.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def state_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (to check that DDP replicas are identical)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def raise_on_every_rank(failure: Exception | None, device: torch.device, *, failed: bool | None = None) -> None:
    """Raise on every rank the ``failure`` of the lowest rank that has one (nothing when none has).

    Outside a process group, raise ``failure`` when given. In one, every rank must call this at the
    same point: ``failed`` (whether any rank has a failure) is all-reduced here unless the caller did.
    The failures are gathered as objects, so each rank raises the same error; it is marked
    ``every_rank``, so the command line prints its line once (rank 0).
    """
    if not (dist.is_available() and dist.is_initialized()):
        if failure is not None:
            raise failure
        return
    if failed is None:
        flag = torch.tensor([int(failure is not None)], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        failed = bool(flag.item())
    if not failed:
        return
    failures: list = [None] * dist.get_world_size()
    dist.all_gather_object(failures, failure)
    first = next(f for f in failures if f is not None)
    first.every_rank = True
    raise first

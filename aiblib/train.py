"""Training: one function for a notebook on one device and for ``torchrun`` on many.

One process (CPU or one GPU, plain BatchNorm)::

    python -m aiblib train -f params/synthetic-dg.yaml -p iterations 200 -p name dg-aib

Several processes on one machine (DDP; NCCL + SyncBN on GPUs, gloo + plain BN on CPU,
``batch_size`` is per process, each rank reads its own shard)::

    torchrun --standalone --nproc_per_node=4 -m aiblib train -f params/paper/dg-r50.yaml

Several machines: ``torchrun --nnodes=2 --node_rank=R --nproc_per_node=4
--rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m aiblib train -f ...`` (the run
directory must be on a shared file system, since every rank reads ``last.pth`` to resume).

From Python: ``aiblib.train.train(cfg) -> Path`` (the run directory).

The run directory (``runs_root/name`` or ``run_dir``), written by rank 0 only::

    config.yaml              the resolved configuration (load_config reads it back)
    log.jsonl                one JSON object per line (read_log(run_dir, kind) -> DataFrame)
    checkpoints/last.pth     latest checkpoint (written atomically)
    checkpoints/iter_NNNNNN.pth   every checkpoint_interval iterations

log.jsonl records all have ``kind``, ``iteration`` and ``time`` (unix s); null = NaN:

- ``event``: ``event`` = "start" (world_size, device, bf16, channels_last, batch_norm,
  parameters, train_images, val_images), "pretrained" (path, report), "resume",
  "nonfinite_loss" (message, lr), "end" (replica_digests, replicas_identical);
- ``train`` (every log_interval iterations; means since the previous record, over ranks):
  loss, loss_ce, loss_aux, loss_kl, kl_bits, lr, mu_mean, mu_min, mu_max, std_mean,
  time_per_iter, data_time (s per iteration), images_per_s (all ranks), memory_mb,
  memory_kind ("cuda_peak" since the previous record, or "rss");
- ``val`` (every val_interval iterations and at the end): dataset, split, mIoU, mAcc,
  aAcc (percent), IoU {class: percent}, seconds.

Checkpoints are aiblib checkpoints (``aiblib.checkpoint.load_model`` reads them) with
``optimizer``, ``scheduler``, ``iteration``, ``rng`` (one entry per rank) and
``config`` added. Rerunning the same command resumes from ``last.pth``; in
deterministic CPU mode a resumed run ends with the same weights, bit for bit, as one
never interrupted (augmentation randomness is a function of (seed, rank, sample
position), the sampling order of (seed, epoch), and every RNG state is saved).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from aiblib.config import RUNTIME_KEYS, Config, load_config

__all__ = [
    "train", "main", "DistInfo", "setup_distributed", "poly_lr", "InfiniteShardSampler",
    "SeededSamples", "rng_state", "set_rng_state", "read_log", "NonFiniteLossError", "make_optimizer",
    "launch", "torchrun_command",
]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ----------------------------------------------------------------------
# distributed set-up
@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank among world_size, local_rank on its node, and its device."""

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


def setup_distributed(device: str = "auto") -> DistInfo:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (set by torchrun) and join the group.

    Without them (a notebook, a plain ``python -m aiblib``) this is one process.
    ``device``: "auto" (CUDA when available), "cpu" or "cuda"; the backend is NCCL on
    CUDA and gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but torch sees no CUDA device")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def _barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


# ----------------------------------------------------------------------
# schedule, sampling, RNG
def poly_lr(iteration: int, *, base_lr: float, min_lr: float, power: float, max_iters: int) -> float:
    """MMSegmentation's PolyLR: ``(base - min) * (1 - it / max) ** power + min``."""
    frac = min(max(iteration, 0), max_iters) / max_iters
    return (base_lr - min_lr) * (1.0 - frac) ** power + min_lr


def sample_seed(seed: int, rank: int, position: int) -> int:
    """The augmentation seed of the ``position``-th sample drawn by ``rank``."""
    return int(np.random.SeedSequence([seed, rank, position]).generate_state(1, np.uint32)[0])


class InfiniteShardSampler(Sampler):
    """Endless stream of ``(index, sample_seed)`` for one rank, starting at ``start``.

    Epoch ``e`` is a permutation of the dataset drawn from ``(seed, e)``, padded by
    wrapping to a multiple of ``world_size`` and dealt round-robin to the ranks, so the
    stream is a pure function of (seed, rank, world_size, position): to resume after
    ``it`` iterations, start at ``it * batch_size``.
    """

    def __init__(self, size: int, *, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.rank, self.world_size, self.start = size, seed, rank, world_size, start
        self.per_rank = math.ceil(size / world_size)

    def epoch_indices(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        perm = torch.randperm(self.size, generator=g).tolist()
        total = self.per_rank * self.world_size
        perm = (perm * math.ceil(total / self.size))[:total]
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start
        epoch, indices = -1, []
        while True:
            e, pos = divmod(position, self.per_rank)
            if e != epoch:
                epoch, indices = e, self.epoch_indices(e)
            yield indices[pos], sample_seed(self.seed, self.rank, position)
            position += 1


class SeededSamples(Dataset):
    """Wraps a dataset: ``self[(index, seed)]`` is ``dataset[index]`` drawn with torch,
    numpy and python ``random`` seeded by ``seed`` (the caller's RNG states are restored),
    so augmentations do not depend on workers, prefetching or where a run was resumed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


def rng_state() -> dict:
    """This process's RNG states as plain containers and tensors (safe_load reads them)."""
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
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ----------------------------------------------------------------------
# run directory: log and checkpoints
class RunLog:
    """Appends JSON objects, one per line, to ``path`` (a no-op on ranks > 0).

    Every record has ``kind`` ("event", "train" or "val"), ``iteration`` and ``time``
    (unix seconds); NaN / infinite numbers are written as ``null``.
    """

    def __init__(self, path: Path, *, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, kind: str, iteration: int, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "iteration": iteration, "time": round(time.time(), 3), **fields}
        with open(self.path, "a") as f:
            f.write(json.dumps(_json_safe(record), allow_nan=False) + "\n")

    def truncate_after(self, iteration: int) -> None:
        """Drop train/val records past ``iteration`` (written after the checkpoint a resume starts from)."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by kill -9
                continue
            if record.get("kind") == "event" or record.get("iteration", 0) <= iteration:
                keep.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)


def read_log(run_dir: str | Path, kind: str = "train"):
    """The ``kind`` records of ``run_dir/log.jsonl`` as a pandas DataFrame (one row per record)."""
    import pandas as pd

    path = Path(run_dir) / "log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no training log at {path}")
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("kind") == kind:
            records.append(record)
    if kind == "val":  # flatten the per-class IoU dict into IoU/<class> columns
        for record in records:
            for name, value in (record.pop("IoU", None) or {}).items():
                record[f"IoU/{name}"] = value
    records = [{k: math.nan if v is None else v for k, v in r.items()} for r in records]  # null = NaN
    return pd.DataFrame.from_records(records)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, (set, frozenset)):
        return sorted(_json_safe(v) for v in value)
    return str(value)


def _save_checkpoint(state: dict, ckpt_dir: Path, *, keep_copy: bool) -> Path:
    """Write ``last.pth`` atomically; with ``keep_copy`` also ``iter_NNNNNN.pth`` (hard link when possible)."""
    from aiblib.checkpoint import save_atomic

    last = ckpt_dir / "last.pth"
    if not keep_copy:
        save_atomic(state, last)
        return last
    kept = ckpt_dir / f"iter_{state['iteration']:06d}.pth"
    save_atomic(state, kept)
    tmp = ckpt_dir / ".last.pth.link"
    tmp.unlink(missing_ok=True)
    try:
        os.link(kept, tmp)
        os.replace(tmp, last)
    except OSError:
        save_atomic(state, last)
    return kept


# ----------------------------------------------------------------------
def _resolve_precision(cfg: Config, device: torch.device) -> tuple[bool, bool]:
    cuda = device.type == "cuda"
    if cfg.amp == "bf16":
        use_bf16 = True
    elif cfg.amp == "auto":
        use_bf16 = cuda and torch.cuda.is_bf16_supported()
    else:
        use_bf16 = False
    channels_last = cuda if cfg.channels_last == "auto" else bool(cfg.channels_last)
    return use_bf16, channels_last


def _memory_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_peak"
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, "rss"
    except OSError:  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_peak"


def _check_resume_config(saved: dict, cfg: Config, source: Path) -> None:
    current = cfg.to_dict()
    changed = [k for k, v in saved.items() if k not in RUNTIME_KEYS and k in current and current[k] != v]
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume {source}: these keys differ from the run's saved configuration: {details}. "
            "Use another name (or run_dir) for a different experiment."
        )


def _build_datasets(cfg: Config):
    from aiblib.data import build_dataset
    from aiblib.transforms import test_transform, train_transform

    train_tf = train_transform(
        crop_size=tuple(cfg.crop_size), base_size=tuple(cfg.base_size), ratio_range=tuple(cfg.ratio_range),
        cat_max_ratio=cfg.cat_max_ratio, flip_prob=cfg.flip_prob, photometric=cfg.photometric,
    )
    train_set = build_dataset(cfg.train_dataset, cfg.data_root, cfg.train_split, train_tf)
    val_set = build_dataset(cfg.val_dataset, cfg.data_root, cfg.val_split, test_transform(base_size=tuple(cfg.base_size)))
    return train_set, val_set


def _prepare_model(cfg: Config, info: DistInfo, *, log: RunLog, resuming: bool) -> nn.Module:
    from aiblib.model import build_model

    model_cfg = cfg.model_config()
    if resuming and model_cfg.pretrained:  # the checkpoint holds the weights; do not require the file
        model_cfg = dataclasses.replace(model_cfg, pretrained="")
    if model_cfg.pretrained:
        path = Path(model_cfg.pretrained)
        if not path.is_file():
            raise FileNotFoundError(
                f"config key 'pretrained': no backbone file at {path.resolve()} (weights are never downloaded; "
                "give a local torchvision or MMSegmentation resnet*_v1c file, or '' to train from scratch)"
            )
    model = build_model(model_cfg)  # loads the pretrained backbone, keeping model.pretrained_report
    if model_cfg.pretrained:
        report = getattr(model, "pretrained_report", None)
        log.write("event", 0, event="pretrained", path=str(Path(model_cfg.pretrained).resolve()),
                  report=report if isinstance(report, (dict, list, str)) else str(report))
    return model


def train(cfg: Config) -> Path:
    """Train ``cfg`` and return its run directory (see the module docstring for the files).

    Works in one process (a notebook) and under ``torchrun`` (one process per device).
    Raises :class:`NonFiniteLossError` when the loss stops being finite (``last.pth``
    then still holds the last good checkpoint).
    """
    from aiblib.evaluate import evaluate_model
    from aiblib.losses import segmentation_loss

    if cfg.deterministic_algorithms:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    info = setup_distributed(cfg.device)
    created_group = info.distributed
    # process-wide switches this function sets; restored afterwards (a notebook kernel lives on)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads(), torch.backends.cudnn.benchmark)
    try:
        return _train(cfg, info, evaluate_model, segmentation_loss)
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.set_num_threads(saved[1])
        torch.backends.cudnn.benchmark = saved[2]
        if created_group and dist.is_initialized():
            dist.destroy_process_group()


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD with momentum and weight decay on every parameter (the reference's optimizer)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _train(cfg: Config, info: DistInfo, evaluate_model, segmentation_loss) -> Path:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic_algorithms:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    device = info.device
    use_bf16, channels_last = _resolve_precision(cfg, device)

    run_dir = cfg.resolved_run_dir()
    ckpt_dir = run_dir / "checkpoints"
    last_path = ckpt_dir / "last.pth"
    log = RunLog(run_dir / "log.jsonl", enabled=info.is_main)

    # ---- resume or fresh start (every rank decides the same from the shared file system)
    checkpoint = None
    if last_path.exists():
        if not cfg.resume:
            raise FileExistsError(
                f"{run_dir} already holds checkpoints and resume is false; choose another name/run_dir, "
                "delete the folder, or set resume true to continue"
            )
        from aiblib.checkpoint import safe_load

        checkpoint = safe_load(last_path)
        _check_resume_config(checkpoint["config"], cfg, last_path)
        if checkpoint["iteration"] > cfg.iterations:
            raise ValueError(f"{last_path} is at iteration {checkpoint['iteration']} > iterations={cfg.iterations}")
    start_iter = int(checkpoint["iteration"]) if checkpoint else 0
    if info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            (run_dir / "log.jsonl").unlink(missing_ok=True)
        else:
            log.truncate_after(start_iter)
        cfg.save(run_dir / "config.yaml")
    _barrier(info)
    if checkpoint is not None and start_iter >= cfg.iterations:
        if info.is_main:
            print(f"{run_dir}: already trained to iteration {start_iter}; nothing to do")
        return run_dir

    # ---- model, optimizer, data
    seed_everything(cfg.seed + info.rank)
    model = _prepare_model(cfg, info, log=log, resuming=checkpoint is not None)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    bn_kind = "BatchNorm"
    if info.distributed and cfg.sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        bn_kind = "SyncBatchNorm"
    optimizer = make_optimizer(model, cfg)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    net: nn.Module = model
    if info.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(cfg.attention and cfg.deterministic),
        )

    train_set, val_set = _build_datasets(cfg)
    sampler = InfiniteShardSampler(
        len(train_set), seed=cfg.seed, rank=info.rank, world_size=info.world_size, start=start_iter * cfg.batch_size
    )
    loader = DataLoader(
        SeededSamples(train_set), batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda", drop_last=True, persistent_workers=cfg.num_workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    batches = iter(loader)

    if checkpoint is not None:
        states = checkpoint.get("rng") or []
        if checkpoint.get("world_size", 1) == info.world_size and info.rank < len(states):
            set_rng_state(states[info.rank])
        elif info.is_main:
            print(f"warning: {last_path} was written by {checkpoint.get('world_size')} processes; "
                  f"RNG states are not restored for {info.world_size}", file=sys.stderr)
        del checkpoint
        log.write("event", start_iter, event="resume", world_size=info.world_size, device=str(device))
    else:
        log.write("event", 0, event="start", world_size=info.world_size, device=str(device), bf16=use_bf16,
                  channels_last=channels_last, batch_norm=bn_kind,
                  parameters=sum(p.numel() for p in model.parameters()),
                  train_images=len(train_set), val_images=len(val_set))

    from tqdm import tqdm

    show = info.is_main and cfg.progress and not os.environ.get("CI")
    bar = tqdm(total=cfg.iterations, initial=start_iter, disable=not show, dynamic_ncols=True, desc=run_dir.name)
    class_names = _class_names(cfg.num_classes)
    stats = _Stats()
    iteration = start_iter
    net.train()
    tick = time.perf_counter()
    while iteration < cfg.iterations:
        lr = poly_lr(iteration, base_lr=cfg.lr, min_lr=cfg.min_lr, power=cfg.poly_power, max_iters=cfg.iterations)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t_data = time.perf_counter()
        batch = next(batches)
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True).long()
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        stats.data_time += time.perf_counter() - t_data
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            outputs = net(images)
        outputs = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in outputs.items()}
        terms = segmentation_loss(outputs, labels, beta=cfg.beta, aux_weight=cfg.aux_weight, reduction=cfg.loss_reduction)
        loss = terms["loss"]
        finite = torch.isfinite(loss.detach()).float()
        if info.distributed:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() == 0:
            values = {k: float(v.detach()) for k, v in terms.items()}
            message = (f"non-finite loss at iteration {iteration + 1} ({values}); stopping. "
                       f"The last good checkpoint is kept: {last_path if last_path.exists() else 'none was written yet'}")
            log.write("event", iteration + 1, event="nonfinite_loss", message=message, lr=lr)
            bar.close()
            raise NonFiniteLossError(message)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration += 1
        stats.add(terms, outputs, lr)
        bar.update(1)

        if iteration % cfg.log_interval == 0 or iteration == cfg.iterations:
            now = time.perf_counter()
            record = stats.summary(info)
            elapsed = now - tick
            record["time_per_iter"] = elapsed / stats.count
            record["data_time"] = stats.data_time / stats.count
            record["images_per_s"] = stats.count * cfg.batch_size * info.world_size / elapsed
            record["memory_mb"], record["memory_kind"] = _memory_mb(device)
            log.write("train", iteration, **record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            stats = _Stats()
            tick = time.perf_counter()

        if (cfg.val_interval and iteration % cfg.val_interval == 0) or iteration == cfg.iterations:
            t0 = time.perf_counter()
            _sync_buffers(model, info)
            result = evaluate_model(
                model, val_set, cfg=cfg, device=device, rank=info.rank, world_size=info.world_size,
                class_names=class_names, use_bf16=use_bf16, channels_last=channels_last,
            )
            net.train()
            m = result["metrics"]
            log.write("val", iteration, dataset=cfg.val_dataset, split=cfg.val_split, mIoU=m["mIoU"], mAcc=m["mAcc"],
                      aAcc=m["aAcc"], IoU=dict(zip(class_names, m["IoU"])), seconds=time.perf_counter() - t0)
            if show:
                bar.write(f"iteration {iteration}: {cfg.val_dataset}/{cfg.val_split} mIoU {m['mIoU']:.2f}")
            tick += time.perf_counter() - t0  # validation time is not training throughput

        keep = bool(cfg.checkpoint_interval) and iteration % cfg.checkpoint_interval == 0
        if keep or iteration == cfg.iterations:
            t0 = time.perf_counter()
            _sync_buffers(model, info)
            if not all(bool(t.isfinite().all()) for t in model.state_dict().values() if t.is_floating_point()):
                message = (f"non-finite weights after iteration {iteration}; stopping without saving. The last good "
                           f"checkpoint is kept: {last_path if last_path.exists() else 'none was written yet'}")
                log.write("event", iteration, event="nonfinite_weights", message=message)
                bar.close()
                raise NonFiniteLossError(message)
            states = [rng_state()]
            if info.distributed:
                states = [None] * info.world_size
                dist.all_gather_object(states, rng_state())
            if info.is_main:
                from aiblib.checkpoint import model_checkpoint

                state = model_checkpoint(
                    model,
                    optimizer=optimizer.state_dict(),
                    scheduler={"name": "poly", "base_lr": cfg.lr, "min_lr": cfg.min_lr, "power": cfg.poly_power,
                               "max_iters": cfg.iterations, "last_lr": lr},
                    iteration=iteration,
                    world_size=info.world_size,
                    rng=states,
                    config=cfg.to_dict(),
                )
                state["model"] = _plain_state_dict(model)  # CPU copies: the file loads anywhere
                _save_checkpoint(state, ckpt_dir, keep_copy=keep)
            _barrier(info)
            tick += time.perf_counter() - t0
    bar.close()
    digests = [_digest(model)]
    if info.distributed:
        digests = [None] * info.world_size
        dist.all_gather_object(digests, _digest(model))
    log.write("event", iteration, event="end", replica_digests=digests, replicas_identical=len(set(digests)) == 1)
    _barrier(info)
    return run_dir


def _digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (to check that DDP replicas are identical)."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sync_buffers(model: nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (plain-BN running statistics drift apart under DDP on CPU)."""
    if info.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def _plain_state_dict(model: nn.Module) -> dict:
    """State dict with plain tensors on the CPU (SyncBN and BN share names, so it loads into either)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _class_names(num_classes: int) -> list[str]:
    try:
        from aiblib.data import CLASSES
    except ImportError:  # pragma: no cover
        CLASSES = ()
    return list(CLASSES) if len(CLASSES) == num_classes else [str(i) for i in range(num_classes)]


class _Stats:
    """Running sums of the logged quantities over one log interval."""

    def __init__(self) -> None:
        self.count = 0
        self.data_time = 0.0
        self.sums: dict[str, torch.Tensor] = {}
        self.mu_min: torch.Tensor | None = None
        self.mu_max: torch.Tensor | None = None

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self.sums[key] = self.sums[key] + value if key in self.sums else value

    def add(self, terms: dict, outputs: dict, lr: float) -> None:
        self.count += 1
        self.lr = lr
        for key, value in terms.items():
            self._add(key, value)
        if "kl" in outputs:
            self._add("kl_bits", outputs["kl"])
        if "mu" in outputs:
            mu = outputs["mu"].detach().float()
            self._add("mu_mean", mu.mean())
            self.mu_min = mu.min() if self.mu_min is None else torch.minimum(self.mu_min, mu.min())
            self.mu_max = mu.max() if self.mu_max is None else torch.maximum(self.mu_max, mu.max())
        if "std" in outputs:
            self._add("std_mean", outputs["std"].detach().float().mean())

    def summary(self, info: DistInfo) -> dict:
        """Means over the interval (and over ranks), mu min / max over both."""
        keys = sorted(self.sums)
        means = torch.stack([self.sums[k] for k in keys]) / self.count if keys else torch.zeros(0)
        extremes = None
        if self.mu_min is not None:
            extremes = torch.stack([-self.mu_min, self.mu_max])
        if info.distributed:
            dist.all_reduce(means, op=dist.ReduceOp.SUM)
            means /= info.world_size
            if extremes is not None:
                dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
        record: dict[str, Any] = {"lr": self.lr}
        record.update({k: float(v) for k, v in zip(keys, means.tolist())})
        if extremes is not None:
            record["mu_min"], record["mu_max"] = -float(extremes[0]), float(extremes[1])
        return record


def torchrun_command(params_file: str | Path, nproc_per_node: int) -> list[str]:
    """The command line of a one-machine DDP run of a parameter file (what :func:`launch` runs)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc_per_node}",
            "-m", "aiblib", "train", "-f", str(params_file)]


def launch(cfg: Config, nproc_per_node: int, *, env: dict[str, str] | None = None) -> Path:
    """Train ``cfg`` with ``nproc_per_node`` processes under torchrun, from a notebook.

    The configuration goes through a temporary YAML file; the processes' output is
    printed line by line. Returns the run directory; raises ``RuntimeError`` (with the
    last lines of output) when the run fails.
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        params = Path(tmp) / "config.yaml"
        cfg.save(params)
        command = torchrun_command(params, nproc_per_node)
        child_env = {**os.environ, **(env or {})}
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            child_env.pop(key, None)
        tail: list[str] = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                tail = (tail + [line])[-150:]
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}:\n{''.join(tail)}")
    return cfg.resolved_run_dir()


# ----------------------------------------------------------------------
def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """papermill's spelling: ``-f FILE``, repeated ``-p NAME VALUE``, repeated ``-y YAML``."""
    parser.add_argument("-f", "--parameters_file", help="YAML file of parameters (params/*.yaml)")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="override one key (value read as YAML; repeatable)")
    parser.add_argument("-y", "--parameters_yaml", action="append", default=[],
                        help="override keys with a YAML mapping string (repeatable)")
    parser.add_argument("--help-config", action="store_true", help="list every configuration key and exit")


def config_from_args(args: argparse.Namespace, pairs: list[tuple[str, str]] | None = None) -> Config:
    import yaml

    from aiblib.config import parse_overrides

    cfg = load_config(args.parameters_file)
    values: dict[str, Any] = {}
    for text in args.parameters_yaml:
        mapping = yaml.safe_load(text) or {}
        if not isinstance(mapping, dict):
            raise ValueError(f"-y {text!r}: expected a YAML mapping")
        values.update(mapping)
    if values:
        cfg = cfg.replace(**values)
    pairs = args.parameters if pairs is None else pairs
    if pairs:
        cfg = cfg.replace(**parse_overrides([tuple(p) for p in pairs]))
    return cfg


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.help_config:
        print(Config.describe())
        return 0
    try:
        cfg = config_from_args(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run_dir = train(cfg)
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run directory: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

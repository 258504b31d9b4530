"""Training: one function for a notebook on one device and for ``torchrun`` on many.

One process (CPU or one GPU, plain BatchNorm)::

    python -m aiblib train -f params/synthetic-dg.yaml -p iterations 200 -p name dg-aib

Several processes on one machine (DDP; NCCL + SyncBN on GPUs, gloo + plain BN on CPU;
``images_per_iteration`` is split evenly across the processes, so a run reads the same images
per iteration, with the same augmentations, on any number of them)::

    torchrun --standalone --nproc_per_node=4 -m aiblib train -f params/paper/dg-r50.yaml

Several machines: ``torchrun --nnodes=2 --node_rank=R --nproc_per_node=4
--rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m aiblib train -f ...`` (the run
directory must be on a shared file system, since every rank reads ``last.pth`` to resume).

From Python: ``aiblib.training.loop.train(cfg) -> Path`` (the run directory); from a notebook on several
processes: ``aiblib.training.launch(cfg, nproc_per_node)``.

The run directory (``runs_root/name`` or ``run_dir``), written by rank 0 only::

    config.yaml              the resolved configuration (load_config reads it back)
    log.jsonl                one JSON object per line (aiblib.storage.runlog.read_log reads it)
    checkpoints/last.pth     latest checkpoint (written atomically; a file of its own)
    checkpoints/iter_NNNNNN.pth   every checkpoint_interval iterations
    .lock                    while training: the process id and host of the one writer (aiblib.storage.runlock)

The records of log.jsonl are listed in :mod:`aiblib.storage.runlog`.

Checkpoints are aiblib checkpoints (``aiblib.storage.checkpoint.load_model`` reads them) with
``optimizer``, ``scheduler``, ``iteration``, ``rng`` (one entry per rank) and
``config`` added. Rerunning the same command resumes from ``last.pth``; with
``deterministic_algorithms`` on the CPU a resumed run ends with the same weights, bit for bit, as one
never interrupted (augmentation randomness is a function of (seed, rank, sample
position), the sampling order of (seed, epoch), and every RNG state is saved).

Faults: a damaged checkpoint is skipped for the newest whole one, a second writer is refused
(:mod:`aiblib.training.rundir`), a full disk stops with the previous checkpoint intact (:mod:`aiblib.storage.atomic`),
SIGINT / SIGTERM finish the step and write ``last.pth`` first (:mod:`aiblib.training.stopping`),
a damaged or vanished data file or a dead data-loader worker stops every rank at the same iteration
in one line, the workers ended and the lock released (:mod:`aiblib.data.loading`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from aiblib.config import (
    Config,
    Process,
    barrier,
    broadcast_buffers,
    compiled,
    environment,
    images_per_process,
    memory_mb,
    process_group,
    resolve_precision,
    rng_state,
    seed_everything,
    state_digest,
    torch_settings,
)
from aiblib.data import Batches, DataError, build_dataset, train_transform
from aiblib.errors import ConfigError, Interrupted, WorkerFailed
from aiblib.evaluation import STAT_KEYS, forward, score_dataset, test_pipeline
from aiblib.storage import LOG_NAME, RunLog, checkpoint_dir, last_checkpoint, model_checkpoint, save_training_checkpoint
from aiblib.training.losses import segmentation_loss
from aiblib.training.rundir import exclusive, open_run_dir, restore_rng, resume_point
from aiblib.training.setup import device_batch, fresh_model, place_model, training_batches, wrap_ddp
from aiblib.training.stats import TrainStats
from aiblib.training.stopping import StopRequests, agreed_stop

__all__ = ["train", "NonFiniteLossError", "poly_lr", "lr_schedule", "scheduled_lr", "make_optimizer", "build_datasets"]


class NonFiniteLossError(FloatingPointError):
    """The loss (or the weights) stopped being finite; the last good checkpoint is kept."""


def poly_lr(iteration: int, *, base_lr: float, min_lr: float, power: float, max_iters: int) -> float:
    """The poly schedule: ``(base - min) * (1 - it / max) ** power + min`` (``it`` clipped to ``max``)."""
    frac = min(max(iteration, 0), max_iters) / max_iters
    return (base_lr - min_lr) * (1.0 - frac) ** power + min_lr


def lr_schedule(cfg: Config) -> dict:
    """The one learning-rate schedule of a run: :func:`poly_lr`'s arguments. MMEngine's PolyLR over
    ``iterations`` divides by ``iterations - 1`` (``max_iters``), so the last iteration runs at ``min_lr``.
    Checkpoints record it as their ``scheduler``, with ``name`` and the ``last_lr`` their last iteration ran at."""
    return {"base_lr": cfg.lr, "min_lr": cfg.min_lr, "power": cfg.poly_power, "max_iters": max(cfg.iterations - 1, 1)}


def scheduled_lr(iteration: int, cfg: Config) -> float:
    """The learning rate of (0-based) ``iteration``: :func:`poly_lr` over :func:`lr_schedule`."""
    return poly_lr(iteration, **lr_schedule(cfg))


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.SGD:
    """SGD with momentum and weight decay on every parameter (the reference's optimizer)."""
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_datasets(cfg: Config):
    """The training set (with the training augmentation; with ``augment_on: device`` only its draws, applied
    by the loop) and the validation set (test transform)."""
    train_tf = train_transform(
        crop_size=tuple(cfg.crop_size), base_size=tuple(cfg.base_size), ratio_range=tuple(cfg.ratio_range),
        cat_max_ratio=cfg.cat_max_ratio, flip_prob=cfg.flip_prob, photometric=cfg.photometric,
        draw_only=cfg.augment_on == "device",
    )
    train_set = build_dataset(cfg.train_dataset, cfg.data_root, cfg.train_split, train_tf, camvid_root=cfg.camvid_root)
    val_set = build_dataset(cfg.val_dataset, cfg.data_root, cfg.val_split, test_pipeline(cfg), camvid_root=cfg.camvid_root)
    return train_set, val_set


@dataclass
class _Run:
    """What the training loop works with."""

    cfg: Config
    proc: Process
    run_dir: Path
    log: RunLog
    model: nn.Module                 # the bare model (what is saved and validated)
    net: nn.Module                   # the model, wrapped in DDP when distributed
    optimizer: torch.optim.Optimizer
    batches: Batches                 # the training batches (close() ends the data-loader workers)
    val_set: object
    use_bf16: bool
    channels_last: bool
    bar: tqdm
    show: bool                       # rank 0 prints progress
    plain: bool = False              # progress as plain lines (no terminal for a bar)
    started: float = 0.0             # perf_counter when this process's loop started (for the ETA)
    first_iteration: int = 0         # the iteration it started from (0, or where it resumed)
    stats: TrainStats = field(default_factory=TrainStats)
    tick: float = 0.0                # start of the current log interval (perf_counter)
    stop: StopRequests = field(default_factory=StopRequests)  # SIGINT / SIGTERM noted while training
    saved_at: int = 0                # the iteration of the newest checkpoint (the start one when resumed)

    @property
    def last_path(self) -> Path:
        return last_checkpoint(self.run_dir)


def train(cfg: Config) -> Path:
    """Train ``cfg`` and return its run directory (see the module docstring for the files).

    Works in one process (a notebook) and under ``torchrun`` (one process per device).
    Raises :class:`NonFiniteLossError` when the loss stops being finite (``last.pth``
    then still holds the last good checkpoint), :class:`~aiblib.errors.Interrupted` after
    SIGINT / SIGTERM (``last.pth`` written first), ``StorageError`` when the disk is full and
    ``RunLockedError`` when another training holds the run directory.
    """
    if cfg.deterministic_algorithms:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with process_group(cfg.device) as proc, torch_settings(
            threads=cfg.threads, deterministic_algorithms=cfg.deterministic_algorithms, device=proc.device):
        run_dir = cfg.resolved_run_dir()
        with exclusive(run_dir, proc), StopRequests() as stop:
            checkpoint = resume_point(cfg, run_dir, proc)
            start = open_run_dir(cfg, proc, run_dir, checkpoint)
            if checkpoint is not None and start >= cfg.iterations:
                if proc.is_main:
                    print(f"{run_dir}: already trained to iteration {start}; nothing to do")
                return run_dir
            run = _set_up(cfg, proc, run_dir, checkpoint, start)
            run.stop, run.saved_at = stop, start
            with run.batches:  # the data-loader workers end on every way out, within seconds
                _loop(run, start)
                _finish(run)
            return run_dir


# ---------------------------------------------------------------------- set-up
def _set_up(cfg: Config, proc: Process, run_dir: Path, checkpoint: dict | None, start: int) -> _Run:
    """Model, optimizer and data, resumed from ``checkpoint`` when given; the start or resume event logged."""
    use_bf16, channels_last = resolve_precision(cfg.amp, cfg.channels_last, proc.device)
    per_process = images_per_process(cfg, proc.world_size)
    log = RunLog(run_dir / LOG_NAME, enabled=proc.is_main)
    seed_everything(cfg.seed + proc.rank)
    model = fresh_model(cfg, log, resuming=checkpoint is not None)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
    model, bn_kind = place_model(model, cfg, proc, channels_last)
    if per_process < 2 and bn_kind == "BatchNorm":  # the image-pooling BatchNorm sees one value per channel
        raise ConfigError(f"images_per_iteration {cfg.images_per_iteration} over {proc.world_size} processes is 1 image "
                         "per process, which plain BatchNorm cannot train on: give each process 2 or more")
    optimizer = make_optimizer(model, cfg)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    net = compiled(wrap_ddp(model, cfg, proc), cfg.compile)
    train_set, val_set = build_datasets(cfg)
    if checkpoint is not None:
        restore_rng(checkpoint, proc, last_checkpoint(run_dir))
        log.write("event", start, event="resume", world_size=proc.world_size, **environment(proc.device, use_bf16=use_bf16),
                  images_per_iteration=cfg.images_per_iteration, images_per_process=per_process)
    else:
        log.write("event", 0, event="start", world_size=proc.world_size, **environment(proc.device, use_bf16=use_bf16),
                  bf16=use_bf16, channels_last=channels_last, compile=cfg.compile, batch_norm=bn_kind,
                  images_per_iteration=cfg.images_per_iteration, images_per_process=per_process,
                  parameters=sum(p.numel() for p in model.parameters()),
                  train_images=len(train_set), val_images=len(val_set))
    show = proc.is_main and cfg.progress and not os.environ.get("CI")
    plain = show and not sys.stderr.isatty()  # a notebook, papermill or a log file: a line per log record
    bar = tqdm(total=cfg.iterations, initial=start, disable=not show or plain, dynamic_ncols=True, desc=run_dir.name)
    batches = training_batches(cfg, proc, train_set, start, per_process)  # last: its workers start now
    return _Run(cfg=cfg, proc=proc, run_dir=run_dir, log=log, model=model, net=net, optimizer=optimizer,
                batches=batches, val_set=val_set, use_bf16=use_bf16, channels_last=channels_last, bar=bar, show=show, plain=plain, first_iteration=start)


# ---------------------------------------------------------------------- the loop
def _loop(run: _Run, start: int) -> None:
    """Iterations ``start + 1 .. cfg.iterations``: step, then log, validate and save when due."""
    cfg, iteration = run.cfg, start
    run.net.train()
    run.tick = run.started = time.perf_counter()
    try:
        while iteration < cfg.iterations:
            batch, failure = _next_batch(run)
            # every rank stops after the same iteration, on a signal or on any rank's failure to load its batch
            if signal_number := agreed_stop(run.stop, run.proc, failure):
                _interrupted(run, iteration, signal_number)
            lr = _set_lr(run.optimizer, iteration, cfg)
            terms, outputs = _step(run, batch, iteration, lr)
            iteration += 1
            run.stats.add(terms, outputs, lr)
            run.bar.update(1)
            if iteration % cfg.log_interval == 0 or iteration == cfg.iterations:
                _log_train(run, iteration)
            if (cfg.val_interval and iteration % cfg.val_interval == 0) or iteration == cfg.iterations:
                _validate(run, iteration)
            keep = bool(cfg.checkpoint_interval) and iteration % cfg.checkpoint_interval == 0
            if keep or iteration == cfg.iterations:
                _save(run, iteration, keep=keep)
    finally:
        run.bar.close()


def _set_lr(optimizer: torch.optim.Optimizer, iteration: int, cfg: Config) -> float:
    lr = scheduled_lr(iteration, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _next_batch(run: _Run) -> tuple[dict | None, Exception | None]:
    """This process's next batch, or the error that stopped it (``DataError``: a file that cannot be
    read, or no batch from the workers within ``data_timeout``, named; ``WorkerFailed``: a data-loader
    worker died); the wait counts as data time."""
    t_data = time.perf_counter()
    try:
        return next(run.batches), None
    except (DataError, WorkerFailed) as exc:
        return None, exc
    finally:
        run.stats.data_time += time.perf_counter() - t_data


def _step(run: _Run, batch: dict, iteration: int, lr: float) -> tuple[dict, dict]:
    """One optimisation step on ``batch`` (augmented here with ``augment_on: device``); the loss terms and the
    model's outputs."""
    t_data = time.perf_counter()
    images, labels = device_batch(batch, crop_size=tuple(run.cfg.crop_size), device=run.proc.device,
                                  channels_last=run.channels_last)
    run.stats.data_time += time.perf_counter() - t_data
    outputs = forward(run.net, images, generator=None, use_bf16=run.use_bf16)
    cfg = run.cfg
    terms = segmentation_loss(outputs, labels, beta=cfg.beta, aux_weight=cfg.aux_weight, reduction=cfg.loss_reduction)
    _check_finite(run, terms, iteration, lr)
    run.optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    run.optimizer.step()
    return terms, outputs


def _kept_note(run: _Run) -> str:
    return f"The last good checkpoint is kept: {run.last_path if run.last_path.exists() else 'none was written yet'}"


def _check_finite(run: _Run, terms: dict, iteration: int, lr: float) -> None:
    """Stop every rank (NonFiniteLossError) when the loss of any rank is NaN or infinite."""
    finite = torch.isfinite(terms["loss"].detach()).float()
    if run.proc.distributed:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item() == 0:
        values = {k: float(v.detach()) for k, v in terms.items()}
        message = f"non-finite loss at iteration {iteration + 1} ({values}); stopping. {_kept_note(run)}"
        run.log.write("event", iteration + 1, event="nonfinite_loss", message=message, lr=lr)
        raise NonFiniteLossError(message)


def _log_train(run: _Run, iteration: int) -> None:
    """A ``train`` record: the interval's means (over ranks), speed and memory."""
    elapsed = time.perf_counter() - run.tick
    stats = run.stats
    record = stats.summary(run.proc)
    record["time_per_iter"] = elapsed / stats.count
    record["data_time"] = stats.data_time / stats.count
    record["images_per_s"] = stats.count * run.cfg.images_per_iteration / elapsed
    record["memory_mb"], record["memory_kind"] = memory_mb(run.proc.device)
    run.log.write("train", iteration, **record)
    run.bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", img_s=f"{record['images_per_s']:.1f}")
    if run.plain:
        print(progress_line(run, iteration, record), flush=True)
    if run.proc.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(run.proc.device)
    run.stats = TrainStats()
    run.tick = time.perf_counter()


def progress_line(run: _Run, iteration: int, record: dict) -> str:
    """``name  iteration 10/250  loss 3.7025  lr 4.84e-02  14.7 images/s  ETA 2m10s``."""
    done = iteration - run.first_iteration
    remaining = (time.perf_counter() - run.started) / max(done, 1) * (run.cfg.iterations - iteration)
    minutes, seconds = divmod(int(round(remaining)), 60)
    return (f"{run.run_dir.name}  iteration {iteration}/{run.cfg.iterations}  loss {record['loss']:.4f}  "
            f"lr {record['lr']:.2e}  {record['images_per_s']:.1f} images/s  ETA {minutes}m{seconds:02d}s")


def _validate(run: _Run, iteration: int) -> None:
    """Score the validation split and write a ``val`` record (its time is not training throughput)."""
    t0 = time.perf_counter()
    cfg, proc = run.cfg, run.proc
    broadcast_buffers(run.model, proc)
    result = score_dataset(run.model, run.val_set, cfg=cfg, device=proc.device, rank=proc.rank,
                           world_size=proc.world_size, dataset_name=cfg.val_dataset, use_bf16=run.use_bf16,
                           channels_last=run.channels_last)
    run.net.train()
    m = result["metrics"]
    attention = result["attention_stats"]  # None for a baseline
    run.log.write("val", iteration, dataset=cfg.val_dataset, split=cfg.val_split, mIoU=m["mIoU"], mAcc=m["mAcc"],
                  aAcc=m["aAcc"], IoU=dict(zip(m["classes"], m["IoU"])), seconds=time.perf_counter() - t0,
                  **({"attention": {k: attention[k] for k in STAT_KEYS}} if attention else {}))
    if run.show:
        run.bar.write(f"iteration {iteration}: {cfg.val_dataset}/{cfg.val_split} mIoU {m['mIoU']:.2f}")
    run.tick += time.perf_counter() - t0


def _save(run: _Run, iteration: int, *, keep: bool) -> None:
    """Write ``last.pth`` (and with ``keep`` ``iter_NNNNNN.pth``) from rank 0, with every rank's RNG state and
    the schedule (:func:`lr_schedule`, ``last_lr``: that of iteration ``iteration``, the 0-based ``iteration - 1``)."""
    t0 = time.perf_counter()
    cfg, proc = run.cfg, run.proc
    broadcast_buffers(run.model, proc)
    if not all(bool(t.isfinite().all()) for t in run.model.state_dict().values() if t.is_floating_point()):
        message = f"non-finite weights after iteration {iteration}; stopping without saving. {_kept_note(run)}"
        run.log.write("event", iteration, event="nonfinite_weights", message=message)
        raise NonFiniteLossError(message)
    states = [rng_state()]
    if proc.distributed:
        states = [None] * proc.world_size
        dist.all_gather_object(states, rng_state())
    if proc.is_main:
        scheduler = {"name": "poly", **lr_schedule(cfg), "last_lr": scheduled_lr(iteration - 1, cfg)}
        state = model_checkpoint(run.model, optimizer=run.optimizer.state_dict(), scheduler=scheduler,
                                 iteration=iteration, world_size=proc.world_size, rng=states, config=cfg.to_dict())
        save_training_checkpoint(state, checkpoint_dir(run.run_dir), keep_copy=keep)
    barrier(proc)
    run.saved_at = iteration
    run.tick += time.perf_counter() - t0


def _interrupted(run: _Run, iteration: int, signal_number: int) -> None:
    """After SIGINT / SIGTERM: ``last.pth`` at ``iteration`` (unless it is there), an ``interrupted`` event, raise."""
    cfg, name = run.cfg, signal.Signals(signal_number).name
    if iteration > run.saved_at:
        _save(run, iteration, keep=False)
    saved = f"{run.last_path} holds iteration {iteration}" if iteration else "no checkpoint was written yet"
    message = (f"training stopped by {name} after iteration {iteration} of {cfg.iterations}; {saved}; "
               "run the same command (or notebook) again to resume")
    run.log.write("event", iteration, event="interrupted", signal=name, message=message)
    raise Interrupted(message, signal_number=signal_number)


def _finish(run: _Run) -> None:
    """The ``end`` event, with each replica's weight digest (identical under DDP)."""
    digests = [state_digest(run.model)]
    if run.proc.distributed:
        digests = [None] * run.proc.world_size
        dist.all_gather_object(digests, state_digest(run.model))
    run.log.write("event", run.cfg.iterations, event="end", replica_digests=digests,
                  replicas_identical=len(set(digests)) == 1)
    barrier(run.proc)

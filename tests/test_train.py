from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import torch

from aiblib.config import Config, rng_state, set_rng_state
from aiblib.storage import RunLog, read_log
from aiblib.training import InfiniteShardSampler, SeededSamples, poly_lr, scheduled_lr


def test_poly_lr_matches_the_reference_formula():
    kw = dict(base_lr=0.01, min_lr=1e-4, power=0.9, max_iters=100)
    assert poly_lr(0, **kw) == pytest.approx(0.01)
    assert poly_lr(100, **kw) == pytest.approx(1e-4)
    assert poly_lr(50, **kw) == pytest.approx((0.01 - 1e-4) * 0.5**0.9 + 1e-4)
    values = [poly_lr(i, **kw) for i in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_the_schedule_ends_at_min_lr_on_the_last_iteration_as_mmengine():
    cfg = Config(iterations=5, lr=0.01, min_lr=1e-4, poly_power=0.9)
    assert scheduled_lr(0, cfg) == pytest.approx(0.01)
    assert scheduled_lr(4, cfg) == pytest.approx(1e-4)  # MMEngine: (1 - it / (iters - 1)) ** power
    assert scheduled_lr(2, cfg) == pytest.approx((0.01 - 1e-4) * 0.5**0.9 + 1e-4)


def test_sampler_shards_cover_each_epoch_and_resume_exactly():
    n, world = 10, 3
    streams = [list(itertools.islice(InfiniteShardSampler(n, seed=1, rank=r, world_size=world), 8)) for r in range(world)]
    merged = [streams[g % world][g // world] for g in range(24)]  # the global stream, rank by rank
    assert sorted(i for i, _ in merged[:n]) == list(range(n))  # epoch 0 reads every image once
    assert sorted(i for i, _ in merged[n:2 * n]) == list(range(n))
    assert [i for i, _ in merged[:n]] != [i for i, _ in merged[n:2 * n]]  # epoch 1 is another permutation
    # a stream started at position 5 is the tail of the stream started at 0
    tail = list(itertools.islice(InfiniteShardSampler(n, seed=1, rank=1, world_size=world, start=5), 3))
    assert tail == streams[1][5:8]
    # sample seeds differ between positions
    seeds = [s for _, s in merged]
    assert len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("world", [2, 4, 8])
def test_an_iteration_reads_the_same_images_and_augmentations_on_any_number_of_processes(world):
    n, images_per_iteration, iterations = 13, 8, 5
    per_process = images_per_iteration // world

    def iteration_draws(world_size: int, per: int, start_iteration: int) -> list[set]:
        streams = [list(itertools.islice(InfiniteShardSampler(n, seed=3, rank=r, world_size=world_size,
                                                             start=start_iteration * per), iterations * per))
                   for r in range(world_size)]
        return [sorted(d for s in streams for d in s[i * per:(i + 1) * per]) for i in range(iterations)]

    one = iteration_draws(1, images_per_iteration, 0)
    assert iteration_draws(world, per_process, 0) == one
    assert iteration_draws(world, per_process, 2)[:3] == one[2:]  # resumed at iteration 2


def _global_rng_states() -> tuple:
    """Every global RNG state (python, NumPy, torch's CPU generator and each CUDA one) as comparable values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    cuda = [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return random.getstate(), (kind, keys.tobytes(), pos, has_gauss, gauss), torch.get_rng_state().tolist(), cuda


@pytest.mark.parametrize("augment_on", ["cpu", "device"])
def test_loading_training_samples_neither_seeds_nor_advances_a_global_rng(synthetic_root, tmp_path, monkeypatch,
                                                                          augment_on):
    from aiblib.training import build_datasets

    train_set, _ = build_datasets(tiny_config(synthetic_root, tmp_path / "run", augment_on=augment_on))

    def seeded(*args, **kwargs):
        raise AssertionError("the data path seeded a global RNG")

    for owner, name in ((torch, "manual_seed"), (torch.random, "manual_seed"), (torch.cuda, "manual_seed"),
                        (torch.cuda, "manual_seed_all"), (np.random, "seed"), (random, "seed")):
        monkeypatch.setattr(owner, name, seeded)
    samples = SeededSamples(train_set)
    before = _global_rng_states()
    for item in itertools.islice(InfiniteShardSampler(len(train_set), seed=0), 2 * len(train_set)):
        samples[item]
    assert _global_rng_states() == before


@pytest.mark.parametrize("augment_on", ["cpu", "device"])
def test_a_training_sample_is_a_function_of_its_index_and_seed(synthetic_root, tmp_path, augment_on):
    from aiblib.training import build_datasets

    train_set, _ = build_datasets(tiny_config(synthetic_root, tmp_path / "run", augment_on=augment_on))
    samples = SeededSamples(train_set)
    torch.manual_seed(0)
    a = samples[(1, 123)]
    torch.manual_seed(1)  # the global RNG plays no part
    b, c = samples[(1, 123)], samples[(1, 124)]
    if augment_on == "device":
        assert a["draws"] == b["draws"] and a["draws"] != c["draws"]
    else:
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
        assert not torch.equal(a["image"], c["image"])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_training_advances_the_global_generators_by_the_models_draws_only(synthetic_root, tmp_path, device):
    """The attention noise and Dropout2d draw from torch's global CPU / CUDA generator: after two iterations
    (data loaded in this process) its saved state is that of the seed advanced by the model's draws alone."""
    from aiblib.config import seed_everything
    from aiblib.model import build_model
    from aiblib.training import train

    cfg = tiny_config(synthetic_root, tmp_path / "run", iterations=2, checkpoint_interval=0, device=device,
                      train_samples=2)
    saved = read_checkpoint(train(cfg) / "checkpoints" / "last.pth")["rng"][0]
    seed_everything(cfg.seed)
    model = build_model(cfg.model_config()).to(device).train()  # the initial weights are drawn first
    images = torch.zeros(cfg.images_per_iteration, 3, *cfg.crop_size, device=device)
    with torch.no_grad():
        for _ in range(cfg.iterations):
            model(images)
    assert torch.equal(saved["torch"], torch.get_rng_state())
    if device == "cuda":
        cuda = torch.cuda.get_rng_state_all()
        assert len(saved["cuda"]) == len(cuda) and all(torch.equal(a, b) for a, b in zip(saved["cuda"], cuda))
    replayed = rng_state()
    assert torch.equal(saved["numpy"].pop("keys"), replayed["numpy"].pop("keys"))
    assert saved["numpy"] == replayed["numpy"] and saved["python"] == replayed["python"]


def test_rng_state_roundtrip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(loaded)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_run_log_truncates_after_resume_point_and_writes_null_for_nan(tmp_path):
    log = RunLog(tmp_path / "log.jsonl", enabled=True)
    log.write("event", 0, event="start")
    for it in (2, 4, 6):
        log.write("train", it, loss=1.0 / it, mu_mean=float("nan"))
    log.write("val", 4, mIoU=12.5, IoU={"road": 50.0, "sky": float("nan")})
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"kind": "train", "iter')  # a line cut by kill -9
    log.truncate_after(4)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["iteration"]) for r in records] == [("event", 0), ("train", 2), ("train", 4), ("val", 4)]
    assert records[1]["mu_mean"] is None
    train = read_log(tmp_path, "train")
    assert list(train["iteration"]) == [2, 4] and train["mu_mean"].isna().all()
    val = read_log(tmp_path, "val")
    assert val.loc[0, "IoU/road"] == 50.0 and np.isnan(val.loc[0, "IoU/sky"])
    RunLog(tmp_path / "other.jsonl", enabled=False).write("train", 1, loss=1.0)
    assert not (tmp_path / "other.jsonl").exists()


# ---------------------------------------------------------------- integration (tiny model, synthetic data)
import subprocess  # noqa: E402
import sys  # noqa: E402

from conftest import REPO, TINY, as_args, read_checkpoint, subprocess_env, tiny_config, tiny_overrides  # noqa: E402

from aiblib.config import load_config  # noqa: E402


def test_a_few_iterations_reduce_the_loss_on_a_fixed_batch(synthetic_root):
    from aiblib.model import build_model
    from aiblib.training import build_datasets, make_optimizer, segmentation_loss

    cfg = load_config(None, tiny_overrides(synthetic_root, "unused", lr=0.05))
    torch.manual_seed(0)
    train_set, _ = build_datasets(cfg)
    items = [train_set[i] for i in range(2)]
    images = torch.stack([it["image"] for it in items])
    labels = torch.stack([it["label"] for it in items])
    model = build_model(cfg.model_config()).train()
    optimizer = make_optimizer(model, cfg)
    losses = []
    for _ in range(8):
        terms = segmentation_loss(model(images), labels, beta=cfg.beta, aux_weight=cfg.aux_weight)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
    assert losses[-1] < 0.9 * losses[0] and min(losses[-3:]) < min(losses[:3]), losses


def test_train_writes_the_run_directory_and_a_loadable_checkpoint(synthetic_root, tmp_path):
    from aiblib.evaluation import evaluate_checkpoint
    from aiblib.storage import load_model
    from aiblib.training import train

    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "run", iterations=4, val_interval=2))
    run_dir = train(cfg)
    assert run_dir == tmp_path / "run"
    assert load_config(run_dir / "config.yaml") == cfg
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["iter_000002.pth", "iter_000004.pth", "last.pth"]
    train_log = read_log(run_dir, "train")
    assert list(train_log["iteration"]) == [1, 2, 3, 4]
    for key in ("loss", "loss_ce", "loss_aux", "loss_kl", "kl_bits", "lr", "mu_mean", "mu_min", "mu_max",
                "images_per_s", "memory_mb"):
        assert train_log[key].notna().all(), key
    assert train_log["lr"].is_monotonic_decreasing
    val = read_log(run_dir, "val")
    assert list(val["iteration"]) == [2, 4]
    for iteration, miou in zip(val["iteration"], val["mIoU"]):  # validation scored the model of that iteration
        scored = evaluate_checkpoint(cfg, run_dir / "checkpoints" / f"iter_{iteration:06d}.pth",
                                     out_dir=tmp_path / f"eval-{iteration}", quiet=True)
        assert scored["mIoU"] == pytest.approx(miou, abs=1e-9), iteration
    state = read_checkpoint(run_dir / "checkpoints" / "last.pth")
    assert state["iteration"] == 4 and state["config"] == cfg.to_dict() and state["model_config"]["depth"] == 18
    model = load_model(run_dir / "checkpoints" / "last.pth")
    assert model.config.aspp_channels == 32
    # running the same command again resumes and has nothing left to do
    before = (run_dir / "log.jsonl").read_text()
    train(cfg)
    assert (run_dir / "log.jsonl").read_text() == before
    # a different experiment may not reuse the directory
    with pytest.raises(ValueError, match="beta"):
        train(cfg.replace(beta=0.5))
    with pytest.raises(FileExistsError):
        train(cfg.replace(resume=False))


def test_missing_pretrained_file_names_the_path(synthetic_root, tmp_path):
    from aiblib.training import train

    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "run", pretrained=str(tmp_path / "nope.pth")))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        train(cfg)


def test_one_image_per_process_with_plain_batchnorm_is_one_clear_line(synthetic_root, tmp_path):
    from aiblib.training import train

    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "run", images_per_iteration=1))
    with pytest.raises(ValueError, match="1 image per process, which plain BatchNorm cannot train on"):
        train(cfg)


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch):
    from aiblib.training import NonFiniteLossError, loop, train

    real = loop.segmentation_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # iteration 4 goes wrong (checkpoint_interval 3 wrote iteration 3)
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(loop, "segmentation_loss", poisoned)
    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "run", checkpoint_interval=3))
    with pytest.raises(NonFiniteLossError, match="iteration 4.*last.pth"):
        train(cfg)
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pth")["iteration"] == 3
    events = read_log(tmp_path / "run", "event")
    assert "nonfinite_loss" in set(events["event"])


def test_a_checkpoint_records_the_schedule_the_optimizer_ran(synthetic_root, tmp_path, monkeypatch):
    """``scheduler`` of a checkpoint, after Ctrl-C and after a normal save: ``last_lr`` is the lr the optimizer
    used at its last iteration, and poly_lr over its horizon gives the lr of every iteration the loop ran."""
    import os
    import signal

    from aiblib.errors import Interrupted
    from aiblib.training import loop, train

    real, calls = loop.segmentation_loss, {"n": 0}

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # Ctrl-C during step 3: last.pth holds iteration 3, between kept checkpoints
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "segmentation_loss", interrupting)
    run = tmp_path / "run"
    cfg = tiny_config(synthetic_root, run, checkpoint_interval=4)
    with pytest.raises(Interrupted):
        train(cfg)
    states = [read_checkpoint(run / "checkpoints" / "last.pth")]
    monkeypatch.undo()
    train(cfg)  # resumes at 3; keeps 4, ends at 6
    states += [read_checkpoint(run / "checkpoints" / name) for name in ("iter_000004.pth", "last.pth")]
    assert [state["iteration"] for state in states] == [3, 4, 6]
    logged = read_log(run, "train")  # log_interval 1: the record of iteration i holds the lr of 0-based step i - 1
    assert list(logged["iteration"]) == list(range(1, cfg.iterations + 1))
    ran = dict(zip(logged["iteration"], logged["lr"]))
    for state in states:
        schedule = state["scheduler"]
        assert schedule["last_lr"] == state["optimizer"]["param_groups"][0]["lr"] == ran[state["iteration"]]
        horizon = {key: schedule[key] for key in ("base_lr", "min_lr", "power", "max_iters")}
        assert [poly_lr(i - 1, **horizon) for i in ran] == list(ran.values())


KILL_AT = 2
_KILLER = f"""
import os, signal, sys
from aiblib.training import loop as T
from aiblib.cli.common import add_config_arguments, config_from_args
import argparse
save = T.save_training_checkpoint
def save_then_die(state, ckpt_dir, *, keep_copy):
    path = save(state, ckpt_dir, keep_copy=keep_copy)
    if state["iteration"] == {KILL_AT}:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 right after the checkpoint
    return path
T.save_training_checkpoint = save_then_die
parser = argparse.ArgumentParser(); add_config_arguments(parser)
T.train(config_from_args(parser.parse_args(sys.argv[1:])))
"""


@pytest.mark.slow
def test_kill9_then_resume_equals_an_uninterrupted_run(synthetic_root, tmp_path):
    from aiblib.training import train

    # uninterrupted, in this process, without workers
    reference = train(load_config(None, tiny_overrides(synthetic_root, tmp_path / "straight")))
    # interrupted with SIGKILL after the checkpoint at KILL_AT, in a subprocess with 2 workers
    args = as_args(tiny_overrides(synthetic_root, tmp_path / "killed", num_workers=2))
    proc = subprocess.run([sys.executable, "-c", _KILLER, *args], env=subprocess_env(), cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert read_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pth")["iteration"] == KILL_AT
    # the same command again resumes (CLI)
    proc = subprocess.run([sys.executable, "-m", "aiblib", "train", *args], env=subprocess_env(), cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = read_checkpoint(reference / "checkpoints" / "last.pth")
    b = read_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pth")
    assert a["iteration"] == b["iteration"] == TINY["iterations"]
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    events = read_log(tmp_path / "killed", "event")
    assert list(events["event"]) == ["start", "resume", "end"]
    assert list(read_log(tmp_path / "killed", "train")["iteration"]) == list(range(1, TINY["iterations"] + 1))


def test_bench_prints_the_table(capsys):
    from aiblib.cli.bench import main as bench_main

    assert bench_main(["--depths", "18", "--crop", "32x32", "--test-size", "32x64", "--batch", "2", "--iters", "1",
                       "--warmup", "0", "--narrow", "--modes", "fp32", "--attention", "both",
                       "--output-stride", "16", "--device", "cpu"]) == 0
    table = capsys.readouterr().out.split("\n\n")[-1].strip().splitlines()
    assert table[0].startswith("| device | depth | attn | mode |") and len(table) == 2 + 2
    assert "| cpu | R18 | on | fp32 | 32x32 x 2 |" in table[2] and "(4)" in table[2] and "(1)" in table[3]


@pytest.mark.slow
def test_augmenting_on_the_device_trains_on_the_same_batches(synthetic_root, tmp_path):
    # augment_on device: the workers decode and draw, the loop applies the draws as batched ops; on the CPU
    # the batches are bit-identical, so two iterations give the same losses and the same weights
    from aiblib.training import train

    logs = {}
    for where in ("cpu", "device"):
        cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / where, iterations=2, checkpoint_interval=0,
                                               augment_on=where, num_workers=1 if where == "device" else 0))
        logs[where] = read_log(train(cfg), "train")
    assert list(logs["cpu"]["loss"]) == list(logs["device"]["loss"])
    a = read_checkpoint(tmp_path / "cpu" / "checkpoints" / "last.pth")["model"]
    b = read_checkpoint(tmp_path / "device" / "checkpoints" / "last.pth")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="augment_on"):
        load_config(None, {"augment_on": "gpu"})

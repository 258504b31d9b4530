from __future__ import annotations

import itertools
import json
import random

import numpy as np
import pytest
import torch

from aiblib.train import InfiniteShardSampler, RunLog, SeededSamples, poly_lr, read_log, rng_state, set_rng_state


def test_poly_lr_matches_the_reference_formula():
    kw = dict(base_lr=0.01, min_lr=1e-4, power=0.9, max_iters=100)
    assert poly_lr(0, **kw) == pytest.approx(0.01)
    assert poly_lr(100, **kw) == pytest.approx(1e-4)
    assert poly_lr(50, **kw) == pytest.approx((0.01 - 1e-4) * 0.5**0.9 + 1e-4)
    values = [poly_lr(i, **kw) for i in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_sampler_shards_cover_each_epoch_and_resume_exactly():
    n, world = 10, 3
    streams = [list(itertools.islice(InfiniteShardSampler(n, seed=1, rank=r, world_size=world), 8)) for r in range(world)]
    per_rank = 4  # ceil(10 / 3)
    first_epoch = [idx for s in streams for idx, _ in s[:per_rank]]
    assert set(first_epoch) == set(range(n)) and len(first_epoch) == 12  # padded by wrapping
    # epoch 1 is another permutation
    assert [i for i, _ in streams[0][:4]] != [i for i, _ in streams[0][4:8]]
    # a stream started at position 5 is the tail of the stream started at 0
    tail = list(itertools.islice(InfiniteShardSampler(n, seed=1, rank=1, world_size=world, start=5), 3))
    assert tail == streams[1][5:8]
    # sample seeds differ between ranks and positions
    seeds = [s for stream in streams for _, s in stream]
    assert len(set(seeds)) == len(seeds)


class _RandomData(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (i, torch.rand(()).item(), float(np.random.rand()), random.random())


def test_seeded_samples_are_repeatable_and_leave_the_caller_rng_alone():
    data = SeededSamples(_RandomData())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    a = data[(2, 123)]
    b = data[(2, 123)]
    c = data[(2, 124)]
    assert a == b and a != c
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


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

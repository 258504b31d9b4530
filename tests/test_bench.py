"""The performance table's rows: modes, strategies, FLOP counts (no timing assertions)."""

from __future__ import annotations

import torch

from aiblib.model import ModelConfig, build_model
from aiblib.tools import compare_modes, count_flops, default_modes, format_table

TINY = dict(aspp_channels=32, skip_channels=8, aux_channels=16)


def test_compare_modes_rows_and_flops():
    rows = compare_modes(depth=18, attention=True, modes=["reference", "looped", "batched", "bf16"], crop=(32, 64),
                         batch=2, test_size=(64, 64), samples=3, device=torch.device("cpu"), output_stride=16,
                         warmup=0, iters=1, widths=TINY)
    by_mode = {r["mode"]: r for r in rows}
    assert [r["strategy"] for r in rows] == ["reference", "looped", "batched", "batched"]  # 2 x 4 x 4 positions: small
    ref = by_mode["reference"]
    assert ref["train_vs_ref"] == 1.0 and ref["infer_vs_ref"] == 1.0 and ref["samples"] == 3
    for mode in ("looped", "batched"):
        # the sample-independent work runs once: fewer FLOPs than the reference's, for the same logits
        assert 0 < by_mode[mode]["infer_flops"] < ref["infer_flops"]
        assert 0 < by_mode[mode]["train_flops"] < ref["train_flops"]
    assert by_mode["looped"]["infer_flops"] == by_mode["batched"]["infer_flops"]
    assert by_mode["bf16"]["peak_flop_s"] != ref["peak_flop_s"]       # measured against the bf16 matmul
    table = format_table(rows).splitlines()
    assert len(table) == 2 + 4 and "| cpu | R18 | on | reference | 32x64 x 2 | reference |" in table[2]
    assert "1.00x / 1.00x" in table[2] and "(3)" in table[3]


def test_default_modes_put_the_other_strategy_next_to_the_default():
    cpu = torch.device("cpu")
    assert default_modes(cpu, 2, (256, 512)) == ["reference", "fp32", "batched", "bf16", "channels_last", "compiled"]
    assert default_modes(cpu, 1, (64, 128))[:3] == ["reference", "fp32", "looped"]
    assert default_modes(torch.device("cuda"), 2, (256, 512))[:3] == ["reference", "fp32", "looped"]


def test_count_flops_counts_the_convolutions():
    torch.manual_seed(0)
    model = build_model(ModelConfig(depth=18, attention=False, **TINY)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        flops = count_flops(lambda: model(x))
    stem = 2 * 3 * 32 * 9 * 16 * 16                     # the first conv alone: 3->32, 3x3, at 16x16
    assert flops > 100 * stem


def test_data_rows_time_both_pipelines_on_the_same_scene():
    from aiblib.tools import data_rows, format_data_table, scene

    image, label = scene((64, 128))
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 128) and label.shape == (64, 128)
    rows = data_rows(size=(64, 128), crop=(32, 64), rounds=2, warmup=0)
    assert [r["pipeline"] for r in rows] == ["aiblib", "mmseg", "aiblib transform", "mmseg transform",
                                             "aiblib device: worker"]
    for r in rows:
        assert r["ms"] > 0 and abs(r["images_per_s"] * r["ms"] - 1000) < 1e-6
        assert r["workers_100"] == -(-100 * r["ms"] // 1000) and r["workers_400"] >= r["workers_100"]
    table = format_data_table(rows).splitlines()
    assert table[0].startswith("| pipeline | steps | image -> crop | ms / image |") and len(table) == 2 + 5
    assert "| 64x128 -> 32x64 |" in table[2]


def test_mmseg_pipeline_written_out_matches_ours_for_the_same_draws():
    # the benchmark's MMSeg steps (cv2/numpy) and this project's pipeline compute the same crop for the same
    # draws (resize, flip, photometric), RGB against BGR
    import numpy as np

    from aiblib.data import augment as A
    from aiblib.data import transforms as T
    from aiblib.tools import databench, scene

    image, label = scene((64, 128), seed=3)
    draws = A.train_transform(crop_size=(32, 64), base_size=(64, 128)).draw(label, torch.Generator().manual_seed(2))
    bgr = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1])
    mm_image, mm_label = databench.mmseg_pipeline(bgr, label.numpy(), draws, seed=0)
    fixed = A.AugmentDraws(draws.size, databench._mmseg_crop(
        np.asarray(A.crop_label(label, draws.size, (0, 0, *draws.size))), draws.box[2:], np.random.RandomState(0)),
        draws.flip, draws.photometric)
    ours, our_label = A.apply_augment(image, label, fixed, (32, 64))
    h, w = our_label.shape
    assert torch.equal(T.denormalize(ours)[:, :mm_image.shape[1], :mm_image.shape[2]],
                       torch.from_numpy(mm_image[::-1].copy()))
    assert torch.equal(our_label[:mm_label.shape[0], :mm_label.shape[1]], torch.from_numpy(mm_label).long())


def test_bench_data_prints_the_data_table(capsys):
    from aiblib.cli.bench import main as bench_main

    threads = torch.get_num_threads()
    try:
        assert bench_main(["--data", "--data-size", "64x128", "--data-crop", "32x64", "--rounds", "1",
                           "--warmup", "0"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "one thread" in out and "| aiblib | decode (torchvision.io)" in out and "| mmseg |" in out
    assert bench_main(["--data", "--rounds", "0"]) == 2

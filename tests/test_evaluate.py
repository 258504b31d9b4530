from __future__ import annotations

import math

import numpy as np
import pytest
import torch

# ---------------------------------------------------------------- inference helpers
from aiblib.evaluation import noise_generator, predict_logits, predict_probs, prediction, uncertainty  # noqa: E402
from aiblib.model import ModelConfig, build_model  # noqa: E402


class _Pointwise(torch.nn.Module):
    """Per-pixel logits (no context), so slide and whole inference must agree exactly."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 1)

    def forward(self, x, *, samples=None, generator=None):
        return {"out": self.conv(x)}


def _tiny_model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(**{"depth": 18, "output_stride": 16, "aspp_channels": 16, "skip_channels": 8,
                                      "aux_channels": 0, **kw})).eval()


def test_slide_equals_whole_for_a_pointwise_model_and_flip_tta_is_consistent():
    torch.manual_seed(0)
    model = _Pointwise().eval()
    x = torch.randn(1, 3, 37, 53)
    whole = predict_logits(model, x)
    slide = predict_logits(model, x, mode="slide", slide_crop=(16, 20), slide_stride=(10, 12))
    assert whole.shape == (1, 5, 37, 53)
    assert torch.allclose(whole, slide, atol=1e-5)
    both = predict_probs(model, x, flip=True)  # a pointwise model is flip-equivariant
    assert torch.allclose(both, whole.softmax(1), atol=1e-5)


def test_a_slide_window_that_covers_the_image_is_whole_inference():
    model = _tiny_model(attention=False)  # context everywhere: any crop or shift would change the logits
    x = torch.randn(1, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    whole = predict_logits(model, x)
    assert torch.equal(predict_logits(model, x, mode="slide", slide_crop=(64, 96), slide_stride=(8, 8)), whole)
    assert not torch.allclose(predict_logits(model, x, mode="slide", slide_crop=(32, 48), slide_stride=(8, 8)), whole,
                              atol=1e-3)


class _WindowMean(torch.nn.Module):
    """Logits that are the mean of the window it is given, everywhere in it: each window's own constant."""

    def forward(self, x, *, samples=None, generator=None):
        return {"out": x.mean((2, 3), keepdim=True).expand_as(x)}


def test_slide_averages_the_windows_where_they_overlap():
    x = torch.randn(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    # crop 3x4, stride 2x2 (MMSegmentation's grid: steps of the stride, the last window flush with the edge)
    windows = [((y1, y2), (x1, x2)) for y1, y2 in ((0, 3), (2, 5)) for x1, x2 in ((0, 4), (2, 6), (3, 7))]
    total, count = torch.zeros(1, 3, 5, 7), torch.zeros(1, 1, 5, 7)
    for (y1, y2), (x1, x2) in windows:
        total[..., y1:y2, x1:x2] += x[..., y1:y2, x1:x2].mean((2, 3), keepdim=True)
        count[..., y1:y2, x1:x2] += 1
    slide = predict_logits(_WindowMean(), x, mode="slide", slide_crop=(3, 4), slide_stride=(2, 2))
    torch.testing.assert_close(slide, total / count)


class _Ramp(torch.nn.Module):
    """Logits = the input plus a ramp along the width: not flip-equivariant."""

    def forward(self, x, *, samples=None, generator=None):
        return {"out": x + 0.5 * torch.arange(x.shape[-1], dtype=x.dtype)}


class _SizeLogits(torch.nn.Module):
    """The same logits (h / 10, w / 10, 0) everywhere, from the size (h, w) of the view it is given."""

    def forward(self, x, *, samples=None, generator=None):
        h, w = x.shape[-2:]
        return {"out": torch.tensor([h / 10, w / 10, 0.0]).view(1, 3, 1, 1).expand(1, 3, h, w)}


def test_tta_averages_the_softmax_of_exactly_the_views_it_names():
    x = torch.randn(1, 3, 6, 9, generator=torch.Generator().manual_seed(0))
    ramp = 0.5 * torch.arange(9.0)
    flipped = ((x + ramp).softmax(1) + (x + ramp.flip(0)).softmax(1)) / 2  # the flipped view, flipped back
    torch.testing.assert_close(predict_probs(_Ramp(), x, flip=True), flipped)
    torch.testing.assert_close(predict_probs(_Ramp(), x), (x + ramp).softmax(1))
    # 37x53 at 0.75 and 1.25 (mmcv's rounding): views 28x40 and 46x66, each also flipped
    views = torch.tensor([[2.8, 4.0, 0.0], [2.8, 4.0, 0.0], [4.6, 6.6, 0.0], [4.6, 6.6, 0.0]]).softmax(1).mean(0)
    probs = predict_probs(_SizeLogits(), torch.zeros(1, 3, 37, 53), scales=(0.75, 1.25), flip=True)
    torch.testing.assert_close(probs, views.view(1, 3, 1, 1).expand(1, 3, 37, 53))


def test_mean_mask_is_the_mask_mu_whatever_the_noise():
    mean = _tiny_model(attention=True, mean_mask=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    a, b = (predict_logits(mean, x, generator=torch.Generator().manual_seed(s)) for s in (0, 1))
    assert torch.equal(a, b)
    sampled = _tiny_model(attention=True, test_samples=1)  # the same weights, sampling one mask mu + eps * std
    noisy = predict_logits(sampled, x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, a, atol=1e-6)
    with torch.no_grad():  # std = softplus(-1e4) = 0: the sampled mask is mu itself
        sampled.attention.std_conv.weight.zero_()
        sampled.attention.std_conv.bias.fill_(-1e4)
    torch.testing.assert_close(predict_logits(sampled, x, generator=torch.Generator().manual_seed(0)), a,
                               rtol=0, atol=1e-6)


def test_uncertainty_entropy_and_mutual_information():
    # two classes; two samples that are confident and disagree: H = ln 2, MI = ln 2
    big = 30.0
    s = torch.tensor([[big, -big], [-big, big]]).reshape(2, 1, 2, 1, 1)
    entropy, mi = uncertainty({"sample_logits": s, "out": s.mean(0)})
    assert entropy.shape == (1, 1, 1, 1)
    assert entropy.item() == pytest.approx(math.log(2), abs=1e-4) and mi.item() == pytest.approx(math.log(2), abs=1e-4)
    # identical samples: MI = 0, entropy = that of the single softmax
    same = torch.randn(1, 1, 4, 3, 3, generator=torch.Generator().manual_seed(0)).repeat(3, 1, 1, 1, 1)
    entropy, mi = uncertainty({"sample_logits": same})
    p = same[0].softmax(1)
    assert torch.allclose(entropy, -(p * p.log()).sum(1, keepdim=True), atol=1e-5)
    assert mi.abs().max() < 1e-5
    entropy, mi = uncertainty({"out": same[0]})  # one sample only
    assert mi.abs().max() == 0


# ---------------------------------------------------------------- end to end (tiny model, synthetic data)
import json  # noqa: E402

from conftest import as_args, tiny_checkpoint, tiny_overrides, to_mmseg_names  # noqa: E402
from PIL import Image  # noqa: E402

from aiblib.cli.evaluate import main  # noqa: E402
from aiblib.config import Config, load_config  # noqa: E402
from aiblib.evaluation import (  # noqa: E402
    evaluate_checkpoint,
    evaluation_amp,  # noqa: E402
    score_dataset,
)


def test_evaluate_writes_tables_and_exports_at_the_label_size(synthetic_root, tmp_path):
    # base_size smaller than the images: the model sees a downscaled image, scoring and exports are at full size
    cfg, ckpt = tiny_checkpoint(synthetic_root, tmp_path, base_size=[32, 64], export_count=2)
    result = evaluate_checkpoint(cfg, ckpt, dataset="bdd100k", split="val", quiet=True)
    out = tmp_path / "run" / "eval" / "bdd100k-val"
    written = json.loads((out / "metrics.json").read_text())
    assert written == result
    assert result["checkpoint"]["iteration"] == 7 and len(result["checkpoint"]["sha256"]) == 64
    assert result["inference"]["test_samples"] == 2 and result["model_config"]["depth"] == 18
    assert len(result["per_class"]) == 19 and result["per_class"][0]["class"] == "road"
    csv_lines = (out / "per_class.csv").read_text().splitlines()
    assert csv_lines[0] == "class,IoU,Acc" and len(csv_lines) == 20
    conf = np.load(out / "confusion.npy")
    from aiblib.data import build_dataset

    raw = build_dataset("bdd100k", synthetic_root, "val")
    labelled = sum(int((torch.as_tensor(raw[i]["label"]) != 255).sum()) for i in range(len(raw)))
    assert conf.shape == (19, 19) and conf.sum() == labelled
    tp, union = np.diag(conf), conf.sum(0) + conf.sum(1) - np.diag(conf)
    iou = [100 * t / u if u else None for t, u in zip(tp, union)]  # the metrics written are those of confusion.npy
    assert [row["IoU"] for row in result["per_class"]] == pytest.approx(iou)
    assert result["mIoU"] == pytest.approx(np.mean([v for v in iou if v is not None]))
    rows = (out / "exports" / "exports.csv").read_text().splitlines()
    assert len(rows) == 3
    for i in range(2):
        label = torch.as_tensor(raw[i]["label"])
        h, w = label.shape
        stem = f"{i:04d}_{raw[i]['name']}"
        assert Image.open(out / "exports" / f"{stem}_pred.png").size == (w, h)
        for key in ("mu", "entropy", "mi"):
            arr = np.load(out / "exports" / f"{stem}_{key}.npy")
            assert arr.shape == (h, w), key
            assert Image.open(out / "exports" / f"{stem}_{key}.png").size == (w, h)
        mu = np.load(out / "exports" / f"{stem}_mu.npy").astype(np.float32)
        assert 0 <= mu.min() and mu.max() <= 1
        assert (np.load(out / "exports" / f"{stem}_mi.npy") >= 0).all()
    # seeded: the same evaluation gives the same numbers
    again = evaluate_checkpoint(cfg, ckpt, dataset="bdd100k", split="val", out_dir=tmp_path / "again", export_count=0, quiet=True)
    assert again["per_class"] == result["per_class"]


def test_evaluate_cli_slide_tta_and_mean_mask(synthetic_root, tmp_path, capsys):
    cfg, ckpt = tiny_checkpoint(synthetic_root, tmp_path)
    args = as_args(tiny_overrides(synthetic_root, tmp_path / "run", eval_mode="slide", slide_crop=[32, 48],
                                   slide_stride=[24, 32], tta_scales=[0.75, 1.0], tta_flip=True, mean_mask=True))
    assert main([*args, "-p", "checkpoint", str(ckpt), "-p", "dataset", "nightcity", "-p", "split", "val",
                 "--export-indices", "1"]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "nightcity/val" in printed
    result = json.loads((tmp_path / "run" / "eval" / "nightcity-val" / "metrics.json").read_text())
    assert result["inference"]["mode"] == "slide" and result["inference"]["mean_mask"] is True
    exported = (tmp_path / "run" / "eval" / "nightcity-val" / "exports" / "exports.csv").read_text().splitlines()
    assert len(exported) == 2 and exported[1].startswith("1,")


class _OracleData(torch.utils.data.Dataset):
    """Images that carry their label in channel 0 (a test double for a perfect model)."""

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        label = self.labels[i]
        return {"image": label.float()[None].repeat(3, 1, 1), "label": label, "name": str(i)}


class _Oracle(torch.nn.Module):
    def forward(self, x, *, samples=None, generator=None):
        label = x[:, 0].long().clamp(max=18)
        return {"out": torch.nn.functional.one_hot(label, 19).permute(0, 3, 1, 2).float()}


def test_a_split_with_perfect_predictions_scores_100():
    g = torch.Generator().manual_seed(0)
    labels = [torch.randint(0, 19, (12, 20), generator=g) for _ in range(3)]
    labels[0][:3] = 255
    cfg = load_config(None, {"num_workers": 0})
    result = score_dataset(_Oracle(), _OracleData(labels), cfg=cfg, device=torch.device("cpu"))
    m = result["metrics"]
    assert m["mIoU"] == pytest.approx(100.0) and m["aAcc"] == pytest.approx(100.0) and m["mAcc"] == pytest.approx(100.0)
    assert int(result["confusion"].sum()) == 3 * 12 * 20 - 3 * 20


class _PredictionData(torch.utils.data.Dataset):
    """Images that carry a given prediction in channel 0, with their labels."""

    def __init__(self, preds, labels):
        self.preds, self.labels = preds, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.preds[i].float()[None].repeat(3, 1, 1), "label": self.labels[i], "name": str(i)}


def test_the_scores_are_those_of_the_hand_counted_confusion_matrix():
    label = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 255], [1, 1, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 5], [1, 1, 2, 0]])  # the 5 falls on the ignored pixel
    cfg = load_config(None, {"num_workers": 0})
    result = score_dataset(_Oracle(), _PredictionData([pred], [label]), cfg=cfg, device=torch.device("cpu"))
    expected = np.zeros((19, 19), np.int64)
    expected[0, :2] = [2, 1]  # label 0: twice 0, once 1
    expected[1, 1] = 4  # label 1: always 1
    expected[2, [0, 2]] = [2, 2]  # label 2: twice 0, twice 2
    np.testing.assert_array_equal(result["confusion"].numpy(), expected)
    m = result["metrics"]
    iou = {0: 2 / (3 + 4 - 2), 1: 4 / (4 + 5 - 4), 2: 2 / (4 + 2 - 2)}  # TP / (label + prediction - TP)
    assert m["IoU"][:3] == pytest.approx([100 * v for v in iou.values()])
    assert all(math.isnan(v) for v in m["IoU"][3:])  # absent from both label and prediction
    assert m["mIoU"] == pytest.approx(100 * (0.4 + 0.8 + 0.5) / 3)
    assert m["aAcc"] == pytest.approx(100 * 8 / 11) and m["mAcc"] == pytest.approx(100 * (2 / 3 + 1 + 2 / 4) / 3)


def test_the_records_say_what_ran_the_checkpoints_model(synthetic_root, tmp_path):
    """A baseline checkpoint scored under a configuration with attention on runs the checkpoint's model, and
    every record says so: metrics.json's config and model_config, config.yaml, and scores.json."""
    from aiblib.config import MODEL_KEYS
    from aiblib.evaluation import checkpoint_config
    from aiblib.reporting import report

    _, ckpt = tiny_checkpoint(synthetic_root, tmp_path, attention=False)
    cfg = load_config(None, tiny_overrides(synthetic_root, tmp_path / "run", attention=True, beta=0.5,
                                           pretrained="imagenet.pth"))
    result = evaluate_checkpoint(cfg, ckpt, dataset="bdd100k", split="val", out_dir=tmp_path / "eval", quiet=True)
    assert result["model_config"]["attention"] is False and result["config"]["attention"] is False
    ran_model = {k: result["config"][k] for k in MODEL_KEYS if k != "pretrained"}  # beta too: the checkpoint's
    assert ran_model == {k: v for k, v in result["model_config"].items() if k != "pretrained"}
    assert result["config"]["pretrained"] == "imagenet.pth"  # how training started: the file's (a checkpoint clears it)
    assert load_config(tmp_path / "eval" / "config.yaml").to_dict() == result["config"]
    ran = checkpoint_config(cfg, ckpt)
    assert ran.to_dict() == result["config"]
    report.write_scores(tmp_path, ran, {"bdd100k:val": result}, checkpoint="tiny.pth")
    assert json.loads((tmp_path / "scores.json").read_text())["attention"] is False


def test_evaluate_reads_an_mmsegmentation_checkpoint_directly(synthetic_root, tmp_path):
    from aiblib.storage import safe_load

    cfg, ckpt = tiny_checkpoint(synthetic_root, tmp_path, mean_mask=True)
    mmseg = tmp_path / "iter_40000.pth"
    torch.save({"meta": {"iter": 40000}, "state_dict": to_mmseg_names(safe_load(ckpt)["model"])}, mmseg)
    ours = evaluate_checkpoint(cfg, ckpt, dataset="bdd100k", split="val", out_dir=tmp_path / "a", quiet=True)
    theirs = evaluate_checkpoint(cfg, mmseg, dataset="bdd100k", split="val", out_dir=tmp_path / "b", quiet=True)
    assert theirs["checkpoint"]["format"] == "mmsegmentation" and theirs["checkpoint"]["iteration"] == 40000
    assert theirs["per_class"] == ours["per_class"]


@pytest.mark.parametrize("attention", [True, False])
def test_image_maps_have_the_requested_size_and_repeat_with_the_seed(attention):
    from aiblib.evaluation import image_maps
    from aiblib.model import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(depth=18, output_stride=16, attention=attention, test_samples=3,
                                    aspp_channels=16, skip_channels=8, aux_channels=16)).eval()
    image = torch.randn(3, 64, 96)
    a = image_maps(model, image, size=(40, 70), seed=1, index=2)
    b = image_maps(model, image, size=(40, 70), seed=1, index=2)
    assert a["pred"].shape == (40, 70) and a["pred"].dtype == np.int64 and a["pred"].max() < 19
    # the prediction is the one evaluation scores: the prediction rule on the sample-averaged logits, same noise
    scored = prediction(predict_logits(model, image[None], generator=noise_generator(torch.device("cpu"), 1, 2)),
                        (40, 70))
    np.testing.assert_array_equal(a["pred"], scored[0].numpy())
    # its confidence: that class's probability under the mean of the samples' softmax
    out = model(image[None], generator=noise_generator(torch.device("cpu"), 1, 2))
    probs = out["sample_logits"].softmax(2).mean(0) if attention else out["out"].softmax(1)
    for size in ((64, 96), (40, 70)):  # at the input size first, as the logits
        probs = torch.nn.functional.interpolate(probs, size=size, mode="bilinear", align_corners=False)
    probs = probs[0].detach()
    np.testing.assert_allclose(a["confidence"], probs.gather(0, torch.from_numpy(a["pred"])[None])[0].numpy(),
                               atol=1e-6)
    assert a["entropy"].shape == a["mi"].shape == (40, 70)
    assert (a["entropy"] >= 0).all() and (a["entropy"] <= math.log(19) + 1e-5).all()
    if attention:
        assert a["masks"].shape == (3, 40, 70) and a["mu"].shape == (40, 70)
        assert ((a["mu"] > 0) & (a["mu"] < 1)).all()
        np.testing.assert_array_equal(a["masks"], b["masks"])  # same seed and index, same noise
        c = image_maps(model, image, size=(40, 70), seed=1, index=3)
        assert not np.array_equal(a["masks"], c["masks"])
    else:
        assert "mu" not in a and "masks" not in a
        assert float(np.abs(a["mi"]).max()) == 0.0  # one sample: no mutual information


# ---------------------------------------------------------------- test-time augmentation scales the original image
from aiblib.evaluation import test_pipeline, tta_enabled  # noqa: E402


class _ShapeRecorder(torch.nn.Module):
    """Records the (h, w) of every input; logits of zeros at a quarter of the input size."""

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x, *, samples=None, generator=None):
        self.sizes.append(tuple(x.shape[-2:]))
        return {"out": x.new_zeros(x.shape[0], 19, max(1, x.shape[-2] // 4), max(1, x.shape[-1] // 4))}


class _RawData(torch.utils.data.Dataset):
    """One raw uint8 image (3, 100, 200) and label put through ``transform``."""

    def __init__(self, transform):
        g = torch.Generator().manual_seed(0)
        self.image = torch.randint(0, 256, (3, 100, 200), dtype=torch.uint8, generator=g)
        self.label = torch.randint(0, 19, (100, 200), generator=g)
        self.transform = transform

    def __len__(self):
        return 1

    def __getitem__(self, i):
        image, label = self.transform(self.image, self.label)
        return {"image": image, "label": label, "name": "x"}


@pytest.mark.parametrize("flip", [False, True])
def test_tta_views_scale_the_original_image_not_the_fitted_one(flip):
    # base_size fits the 100x200 original to 50x100; MMSeg's TTA scales the original: 0.5 -> 50x100, 1.0 -> 100x200
    cfg = load_config(None, {"num_workers": 0, "base_size": [50, 100], "tta_scales": [0.5, 1.0], "tta_flip": flip})
    assert tta_enabled(cfg)
    model = _ShapeRecorder()
    result = score_dataset(model, _RawData(test_pipeline(cfg)), cfg=cfg, device=torch.device("cpu"))
    views = [(50, 100), (100, 200)]
    assert model.sizes == ([v for v in views for _ in range(2)] if flip else views)
    assert int(result["confusion"].sum()) == 100 * 200  # scored at the label's original size
    # without TTA the model sees the fitted test image only
    plain = load_config(None, {"num_workers": 0, "base_size": [50, 100]})
    assert not tta_enabled(plain)
    model = _ShapeRecorder()
    score_dataset(model, _RawData(test_pipeline(plain)), cfg=plain, device=torch.device("cpu"))
    assert model.sizes == [(50, 100)]


def test_tta_view_sizes_use_the_mmcv_rounding():
    model = _ShapeRecorder().eval()
    scores = predict_probs(model, torch.zeros(1, 3, 37, 53), scales=(0.75, 1.25, 1.0))
    # int(37 * 0.75 + 0.5) = 28 (round() would agree), int(53 * 1.25 + 0.5) = 66 (round(66.25) too);
    # the rule fits the image into the target as mmcv's imrescale
    assert model.sizes == [(28, 40), (46, 66), (37, 53)]
    assert scores.shape == (1, 19, 37, 53)
    model = _ShapeRecorder().eval()
    predict_probs(model, torch.zeros(1, 3, 5, 7), scales=(0.5,))  # 2.5 -> 3 and 3.5 -> 4 (round half up, not to even)
    assert model.sizes == [(3, 4)]


def test_mmsegmentation_checkpoints_are_scored_in_fp32_unless_bf16_is_named():
    mmseg, ours = {"format": "mmsegmentation"}, {"format": "aiblib"}
    assert evaluation_amp(Config(amp="auto"), mmseg) == "off"
    assert evaluation_amp(Config(amp="auto"), ours) == "auto"
    assert evaluation_amp(Config(amp="bf16"), mmseg) == "bf16"
    assert evaluation_amp(Config(), mmseg) == "off"  # the default is fp32 anyway


@pytest.mark.slow
def test_notebook_02_records_the_checkpoints_model_in_scores_json(synthetic_root, tmp_path, monkeypatch):
    """02 given a parameter file with attention on and a baseline checkpoint: scores.json says attention false."""
    import shutil

    import yaml
    from conftest import REPO

    from aiblib.notebooks import run_notebook
    from aiblib.paths import ROOT_VARIABLE

    _, ckpt = tiny_checkpoint(synthetic_root, tmp_path, attention=False)
    params = tmp_path / "attention.yaml"
    params.write_text(yaml.safe_dump(tiny_overrides(synthetic_root, tmp_path / "run", attention=True,
                                                    eval_targets=["bdd100k:val"])))
    project = tmp_path / "project"
    shutil.copytree(REPO / "notebooks", project / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    monkeypatch.setenv(ROOT_VARIABLE, str(project))
    run_notebook(project / "notebooks" / "02-evaluate-cross-domain.ipynb", tmp_path / "02.ipynb", cwd=project / "notebooks",
                 parameters={"params_file": str(params), "checkpoint": str(ckpt), "name": "base",
                             "results_root": str(tmp_path / "results")})
    scores = json.loads((tmp_path / "results" / "base" / "scores.json").read_text())
    assert scores["attention"] is False and scores["beta"] == 1e-3 and set(scores["scores"]) == {"bdd100k:val"}

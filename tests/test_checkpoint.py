"""Checkpoints: MMSeg conversion, safe loading, atomic saving, ImageNet initialisation."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest
import torch
from conftest import to_mmseg_names

from aiblib.cli.convert import main
from aiblib.model import ModelConfig, build_model
from aiblib.storage import Placeholder, init_pretrained, load_model, model_checkpoint, safe_load, save_atomic

TINY = dict(depth=18, aspp_channels=32, skip_channels=8, aux_channels=16)
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

# The MMSegmentation AIBR key layout for ResNetV1c-18 (SPEC section 7), written out by hand.
MMSEG_CONV_WEIGHTS = """
backbone.stem.0.weight
backbone.stem.3.weight
backbone.stem.6.weight
backbone.layer1.0.conv1.weight
backbone.layer1.0.conv2.weight
backbone.layer1.1.conv1.weight
backbone.layer1.1.conv2.weight
backbone.layer2.0.conv1.weight
backbone.layer2.0.conv2.weight
backbone.layer2.0.downsample.0.weight
backbone.layer2.1.conv1.weight
backbone.layer2.1.conv2.weight
backbone.layer3.0.conv1.weight
backbone.layer3.0.conv2.weight
backbone.layer3.0.downsample.0.weight
backbone.layer3.1.conv1.weight
backbone.layer3.1.conv2.weight
backbone.layer4.0.conv1.weight
backbone.layer4.0.conv2.weight
backbone.layer4.0.downsample.0.weight
backbone.layer4.1.conv1.weight
backbone.layer4.1.conv2.weight
backbone.att_module_mu.0.weight
backbone.att_module_mu.0.bias
backbone.att_module_std.0.weight
backbone.att_module_std.0.bias
decode_head.image_pool.1.conv.weight
decode_head.aspp_modules.0.conv.weight
decode_head.aspp_modules.1.depthwise_conv.conv.weight
decode_head.aspp_modules.1.pointwise_conv.conv.weight
decode_head.aspp_modules.2.depthwise_conv.conv.weight
decode_head.aspp_modules.2.pointwise_conv.conv.weight
decode_head.aspp_modules.3.depthwise_conv.conv.weight
decode_head.aspp_modules.3.pointwise_conv.conv.weight
decode_head.bottleneck.conv.weight
decode_head.c1_bottleneck.conv.weight
decode_head.sep_bottleneck.0.depthwise_conv.conv.weight
decode_head.sep_bottleneck.0.pointwise_conv.conv.weight
decode_head.sep_bottleneck.1.depthwise_conv.conv.weight
decode_head.sep_bottleneck.1.pointwise_conv.conv.weight
decode_head.conv_seg.weight
decode_head.conv_seg.bias
auxiliary_head.convs.0.conv.weight
auxiliary_head.conv_seg.weight
auxiliary_head.conv_seg.bias
""".split()
# BatchNorm modules; each has weight, bias, running_mean, running_var, num_batches_tracked.
MMSEG_BN_MODULES = """
backbone.stem.1
backbone.stem.4
backbone.stem.7
backbone.layer1.0.bn1
backbone.layer1.0.bn2
backbone.layer1.1.bn1
backbone.layer1.1.bn2
backbone.layer2.0.bn1
backbone.layer2.0.bn2
backbone.layer2.0.downsample.1
backbone.layer2.1.bn1
backbone.layer2.1.bn2
backbone.layer3.0.bn1
backbone.layer3.0.bn2
backbone.layer3.0.downsample.1
backbone.layer3.1.bn1
backbone.layer3.1.bn2
backbone.layer4.0.bn1
backbone.layer4.0.bn2
backbone.layer4.0.downsample.1
backbone.layer4.1.bn1
backbone.layer4.1.bn2
decode_head.image_pool.1.bn
decode_head.aspp_modules.0.bn
decode_head.aspp_modules.1.depthwise_conv.bn
decode_head.aspp_modules.1.pointwise_conv.bn
decode_head.aspp_modules.2.depthwise_conv.bn
decode_head.aspp_modules.2.pointwise_conv.bn
decode_head.aspp_modules.3.depthwise_conv.bn
decode_head.aspp_modules.3.pointwise_conv.bn
decode_head.bottleneck.bn
decode_head.c1_bottleneck.bn
decode_head.sep_bottleneck.0.depthwise_conv.bn
decode_head.sep_bottleneck.0.pointwise_conv.bn
decode_head.sep_bottleneck.1.depthwise_conv.bn
decode_head.sep_bottleneck.1.pointwise_conv.bn
auxiliary_head.convs.0.bn
""".split()
MMSEG_KEYS = set(MMSEG_CONV_WEIGHTS) | {f"{m}.{s}" for m in MMSEG_BN_MODULES for s in BN}


def _trained_like_model(**kw) -> torch.nn.Module:
    """A tiny model whose BN statistics and affine parameters are not the defaults."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**TINY, **kw}))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def _fake_mmengine_class():
    """A class from a module that is not installed, as MMEngine's HistoryBuffer is here."""
    mod = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([1.0, 2.0])
            self._count_history = np.array([1, 1])
            self.max_length = 1000000

    HistoryBuffer.__module__ = mod.__name__
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    mod.HistoryBuffer = HistoryBuffer
    return mod


def _save_with_fake_module(obj, path, mod):
    names = ("mmengine", "mmengine.logging", mod.__name__)
    assert not any(n in sys.modules for n in names), "this test expects MMEngine not to be installed"
    for n in names:
        sys.modules[n] = mod if n == mod.__name__ else types.ModuleType(n)
    try:
        torch.save(obj, path)
    finally:
        for n in names:
            del sys.modules[n]


def test_mmseg_conversion_roundtrip_gives_same_logits(tmp_path, capsys):
    model = _trained_like_model(mean_mask=True)
    mmseg_sd = to_mmseg_names(model.state_dict())
    assert set(mmseg_sd) == MMSEG_KEYS
    mmseg_sd["decode_head.loss_decode.class_weight"] = torch.ones(19)   # a key with no counterpart
    mod = _fake_mmengine_class()
    ckpt = {"meta": {"iter": np.int64(40000), "lr": np.float64(1e-4), "env_info": "x"},
            "state_dict": mmseg_sd,
            "message_hub": {"log_scalars": {"train/loss": mod.HistoryBuffer()}}}
    src, dst = tmp_path / "iter_40000.pth", tmp_path / "aiblib.pth"
    _save_with_fake_module(ckpt, src, mod)
    assert main([str(src), str(dst)]) == 0
    printed = capsys.readouterr().out
    assert "unmapped source key: decode_head.loss_decode.class_weight" in printed
    converted = safe_load(dst)
    assert converted["format"] == "aiblib" and converted["model_config"]["depth"] == 18
    assert converted["model_config"]["aspp_channels"] == 32 and converted["model_config"]["aux_channels"] == 16
    x = torch.randn(2, 3, 64, 64)
    reloaded = load_model(dst, mean_mask=True)
    assert not reloaded.training and reloaded.config.mean_mask
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x)["out"], model(x)["out"], rtol=0, atol=0)


def test_load_model_reads_mmseg_checkpoint_directly(tmp_path):
    model = _trained_like_model(attention=False, aux_channels=0, mean_mask=True)
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": to_mmseg_names(model.state_dict())}, path)
    loaded = load_model(path)
    assert loaded.attention is None and loaded.aux_head is None
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["out"], model(x)["out"], rtol=0, atol=0)


def test_metadata_with_numpy_and_missing_classes_still_yields_weights(tmp_path):
    mod = _fake_mmengine_class()
    path = tmp_path / "meta.pth"
    _save_with_fake_module({"state_dict": {"w": torch.arange(3.0)}, "meta": {"seed": np.int64(3), "a": np.ones(2)},
                            "message_hub": {"buf": mod.HistoryBuffer()}}, path, mod)
    with pytest.raises(Exception):      # plain weights-only loading refuses such files
        torch.load(path, weights_only=True)
    obj = safe_load(path)
    torch.testing.assert_close(obj["state_dict"]["w"], torch.arange(3.0))
    assert obj["meta"]["seed"] == 3 and obj["meta"]["a"].tolist() == [1.0, 1.0]
    buf = obj["message_hub"]["buf"]
    assert isinstance(buf, Placeholder) and buf.name == "HistoryBuffer"
    assert buf.module == "mmengine.logging.history_buffer" and "mmengine" not in sys.modules


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipfile", [True, False])
def test_loading_never_runs_pickled_code(tmp_path, zipfile):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Evil(str(marker))}, path,
               _use_new_zipfile_serialization=zipfile)
    obj = safe_load(path)
    assert not marker.exists()
    assert isinstance(obj["x"], Placeholder) and obj["x"].name == "system"
    torch.testing.assert_close(obj["state_dict"]["w"], torch.ones(1))


def test_save_atomic_replaces_and_leaves_no_temp_on_failure(tmp_path):
    path = tmp_path / "ckpt.pth"
    save_atomic({"a": torch.ones(2)}, path)
    with pytest.raises(Exception):
        save_atomic({"a": lambda: 0}, path)      # not picklable: the old file must survive
    assert safe_load(path)["a"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]


def test_aiblib_checkpoint_roundtrip_with_overrides(tmp_path):
    model = _trained_like_model()
    path = save_atomic(model_checkpoint(model, iteration=5), tmp_path / "m.pth")
    loaded = load_model(path, mean_mask=True, test_samples=1)
    assert loaded.config.test_samples == 1 and loaded.config.depth == 18
    with pytest.raises(ValueError, match="nope"):
        load_model(path, nope=1)


def test_a_model_built_from_a_whole_run_configuration_saves_only_the_model_keys(tmp_path):
    from aiblib.config import MODEL_KEYS, Config

    cfg = Config(**TINY, iterations=3, lr=0.5, name="whole", pretrained="imagenet.pth")
    model = build_model(cfg)
    assert type(model.config) is ModelConfig and model.config == cfg.model_config()
    saved = model_checkpoint(model)
    assert list(saved["model_config"]) == list(MODEL_KEYS)
    assert saved["model_config"] == {**cfg.model_config().to_dict(), "pretrained": ""}
    loaded = load_model(save_atomic(saved, tmp_path / "m.pth"))
    assert loaded.config == model.config.replace(pretrained="")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_pretrained_from_torchvision_and_mmseg_formats(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(tv, tmp_path / "tv.pth")
    model = build_model(ModelConfig(**TINY))
    report = init_pretrained(model, tmp_path / "tv.pth")
    assert report["format"] == "torchvision"
    assert "layer1.0.conv1.weight" in report["loaded"] and "stem.0.weight" in report["missing"]
    assert any(u.startswith("conv1.weight") for u in report["unused"]) and any(u.startswith("fc.weight") for u in report["unused"])
    torch.testing.assert_close(model.backbone.layer4[1].conv2.weight, tv["layer4.1.conv2.weight"])

    donor = build_model(ModelConfig(**TINY)).backbone.state_dict()
    torch.save({"state_dict": {**donor, "fc.weight": torch.zeros(1000, 512)}}, tmp_path / "v1c.pth")
    model = build_model(ModelConfig(**TINY, pretrained=str(tmp_path / "v1c.pth")))  # reads no file
    report = init_pretrained(model, tmp_path / "v1c.pth")
    assert report["format"] == "mmseg_v1c" and report["missing"] == [] and len(report["unused"]) == 1
    torch.testing.assert_close(model.backbone.stem[0].weight, donor["stem.0.weight"])

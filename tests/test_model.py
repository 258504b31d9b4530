"""Backbone, attention, heads and segmentor: shapes, dilation, sampling, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from aiblib.model.attention import kl_bits
from aiblib.model.backbone import ResNetV1c
from aiblib.model import ModelConfig, build_model

TINY = dict(depth=18, aspp_channels=32, skip_channels=8, aux_channels=16)


def tiny(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**TINY, **kw}))


@pytest.mark.parametrize("depth, channels", [(18, (64, 128, 256, 512)), (50, (256, 512, 1024, 2048)),
                                             (101, (256, 512, 1024, 2048))])
def test_backbone_shapes_and_strides(depth, channels):
    net = ResNetV1c(depth, output_stride=8).eval()
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(channels)
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 24), (8, 12), (8, 12), (8, 12)]


def test_output_stride_16():
    net = ResNetV1c(18, output_stride=16).eval()
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (4, 4)]


def test_model_at_output_stride_16_resizes_masks_per_stage():
    model = tiny(output_stride=16).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), samples=3)
    assert out["mu"].shape == (2, 1, 4, 4) and out["masks"].shape == (6, 1, 4, 4)
    assert out["out"].shape == (2, 19, 16, 16) and out["sample_logits"].shape == (3, 2, 19, 16, 16)


def test_basicblock_dilation_contracted_like_mmseg():
    net = ResNetV1c(18, output_stride=8)
    # contract_dilation: first block of a dilated stage uses half the dilation; the BasicBlock's
    # conv1 carries the dilation (conv2 stays at 1, as MMSegmentation's BasicBlock).
    assert [b.conv1.dilation for b in net.layer3] == [(1, 1), (2, 2)]
    assert [b.conv1.dilation for b in net.layer4] == [(2, 2), (4, 4)]
    assert net.layer4[1].conv1.padding == (4, 4) and net.layer4[1].conv2.dilation == (1, 1)
    assert net.layer3[0].conv1.stride == (1, 1) and net.layer2[0].conv1.stride == (2, 2)
    bottle = ResNetV1c(50, output_stride=8)
    assert [b.conv2.dilation for b in bottle.layer4] == [(2, 2), (4, 4), (4, 4)]


def test_forward_outputs_train_and_eval():
    model = tiny()
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert out["out"].shape == (2, 19, 16, 16) and out["aux"].shape == (2, 19, 8, 8)
    assert out["mu"].shape == out["std"].shape == (2, 1, 8, 8) and out["masks"].shape == (2, 1, 8, 8)
    assert out["kl"].ndim == 0 and "sample_logits" not in out
    with torch.no_grad():
        out = model.eval()(x)
    assert "aux" not in out and out["masks"].shape == (8, 1, 8, 8)
    assert out["sample_logits"].shape == (4, 2, 19, 16, 16)
    torch.testing.assert_close(out["sample_logits"].mean(0), out["out"])


def test_gradient_reaches_attention_convs():
    model = tiny().train()
    out = model(torch.randn(2, 3, 64, 64))
    (out["out"].square().mean() + out["kl"]).backward()
    for p in (model.attention.mu_conv.weight, model.attention.std_conv.weight, model.attention.std_conv.bias):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_kl_matches_torch_distributions():
    mu = torch.rand(3, 1, 5, 7)
    std = torch.rand(3, 1, 5, 7) * 0.5 + 1e-3
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu, std),
                                                 torch.distributions.Normal(0.0, 1.0)).mean() / math.log(2)
    torch.testing.assert_close(kl_bits(mu, std), expected, rtol=1e-5, atol=1e-6)


def test_mean_mask_mode_is_repeatable_and_uses_mu():
    model = tiny(mean_mask=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), model(x)
    torch.testing.assert_close(a["out"], b["out"], rtol=0, atol=0)
    torch.testing.assert_close(a["masks"], a["mu"], rtol=0, atol=0)
    assert "sample_logits" not in a


def test_seeded_sampler_is_reproducible():
    model = tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = model(x, generator=torch.Generator().manual_seed(7))
        b = model(x, generator=torch.Generator().manual_seed(7))
        c = model(x, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a["masks"], b["masks"], rtol=0, atol=0)
    torch.testing.assert_close(a["out"], b["out"], rtol=0, atol=0)
    assert not torch.equal(a["masks"], c["masks"])


def test_batched_samples_equal_the_loop():
    model = tiny().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        batched = model(x, samples=4, generator=torch.Generator().manual_seed(3))
        looped = model(x, samples=4, generator=torch.Generator().manual_seed(3), batched=False)
    torch.testing.assert_close(batched["sample_logits"], looped["sample_logits"], rtol=0, atol=1e-6)
    torch.testing.assert_close(batched["out"], looped["out"], rtol=0, atol=1e-6)
    # masks differ between samples, so the samples really differ
    assert not torch.allclose(batched["sample_logits"][0], batched["sample_logits"][1])


def test_attention_off_is_plain_deeplabv3plus():
    model = tiny(attention=False)
    assert model.attention is None
    assert not [k for k in model.state_dict() if "att" in k and not k.startswith("aux")]
    with_att = sum(p.numel() for p in tiny().parameters())
    without = sum(p.numel() for p in model.parameters())
    assert with_att - without == 960 * 9 + 1 + 9 + 1   # mu conv (960 = 64+128+256+512 channels) + std conv
    out = model.eval()(torch.randn(1, 3, 64, 64))
    assert set(out) == {"out"}


def test_model_config_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ValueError, match="atention"):
        ModelConfig.from_dict({"atention": True})
    with pytest.raises(ValueError, match="depth"):
        ModelConfig.from_dict({"depth": "50"})
    with pytest.raises(ValueError, match="attention"):
        ModelConfig(attention=1)
    with pytest.raises(ValueError, match="depth"):
        ModelConfig(depth=34)
    assert ModelConfig(beta=0).beta == 0.0 and isinstance(ModelConfig(beta=0).beta, float)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()

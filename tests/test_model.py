"""Backbone, attention, heads and segmentor: shapes, dilation, sampling, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aiblib.model import ModelConfig, build_model
from aiblib.model.attention import kl_bits
from aiblib.model.backbone import ResNetV1c
from aiblib.model.heads import constant_map_conv
from aiblib.model.segmentor import multisample_strategy

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


def trained_like(**kw) -> torch.nn.Module:
    """A tiny model whose BatchNorms hold random statistics and affines and whose classifiers give
    logits of order 1-10 (fresh ones give ~0.01), so that a misplaced BN or scale would show."""
    model = tiny(**kw)
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
    for conv in (model.decode_head.conv_seg, model.aux_head.conv_seg):
        conv.weight.data.normal_(0.0, 1.0, generator=gen)
    return model


def assert_logits_match(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """The fp32 equality rule: max |actual - expected| <= tol * max |expected| (absolute, at the logits' scale)."""
    assert actual.shape == expected.shape
    err = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert scale > 0.5 and err <= tol * scale, f"max abs difference {err:.3g} > {tol} x {scale:.3g}"


@pytest.mark.parametrize("strategy", ["looped", "batched"])
@pytest.mark.parametrize("kw", [{}, {"output_stride": 16}, {"mean_mask": True}])
def test_fast_strategies_give_the_reference_logits(strategy, kw):
    model = trained_like(**kw).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x, samples=3, generator=torch.Generator().manual_seed(3), strategy="reference")
        out = model(x, samples=3, generator=torch.Generator().manual_seed(3), strategy=strategy)
    torch.testing.assert_close(out["masks"], ref["masks"], rtol=0, atol=0)
    assert_logits_match(out["out"], ref["out"])
    if not kw.get("mean_mask"):
        assert_logits_match(out["sample_logits"], ref["sample_logits"])
        # masks differ between samples, so the samples really differ
        assert (ref["sample_logits"][0] - ref["sample_logits"][1]).abs().max() > 1e-3


@pytest.mark.parametrize("strategy", ["looped", "batched"])
def test_fast_strategies_train_like_the_reference(strategy):
    """One sample (training's default): same outputs, same KL and the same gradients for every parameter."""
    x, grads = torch.randn(2, 3, 64, 64), {}
    outs = {}
    for name in ("reference", strategy):
        model = trained_like(dropout=0.0).train()
        out = model(x, generator=torch.Generator().manual_seed(5), strategy=name)
        (out["out"].square().mean() + out["aux"].square().mean() + out["kl"]).backward()
        outs[name] = out
        grads[name] = {k: p.grad for k, p in model.named_parameters()}
    for key in ("out", "aux"):
        assert_logits_match(outs[strategy][key].detach(), outs["reference"][key].detach())
    torch.testing.assert_close(outs[strategy]["kl"], outs["reference"]["kl"], rtol=1e-6, atol=0)
    for k, g in grads["reference"].items():
        assert_logits_match(grads[strategy][k], g, tol=1e-4) if g.abs().max() > 0.5 else \
            torch.testing.assert_close(grads[strategy][k], g, rtol=1e-4, atol=1e-5 * max(1.0, g.abs().max().item()))


def test_looped_training_with_several_samples_keeps_batchnorm_per_sample():
    """train_samples > 1: the reference normalises each sample's batch on its own; looped does too."""
    x = torch.randn(2, 3, 64, 64)
    outs = {}
    for name in ("reference", "looped"):
        model = trained_like(dropout=0.0, train_samples=2).train()
        outs[name] = model(x, generator=torch.Generator().manual_seed(5), strategy=name)
    for key in ("out", "aux"):
        assert_logits_match(outs["looped"][key].detach(), outs["reference"][key].detach())


@pytest.mark.parametrize("size, inference_choice", [((64, 64), "batched")])
def test_auto_trains_several_samples_as_the_reference_at_any_size(size, inference_choice):
    """train_samples 2 with 'auto' on the CPU at a size where inference picks 'batched' (where training used to
    take BatchNorm statistics over every sample's rows; where inference picks 'looped', training always matched):
    the gradients of every parameter are the reference's (BatchNorm statistics per sample; training's rule is
    the same on every device). In float64, to a tight tolerance: in fp32, rounding amplified through
    BatchNorm's backward over few rows moves the gradients of equal paths by up to ~0.3 %."""
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert multisample_strategy("auto", torch.device("cpu"), 2 * (size[0] // 8) * (size[1] // 8)) == inference_choice
    grads = {}
    for name in ("reference", "auto"):
        model = trained_like(dropout=0.0, train_samples=2).train().double()
        out = model(x, generator=torch.Generator().manual_seed(5), strategy=name)
        (out["out"].square().mean() + out["aux"].square().mean() + out["kl"]).backward()
        grads[name] = {k: p.grad for k, p in model.named_parameters()}
    for k, g in grads["reference"].items():
        torch.testing.assert_close(grads["auto"][k], g, rtol=1e-9, atol=1e-9 * max(1.0, g.abs().max().item()),
                                   msg=lambda m, k=k: f"{k}: {m}")


def test_batched_is_refused_for_training_with_several_samples():
    assert multisample_strategy("auto", torch.device("cuda", 0), training=True, samples=2) == "looped"
    assert multisample_strategy("auto", torch.device("cuda", 0), training=True, samples=1) == "batched"
    assert multisample_strategy("batched", torch.device("cpu"), training=True, samples=1) == "batched"
    model = tiny(train_samples=2, multisample="batched")
    with pytest.raises(ValueError, match="multisample 'batched' cannot train with 2 samples per image"):
        model.train()(torch.randn(2, 3, 32, 32))
    with torch.no_grad():   # inference may still run the samples batched
        assert model.eval()(torch.randn(2, 3, 32, 32))["out"].shape == (2, 19, 8, 8)


def test_channels_last_gives_the_fp32_logits():
    model = trained_like().eval()
    x = torch.randn(1, 3, 64, 96)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        ref = model(x, samples=2, generator=gen, strategy="reference")["out"]
        model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last), samples=2,
                    generator=torch.Generator().manual_seed(3))["out"]
    assert_logits_match(out, ref)


def test_bf16_logits_stay_close():
    """bf16 autocast is not an fp32 path: its logits agree to about 1e-2 of their scale."""
    model = trained_like().eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x, samples=2, generator=torch.Generator().manual_seed(3), strategy="reference")["out"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, samples=2, generator=torch.Generator().manual_seed(3))["out"]
    assert out.dtype == torch.bfloat16
    assert_logits_match(out.float(), ref, tol=5e-2)


@pytest.mark.slow
def test_compiled_model_gives_the_fp32_logits():
    model = trained_like().eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x, samples=2, generator=torch.Generator().manual_seed(3), strategy="reference")["out"]
        out = torch.compile(model)(x, samples=2, generator=torch.Generator().manual_seed(3))["out"]
    assert_logits_match(out, ref)


@pytest.mark.parametrize("size, padding, dilation", [((5, 7), (1, 1), (1, 1)), ((6, 4), (2, 2), (2, 2)),
                                                     ((3, 9), (0, 1), (1, 3))])
def test_constant_map_conv_equals_the_convolution_of_the_map(size, padding, dilation):
    v, w = torch.randn(2, 6, 1, 1), torch.randn(4, 6, 3, 3)
    expected = F.conv2d(v.expand(2, 6, *size), w, padding=padding, dilation=dilation)
    got = constant_map_conv(v, w, size, padding=padding, dilation=dilation)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for fmt in (torch.contiguous_format, torch.channels_last):      # accumulated in place into ``out``
        base = torch.randn(expected.shape).contiguous(memory_format=fmt)
        out = base.clone(memory_format=torch.preserve_format)
        assert constant_map_conv(v, w, size, padding=padding, dilation=dilation, out=out) is out
        torch.testing.assert_close(out, base + expected, rtol=1e-5, atol=1e-5)


def test_multisample_rule_and_config():
    assert multisample_strategy("auto", torch.device("cpu"), positions=2 * 32 * 64) == "looped"
    assert multisample_strategy("auto", torch.device("cpu"), positions=16 * 32) == "batched"
    assert multisample_strategy("auto", torch.device("cuda", 0), positions=2 * 32 * 64) == "batched"
    assert multisample_strategy("reference", torch.device("cpu")) == "reference"
    assert ModelConfig().multisample == "auto"
    with pytest.raises(ValueError, match="multisample"):
        ModelConfig(multisample="sideways")
    with pytest.raises(ValueError, match="strategy"):
        tiny().eval()(torch.randn(1, 3, 32, 32), strategy="sideways")


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

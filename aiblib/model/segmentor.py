"""AIBR segmentor: ResNet-V1c -> AIB attention -> DeepLabV3+ head (+ FCN aux head on c3).

``ModelConfig`` holds every choice (its field names are also the engine config's keys);
``build_model(cfg)`` builds the network; ``forward`` returns a dict of named outputs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from aiblib.errors import ConfigError
from aiblib.model.attention import AIBAttention, modulate
from aiblib.model.backbone import ARCH, STRIDES, ResNetV1c
from aiblib.model.heads import DeepLabV3PlusHead, FCNHead

# how the decode head runs n attention samples (ModelConfig.multisample; see multisample_strategy)
MULTISAMPLE = ("auto", "looped", "batched", "reference")


# on the CPU, 'auto' loops over the samples from this many c4 positions per sample (B * h * w) up
LOOP_FROM_POSITIONS = 2048


def multisample_strategy(strategy: str, device: torch.device, positions: int = LOOP_FROM_POSITIONS, *,
                         training: bool = False, samples: int = 1) -> str:
    """The one rule for ``multisample='auto'``, from measurements on the CPU (benchmarks/RESULTS.md).

    Training with several samples (``training`` and ``samples`` > 1): 'looped' on every device, since
    BatchNorm then normalises each sample's B rows on its own, as the reference's head does (one call per
    sample); 'batched' would take the statistics over all n*B rows, a different model, and is refused.
    Otherwise (inference, or one sample, where the strategies give the same outputs up to rounding):
    on the CPU 'looped' (the sample-independent work once, then one sample at a time: the least
    memory and 3-5 % faster than 'batched' from 256x512 up) when one sample's batch has at least
    :data:`LOOP_FROM_POSITIONS` c4 positions (``positions`` = B * h * w), else 'batched' (one call on
    all n*B rows: fewer, larger operations win on small inputs). On other devices (CUDA): 'batched'
    (one larger call keeps a GPU busier; not measured here - ``python -m aiblib bench`` prints both).
    Any other value is returned as it is.
    """
    if training and samples > 1:
        if strategy == "batched":
            raise ConfigError(f"multisample 'batched' cannot train with {samples} samples per image: it takes "
                              "BatchNorm statistics over every sample's rows together (a different model from "
                              "the reference's per-sample statistics); use auto, looped or reference")
        return "looped" if strategy == "auto" else strategy
    if strategy != "auto":
        return strategy
    if torch.device(device).type == "cpu":
        return "looped" if positions >= LOOP_FROM_POSITIONS else "batched"
    return "batched"


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _typed(key: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp`` (bool, int, float, str, ``list[...]`` or a union of
    these): the one type check of every configuration key. The only conversions are int -> float, a
    number written as text -> float (YAML reads ``1e-4`` without a dot as a string) and tuple -> list;
    anything else of the wrong type is a ConfigError naming ``key``."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    for option in options:
        if typing.get_origin(option) is list and isinstance(value, (list, tuple)):
            (item,) = typing.get_args(option)
            return [_typed(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
        if option in (bool, str) and isinstance(value, option):
            return value
        if option in (int, float) and isinstance(value, int) and not isinstance(value, bool):
            return option(value)
        if option is float and isinstance(value, float):
            return value
        if option is float and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            if not math.isnan(number):
                return number
    name = str(tp) if typing.get_args(tp) else tp.__name__
    raise ConfigError(f"config key {key!r} expects {name}, got {value!r} ({type(value).__name__})")


def _key(default: Any, doc: str) -> Any:
    """A configuration field with its one-line description (``--help-config`` prints it)."""
    return field(default=default, metadata={"doc": doc})


@dataclass
class ModelConfig:
    """Model choices. Defaults are the reference's (R50-D8, 19 classes, beta 1e-3, 4 test samples).

    These fields are also the model keys of the run configuration (:class:`aiblib.config.experiment.Config`
    extends this class), so each is declared here once.
    """

    depth: int = _key(50, "ResNet-V1c depth: 18, 50 or 101")
    num_classes: int = _key(19, "number of classes (19 Cityscapes trainIds)")
    output_stride: int = _key(8, "backbone output stride: 8 (reference) or 16 (about 3x cheaper)")
    attention: bool = _key(True, "AIB spatial attention on (AIBR) or off (plain DeepLabV3+ baseline)")
    beta: float = _key(1e-3, "weight of the KL (bits) term; 0 keeps the attention without the term")
    train_samples: int = _key(1, "attention masks sampled per image in training")
    test_samples: int = _key(4, "attention masks sampled per image at test time (logits averaged)")
    mean_mask: bool = _key(False, "use the attention mean mu as the mask (no sampling, one sample)")
    multisample: str = _key("auto", "how the head runs the attention samples (same logits up to rounding): "
                                    "looped, batched (one call on n*B rows; refused in training with "
                                    "train_samples > 1), reference (every stage repeated, plain head per "
                                    "sample), auto = looped in training with train_samples > 1 and on CPU "
                                    "from 2048 c4 positions per sample (256x512 at output stride 8) up, "
                                    "else batched")
    aspp_channels: int = _key(512, "ASPP / decoder width")
    skip_channels: int = _key(48, "c1 skip projection width")
    aux_channels: int = _key(256, "auxiliary FCN head width (0 = no auxiliary head)")
    dropout: float = _key(0.1, "dropout before the classifiers")
    pretrained: str = _key("", "local ImageNet ResNet-V1c / torchvision ResNet file for the backbone; '' = from scratch")

    def __post_init__(self) -> None:
        """Check every key once: the type of each field of this class (a run configuration's too, since
        :class:`aiblib.config.experiment.Config` extends this one; see :func:`_typed`), then the model
        keys' values (the run configuration checks its own keys' values after this)."""
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _typed(f.name, getattr(self, f.name), hints[f.name]))
        checks = {
            "depth": (self.depth in ARCH, f"one of {sorted(ARCH)}"),
            "output_stride": (self.output_stride in STRIDES, f"one of {sorted(STRIDES)}"),
            "num_classes": (self.num_classes >= 1, ">= 1"),
            "beta": (self.beta >= 0, ">= 0"),
            "train_samples": (self.train_samples >= 1, ">= 1"),
            "test_samples": (self.test_samples >= 1, ">= 1"),
            "aspp_channels": (self.aspp_channels >= 1, ">= 1"),
            "skip_channels": (self.skip_channels >= 1, ">= 1"),
            "aux_channels": (self.aux_channels >= 0, ">= 0 (0: no auxiliary head)"),
            "dropout": (0.0 <= self.dropout < 1.0, "in [0, 1)"),
            "multisample": (self.multisample in MULTISAMPLE, f"one of {', '.join(MULTISAMPLE)}"),
        }
        for key, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"model key {key!r} has an invalid value {getattr(self, key)!r}; expected {expected}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from a plain dict; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown ModelConfig key(s): {', '.join(unknown)}")
        return ModelConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelConfig)}

    def model_config(self) -> "ModelConfig":
        """A plain :class:`ModelConfig` of these model keys (a run configuration's other keys left out)."""
        return ModelConfig(**ModelConfig.to_dict(self))

    def replace(self, **changes: Any) -> "ModelConfig":
        return ModelConfig.from_dict({**self.to_dict(), **changes})


class AIBRSegmentor(nn.Module):
    """``forward(images)`` with images (B, 3, H, W), normalized RGB. See ``forward`` for the outputs."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config.model_config()  # the model keys only, also when given a whole run configuration
        self.backbone = ResNetV1c(config.depth, config.output_stride)
        c1, _, c3, c4 = self.backbone.channels
        self.attention = AIBAttention(sum(self.backbone.channels)) if config.attention else None
        self.decode_head = DeepLabV3PlusHead(c4, c1, config.num_classes, channels=config.aspp_channels,
                                             c1_channels=config.skip_channels, dropout=config.dropout)
        self.aux_head = (FCNHead(c3, config.num_classes, channels=config.aux_channels, dropout=config.dropout)
                         if config.aux_channels > 0 else None)

    def num_samples(self, samples: int | None = None) -> int:
        """Masks per image this call would use: 1 without attention or with ``mean_mask``."""
        if self.attention is None or self.config.mean_mask:
            return 1
        if samples is not None:
            return int(samples)
        return self.config.train_samples if self.training else self.config.test_samples

    def forward(self, images: Tensor, *, samples: int | None = None, generator: torch.Generator | None = None,
                strategy: str | None = None) -> dict[str, Tensor]:
        """Run the network.

        Args:
            images: (B, 3, H, W) normalized RGB.
            samples: masks per image (default: ``train_samples`` in training, ``test_samples`` in eval;
                always 1 with ``mean_mask`` or without attention).
            generator: ``torch.Generator`` for the sampling noise (reproducible sampling).
            strategy: how the heads run the samples, one of :data:`MULTISAMPLE` (default: the config's
                ``multisample``; resolved by :func:`multisample_strategy` for the mode, the number of
                samples, the images' device and size).
                All give the same outputs up to fp32 rounding; in training with n > 1 BatchNorm takes
                statistics per sample ('batched', which would take them over all n*B rows, is refused).

        Returns a dict:
            ``out`` (B, K, H/4, W/4) logits averaged over samples (not upsampled);
            ``aux`` (B, K, h3, w3) in training when the aux head exists (averaged over samples);
            ``mu``, ``std`` (B, 1, h, w) at c4's size, ``masks`` (n*B, 1, h, w), ``kl`` scalar in bits
            (not times beta) - these four with attention only;
            ``sample_logits`` (n, B, K, H/4, W/4) when n > 1.
        """
        b = images.shape[0]
        feats = self.backbone(images)
        n = self.num_samples(samples)
        c1, _, c3, c4 = feats
        how = multisample_strategy(strategy or self.config.multisample, images.device, b * c4.shape[-2] * c4.shape[-1],
                                   training=self.training, samples=n)
        if how not in MULTISAMPLE[1:]:
            raise ValueError(f"strategy must be one of {', '.join(MULTISAMPLE)}, got {how!r}")
        out: dict[str, Tensor] = {}
        if self.attention is None:
            logits = self.decode_head(c1, c4)
        elif how == "reference":
            feats, stats = self.attention(feats, samples=n, mean_mask=self.config.mean_mask, generator=generator)
            out.update(stats)
            c1, _, c3, c4 = feats
            logits = torch.cat([self.decode_head(c1[s * b:(s + 1) * b], c4[s * b:(s + 1) * b]) for s in range(n)])
        else:
            out.update(self.attention.stats(feats, samples=n, mean_mask=self.config.mean_mask, generator=generator))
            logits = self.decode_head.forward_masked(c1, c4, out["masks"], batched=how == "batched")
        logits = logits.view(n, b, *logits.shape[1:])
        out["out"] = logits.mean(0)
        if n > 1:
            out["sample_logits"] = logits
        if self.training and self.aux_head is not None:
            if self.attention is not None and how != "reference":   # c3 is not modulated yet
                c3 = modulate(c3, out["masks"])
            out["aux"] = self._aux(c3, b, batched=how == "batched")
        return out

    def _aux(self, c3: Tensor, b: int, *, batched: bool) -> Tensor:
        """Auxiliary logits (B, K, h3, w3) averaged over samples, from c3 modulated (n*B, C3, h3, w3)."""
        n = c3.shape[0] // b
        if batched or n == 1:
            aux = self.aux_head(c3)
        else:
            aux = torch.cat([self.aux_head(c3[s * b:(s + 1) * b]) for s in range(n)])
        return aux.view(n, b, *aux.shape[1:]).mean(0)


def build_model(cfg: ModelConfig | dict[str, Any]) -> AIBRSegmentor:
    """Build the segmentor with freshly initialised weights (it reads no file: the
    ``pretrained`` backbone is loaded by :func:`aiblib.storage.checkpoint.init_pretrained`)."""
    if isinstance(cfg, dict):
        cfg = ModelConfig.from_dict(cfg)
    return AIBRSegmentor(cfg)

"""The AIB spatial attention: a variational (information-bottleneck) mask on every stage.

From the concatenated backbone stages it predicts, per position at c4's resolution,
``mu = sigmoid(conv3x3(cat))`` and ``std = softplus(conv3x3(mu) - 5)``, samples ``n`` masks
``m = mu + eps * std`` (or uses ``m = mu`` with ``mean_mask``) and modulates each stage
residually, ``c <- c + c * m``. Its KL to N(0, 1) is the information term, in bits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _resize(x: Tensor, size: torch.Size) -> Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="nearest")


def kl_bits(mu: Tensor, std: Tensor) -> Tensor:
    """KL(N(mu, std^2) || N(0, 1)) averaged over all elements, in bits (divided by ln 2). Scalar."""
    kl = -0.5 * (1 + 2 * std.log() - mu.pow(2) - std.pow(2))
    return kl.mean() / math.log(2)


class AIBAttention(nn.Module):
    """Attention over the stage features ``[c1, c2, c3, c4]`` (``in_channels`` = sum of their channels).

    ``forward(feats, samples=n)`` returns ``(modulated, stats)``:

    - modulated: four tensors with ``n * B`` rows, sample-major (``[sample 0 batch, sample 1 batch, ...]``),
      each stage ``c + c * m`` with the mask resized (nearest) to the stage's size.
    - stats: ``mu``, ``std`` (B, 1, h, w) at c4's size; ``masks`` (n*B, 1, h, w); ``kl`` scalar, bits.

    Every stage is resized (nearest) to c4's size before the concatenation; at output stride 8
    only c1 changes size, exactly as the reference.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.mu_conv = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.std_conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, feats: list[Tensor], *, samples: int = 1, mean_mask: bool = False,
                generator: torch.Generator | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        size = feats[-1].shape[-2:]
        cat = torch.cat([_resize(f, size) for f in feats], dim=1)
        mu = torch.sigmoid(self.mu_conv(cat))                      # (B, 1, h, w)
        std = F.softplus(self.std_conv(mu) - 5.0)                  # (B, 1, h, w)
        if mean_mask:
            samples, masks = 1, mu
        else:
            shape = (samples, *mu.shape)
            gen_device = generator.device if generator is not None else mu.device
            eps = torch.randn(shape, generator=generator, device=gen_device, dtype=mu.dtype).to(mu.device)
            masks = (mu.unsqueeze(0) + eps * std.unsqueeze(0)).flatten(0, 1)   # (n*B, 1, h, w)
        out = []
        for f in feats:
            f = f.repeat(samples, 1, 1, 1) if samples > 1 else f
            out.append(f + f * _resize(masks, f.shape[-2:]))
        return out, {"mu": mu, "std": std, "masks": masks, "kl": kl_bits(mu, std)}

"""The AIB spatial attention: a variational (information-bottleneck) mask on every stage.

From the concatenated backbone stages it predicts, per position at c4's resolution,
``mu = sigmoid(conv3x3(cat))`` and ``std = softplus(conv3x3(mu) - 5)``, samples ``n`` masks
``m = mu + eps * std`` (or uses ``m = mu`` with ``mean_mask``) and modulates each stage
residually, ``c <- c + c * m``. Its KL to N(0, 1) is the information term, in bits.

The mask is one scalar per position, so ``c + c * m = (1 + m) * c`` commutes with any 1x1
convolution: :meth:`aiblib.model.heads.DeepLabV3PlusHead.forward_masked` uses this to run the
sample-independent work once. :meth:`AIBAttention.forward` is the reference's execution
(every stage repeated ``n`` times and modulated).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def resize_nearest(x: Tensor, size: torch.Size) -> Tensor:
    """(N, C, h, w) -> (N, C, *size), nearest neighbour; ``x`` itself when it already has that size."""
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="nearest")


def modulate(f: Tensor, masks: Tensor) -> Tensor:
    """One stage modulated by every mask: f (B, C, H, W), masks (n*B, 1, h, w) sample-major ->
    (n*B, C, H, W), ``f + f * m`` with ``f`` repeated ``n`` times and ``m`` resized (nearest) to (H, W)."""
    n = masks.shape[0] // f.shape[0]
    f = f.repeat(n, 1, 1, 1) if n > 1 else f
    return f + f * resize_nearest(masks, f.shape[-2:])


def kl_bits(mu: Tensor, std: Tensor) -> Tensor:
    """KL(N(mu, std^2) || N(0, 1)) averaged over all elements, in bits (divided by ln 2). Scalar."""
    kl = -0.5 * (1 + 2 * std.log() - mu.pow(2) - std.pow(2))
    return kl.mean() / math.log(2)


class AIBAttention(nn.Module):
    """Attention over the stage features ``[c1, c2, c3, c4]`` (``in_channels`` = sum of their channels).

    - :meth:`distribution`: ``mu``, ``std`` (B, 1, h, w) at c4's size.
    - :meth:`sample`: the masks (n*B, 1, h, w), sample-major (``[sample 0 batch, sample 1 batch, ...]``).
    - ``forward(feats, samples=n)`` returns ``(modulated, stats)``:
      modulated: the four stages with ``n * B`` rows each (:func:`modulate`), as the reference;
      stats: ``mu``, ``std`` (B, 1, h, w); ``masks`` (n*B, 1, h, w); ``kl`` scalar, bits.

    Every stage is resized (nearest) to c4's size before the concatenation; at output stride 8
    only c1 changes size, exactly as the reference.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.mu_conv = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.std_conv = nn.Conv2d(1, 1, 3, padding=1)

    def distribution(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        """``mu``, ``std``: (B, 1, h, w) at c4's size, from the four stages (B, C_i, H_i, W_i)."""
        size = feats[-1].shape[-2:]
        cat = torch.cat([resize_nearest(f, size) for f in feats], dim=1)
        mu = torch.sigmoid(self.mu_conv(cat))
        std = F.softplus(self.std_conv(mu) - 5.0)
        return mu, std

    @staticmethod
    def sample(mu: Tensor, std: Tensor, *, samples: int = 1, mean_mask: bool = False,
               generator: torch.Generator | None = None) -> Tensor:
        """Masks (n*B, 1, h, w), sample-major: ``mu + eps * std`` with eps ~ N(0, 1) drawn as one
        (n, B, 1, h, w) tensor from ``generator``; ``mu`` itself (n = 1) with ``mean_mask``."""
        if mean_mask:
            return mu
        gen_device = generator.device if generator is not None else mu.device
        eps = torch.randn((samples, *mu.shape), generator=generator, device=gen_device, dtype=mu.dtype).to(mu.device)
        return (mu.unsqueeze(0) + eps * std.unsqueeze(0)).flatten(0, 1)

    def stats(self, feats: list[Tensor], *, samples: int = 1, mean_mask: bool = False,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``mu``, ``std`` (B, 1, h, w), ``masks`` (n*B, 1, h, w) and ``kl`` (scalar, bits) for the stages."""
        mu, std = self.distribution(feats)
        masks = self.sample(mu, std, samples=samples, mean_mask=mean_mask, generator=generator)
        return {"mu": mu, "std": std, "masks": masks, "kl": kl_bits(mu, std)}

    def forward(self, feats: list[Tensor], *, samples: int = 1, mean_mask: bool = False,
                generator: torch.Generator | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        stats = self.stats(feats, samples=samples, mean_mask=mean_mask, generator=generator)
        return [modulate(f, stats["masks"]) for f in feats], stats

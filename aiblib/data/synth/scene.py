"""The list of draw operations a synthetic scene is made of, and colour helpers."""

from __future__ import annotations

import numpy as np

from aiblib.data.synth.geometry import Camera
from aiblib.data.synth.style import Style


class Scene:
    """Draw operations in painting order.

    ``ops`` holds (label_name | None, polygon, rgb, outline_width); ops with a label are
    annotated objects, ops without one only paint the image (windows, lane marks, wheels).
    ``lights`` holds (x, y, radius_px, rgb) light sources (drawn as glare at night).
    """

    def __init__(self, cam: Camera, rng: np.random.Generator, style: Style) -> None:
        self.cam, self.rng, self.style = cam, rng, style
        self.ops: list[tuple[str | None, list[tuple[float, float]], tuple[int, int, int], int]] = []
        self.lights: list[tuple[float, float, float, tuple[int, int, int]]] = []

    def color(self, base: tuple[int, int, int], spread: float = 0.08) -> tuple[int, int, int]:
        k = 1.0 + spread * self.rng.standard_normal(3)
        g = 1.0 + spread * self.rng.standard_normal()
        return tuple(int(np.clip(c * kk * g, 0, 255)) for c, kk in zip(base, k))  # type: ignore[return-value]

    def pick(self, options: tuple) -> tuple[int, int, int]:
        return self.color(options[int(self.rng.integers(len(options)))])

    def add(self, label: str | None, poly, rgb, outline: int = 0) -> None:
        if len(poly) >= 2:
            self.ops.append((label, list(poly), rgb, outline))


def shade(rgb: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * k))) for c in rgb)  # type: ignore[return-value]

"""Polygons and the pinhole camera of the synthetic scenes."""

from __future__ import annotations

import math


def clip(poly: list[tuple[float, float]], w: int, h: int) -> list[tuple[int, int]]:
    """Sutherland-Hodgman clip to [0, w-1] x [0, h-1], vertices rounded to integers."""
    pts = poly
    for axis, bound, keep_less in ((0, 0.0, False), (0, w - 1.0, True), (1, 0.0, False), (1, h - 1.0, True)):
        if not pts:
            break
        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            cin = cur[axis] <= bound if keep_less else cur[axis] >= bound
            pin = prev[axis] <= bound if keep_less else prev[axis] >= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cin:
                out.append(cur)
        pts = out
    result: list[tuple[int, int]] = []
    for x, y in pts:
        p = (int(round(x)), int(round(y)))
        if not result or result[-1] != p:
            result.append(p)
    if len(result) > 1 and result[0] == result[-1]:
        result.pop()
    return result if len(result) >= 3 else []


def hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Convex hull (monotone chain)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def circle(cx: float, cy: float, rx: float, ry: float, n: int = 12, jitter=None) -> list[tuple[float, float]]:
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        r = 1.0 if jitter is None else jitter[k]
        pts.append((cx + rx * r * math.cos(a), cy + ry * r * math.sin(a)))
    return pts


class Camera:
    """Pinhole camera over the ground plane: world X right, Y up, Z forward (metres)."""

    def __init__(self, w: int, h: int, focal: float, horizon: float, height: float, cx: float) -> None:
        self.w, self.h, self.f, self.yh, self.hc, self.cx = w, h, focal, horizon, height, cx
        # nearest depth drawn: well below the bottom row of the image
        self.znear = 0.45 * focal * height / max(h - horizon, 1.0)

    def p(self, x: float, y: float, z: float) -> tuple[float, float]:
        z = max(z, self.znear)
        return (self.cx + self.f * x / z, self.yh + self.f * (self.hc - y) / z)

    def ground(self, x0: float, x1: float, z0: float, z1: float) -> list[tuple[float, float]]:
        z0 = max(z0, self.znear)
        return [self.p(x0, 0, z0), self.p(x1, 0, z0), self.p(x1, 0, z1), self.p(x0, 0, z1)]

    def side(self, x: float, y0: float, y1: float, z0: float, z1: float) -> list[tuple[float, float]]:
        """A vertical face parallel to the road at lateral x."""
        z0 = max(z0, self.znear)
        return [self.p(x, y0, z0), self.p(x, y0, z1), self.p(x, y1, z1), self.p(x, y1, z0)]

    def front(self, x0: float, x1: float, y0: float, y1: float, z: float) -> list[tuple[float, float]]:
        """A vertical face facing the camera at depth z."""
        return [self.p(x0, y0, z), self.p(x1, y0, z), self.p(x1, y1, z), self.p(x0, y1, z)]

    def scale(self, z: float) -> float:
        """Pixels per metre at depth z."""
        return self.f / max(z, self.znear)

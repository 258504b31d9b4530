"""Synthetic three-domain street scenes, written in the real dataset layouts (SPEC section 8).

``python -m aiblib synth --root data/synthetic --n-train N --n-val M --size WxH --seed S``

Every image is a procedural street scene seen by a pinhole camera over a ground plane:
road with lanes, sidewalks, terrain, building facades (with windows), walls, fences,
poles with traffic lights / signs / lamps, trees, people, riders on bicycles and
motorcycles, cars, trucks, buses and trams, under the sky. Each object is a polygon in
image coordinates (integer vertices, as Cityscapes annotates), painted far to near; the
label image is those polygons rasterized exactly as ``cityscapesscripts`` rasterizes
``_polygons.json`` (PIL ``ImageDraw.polygon``), so the image and the labels line up pixel
for pixel. The three domains share the scene generator (classes, layout, object counts)
and differ in camera and appearance:

- ``cityscapes/``: day source. Camera 1.2-1.5 m high, narrow field of view, grey-green
  palette, visible ego-vehicle hood (labelled "ego vehicle", ignored). Written as
  Cityscapes: leftImg8bit PNG; gtFine ``_polygons.json``, ``_labelIds.png``, ``_color.png``
  (``prepare`` makes ``_labelTrainIds.png`` with the official tool).
- ``bdd100k/``: shifted day target. Higher camera (1.9-2.3 m), wide field of view, warm
  saturated palette, coarser textures, US-style yellow centre line, haze; JPEG images and
  trainId masks.
- ``nightcity-fine/``: night target. Dark, low contrast, lit windows, street lamps, car
  lights with glare, sensor noise; PNG images and ``_trainIds`` labels.

Deterministic: an image depends only on (seed, domain, split, index), so the same seed
writes the same bytes whatever the number of worker processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cityscapesscripts.helpers.labels import id2label, name2label

DOMAINS: tuple[str, ...] = ("cityscapes", "bdd100k", "nightcity")
FOLDERS = {"cityscapes": "cityscapes", "bdd100k": "bdd100k", "nightcity": "nightcity-fine"}
SPLITS = ("train", "val")
VERSION = 1
CITIES = {"train": ("polyburg", "gridford", "vectorstadt"), "val": ("rasterheim",)}

# labelId -> trainId (255 for ignored ids), and labelId -> Cityscapes colour.
ID_TO_TRAIN = np.full(256, 255, dtype=np.uint8)
ID_TO_COLOR = np.zeros((256, 3), dtype=np.uint8)
for _id, _label in id2label.items():
    if 0 <= _id < 256:
        ID_TO_TRAIN[_id] = _label.trainId if 0 <= _label.trainId < 255 else 255
        ID_TO_COLOR[_id] = _label.color

# Classes that many scenes lack: each is forced into every third image (offset per class).
RARE = ("wall", "fence", "traffic light", "traffic sign", "terrain", "person", "rider",
        "truck", "bus", "train", "motorcycle", "bicycle")


@dataclass(frozen=True)
class Style:
    """Camera and appearance of one domain (colours RGB 0-255)."""

    horizon: tuple[float, float]  # horizon row as a fraction of the height
    focal: tuple[float, float]  # focal length as a fraction of the width
    height: tuple[float, float]  # camera height (m)
    sky: tuple[tuple[int, int, int], tuple[int, int, int]]  # top, horizon
    road: tuple[int, int, int]
    lane: tuple[int, int, int]
    centre_lane: tuple[int, int, int]
    sidewalk: tuple[int, int, int]
    terrain: tuple[int, int, int]
    buildings: tuple[tuple[int, int, int], ...]
    window: tuple[int, int, int]
    lit_window: tuple[int, int, int]
    lit_prob: float
    walls: tuple[tuple[int, int, int], ...]
    fence: tuple[int, int, int]
    pole: tuple[int, int, int]
    vegetation: tuple[tuple[int, int, int], ...]
    clothes: tuple[tuple[int, int, int], ...]
    skin: tuple[int, int, int]
    cars: tuple[tuple[int, int, int], ...]
    trucks: tuple[tuple[int, int, int], ...]
    buses: tuple[tuple[int, int, int], ...]
    trains: tuple[tuple[int, int, int], ...]
    bike: tuple[int, int, int]
    signs: tuple[tuple[int, int, int], ...]
    light_box: tuple[int, int, int]
    hood: tuple[int, int, int] | None
    # texture: (fine, coarse) noise amplitude per trainId (index 19 = ignore)
    fine: tuple[float, ...]
    coarse: tuple[float, ...]
    coarse_cell: int  # pixels per coarse-noise cell at 512 px width
    haze: float  # 0 = none; fraction of haze colour at the horizon
    haze_color: tuple[int, int, int]
    gain: float  # global multiplier
    noise: float  # sensor noise sigma (0-255 scale)
    night: bool
    blur: float


_T = lambda *v: tuple(float(x) for x in v)  # noqa: E731
#            road sidew build wall fence pole light sign veg  terr sky  pers ride car  truc bus  trai moto bike ign
_DAY_FINE = _T(5, 6, 4, 6, 6, 3, 2, 2, 22, 12, 1.5, 6, 6, 3, 3, 3, 3, 4, 4, 3)
_DAY_COARSE = _T(8, 10, 12, 12, 8, 4, 2, 2, 18, 16, 5, 6, 6, 5, 6, 6, 6, 4, 4, 4)
_BDD_FINE = _T(12, 10, 9, 10, 8, 5, 3, 3, 14, 16, 1, 8, 8, 5, 5, 5, 5, 6, 6, 5)
_BDD_COARSE = _T(16, 14, 18, 14, 10, 6, 3, 3, 26, 22, 8, 8, 8, 7, 8, 8, 8, 6, 6, 6)
_NIGHT_FINE = _T(2, 2, 2, 2, 2, 1, 1, 1, 5, 4, 0.5, 2, 2, 1, 1, 1, 1, 1, 1, 1)
_NIGHT_COARSE = _T(5, 4, 5, 4, 3, 2, 1, 1, 6, 5, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2)

STYLES: dict[str, Style] = {
    "cityscapes": Style(
        horizon=(0.38, 0.46), focal=(0.95, 1.1), height=(1.2, 1.5),
        sky=((120, 160, 200), (200, 215, 225)), road=(88, 88, 96), lane=(205, 205, 200),
        centre_lane=(205, 205, 200), sidewalk=(150, 140, 140), terrain=(118, 132, 80),
        buildings=((120, 112, 100), (150, 140, 125), (95, 95, 100), (135, 120, 110), (110, 118, 125)),
        window=(50, 58, 66), lit_window=(50, 58, 66), lit_prob=0.0,
        walls=((140, 135, 120), (115, 110, 105)), fence=(120, 105, 90), pole=(90, 92, 95),
        vegetation=((62, 90, 40), (75, 105, 45), (50, 78, 38)),
        clothes=((40, 40, 50), (90, 30, 30), (30, 50, 90), (120, 110, 100), (70, 70, 70)),
        skin=(200, 160, 130),
        cars=((30, 30, 35), (180, 180, 185), (120, 20, 20), (30, 40, 90), (210, 210, 205), (90, 95, 100)),
        trucks=((200, 200, 195), (60, 80, 120), (150, 60, 40)), buses=((210, 190, 40), (200, 200, 200)),
        trains=((225, 225, 220), (180, 40, 40)), bike=(35, 35, 40),
        signs=((30, 80, 170), (200, 40, 40), (230, 230, 230)), light_box=(35, 35, 30), hood=(30, 32, 36),
        fine=_DAY_FINE, coarse=_DAY_COARSE, coarse_cell=24, haze=0.0, haze_color=(255, 255, 255),
        gain=1.0, noise=1.5, night=False, blur=0.0,
    ),
    "bdd100k": Style(
        horizon=(0.46, 0.56), focal=(0.6, 0.72), height=(1.9, 2.3),
        sky=((175, 200, 225), (230, 228, 215)), road=(135, 125, 112), lane=(240, 240, 235),
        centre_lane=(235, 190, 40), sidewalk=(190, 175, 150), terrain=(165, 150, 90),
        buildings=((170, 105, 75), (205, 190, 165), (125, 145, 170), (185, 160, 120), (150, 80, 70)),
        window=(95, 130, 160), lit_window=(95, 130, 160), lit_prob=0.0,
        walls=((190, 170, 140), (160, 100, 80)), fence=(170, 160, 140), pole=(130, 120, 100),
        vegetation=((85, 100, 30), (110, 120, 45), (70, 85, 35)),
        clothes=((200, 180, 150), (40, 60, 120), (180, 60, 40), (230, 230, 220), (60, 50, 40)),
        skin=(210, 170, 130),
        cars=((230, 230, 225), (150, 20, 20), (20, 20, 25), (160, 160, 150), (40, 70, 40), (180, 150, 90)),
        trucks=((235, 235, 230), (180, 140, 40), (60, 60, 60)), buses=((240, 200, 30), (230, 230, 230)),
        trains=((190, 190, 200), (60, 90, 150)), bike=(60, 60, 60),
        signs=((40, 130, 60), (220, 180, 30), (240, 240, 240)), light_box=(60, 55, 40), hood=None,
        fine=_BDD_FINE, coarse=_BDD_COARSE, coarse_cell=12, haze=0.45, haze_color=(215, 210, 195),
        gain=1.0, noise=2.5, night=False, blur=0.6,
    ),
    "nightcity": Style(
        horizon=(0.40, 0.50), focal=(0.78, 0.9), height=(1.4, 1.7),
        sky=((8, 10, 22), (55, 40, 40)), road=(30, 30, 34), lane=(75, 75, 70),
        centre_lane=(75, 75, 70), sidewalk=(42, 40, 40), terrain=(22, 26, 18),
        buildings=((38, 34, 36), (30, 30, 40), (45, 40, 35), (28, 28, 30)),
        window=(18, 20, 28), lit_window=(255, 205, 120), lit_prob=0.3,
        walls=((40, 38, 36), (32, 30, 34)), fence=(34, 30, 28), pole=(28, 28, 30),
        vegetation=((14, 22, 12), (18, 26, 14)),
        clothes=((20, 20, 24), (45, 20, 20), (20, 28, 45), (55, 50, 45)),
        skin=(90, 70, 60),
        cars=((15, 15, 18), (70, 70, 72), (55, 12, 12), (16, 20, 40), (90, 90, 88)),
        trucks=((80, 80, 78), (26, 34, 52)), buses=((90, 80, 20), (85, 85, 85)),
        trains=((90, 90, 90), (70, 18, 18)), bike=(14, 14, 16),
        signs=((16, 40, 90), (95, 20, 20), (110, 110, 110)), light_box=(14, 14, 12), hood=None,
        fine=_NIGHT_FINE, coarse=_NIGHT_COARSE, coarse_cell=16, haze=0.0, haze_color=(0, 0, 0),
        gain=0.85, noise=7.0, night=True, blur=0.8,
    ),
}

# A standing person, x in units of the height (centred), y from the feet (0) to the top (1).
_PERSON = ((-0.10, 0.0), (-0.045, 0.0), (0.0, 0.40), (0.045, 0.0), (0.10, 0.0), (0.085, 0.47),
           (0.13, 0.50), (0.125, 0.80), (0.07, 0.835), (0.04, 0.855), (0.06, 0.92), (0.04, 0.98),
           (0.0, 1.0), (-0.04, 0.98), (-0.06, 0.92), (-0.04, 0.855), (-0.07, 0.835), (-0.125, 0.80),
           (-0.13, 0.50), (-0.085, 0.47))
_LEGS = ((-0.10, 0.0), (-0.045, 0.0), (0.0, 0.40), (0.045, 0.0), (0.10, 0.0), (0.085, 0.48), (-0.085, 0.48))
_HEAD = ((0.04, 0.855), (0.06, 0.92), (0.04, 0.98), (0.0, 1.0), (-0.04, 0.98), (-0.06, 0.92), (-0.04, 0.855))


# ---------------------------------------------------------------------------- geometry


def _clip(poly: list[tuple[float, float]], w: int, h: int) -> list[tuple[int, int]]:
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


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
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


def _circle(cx: float, cy: float, rx: float, ry: float, n: int = 12, jitter=None) -> list[tuple[float, float]]:
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


# ---------------------------------------------------------------------------- scene


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


def _shade(rgb: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * k))) for c in rgb)  # type: ignore[return-value]


def _building_facade(s: Scene, x: float, z0: float, z1: float, height: float, side: int) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    base = s.pick(st.buildings)
    s.add("building", cam.side(x, 0, height, z0, z1), base)
    # near end face (perpendicular), visible when the street continues beyond it
    depth = side * float(rng.uniform(8, 15))
    if z0 > cam.znear * 1.5:
        s.add("building", cam.front(x, x + depth, 0, height, z0), _shade(base, 0.8))
    # windows: a grid of quads on the facade
    floor_h = float(rng.uniform(2.8, 3.6))
    col_w = float(rng.uniform(2.2, 3.5))
    win_w, win_h = col_w * float(rng.uniform(0.35, 0.6)), floor_h * float(rng.uniform(0.35, 0.55))
    if cam.scale(max(z0, cam.znear)) * win_h < 1.5:
        return
    ground_floor = float(rng.uniform(0.5, 1.5))
    y = ground_floor + 0.5
    while y + win_h < height - 0.5:
        z = z0 + 0.6
        while z + win_w < z1 - 0.3:
            if cam.scale(z) * win_w >= 1.2:
                lit = st.lit_prob > 0 and rng.random() < st.lit_prob
                rgb = s.color(st.lit_window if lit else st.window, 0.06)
                s.add(None, cam.side(x, y, y + win_h, z, z + win_w), rgb)
                if lit and rng.random() < 0.25:
                    px, py = cam.p(x, y + win_h / 2, z + win_w / 2)
                    s.lights.append((px, py, 1.5 * cam.scale(z) * win_w, st.lit_window))
            z += col_w
        y += floor_h


def _tree(s: Scene, x: float, z: float) -> None:
    cam, rng = s.cam, s.rng
    h = float(rng.uniform(3.5, 7.5))
    r = float(rng.uniform(1.4, 3.0))
    trunk_w = float(rng.uniform(0.2, 0.4))
    green = s.pick(s.style.vegetation)
    s.add("vegetation", cam.front(x - trunk_w / 2, x + trunk_w / 2, 0, h, z), _shade(green, 0.6))
    cx, cy = cam.p(x, h, z)
    k = cam.scale(z)
    jitter = 1.0 + 0.18 * rng.standard_normal(14)
    s.add("vegetation", _circle(cx, cy, r * k, r * k * float(rng.uniform(0.8, 1.2)), 14, jitter), green)


def _pole(s: Scene, x: float, z: float, side: int, force: set[str]) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    h = float(rng.uniform(4.5, 8.5))
    w = float(rng.uniform(0.14, 0.26))
    s.add("pole", cam.front(x - w / 2, x + w / 2, 0, h, z), s.color(st.pole))
    k = cam.scale(z)
    kind = rng.random()
    if "traffic light" in force or kind < 0.3:
        force.discard("traffic light")
        bw, bh = float(rng.uniform(0.3, 0.45)), float(rng.uniform(0.8, 1.1))
        arm = -side * float(rng.uniform(0.0, 3.0))  # lights hang over the road on an arm
        if abs(arm) > 0.3:
            s.add("pole", cam.front(min(x, x + arm), max(x, x + arm), h - 0.18, h, z), s.color(st.pole))
        lx = x + arm
        s.add("traffic light", cam.front(lx - bw / 2, lx + bw / 2, h - bh, h, z), s.color(st.light_box))
        state = int(rng.integers(3))
        for i, rgb in enumerate(((230, 40, 30), (240, 180, 30), (40, 220, 90))):
            yy = h - bh * (0.2 + 0.3 * i)
            px, py = cam.p(lx, yy, z)
            rr = 0.11 * k
            on = i == state
            col = rgb if on else _shade(rgb, 0.25)
            s.add(None, _circle(px, py, rr, rr, 8), col)
            if on:
                s.lights.append((px, py, 3 * rr + 1, rgb))
    elif "traffic sign" in force or kind < 0.65:
        force.discard("traffic sign")
        sy = float(rng.uniform(2.2, min(3.2, h - 0.4)))
        r = float(rng.uniform(0.3, 0.45))
        px, py = cam.p(x, sy, z)
        shape = int(rng.integers(3))
        rgb = s.pick(st.signs)
        if shape == 0:
            poly = _circle(px, py, r * k, r * k, 12)
        elif shape == 1:
            poly = [(px - r * k, py - r * k), (px + r * k, py - r * k), (px + r * k, py + r * k), (px - r * k, py + r * k)]
        else:
            poly = [(px, py - r * k), (px + r * k, py + 0.8 * r * k), (px - r * k, py + 0.8 * r * k)]
        s.add("traffic sign", poly, rgb)
        inner = [(px + 0.55 * (qx - px), py + 0.55 * (qy - py)) for qx, qy in poly]
        s.add(None, inner, (235, 235, 235) if sum(rgb) < 600 else (200, 30, 30))
    else:  # street lamp
        arm = -side * float(rng.uniform(1.0, 2.5))
        s.add("pole", cam.front(min(x, x + arm), max(x, x + arm), h - 0.15, h, z), s.color(st.pole))
        px, py = cam.p(x + arm, h - 0.2, z)
        if st.night:
            s.add(None, _circle(px, py, 0.25 * k + 1, 0.12 * k + 1, 8), (255, 235, 190))
            s.lights.append((px, py, 0.9 * k + 3, (255, 210, 150)))


def _person(s: Scene, label: str, x: float, z: float, y0: float = 0.0, height: float | None = None) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    height = float(rng.uniform(1.55, 1.9)) if height is None else height
    px, py = cam.p(x, y0, z)
    hp = height * cam.scale(z)
    wk = float(rng.uniform(0.9, 1.2))
    tf = lambda pts: [(px + u * hp * wk, py - v * hp) for u, v in pts]  # noqa: E731
    s.add(label, tf(_PERSON), s.pick(st.clothes))
    s.add(None, tf(_LEGS), s.pick(st.clothes))
    s.add(None, tf(_HEAD), s.color(st.skin))


def _two_wheeler(s: Scene, label: str, x: float, z: float, facing: int, rider: bool) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    k = cam.scale(z)
    moto = label == "motorcycle"
    length = float(rng.uniform(1.9, 2.2) if moto else rng.uniform(1.6, 1.8))
    r = 0.32 if moto else 0.34
    px, py = cam.p(x, 0, z)
    lx = length * k
    wheels = [(px - facing * (lx / 2 - r * k), py - r * k), (px + facing * (lx / 2 - r * k), py - r * k)]
    pts = []
    for wx, wy in wheels:
        pts += _circle(wx, wy, r * k, r * k, 10)
    top = (0.9 if moto else 1.0) * k
    pts += [(px + facing * (lx / 2 - 0.2 * k), py - top), (px - facing * 0.1 * k, py - 0.8 * k)]
    body = st.bike if not moto else s.pick(st.cars)
    s.add(label, _hull(pts), _shade(body, 1.0))
    for wx, wy in wheels:
        s.add(None, _circle(wx, wy, r * k, r * k, 12), _shade(st.bike, 0.5), max(1, int(0.08 * k)))
        s.add(None, _circle(wx, wy, 0.55 * r * k, 0.55 * r * k, 10), _shade(st.road, 1.05))
    if moto:
        s.add(None, [(px - 0.45 * k, py - 0.35 * k), (px + 0.45 * k, py - 0.35 * k),
                     (px + 0.35 * k, py - 0.85 * k), (px - 0.35 * k, py - 0.85 * k)], body)
        if st.night:
            hx = px + facing * lx / 2
            s.lights.append((hx, py - 0.7 * k, 0.5 * k + 2, (255, 240, 200)))
    if rider:
        _person(s, "rider", x - facing * 0.1, z, y0=0.45, height=float(rng.uniform(1.35, 1.55)))


def _vehicle(s: Scene, label: str, x: float, z: float, oncoming: bool) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    dims = {"car": (1.8, 1.5, 4.4), "truck": (2.5, 3.4, 7.5), "bus": (2.55, 3.1, 12.0), "train": (2.65, 3.6, 28.0)}
    w, h, length = dims[label]
    w *= float(rng.uniform(0.92, 1.08))
    h *= float(rng.uniform(0.9, 1.1))
    x0, x1 = x - w / 2, x + w / 2
    z1 = z + length
    inset = 0.22 if label == "car" else 0.02
    low = 0.55 if label == "car" else h
    corners = [cam.p(xx, 0.15, zz) for xx in (x0, x1) for zz in (z, z1)]
    corners += [cam.p(xx, low, zz) for xx in (x0, x1) for zz in (z, z1)]
    if label == "car":
        corners += [cam.p(xx, h, zz) for xx in (x0 + inset, x1 - inset) for zz in (z + 0.25 * length, z1 - 0.35 * length)]
    palette = {"car": st.cars, "truck": st.trucks, "bus": st.buses, "train": st.trains}[label]
    body = s.pick(palette)
    s.add(label, _hull(corners), body)
    k = cam.scale(z)
    # visible side face (facing the camera axis)
    sx = x0 if x > 0 else x1
    if abs(x) > w / 2:
        s.add(None, cam.side(sx, 0.3, low if label == "car" else h * 0.95, z + 0.1, z1), _shade(body, 0.8))
    glass = s.color(st.window, 0.05)
    if label == "car":
        s.add(None, cam.front(x0 + inset + 0.05, x1 - inset - 0.05, low + 0.1, h - 0.1, z + 0.25 * length), glass)
    else:
        s.add(None, cam.front(x0 + 0.15, x1 - 0.15, h * 0.55, h * 0.9, z), glass)
        if abs(x) > w / 2:  # side window band
            zz = z + 0.8
            while zz < z1 - 1.0:
                s.add(None, cam.side(sx, h * 0.55, h * 0.85, zz, zz + 1.2), glass)
                zz += 1.6 if label != "truck" else 100.0
    # wheels
    for xx in (x0 + 0.15, x1 - 0.45):
        s.add(None, cam.front(xx, xx + 0.3, 0.0, 0.35, z), (15, 15, 15))
    # lamps
    lamp = (255, 245, 220) if oncoming else (230, 25, 25)
    for xx in (x0 + 0.1, x1 - 0.35):
        poly = cam.front(xx, xx + 0.25, 0.6, 0.8, z)
        s.add(None, poly, lamp if st.night else _shade(lamp, 0.8))
        if st.night:
            px, py = cam.p(xx + 0.12, 0.7, z)
            s.lights.append((px, py, (1.2 if oncoming else 0.6) * k + 2, lamp))


def make_scene(rng: np.random.Generator, style: Style, w: int, h: int, force: set[str]) -> Scene:
    """Sample a street scene (layout shared by all domains; camera and colours from ``style``)."""
    horizon = float(rng.uniform(*style.horizon)) * h
    focal = float(rng.uniform(*style.focal)) * w
    cam_h = float(rng.uniform(*style.height))
    cam = Camera(w, h, focal, horizon, cam_h, w / 2 + float(rng.normal(0, 0.03)) * w)
    s = Scene(cam, rng, style)
    force = set(force)
    zfar = float(rng.uniform(90, 160))

    # sky and background ground
    s.add("sky", [(0, 0), (w - 1, 0), (w - 1, horizon + 2), (0, horizon + 2)], style.sky[0])
    s.add("terrain", [(0, horizon), (w - 1, horizon), (w - 1, h - 1), (0, h - 1)], s.color(style.terrain))

    # far buildings / tree line across the end of the street
    x = -zfar * 1.6
    while x < zfar * 1.6:
        seg = float(rng.uniform(8, 25))
        if rng.random() < 0.75:
            s.add("building", cam.front(x, x + seg, 0, float(rng.uniform(8, 35)), zfar), _shade(s.pick(style.buildings), 0.9))
        else:
            top = [cam.p(x + seg * t, float(rng.uniform(6, 14)), zfar) for t in np.linspace(1, 0, 6)]
            s.add("vegetation", [cam.p(x, 0, zfar), cam.p(x + seg, 0, zfar)] + top, s.pick(style.vegetation))
        x += seg

    # road: lanes of 3.2 m, the camera in one of them
    lanes_left, lanes_right = int(rng.integers(0, 3)), int(rng.integers(1, 4))
    lane = 3.2
    offset = float(rng.uniform(-0.5, 0.5))
    left_edge = -lanes_left * lane - lane / 2 + offset
    right_edge = lanes_right * lane - lane / 2 + offset
    s.add("road", cam.ground(left_edge - 0.05, right_edge + 0.05, 0, zfar), s.color(style.road, 0.04))
    for b in range(1, lanes_left + lanes_right + 1):
        bx = left_edge + b * lane
        if bx >= right_edge - 0.1:
            break
        centre = b == lanes_left and lanes_left > 0
        z = float(rng.uniform(0, 6))
        while z < zfar:
            zl = zfar if centre and style.centre_lane != style.lane else 3.0
            s.add(None, cam.ground(bx - 0.08, bx + 0.08, z, min(z + zl, zfar)), style.centre_lane if centre else style.lane)
            z += 9.0 if zl < zfar else zfar
    for ex in (left_edge + 0.1, right_edge - 0.25):
        s.add(None, cam.ground(ex, ex + 0.15, 0, zfar), style.lane)
    if rng.random() < 0.2:
        zc = float(rng.uniform(8, 25))
        xx = left_edge + 0.3
        while xx < right_edge - 0.5:
            s.add(None, cam.ground(xx, xx + 0.5, zc, zc + 3), style.lane)
            xx += 1.0

    pool: list[tuple[float, callable]] = []  # (depth, draw) drawn far to near after the sides
    tram = "train" in force or rng.random() < 0.05
    if tram:
        force.discard("train")
        z = float(rng.uniform(12, 45))
        tx = offset + (lane if lanes_right > 1 else (-lane if lanes_left else 0.0))
        if tx == offset:  # no free lane: the tram runs in the camera lane, ahead
            z += 10
        for rx in (tx - 0.75, tx + 0.72):
            s.add(None, cam.ground(rx, rx + 0.05, 0, zfar), (170, 170, 175) if not style.night else (60, 60, 62))
        pool.append((z, lambda z=z, tx=tx: _vehicle(s, "train", tx, z, tx < 0)))

    for side in (-1, 1):
        edge = left_edge if side < 0 else right_edge
        sidewalk = float(rng.uniform(1.5, 4.0))
        verge = float(rng.uniform(0.8, 3.0)) if ("terrain" in force or rng.random() < 0.35) else 0.0
        if verge:
            force.discard("terrain")
        inner, outer = edge, edge + side * sidewalk
        s.add("sidewalk", cam.ground(min(inner, outer), max(inner, outer), 0, zfar), s.color(style.sidewalk, 0.05))
        s.add(None, cam.ground(min(inner, inner + side * 0.2), max(inner, inner + side * 0.2), 0, zfar), _shade(style.sidewalk, 1.15))
        if verge:
            v0, v1 = outer, outer + side * verge
            s.add("terrain", cam.ground(min(v0, v1), max(v0, v1), 0, zfar), s.color(style.terrain))
        facade_x = outer + side * (verge + float(rng.uniform(0.0, 2.0)))
        # facades (and gaps with trees) along the street
        z = 0.0
        while z < zfar:
            seg = float(rng.uniform(8, 30))
            r = rng.random()
            if r < 0.6:
                _building_facade(s, facade_x, z, min(z + seg, zfar), float(rng.uniform(7, 28)), side)
            elif r < 0.87:
                x0 = facade_x + side * float(rng.uniform(0, 6))
                top = [cam.p(x0, float(rng.uniform(4, 12)), zz) for zz in np.linspace(min(z + seg, zfar), z, 7)]
                s.add("vegetation", [cam.p(x0, 0, max(z, cam.znear)), cam.p(x0, 0, min(z + seg, zfar))] + top, s.pick(style.vegetation))
            z += seg
        # walls and fences at the outer edge of the sidewalk
        for label in ("wall", "fence"):
            if label in force or rng.random() < 0.35:
                force.discard(label)
                z0 = float(rng.uniform(3, 25))
                z1 = z0 + float(rng.uniform(8, 30))
                wx = outer + side * 0.1
                hh = float(rng.uniform(1.0, 2.4) if label == "wall" else rng.uniform(1.0, 1.8))
                if label == "wall":
                    s.add("wall", cam.side(wx, 0, hh, z0, z1), s.pick(style.walls))
                else:
                    wx += side * 0.3
                    s.add("fence", cam.side(wx, 0, hh, z0, z1), s.color(style.fence))
                    zz = z0
                    while zz < z1:
                        s.add(None, cam.side(wx, 0, hh, zz, zz + 0.08), _shade(style.fence, 0.55))
                        zz += 0.5
                    s.add(None, cam.side(wx, hh - 0.1, hh, z0, z1), _shade(style.fence, 0.55))
        # sidewalk furniture and people
        z = float(rng.uniform(4, 15))
        while z < zfar * 0.6:
            px = edge + side * 0.45
            pool.append((z, lambda x=px, z=z, side=side: _pole(s, x, z, side, force)))
            z += float(rng.uniform(12, 30))
        z = float(rng.uniform(5, 20))
        while z < zfar * 0.5:
            if rng.random() < 0.65:
                tx = edge + side * (sidewalk - float(rng.uniform(0.6, 1.2)))
                pool.append((z, lambda x=tx, z=z: _tree(s, x, z)))
            z += float(rng.uniform(8, 20))
        n_people = int(rng.poisson(2.0)) + (1 if "person" in force else 0)
        force.discard("person")
        for _ in range(n_people):
            z = float(rng.uniform(4, 45))
            px = edge + side * float(rng.uniform(0.6, sidewalk - 0.3))
            pool.append((z, lambda x=px, z=z: _person(s, "person", x, z)))
        z = float(rng.uniform(5, 15))
        while rng.random() < 0.45 and z < 60:  # cars parked along the kerb
            px = edge - side * 1.1
            pool.append((z, lambda x=px, z=z: _vehicle(s, "car", x, z, False)))
            z += float(rng.uniform(5.5, 12))
        if "bicycle" in force or rng.random() < 0.3:  # parked bicycle
            force.discard("bicycle")
            z = float(rng.uniform(5, 25))
            px = edge + side * float(rng.uniform(0.8, sidewalk - 0.5))
            pool.append((z, lambda x=px, z=z: _two_wheeler(s, "bicycle", x, z, 1 if rng.random() < 0.5 else -1, False)))

    # traffic
    lanes = [left_edge + lane / 2 + i * lane for i in range(lanes_left + lanes_right)]
    wanted = ["car"] * int(rng.poisson(6.0))
    for label, p in (("truck", 0.2), ("bus", 0.15), ("motorcycle", 0.3), ("rider", 0.35)):
        if label in force or rng.random() < p:
            wanted.append(label)
    occupied: list[tuple[float, float, float]] = []
    for label in wanted:
        for _ in range(8):
            lx = lanes[int(rng.integers(len(lanes)))] + float(rng.normal(0, 0.25))
            near = label in force
            z = float(rng.uniform(6, 22) if near else rng.uniform(6, 80))
            length = {"car": 4.6, "truck": 8, "bus": 12.5, "motorcycle": 2.3, "rider": 2}[label]
            if abs(lx - offset) < 1.5 and z < 9:
                continue  # not right in front of the camera
            if all(abs(lx - ox) > 2.6 or z > oz + ol + 1 or z + length + 1 < oz for ox, oz, ol in occupied):
                occupied.append((lx, z, length))
                oncoming = lx < left_edge + lanes_left * lane
                if label == "motorcycle":
                    pool.append((z, lambda x=lx, z=z: _two_wheeler(s, "motorcycle", x, z, 1 if rng.random() < 0.5 else -1, rng.random() < 0.8)))
                elif label == "rider":
                    pool.append((z, lambda x=lx, z=z: _two_wheeler(s, "bicycle", x, z, 1 if rng.random() < 0.5 else -1, True)))
                else:
                    pool.append((z, lambda label=label, x=lx, z=z, o=oncoming: _vehicle(s, label, x, z, o)))
                force.discard(label)
                break
    if "motorcycle" in force or "rider" in force:  # no free lane slot: ride at the kerb
        pool.append((7.0, lambda: _two_wheeler(s, "motorcycle", right_edge - 0.8, 7.0, 1, True)))
    for _, draw in sorted(pool, key=lambda item: -item[0]):
        draw()
    if style.hood is not None:  # ego vehicle hood, ignored in the labels
        hh = h * float(rng.uniform(0.08, 0.12))
        pts = [(0, h - 1), (0, h - hh * 0.5)] + [(w * t, h - hh * (1 - 0.5 * (2 * t - 1) ** 2)) for t in np.linspace(0.05, 0.95, 9)] + [(w - 1, h - hh * 0.5), (w - 1, h - 1)]
        s.add("ego vehicle", pts, style.hood)
    return s


# ---------------------------------------------------------------------------- rendering


def render(scene: Scene, w: int, h: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Paint ``scene``: RGB uint8 (h, w, 3), labelIds uint8 (h, w), polygon objects for JSON."""
    st, rng = scene.style, scene.rng
    canvas = Image.new("RGB", (w, h), (0, 0, 0))
    ids = Image.new("L", (w, h), name2label["unlabeled"].id)
    paint, annotate = ImageDraw.Draw(canvas), ImageDraw.Draw(ids)
    objects: list[dict] = []
    for label, poly, rgb, outline in scene.ops:
        if outline:
            pts = _clip(poly, w, h) if len(poly) >= 3 else []
            if pts:
                paint.polygon(pts, outline=rgb, width=outline)
            continue
        pts = _clip(poly, w, h)
        if not pts:
            continue
        paint.polygon(pts, fill=rgb)
        if label is not None:
            annotate.polygon(pts, fill=name2label[label].id)
            objects.append({"label": label, "polygon": [list(p) for p in pts]})
    label_ids = np.asarray(ids, dtype=np.uint8)
    train = ID_TO_TRAIN[label_ids]
    img = np.asarray(canvas, dtype=np.float32)

    # sky gradient
    rows = np.clip(np.arange(h, dtype=np.float32) / max(scene.cam.yh, 1.0), 0, 1)[:, None, None]
    top, bottom = np.array(st.sky[0], np.float32), np.array(st.sky[1], np.float32)
    gradient = top * (1 - rows) + bottom * rows
    sky = (train == 10)[..., None]
    img = np.where(sky, gradient, img)

    # textures: fine and coarse luminance noise whose strength depends on the class
    cls = np.where(train == 255, 19, train).astype(np.intp)
    fine = rng.standard_normal((h, w)).astype(np.float32)
    cell = max(2, int(round(st.coarse_cell * w / 512)))
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    coarse = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)
    amp_f, amp_c = np.array(st.fine, np.float32)[cls], np.array(st.coarse, np.float32)[cls]
    img += (amp_f * fine + amp_c * coarse)[..., None]

    if st.haze > 0:  # haze grows towards the horizon
        yy = np.arange(h, dtype=np.float32)
        depth = np.clip(1.0 - (yy - scene.cam.yh) / max(h - scene.cam.yh, 1.0), 0, 1) ** 3
        t = (st.haze * depth)[:, None, None]
        img = img * (1 - t) + np.array(st.haze_color, np.float32) * t
    if st.night:
        img = _glare(img, scene.lights, rng)
    if st.blur > 0:
        img = np.clip(img, 0, 255)
        pil = Image.fromarray(img.astype(np.uint8)).filter(ImageFilter.GaussianBlur(st.blur))
        img = np.asarray(pil, dtype=np.float32)
    if st.noise > 0:
        img = img + st.noise * rng.standard_normal((h, w, 1)).astype(np.float32)
        img = img + 0.4 * st.noise * rng.standard_normal((h, w, 3)).astype(np.float32)
    img = np.clip(img * st.gain, 0, 255).astype(np.uint8)
    return img, label_ids, objects


def _glare(img: np.ndarray, lights: list, rng: np.random.Generator) -> np.ndarray:
    """Add a Gaussian glow around each light source (night)."""
    h, w = img.shape[:2]
    out = img.copy()
    for x, y, radius, rgb in lights:
        sigma = min(max(1.0, float(radius)), 0.03 * w)
        r = int(3 * sigma) + 1
        x0, x1 = max(0, int(x) - r), min(w, int(x) + r + 1)
        y0, y1 = max(0, int(y) - r), min(h, int(y) + r + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma * sigma))
        strength = float(rng.uniform(0.25, 0.55))
        out[y0:y1, x0:x1] += strength * g[..., None] * np.array(rgb, np.float32)
    return out


# ---------------------------------------------------------------------------- files


def _names(domain: str, split: str, index: int) -> dict[str, str]:
    """Relative output paths of one image of ``domain``/``split``."""
    if domain == "cityscapes":
        cities = CITIES[split]
        city = cities[index % len(cities)]
        stem = f"{city}_{index // len(cities):06d}_000019"
        return {
            "image": f"cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png",
            "polygons": f"cityscapes/gtFine/{split}/{city}/{stem}_gtFine_polygons.json",
            "labelIds": f"cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png",
            "color": f"cityscapes/gtFine/{split}/{city}/{stem}_gtFine_color.png",
        }
    if domain == "bdd100k":
        name = f"synth{index:05d}-{split}"
        return {"image": f"bdd100k/images/10k/{split}/{name}.jpg",
                "label": f"bdd100k/labels/sem_seg/masks/{split}/{name}.png"}
    name = f"synthnight_{split}_{index:05d}"
    return {"image": f"nightcity-fine/{split}/img/{name}.png",
            "label": f"nightcity-fine/{split}/lbl/{name}_trainIds.png"}


def render_one(domain: str, split: str, index: int, *, seed: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The image (h,w,3) uint8, labelIds (h,w) uint8 and polygons of one synthetic sample."""
    h, w = size
    rng = np.random.default_rng([seed, DOMAINS.index(domain), SPLITS.index(split), index, VERSION])
    force = {c for j, c in enumerate(RARE) if (index + j) % 3 == 0}
    scene = make_scene(rng, STYLES[domain], w, h, force)
    return render(scene, w, h)


def _write_one(task: tuple[str, str, int, int, tuple[int, int], str]) -> None:
    domain, split, index, seed, size, root = task
    img, label_ids, objects = render_one(domain, split, index, seed=seed, size=size)
    paths = {k: Path(root) / v for k, v in _names(domain, split, index).items()}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    if domain == "cityscapes":
        Image.fromarray(img).save(paths["image"], compress_level=1)
        doc = {"imgHeight": h, "imgWidth": w, "objects": objects}
        paths["polygons"].write_text(json.dumps(doc, indent=1))
        Image.fromarray(label_ids).save(paths["labelIds"], compress_level=1)
        rgba = np.concatenate([ID_TO_COLOR[label_ids], np.full((h, w, 1), 255, np.uint8)], axis=2)
        Image.fromarray(rgba, mode="RGBA").save(paths["color"], compress_level=1)
    else:
        if domain == "bdd100k":
            Image.fromarray(img).save(paths["image"], quality=88)
        else:
            Image.fromarray(img).save(paths["image"], compress_level=1)
        Image.fromarray(ID_TO_TRAIN[label_ids]).save(paths["label"], compress_level=1)


def _manifest(*, n_train: int, n_val: int, size: tuple[int, int], seed: int, domains: tuple[str, ...]) -> dict:
    """What ``root/synth.json`` records: a set is the same set exactly when this is equal."""
    return {"version": VERSION, "seed": seed, "size_hw": list(size), "n_train": n_train, "n_val": n_val,
            "domains": list(domains)}


def _splits(n_train: int, n_val: int) -> tuple[tuple[str, int], ...]:
    return (("train", n_train), ("val", n_val))


def _counts(domains: tuple[str, ...], n_train: int, n_val: int) -> dict[str, int]:
    return {f"{d}/{split}": n for d in domains for split, n in _splits(n_train, n_val)}


def generate(
    root: str | Path,
    *,
    n_train: int,
    n_val: int,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    domains: tuple[str, ...] = DOMAINS,
    workers: int = 2,
) -> dict[str, int]:
    """Write ``n_train``/``n_val`` images of each domain under ``root``; size is (h, w).

    Returns {"<domain>/<split>": count}. Writes ``root/synth.json`` with the parameters;
    refuses (ValueError) to write into a root generated with other parameters. Running it
    again with the same parameters rewrites the same bytes (e.g. after an interruption).
    """
    h, w = size
    if h < 16 or w < 16:
        raise ValueError(f"size {size} (h, w) is too small; use at least 16x16")
    for d in domains:
        if d not in DOMAINS:
            raise ValueError(f"unknown domain {d!r}; choose from {DOMAINS}")
    if n_train < 0 or n_val < 0:
        raise ValueError("n_train and n_val must be >= 0")
    root = Path(root)
    manifest = _manifest(n_train=n_train, n_val=n_val, size=(h, w), seed=seed, domains=domains)
    mpath = root / "synth.json"
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if old != manifest:
            raise ValueError(
                f"{root} already holds a synthetic set made with {old}; asked for {manifest}. "
                f"Use another --root or delete {root} first"
            )
    elif any((root / FOLDERS[d]).exists() for d in domains):
        raise ValueError(f"{root} already holds dataset folders without {mpath}; use an empty --root")
    tasks = [(d, split, i, seed, (h, w), str(root))
             for d in domains for split, n in _splits(n_train, n_val) for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(manifest, indent=1) + "\n")  # first, so that an interrupted run can be repeated
    if workers > 1 and len(tasks) > 1:
        with get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_one, tasks, chunksize=4):
                pass
    else:
        for task in tasks:
            _write_one(task)
    return _counts(domains, n_train, n_val)


def ensure_generated(
    root: str | Path,
    *,
    n_train: int,
    n_val: int,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    domains: tuple[str, ...] = DOMAINS,
    workers: int = 2,
) -> dict[str, int]:
    """:func:`generate`, unless ``root`` already holds exactly this set, every file in place.

    This is what ``make reproduce`` and ``00-prepare-data`` call: a rerun costs nothing, an
    interrupted generation is completed, and a root made with other parameters is refused.
    """
    root = Path(root)
    mpath = root / "synth.json"
    manifest = _manifest(n_train=n_train, n_val=n_val, size=tuple(size), seed=seed, domains=domains)
    if mpath.exists() and json.loads(mpath.read_text()) == manifest:
        expected = (root / rel for d in domains for split, n in _splits(n_train, n_val)
                    for i in range(n) for rel in _names(d, split, i).values())
        if all(p.is_file() for p in expected):
            return _counts(domains, n_train, n_val)
    return generate(root, n_train=n_train, n_val=n_val, size=size, seed=seed, domains=domains, workers=workers)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be WxH, e.g. 512x256; got {text!r}") from None
    return h, w


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data/synthetic", help="output data root")
    parser.add_argument("--n-train", type=int, default=500, help="training images per domain")
    parser.add_argument("--n-val", type=int, default=100, help="validation images per domain")
    parser.add_argument("--size", type=_parse_size, default=(256, 512), help="image size WxH (default 512x256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default=",".join(DOMAINS), help="comma-separated subset of " + ",".join(DOMAINS))
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = generate(args.root, n_train=args.n_train, n_val=args.n_val, size=args.size, seed=args.seed,
                          domains=tuple(d for d in args.domains.split(",") if d), workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(counts.values())
    seconds = time.perf_counter() - start
    print(f"wrote {total} images to {args.root} in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f} images/s): "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0

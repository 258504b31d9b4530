"""The objects of a synthetic street: facades, trees, poles with lights and signs, people,
two-wheelers and vehicles. Each adds its polygons (and light sources) to a :class:`Scene`.
"""

from __future__ import annotations

from aiblib.data.synth.geometry import circle, hull
from aiblib.data.synth.scene import Scene, shade

# A standing person, x in units of the height (centred), y from the feet (0) to the top (1).
_PERSON = ((-0.10, 0.0), (-0.045, 0.0), (0.0, 0.40), (0.045, 0.0), (0.10, 0.0), (0.085, 0.47),
           (0.13, 0.50), (0.125, 0.80), (0.07, 0.835), (0.04, 0.855), (0.06, 0.92), (0.04, 0.98),
           (0.0, 1.0), (-0.04, 0.98), (-0.06, 0.92), (-0.04, 0.855), (-0.07, 0.835), (-0.125, 0.80),
           (-0.13, 0.50), (-0.085, 0.47))
_LEGS = ((-0.10, 0.0), (-0.045, 0.0), (0.0, 0.40), (0.045, 0.0), (0.10, 0.0), (0.085, 0.48), (-0.085, 0.48))
_HEAD = ((0.04, 0.855), (0.06, 0.92), (0.04, 0.98), (0.0, 1.0), (-0.04, 0.98), (-0.06, 0.92), (-0.04, 0.855))


def building_facade(s: Scene, x: float, z0: float, z1: float, height: float, side: int) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    base = s.pick(st.buildings)
    s.add("building", cam.side(x, 0, height, z0, z1), base)
    # near end face (perpendicular), visible when the street continues beyond it
    depth = side * float(rng.uniform(8, 15))
    if z0 > cam.znear * 1.5:
        s.add("building", cam.front(x, x + depth, 0, height, z0), shade(base, 0.8))
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


def tree(s: Scene, x: float, z: float) -> None:
    cam, rng = s.cam, s.rng
    h = float(rng.uniform(3.5, 7.5))
    r = float(rng.uniform(1.4, 3.0))
    trunk_w = float(rng.uniform(0.2, 0.4))
    green = s.pick(s.style.vegetation)
    s.add("vegetation", cam.front(x - trunk_w / 2, x + trunk_w / 2, 0, h, z), shade(green, 0.6))
    cx, cy = cam.p(x, h, z)
    k = cam.scale(z)
    jitter = 1.0 + 0.18 * rng.standard_normal(14)
    s.add("vegetation", circle(cx, cy, r * k, r * k * float(rng.uniform(0.8, 1.2)), 14, jitter), green)


def pole(s: Scene, x: float, z: float, side: int, force: set[str]) -> None:
    """A pole carrying a traffic light, a traffic sign or a street lamp (forced classes first)."""
    cam, st, rng = s.cam, s.style, s.rng
    h = float(rng.uniform(4.5, 8.5))
    w = float(rng.uniform(0.18, 0.32))
    rgb = s.color(st.pole)
    s.add("pole", cam.front(x - w / 2, x + w / 2, 0, h, z), rgb)
    s.add(None, cam.front(x - w / 4, x, 0, h, z), shade(rgb, 1.4))  # the lit side of a round pole
    k = cam.scale(z)
    kind = rng.random()
    if "traffic light" in force or kind < 0.3:
        force.discard("traffic light")
        _traffic_light(s, x, z, h, k, side)
    elif "traffic sign" in force or kind < 0.65:
        force.discard("traffic sign")
        _traffic_sign(s, x, z, h, k)
    else:
        _street_lamp(s, x, z, h, k, side)


def _traffic_light(s: Scene, x: float, z: float, h: float, k: float, side: int) -> None:
    """A light box at the top of the pole (on an arm over the road), one lamp on."""
    cam, st, rng = s.cam, s.style, s.rng
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
        col = rgb if on else shade(rgb, 0.25)
        s.add(None, circle(px, py, rr, rr, 8), col)
        if on:
            s.lights.append((px, py, 3 * rr + 1, rgb))


def _traffic_sign(s: Scene, x: float, z: float, h: float, k: float) -> None:
    """A round, square or triangular sign on the pole, with an inner mark."""
    cam, st, rng = s.cam, s.style, s.rng
    sy = float(rng.uniform(2.2, min(3.2, h - 0.4)))
    r = float(rng.uniform(0.3, 0.45))
    px, py = cam.p(x, sy, z)
    shape = int(rng.integers(3))
    rgb = s.pick(st.signs)
    if shape == 0:
        poly = circle(px, py, r * k, r * k, 12)
    elif shape == 1:
        poly = [(px - r * k, py - r * k), (px + r * k, py - r * k), (px + r * k, py + r * k), (px - r * k, py + r * k)]
    else:
        poly = [(px, py - r * k), (px + r * k, py + 0.8 * r * k), (px - r * k, py + 0.8 * r * k)]
    s.add("traffic sign", poly, rgb)
    inner = [(px + 0.55 * (qx - px), py + 0.55 * (qy - py)) for qx, qy in poly]
    s.add(None, inner, (235, 235, 235) if sum(rgb) < 600 else (200, 30, 30))


def _street_lamp(s: Scene, x: float, z: float, h: float, k: float, side: int) -> None:
    """An arm over the road with a lamp, lit at night."""
    cam, st, rng = s.cam, s.style, s.rng
    arm = -side * float(rng.uniform(1.0, 2.5))
    s.add("pole", cam.front(min(x, x + arm), max(x, x + arm), h - 0.15, h, z), s.color(st.pole))
    px, py = cam.p(x + arm, h - 0.2, z)
    if st.night:
        s.add(None, circle(px, py, 0.25 * k + 1, 0.12 * k + 1, 8), (255, 235, 190))
        s.lights.append((px, py, 0.9 * k + 3, (255, 210, 150)))


def person(s: Scene, label: str, x: float, z: float, y0: float = 0.0, height: float | None = None) -> None:
    cam, st, rng = s.cam, s.style, s.rng
    height = float(rng.uniform(1.55, 1.9)) if height is None else height
    px, py = cam.p(x, y0, z)
    hp = height * cam.scale(z)
    wk = float(rng.uniform(0.9, 1.2))
    tf = lambda pts: [(px + u * hp * wk, py - v * hp) for u, v in pts]  # noqa: E731
    s.add(label, tf(_PERSON), s.pick(st.clothes))
    s.add(None, tf(_LEGS), s.pick(st.clothes))
    s.add(None, tf(_HEAD), s.color(st.skin))


def two_wheeler(s: Scene, label: str, x: float, z: float, facing: int, rider: bool) -> None:
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
        pts += circle(wx, wy, r * k, r * k, 10)
    top = (0.9 if moto else 1.0) * k
    pts += [(px + facing * (lx / 2 - 0.2 * k), py - top), (px - facing * 0.1 * k, py - 0.8 * k)]
    body = st.bike if not moto else s.pick(st.cars)
    s.add(label, hull(pts), shade(body, 1.0))
    for wx, wy in wheels:
        s.add(None, circle(wx, wy, r * k, r * k, 12), shade(st.bike, 0.5), max(1, int(0.08 * k)))
        s.add(None, circle(wx, wy, 0.55 * r * k, 0.55 * r * k, 10), shade(st.road, 1.05))
    if moto:
        s.add(None, [(px - 0.45 * k, py - 0.35 * k), (px + 0.45 * k, py - 0.35 * k),
                     (px + 0.35 * k, py - 0.85 * k), (px - 0.35 * k, py - 0.85 * k)], body)
        if st.night:
            hx = px + facing * lx / 2
            s.lights.append((hx, py - 0.7 * k, 0.5 * k + 2, (255, 240, 200)))
    if rider:
        person(s, "rider", x - facing * 0.1, z, y0=0.45, height=float(rng.uniform(1.35, 1.55)))


def vehicle(s: Scene, label: str, x: float, z: float, oncoming: bool) -> None:
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
    s.add(label, hull(corners), body)
    k = cam.scale(z)
    # visible side face (facing the camera axis)
    sx = x0 if x > 0 else x1
    if abs(x) > w / 2:
        s.add(None, cam.side(sx, 0.3, low if label == "car" else h * 0.95, z + 0.1, z1), shade(body, 0.8))
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
        s.add(None, poly, lamp if st.night else shade(lamp, 0.8))
        if st.night:
            px, py = cam.p(xx + 0.12, 0.7, z)
            s.lights.append((px, py, (1.2 if oncoming else 0.6) * k + 2, lamp))


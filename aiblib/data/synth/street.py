"""The street layout shared by all domains: :func:`make_scene` and its named steps.

The steps draw from one random generator in a fixed order (changing that order changes
every image): camera, sky and ground, backdrop, road, tram, both road sides, traffic;
then the objects planned on the way are drawn far to near, and last the ego-vehicle hood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aiblib.data.synth.geometry import Camera
from aiblib.data.synth.objects import building_facade, person, pole, tree, two_wheeler, vehicle
from aiblib.data.synth.scene import Scene, shade
from aiblib.data.synth.style import Style

LANE = 3.2  # lane width (m)
# Length (m) a vehicle of the traffic occupies in its lane.
_LENGTHS = {"car": 4.6, "truck": 8, "bus": 12.5, "motorcycle": 2.3, "rider": 2}
# Probability of each optional kind of traffic (when not forced).
_TRAFFIC = (("truck", 0.2), ("bus", 0.15), ("motorcycle", 0.3), ("rider", 0.35))

# Walls and fences along a road side: (probability when not forced, height range in m).
_BARRIERS = {"wall": (0.5, (1.4, 3.0)), "fence": (0.35, (1.0, 1.8))}
# Objects drawn after the road sides, far to near: (depth, draw).
Pool = list[tuple[float, Callable[[], None]]]


@dataclass(frozen=True)
class Road:
    """Where the road lies: ``offset`` is the camera's lateral place in its lane (m)."""

    zfar: float
    lanes_left: int
    lanes_right: int
    offset: float
    left_edge: float
    right_edge: float


def make_scene(rng: np.random.Generator, style: Style, w: int, h: int, force: set[str]) -> Scene:
    """Sample a street scene (layout shared by all domains; camera and colours from ``style``).

    ``force``: classes that must appear (see ``RARE``).
    """
    s = Scene(_camera(rng, style, w, h), rng, style)
    force = set(force)
    zfar = float(rng.uniform(90, 160))
    _add_sky_and_ground(s)
    _add_backdrop(s, zfar)
    road = _add_road(s, zfar)
    pool: Pool = []
    _plan_tram(s, road, force, pool)
    for side in (-1, 1):
        _add_roadside(s, road, side, force, pool)
    _plan_traffic(s, road, force, pool)
    for _, draw in sorted(pool, key=lambda item: -item[0]):
        draw()
    _add_hood(s)
    return s


def _camera(rng: np.random.Generator, style: Style, w: int, h: int) -> Camera:
    horizon = float(rng.uniform(*style.horizon)) * h
    focal = float(rng.uniform(*style.focal)) * w
    cam_h = float(rng.uniform(*style.height))
    return Camera(w, h, focal, horizon, cam_h, w / 2 + float(rng.normal(0, 0.03)) * w)


def _add_sky_and_ground(s: Scene) -> None:
    """Sky above the horizon and terrain below it (the background the rest covers)."""
    w, h, horizon = s.cam.w, s.cam.h, s.cam.yh
    s.add("sky", [(0, 0), (w - 1, 0), (w - 1, horizon + 2), (0, horizon + 2)], s.style.sky[0])
    s.add("terrain", [(0, horizon), (w - 1, horizon), (w - 1, h - 1), (0, h - 1)], s.color(s.style.terrain))


def _add_backdrop(s: Scene, zfar: float) -> None:
    """Far buildings and a tree line across the end of the street."""
    cam, style, rng = s.cam, s.style, s.rng
    x = -zfar * 1.6
    while x < zfar * 1.6:
        seg = float(rng.uniform(8, 25))
        if rng.random() < 0.75:
            s.add("building", cam.front(x, x + seg, 0, float(rng.uniform(8, 35)), zfar), shade(s.pick(style.buildings), 0.9))
        else:
            top = [cam.p(x + seg * t, float(rng.uniform(6, 14)), zfar) for t in np.linspace(1, 0, 6)]
            s.add("vegetation", [cam.p(x, 0, zfar), cam.p(x + seg, 0, zfar)] + top, s.pick(style.vegetation))
        x += seg


def _add_road(s: Scene, zfar: float) -> Road:
    """Road of lanes of 3.2 m, the camera in one of them, with its markings."""
    rng = s.rng
    lanes_left, lanes_right = int(rng.integers(0, 3)), int(rng.integers(1, 4))
    offset = float(rng.uniform(-0.5, 0.5))
    left_edge = -lanes_left * LANE - LANE / 2 + offset
    right_edge = lanes_right * LANE - LANE / 2 + offset
    road = Road(zfar, lanes_left, lanes_right, offset, left_edge, right_edge)
    s.add("road", s.cam.ground(left_edge - 0.05, right_edge + 0.05, 0, zfar), s.color(s.style.road, 0.04))
    _add_lane_marks(s, road)
    _add_crossing(s, road)
    return road


def _add_lane_marks(s: Scene, road: Road) -> None:
    """Dashed lane lines (a solid centre line where the domain colours it) and the edge lines."""
    cam, style, zfar = s.cam, s.style, road.zfar
    for b in range(1, road.lanes_left + road.lanes_right + 1):
        bx = road.left_edge + b * LANE
        if bx >= road.right_edge - 0.1:
            break
        centre = b == road.lanes_left and road.lanes_left > 0
        z = float(s.rng.uniform(0, 6))
        while z < zfar:
            zl = zfar if centre and style.centre_lane != style.lane else 3.0
            s.add(None, cam.ground(bx - 0.08, bx + 0.08, z, min(z + zl, zfar)), style.centre_lane if centre else style.lane)
            z += 9.0 if zl < zfar else zfar
    for ex in (road.left_edge + 0.1, road.right_edge - 0.25):
        s.add(None, cam.ground(ex, ex + 0.15, 0, zfar), style.lane)


def _add_crossing(s: Scene, road: Road) -> None:
    """Sometimes a zebra crossing."""
    if s.rng.random() < 0.2:
        zc = float(s.rng.uniform(8, 25))
        xx = road.left_edge + 0.3
        while xx < road.right_edge - 0.5:
            s.add(None, s.cam.ground(xx, xx + 0.5, zc, zc + 3), s.style.lane)
            xx += 1.0


def _plan_tram(s: Scene, road: Road, force: set[str], pool: Pool) -> None:
    """Sometimes (or when forced) tram rails and a tram ("train") in a lane ahead."""
    tram = "train" in force or s.rng.random() < 0.05
    if not tram:
        return
    force.discard("train")
    z = float(s.rng.uniform(12, 45))
    offset = road.offset
    tx = offset + (LANE if road.lanes_right > 1 else (-LANE if road.lanes_left else 0.0))
    if tx == offset:  # no free lane: the tram runs in the camera lane, ahead
        z += 10
    for rx in (tx - 0.75, tx + 0.72):
        s.add(None, s.cam.ground(rx, rx + 0.05, 0, road.zfar), (170, 170, 175) if not s.style.night else (60, 60, 62))
    pool.append((z, lambda z=z, tx=tx: vehicle(s, "train", tx, z, tx < 0)))


def _add_roadside(s: Scene, road: Road, side: int, force: set[str], pool: Pool) -> None:
    """One side of the road (-1 left, 1 right): its ground, facades, walls and fences are
    drawn now; its furniture, people and parked vehicles go into ``pool``."""
    edge = road.left_edge if side < 0 else road.right_edge
    sidewalk, outer, facade_x = _add_sidewalk(s, road.zfar, edge, side, force)
    _add_facades(s, facade_x, side, road.zfar)
    _add_walls_and_fences(s, outer, side, force)
    _plan_furniture(s, edge, side, sidewalk, road.zfar, force, pool)
    _plan_people(s, edge, side, sidewalk, force, pool)
    _plan_parked(s, edge, side, sidewalk, force, pool)


def _add_sidewalk(s: Scene, zfar: float, edge: float, side: int, force: set[str]) -> tuple[float, float, float]:
    """Sidewalk, kerb and maybe a grass verge; returns (sidewalk width, its outer x, the facades' x)."""
    cam, style, rng = s.cam, s.style, s.rng
    sidewalk = float(rng.uniform(1.5, 4.0))
    verge = float(rng.uniform(0.8, 3.0)) if ("terrain" in force or rng.random() < 0.35) else 0.0
    if verge:
        force.discard("terrain")
    inner, outer = edge, edge + side * sidewalk
    s.add("sidewalk", cam.ground(min(inner, outer), max(inner, outer), 0, zfar), s.color(style.sidewalk, 0.05))
    s.add(None, cam.ground(min(inner, inner + side * 0.2), max(inner, inner + side * 0.2), 0, zfar), shade(style.sidewalk, 1.15))
    if verge:
        v0, v1 = outer, outer + side * verge
        s.add("terrain", cam.ground(min(v0, v1), max(v0, v1), 0, zfar), s.color(style.terrain))
    facade_x = outer + side * (verge + float(rng.uniform(0.0, 2.0)))
    return sidewalk, outer, facade_x


def _add_facades(s: Scene, facade_x: float, side: int, zfar: float) -> None:
    """Building facades along the street, and gaps, some with trees."""
    cam, rng = s.cam, s.rng
    z = 0.0
    while z < zfar:
        seg = float(rng.uniform(8, 30))
        r = rng.random()
        if r < 0.6:
            building_facade(s, facade_x, z, min(z + seg, zfar), float(rng.uniform(7, 28)), side)
        elif r < 0.87:
            x0 = facade_x + side * float(rng.uniform(0, 6))
            top = [cam.p(x0, float(rng.uniform(4, 12)), zz) for zz in np.linspace(min(z + seg, zfar), z, 7)]
            s.add("vegetation", [cam.p(x0, 0, max(z, cam.znear)), cam.p(x0, 0, min(z + seg, zfar))] + top, s.pick(s.style.vegetation))
        z += seg


def _add_walls_and_fences(s: Scene, outer: float, side: int, force: set[str]) -> None:
    """Walls and fences at the outer edge of the sidewalk."""
    rng = s.rng
    for label, (chance, heights) in _BARRIERS.items():
        if label in force or rng.random() < chance:
            force.discard(label)
            z0 = float(rng.uniform(3, 25))
            z1 = z0 + float(rng.uniform(8, 30))
            wx = outer + side * 0.1
            hh = float(rng.uniform(*heights))
            if label == "wall":
                _add_wall(s, wx, hh, z0, z1)
            else:
                _add_fence(s, wx + side * 0.3, hh, z0, z1)


def _add_wall(s: Scene, wx: float, hh: float, z0: float, z1: float) -> None:
    """A masonry wall: block courses (dark joints every 0.3 m) under a lighter coping, so it does
    not read as the facade behind it."""
    rgb = s.pick(s.style.walls)
    s.add("wall", s.cam.side(wx, 0, hh, z0, z1), rgb)
    y = 0.3
    while y < hh - 0.2:
        s.add(None, s.cam.side(wx, y, y + 0.06, z0, z1), shade(rgb, 0.6))
        y += 0.3
    s.add(None, s.cam.side(wx, hh - 0.12, hh, z0, z1), shade(rgb, 1.3))


def _add_fence(s: Scene, wx: float, hh: float, z0: float, z1: float) -> None:
    cam, style = s.cam, s.style
    s.add("fence", cam.side(wx, 0, hh, z0, z1), s.color(style.fence))
    zz = z0
    while zz < z1:
        s.add(None, cam.side(wx, 0, hh, zz, zz + 0.08), shade(style.fence, 0.55))
        zz += 0.5
    s.add(None, cam.side(wx, hh - 0.1, hh, z0, z1), shade(style.fence, 0.55))


def _plan_furniture(s: Scene, edge: float, side: int, sidewalk: float, zfar: float, force: set[str], pool: Pool) -> None:
    """Poles along the kerb and trees on the sidewalk."""
    rng = s.rng
    z = float(rng.uniform(4, 15))
    while z < zfar * 0.6:
        px = edge + side * 0.45
        pool.append((z, lambda x=px, z=z, side=side: pole(s, x, z, side, force)))
        z += float(rng.uniform(12, 30))
    z = float(rng.uniform(5, 20))
    while z < zfar * 0.5:
        if rng.random() < 0.65:
            tx = edge + side * (sidewalk - float(rng.uniform(0.6, 1.2)))
            pool.append((z, lambda x=tx, z=z: tree(s, x, z)))
        z += float(rng.uniform(8, 20))


def _plan_people(s: Scene, edge: float, side: int, sidewalk: float, force: set[str], pool: Pool) -> None:
    """People standing on the sidewalk."""
    rng = s.rng
    n_people = int(rng.poisson(2.0)) + (1 if "person" in force else 0)
    force.discard("person")
    for _ in range(n_people):
        z = float(rng.uniform(4, 45))
        px = edge + side * float(rng.uniform(0.6, sidewalk - 0.3))
        pool.append((z, lambda x=px, z=z: person(s, "person", x, z)))


def _plan_parked(s: Scene, edge: float, side: int, sidewalk: float, force: set[str], pool: Pool) -> None:
    """Cars parked along the kerb and maybe a bicycle parked on the sidewalk."""
    rng = s.rng
    z = float(rng.uniform(5, 15))
    while rng.random() < 0.45 and z < 60:
        px = edge - side * 1.1
        pool.append((z, lambda x=px, z=z: vehicle(s, "car", x, z, False)))
        z += float(rng.uniform(5.5, 12))
    if "bicycle" in force or rng.random() < 0.3:
        force.discard("bicycle")
        z = float(rng.uniform(5, 25))
        px = edge + side * float(rng.uniform(0.8, sidewalk - 0.5))
        pool.append((z, lambda x=px, z=z: two_wheeler(s, "bicycle", x, z, 1 if rng.random() < 0.5 else -1, False)))


def _plan_traffic(s: Scene, road: Road, force: set[str], pool: Pool) -> None:
    """Cars and other traffic in free slots of the lanes (forced classes near the camera)."""
    rng = s.rng
    lanes = [road.left_edge + LANE / 2 + i * LANE for i in range(road.lanes_left + road.lanes_right)]
    wanted = ["car"] * int(rng.poisson(6.0))
    for label, p in _TRAFFIC:
        if label in force or rng.random() < p:
            wanted.append(label)
    occupied: list[tuple[float, float, float]] = []
    for label in wanted:
        for _ in range(8):
            lx = lanes[int(rng.integers(len(lanes)))] + float(rng.normal(0, 0.25))
            near = label in force
            z = float(rng.uniform(6, 22) if near else rng.uniform(6, 80))
            length = _LENGTHS[label]
            if abs(lx - road.offset) < 1.5 and z < 9:
                continue  # not right in front of the camera
            if all(abs(lx - ox) > 2.6 or z > oz + ol + 1 or z + length + 1 < oz for ox, oz, ol in occupied):
                occupied.append((lx, z, length))
                oncoming = lx < road.left_edge + road.lanes_left * LANE
                pool.append((z, _traffic_draw(s, label, lx, z, oncoming)))
                force.discard(label)
                break
    if "motorcycle" in force or "rider" in force:  # no free lane slot: ride at the kerb
        pool.append((7.0, lambda: two_wheeler(s, "motorcycle", road.right_edge - 0.8, 7.0, 1, True)))


def _traffic_draw(s: Scene, label: str, x: float, z: float, oncoming: bool) -> Callable[[], None]:
    """The deferred drawing of one vehicle of the traffic (its random choices are made when drawn)."""
    rng = s.rng
    if label == "motorcycle":
        return lambda: two_wheeler(s, "motorcycle", x, z, 1 if rng.random() < 0.5 else -1, rng.random() < 0.8)
    if label == "rider":
        return lambda: two_wheeler(s, "bicycle", x, z, 1 if rng.random() < 0.5 else -1, True)
    return lambda: vehicle(s, label, x, z, oncoming)


def _add_hood(s: Scene) -> None:
    """The ego-vehicle hood at the bottom (ignored in the labels), in domains that show it."""
    w, h, hood = s.cam.w, s.cam.h, s.style.hood
    if hood is not None:
        hh = h * float(s.rng.uniform(0.08, 0.12))
        pts = [(0, h - 1), (0, h - hh * 0.5)] + [(w * t, h - hh * (1 - 0.5 * (2 * t - 1) ** 2)) for t in np.linspace(0.05, 0.95, 9)] + [(w - 1, h - hh * 0.5), (w - 1, h - 1)]
        s.add("ego vehicle", pts, hood)

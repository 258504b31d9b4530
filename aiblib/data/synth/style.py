"""The look of each synthetic domain: camera ranges, colours, textures, haze, noise (data)."""

from __future__ import annotations

from dataclasses import dataclass


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

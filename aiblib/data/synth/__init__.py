"""Synthetic three-domain street scenes, written in the real dataset layouts (SPEC section 8).

``python -m aiblib synth --root data/synthetic --n-train N --n-val M --size HxW --seed S``

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

Modules: :mod:`.style` (the domains' looks, data), :mod:`.geometry` (polygons, camera),
:mod:`.scene` (draw operations), :mod:`.objects` (street objects), :mod:`.street`
(:func:`make_scene`), :mod:`.render` (painting), :mod:`.writer` (files, :func:`generate`).
"""

from __future__ import annotations

from aiblib.data.synth.render import ID_TO_COLOR, ID_TO_TRAIN, render
from aiblib.data.synth.street import make_scene
from aiblib.data.synth.style import STYLES, Style
from aiblib.data.synth.writer import CITIES, DOMAINS, RARE, SPLITS, VERSION, ensure_generated, generate, render_one

__all__ = [
    "generate", "ensure_generated", "render_one", "DOMAINS", "VERSION", "SPLITS", "CITIES", "RARE",
    "STYLES", "Style", "make_scene", "render", "ID_TO_TRAIN", "ID_TO_COLOR",
]

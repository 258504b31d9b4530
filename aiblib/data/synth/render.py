"""Painting a synthetic scene: polygons -> image and labelIds, then sky gradient, textures,
haze, glare, blur, sensor noise (in that order; each draws from the scene's generator)."""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import id2label, name2label
from PIL import Image, ImageDraw, ImageFilter

from aiblib.data.facts import CLASSES, IGNORE_INDEX, NUM_CLASSES
from aiblib.data.synth.geometry import clip
from aiblib.data.synth.scene import Scene

# labelId -> trainId (255 for ignored ids), and labelId -> Cityscapes colour.
ID_TO_TRAIN = np.full(256, IGNORE_INDEX, dtype=np.uint8)
ID_TO_COLOR = np.zeros((256, 3), dtype=np.uint8)
for _id, _label in id2label.items():
    if 0 <= _id < 256:
        ID_TO_TRAIN[_id] = _label.trainId if 0 <= _label.trainId < IGNORE_INDEX else IGNORE_INDEX
        ID_TO_COLOR[_id] = _label.color

_SKY = CLASSES.index("sky")


def render(scene: Scene, w: int, h: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Paint ``scene``: RGB uint8 (h, w, 3), labelIds uint8 (h, w), polygon objects for JSON."""
    st, rng = scene.style, scene.rng
    canvas, label_ids, objects = _paint(scene, w, h)
    train = ID_TO_TRAIN[label_ids]
    img = np.asarray(canvas, dtype=np.float32)
    img = _sky_gradient(img, train, scene)
    img = _texture(img, train, scene)
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


def _paint(scene: Scene, w: int, h: int) -> tuple[Image.Image, np.ndarray, list[dict]]:
    """Fill the polygons far to near: the RGB canvas, the labelIds and the annotated objects.

    The labels are rasterized as ``cityscapesscripts`` rasterizes ``_polygons.json``."""
    canvas = Image.new("RGB", (w, h), (0, 0, 0))
    ids = Image.new("L", (w, h), name2label["unlabeled"].id)
    paint, annotate = ImageDraw.Draw(canvas), ImageDraw.Draw(ids)
    objects: list[dict] = []
    for label, poly, rgb, outline in scene.ops:
        if outline:
            pts = clip(poly, w, h) if len(poly) >= 3 else []
            if pts:
                paint.polygon(pts, outline=rgb, width=outline)
            continue
        pts = clip(poly, w, h)
        if not pts:
            continue
        paint.polygon(pts, fill=rgb)
        if label is not None:
            annotate.polygon(pts, fill=name2label[label].id)
            objects.append({"label": label, "polygon": [list(p) for p in pts]})
    return canvas, np.asarray(ids, dtype=np.uint8), objects


def _sky_gradient(img: np.ndarray, train: np.ndarray, scene: Scene) -> np.ndarray:
    """Sky pixels from the top colour to the horizon colour."""
    h = img.shape[0]
    rows = np.clip(np.arange(h, dtype=np.float32) / max(scene.cam.yh, 1.0), 0, 1)[:, None, None]
    top, bottom = np.array(scene.style.sky[0], np.float32), np.array(scene.style.sky[1], np.float32)
    gradient = top * (1 - rows) + bottom * rows
    sky = (train == _SKY)[..., None]
    return np.where(sky, gradient, img)


def _texture(img: np.ndarray, train: np.ndarray, scene: Scene) -> np.ndarray:
    """Fine and coarse luminance noise whose strength depends on the class."""
    st, rng = scene.style, scene.rng
    h, w = train.shape
    cls = np.where(train == IGNORE_INDEX, NUM_CLASSES, train).astype(np.intp)
    fine = rng.standard_normal((h, w)).astype(np.float32)
    cell = max(2, int(round(st.coarse_cell * w / 512)))
    small = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    coarse = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)
    amp_f, amp_c = np.array(st.fine, np.float32)[cls], np.array(st.coarse, np.float32)[cls]
    img += (amp_f * fine + amp_c * coarse)[..., None]
    return img


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

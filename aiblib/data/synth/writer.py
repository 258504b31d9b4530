"""Writing synthetic sets: one sample's files in its dataset's layout, a whole set, its manifest."""

from __future__ import annotations

import json
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from aiblib.data.facts import CITYSCAPES_LABEL_IDS, CITYSCAPES_POLYGONS, DIRS, FOLDERS
from aiblib.data.synth.render import ID_TO_COLOR, ID_TO_TRAIN, render
from aiblib.data.synth.street import make_scene
from aiblib.data.synth.style import STYLES
from aiblib.errors import ConfigError

DOMAINS: tuple[str, ...] = tuple(FOLDERS)  # cityscapes, bdd100k, nightcity
SPLITS = ("train", "val")  # the splits a synthetic set has
VERSION = 3
CITIES = {"train": ("polyburg", "gridford", "vectorstadt"), "val": ("rasterheim",)}
MANIFEST = "synth.json"

# Classes that many scenes lack: each is forced into every third image (offset per class).
RARE = ("wall", "fence", "traffic light", "traffic sign", "terrain", "person", "rider",
        "truck", "bus", "train", "motorcycle", "bicycle")


def _names(domain: str, split: str, index: int) -> dict[str, str]:
    """Relative output paths of one image of ``domain``/``split``."""
    layout = DIRS[domain]
    images, labels = layout.image_dir(split), layout.label_dir(split)
    if domain == "cityscapes":
        cities = CITIES[split]
        city = cities[index % len(cities)]
        stem = f"{city}_{index // len(cities):06d}_000019"
        return {
            "image": f"{images}/{city}/{stem}{layout.image_suffixes[0]}",
            "polygons": f"{labels}/{city}/{stem}{CITYSCAPES_POLYGONS}",
            "labelIds": f"{labels}/{city}/{stem}{CITYSCAPES_LABEL_IDS}",
            "color": f"{labels}/{city}/{stem}_gtFine_color.png",
        }
    if domain == "bdd100k":
        name = f"synth{index:05d}-{split}"
        return {"image": f"{images}/{name}.jpg", "label": f"{labels}/{name}{layout.label_suffix}"}
    name = f"synthnight_{split}_{index:05d}"
    return {"image": f"{images}/{name}.png", "label": f"{labels}/{name}{layout.label_suffix}"}


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


def _check_request(*, n_train: int, n_val: int, size: tuple[int, int], domains: tuple[str, ...]) -> None:
    """ValueError for a size, domain or count :func:`generate` cannot make."""
    h, w = size
    if h < 16 or w < 16:
        raise ConfigError(f"size {size} (h, w) is too small; use at least 16x16")
    for d in domains:
        if d not in DOMAINS:
            raise ConfigError(f"unknown domain {d!r}; choose from {DOMAINS}")
    if n_train < 0 or n_val < 0:
        raise ConfigError("n_train and n_val must be >= 0")


def _check_target(root: Path, manifest: dict, domains: tuple[str, ...]) -> None:
    """ValueError if ``root`` holds another synthetic set, or dataset folders of no synthetic set."""
    mpath = root / MANIFEST
    if mpath.exists():
        old = json.loads(mpath.read_text())
        if old != manifest:
            raise ConfigError(
                f"{root} already holds a synthetic set made with {old}; asked for {manifest}. "
                f"Use another --root or delete {root} first"
            )
    elif any((root / FOLDERS[d]).exists() for d in domains):
        raise ConfigError(f"{root} already holds dataset folders without {mpath}; use an empty --root")


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
    _check_request(n_train=n_train, n_val=n_val, size=(h, w), domains=domains)
    root = Path(root)
    manifest = _manifest(n_train=n_train, n_val=n_val, size=(h, w), seed=seed, domains=domains)
    _check_target(root, manifest, domains)
    tasks = [(d, split, i, seed, (h, w), str(root))
             for d in domains for split, n in _splits(n_train, n_val) for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    # the manifest first, so that an interrupted run can be repeated
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
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
    mpath = root / MANIFEST
    manifest = _manifest(n_train=n_train, n_val=n_val, size=tuple(size), seed=seed, domains=domains)
    if mpath.exists() and json.loads(mpath.read_text()) == manifest:
        expected = (root / rel for d in domains for split, n in _splits(n_train, n_val)
                    for i in range(n) for rel in _names(d, split, i).values())
        if all(p.is_file() for p in expected):
            return _counts(domains, n_train, n_val)
    return generate(root, n_train=n_train, n_val=n_val, size=size, seed=seed, domains=domains, workers=workers)

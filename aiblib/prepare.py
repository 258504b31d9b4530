"""Prepare a data root: Cityscapes labelTrainIds, label checks, a summary CSV.

``python -m aiblib prepare --root DATA_ROOT``

1. Cityscapes: ``*_gtFine_labelTrainIds.png`` are made by the official tool
   (``cityscapesscripts.preparation.createTrainIdLabelImgs``, ``CITYSCAPES_DATASET`` set)
   for every ``*_gtFine_polygons.json`` that has none yet. The tool runs in a subprocess
   on a staging folder of links to just those annotations, and its outputs are moved in
   beside them; an existing file is never overwritten and finished work is not redone.
2. Every dataset found (cityscapes, bdd100k, nightcity-fine), train and val: images and
   labels are paired by name, labels decoded and checked (values 0-18 and 255, same size
   as the image; the image header is read, the whole image with ``full=True``).
3. A summary per dataset and split (images, problems, image sizes, ignored fraction,
   pixel frequency of each class among labelled pixels) is written to
   ``DATA_ROOT/aiblib_summary.csv``. A row whose files have not changed since the last
   run (same count, bytes and modification times) is reused instead of recomputed.

Problems are listed (each naming its file) in ``DATA_ROOT/aiblib_problems.txt`` and on
stderr; ``main`` then exits with status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from aiblib.data import CLASSES, IGNORE_INDEX, LAYOUTS, NUM_CLASSES, DataError, bdd100k_files, cityscapes_files, nightcity_files

SUMMARY = "aiblib_summary.csv"
PROBLEMS = "aiblib_problems.txt"
FOLDERS = {"cityscapes": "cityscapes", "bdd100k": "bdd100k", "nightcity": "nightcity-fine"}
_FILES = {"cityscapes": cityscapes_files, "bdd100k": bdd100k_files, "nightcity": nightcity_files}
_VALID = np.zeros(256, dtype=bool)
_VALID[:NUM_CLASSES] = True
_VALID[IGNORE_INDEX] = True


def make_train_ids(cityscapes_root: str | Path) -> dict[str, int]:
    """Run the official createTrainIdLabelImgs for polygons lacking a labelTrainIds image.

    Returns {"annotations", "existing", "created"}. Raises RuntimeError with the tool's
    output if it fails.
    """
    base = Path(cityscapes_root)
    gt = base / "gtFine"
    if not gt.is_dir():
        raise DataError(f"cityscapes: folder {gt} does not exist. Expected layout:\n{LAYOUTS['cityscapes']}")
    jsons = sorted(gt.glob("*/*/*_gtFine_polygons.json"))
    todo = [j for j in jsons if not _train_ids_path(j).exists()]
    report = {"annotations": len(jsons), "existing": len(jsons) - len(todo), "created": 0}
    if not todo:
        return report
    staging = Path(tempfile.mkdtemp(prefix="aiblib-trainids-"))
    try:
        for j in todo:
            link = staging / "gtFine" / j.relative_to(gt)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(j.resolve())
        env = dict(os.environ, CITYSCAPES_DATASET=str(staging))
        proc = subprocess.run(
            [sys.executable, "-m", "cityscapesscripts.preparation.createTrainIdLabelImgs"],
            env=env, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"cityscapesscripts createTrainIdLabelImgs failed (exit {proc.returncode}) on annotations under {gt}:\n"
                + (proc.stdout[-2000:] + proc.stderr[-2000:]).strip()
            )
        for j in todo:
            made = _train_ids_path(staging / "gtFine" / j.relative_to(gt))
            dest = _train_ids_path(j)
            if not made.exists():
                raise RuntimeError(f"createTrainIdLabelImgs did not write a label for {j}")
            if dest.exists():  # appeared meanwhile: keep the existing file
                continue
            shutil.move(str(made), str(dest))
            report["created"] += 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _train_ids_path(polygons: Path) -> Path:
    return polygons.with_name(polygons.name.replace("_polygons.json", "_labelTrainIds.png"))


def _signature(files: list[tuple[Path, Path]]) -> str:
    digest = hashlib.sha1()
    for pair in files:
        for p in pair:
            st = p.stat()
            digest.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _image_size(path: Path, full: bool) -> tuple[int, int]:
    """(w, h) of an image, reading only the header unless ``full``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if full:
                im.load()
            return im.size
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read image {path}: {exc}") from exc


def _read_label(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DataError(f"label {path} has PIL mode {im.mode!r}; expected a single-channel 8-bit PNG")
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read label {path}: {exc}") from exc


def list_split(name: str, root: str | Path, split: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pairs of one dataset split and the unpaired files (as problem lines naming them)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = _FILES[name](root, split, on_error="skip")
    problems = []
    for w in caught:
        problems += [line.strip() for line in str(w.message).splitlines()[1:] if line.strip()]
    return files, problems


def check_split(name: str, root: str | Path, split: str, *, full: bool = False) -> tuple[dict, list[str]]:
    """Check one dataset split; returns (summary row, problems). DataError if it has no pairs."""
    files, problems = list_split(name, root, split)
    counts = np.zeros(256, dtype=np.int64)
    sizes: dict[str, int] = {}
    for image_path, label_path in files:
        try:
            w, h = _image_size(image_path, full)
            label = _read_label(label_path)
            if label.shape != (h, w):
                raise DataError(f"label {label_path} is {label.shape[1]}x{label.shape[0]} (WxH) but its image {image_path} is {w}x{h}")
            bins = np.bincount(label.reshape(-1), minlength=256)
            bad = np.flatnonzero((bins > 0) & ~_VALID)
            if bad.size:
                raise DataError(f"label {label_path} holds values {bad[:10].tolist()} outside trainIds 0-18 and 255")
        except DataError as exc:
            problems.append(str(exc))
            continue
        counts += bins
        sizes[f"{w}x{h}"] = sizes.get(f"{w}x{h}", 0) + 1
    labelled = counts[:NUM_CLASSES].sum()
    total = labelled + counts[IGNORE_INDEX]
    row = {
        "dataset": name, "split": split, "images": len(files), "problems": len(problems),
        "sizes": " ".join(f"{k}:{v}" for k, v in sorted(sizes.items())),
        "ignored": float(counts[IGNORE_INDEX] / total) if total else float("nan"),
    }
    for i, cls in enumerate(CLASSES):
        row[cls] = float(counts[i] / labelled) if labelled else float("nan")
    row["signature"] = _signature(files)
    return row, problems


def prepare(root: str | Path, *, datasets: list[str] | None = None, splits: tuple[str, ...] = ("train", "val"),
            full: bool = False, verbose: bool = True) -> pd.DataFrame:
    """Prepare ``root`` (see the module docstring); returns the summary DataFrame.

    ``df.attrs["problems"]`` lists the problems found (each names its file);
    ``df.attrs["train_ids"]`` reports the Cityscapes trainId conversion.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    if datasets is None:
        datasets = [d for d, folder in FOLDERS.items() if (root / folder).is_dir()]
        if not datasets:
            raise DataError(
                f"no dataset folder under {root}; expected one or more of:\n"
                + "\n".join(LAYOUTS[d] for d in FOLDERS)
                + "\n(or make a synthetic set: python -m aiblib synth --root " + str(root) + ")"
            )
    for d in datasets:
        if d not in FOLDERS:
            raise ValueError(f"unknown dataset {d!r}; choose from {tuple(FOLDERS)}")
    say = print if verbose else (lambda *a, **k: None)
    train_ids = None
    if "cityscapes" in datasets:
        train_ids = make_train_ids(root / "cityscapes")
        say(f"cityscapes labelTrainIds: {train_ids['annotations']} annotations, {train_ids['existing']} already done, "
            f"{train_ids['created']} created with cityscapesscripts createTrainIdLabelImgs")
    previous = {}
    csv = root / SUMMARY
    if csv.exists():
        try:
            old = pd.read_csv(csv)
            previous = {(r["dataset"], r["split"]): r for r in old.to_dict("records")}
        except Exception:  # noqa: BLE001 - a damaged summary is simply recomputed
            previous = {}
    rows, problems = [], []
    for d in datasets:
        for split in splits:
            try:
                files, unpaired = list_split(d, root, split)
            except DataError as exc:
                problems.append(str(exc).splitlines()[0])
                continue
            old = previous.get((d, split))
            if old is not None and not unpaired and old.get("problems") == 0 and old.get("signature") == _signature(files):
                rows.append(old)
                say(f"{d}/{split}: unchanged since the last summary, {old['images']} images")
                continue
            row, found = check_split(d, root, split, full=full)
            rows.append(row)
            problems += found
            say(f"{d}/{split}: {row['images']} images ({row['sizes']}), {row['problems']} problem(s)")
    df = pd.DataFrame(rows)
    df.to_csv(csv, index=False)
    plist = root / PROBLEMS
    if problems:
        plist.write_text("\n".join(problems) + "\n")
    elif plist.exists():
        plist.unlink()
    df.attrs["problems"] = problems
    df.attrs["train_ids"] = train_ids
    return df


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiblib prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data", help="data root holding cityscapes/, bdd100k/, nightcity-fine/")
    parser.add_argument("--datasets", default="", help="comma-separated subset of cityscapes,bdd100k,nightcity (default: all found)")
    parser.add_argument("--full", action="store_true", help="decode whole images, not only their headers")
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d] or None
    try:
        df = prepare(args.root, datasets=datasets, full=args.full)
    except (DataError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(df.drop(columns=["signature"]).to_string(index=False))
    print(f"summary written to {Path(args.root) / SUMMARY}")
    problems = df.attrs["problems"]
    if problems:
        print(f"\n{len(problems)} problem(s) (also in {Path(args.root) / PROBLEMS}):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0

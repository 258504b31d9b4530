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

Problems are listed (each naming its file) in ``DATA_ROOT/aiblib_problems.txt``; the
command line (:mod:`aiblib.cli.prepare`) also prints them on stderr and exits with status 1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from aiblib.data import (
    CITYSCAPES_POLYGONS,
    CLASSES,
    DIRS,
    FOLDERS,
    IGNORE_INDEX,
    OFFICIAL_COUNTS,
    LAYOUTS,
    NUM_CLASSES,
    DataError,
    check_label,
    check_pair_size,
    check_root,
    decode_label,
    find_pairs,
    image_size,
    require_pairs,
)
from aiblib.errors import ConfigError

SUMMARY = "aiblib_summary.csv"
PROBLEMS = "aiblib_problems.txt"


def make_train_ids(cityscapes_root: str | Path) -> dict[str, int]:
    """Run the official createTrainIdLabelImgs for polygons lacking a labelTrainIds image.

    Returns {"annotations", "existing", "created"}. Raises RuntimeError with the tool's
    output if it fails.
    """
    base = Path(cityscapes_root)
    gt = base / "gtFine"
    if not gt.is_dir():
        raise DataError(f"cityscapes: folder {gt} does not exist. Expected layout:\n{LAYOUTS['cityscapes']}")
    jsons = sorted(gt.glob(f"*/*/*{CITYSCAPES_POLYGONS}"))
    todo = [j for j in jsons if not _train_ids_path(j).exists()]
    report = {"annotations": len(jsons), "existing": len(jsons) - len(todo), "created": 0}
    if not todo:
        return report
    staging = Path(tempfile.mkdtemp(prefix="aiblib-trainids-"))
    try:
        _run_official_tool(staging, gt, todo)
        report["created"] = _move_outputs(staging, gt, todo)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _run_official_tool(staging: Path, gt: Path, todo: list[Path]) -> None:
    """createTrainIdLabelImgs on ``staging``, a folder of links to the annotations ``todo``."""
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


def _move_outputs(staging: Path, gt: Path, todo: list[Path]) -> int:
    """Move the tool's labels in beside their annotations (never over an existing file); how many moved."""
    created = 0
    for j in todo:
        made = _train_ids_path(staging / "gtFine" / j.relative_to(gt))
        dest = _train_ids_path(j)
        if not made.exists():
            raise RuntimeError(f"createTrainIdLabelImgs did not write a label for {j}")
        if dest.exists():  # appeared meanwhile: keep the existing file
            continue
        shutil.move(str(made), str(dest))
        created += 1
    return created


def _train_ids_path(polygons: Path) -> Path:
    return polygons.with_name(polygons.name.replace(CITYSCAPES_POLYGONS, DIRS["cityscapes"].label_suffix))


def _signature(files: list[tuple[Path, Path]]) -> str:
    digest = hashlib.sha1()
    for pair in files:
        for p in pair:
            st = p.stat()
            digest.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def list_split(name: str, root: str | Path, split: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pairs of one dataset split and the unpaired files (as problem lines naming them).

    DataError if a folder is missing or the split has no pair at all.
    """
    pairing = find_pairs(name, root, split)
    return require_pairs(pairing), list(pairing.unpaired)


def _label_counts(image_path: Path, label_path: Path, full: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixel count of each label value (256) and the image's (h, w); DataError naming a bad file."""
    h, w = image_size(image_path, full=full)
    label = decode_label(label_path)
    check_pair_size((h, w), tuple(label.shape), image_path, label_path)
    check_label(label, label_path)
    return np.bincount(label.numpy().reshape(-1), minlength=256), (h, w)


def check_split(name: str, root: str | Path, split: str, *, full: bool = False) -> tuple[dict, list[str]]:
    """Check one dataset split; returns (summary row, problems). DataError if it has no pairs."""
    files, problems = list_split(name, root, split)
    counts = np.zeros(256, dtype=np.int64)
    sizes: dict[str, int] = {}
    for image_path, label_path in files:
        try:
            bins, (h, w) = _label_counts(image_path, label_path, full)
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


def _datasets_found(root: Path) -> list[str]:
    """The datasets whose folder ``root`` holds; DataError (saying what to do) if none."""
    datasets = [d for d, folder in FOLDERS.items() if (root / folder).is_dir()]
    if not datasets:
        raise DataError(
            f"no dataset folder under {root}; expected one or more of:\n"
            + "\n".join(LAYOUTS[d] for d in FOLDERS)
            + "\n(or make a synthetic set: python -m aiblib synth --root " + str(root) + ")"
        )
    return datasets


def _previous_rows(csv: Path) -> dict[tuple[str, str], dict]:
    """The rows of an earlier summary by (dataset, split); none if it is missing or damaged."""
    if not csv.exists():
        return {}
    try:
        old = pd.read_csv(csv)
        return {(r["dataset"], r["split"]): r for r in old.to_dict("records")}
    except Exception:  # noqa: BLE001 - a damaged summary is simply recomputed
        return {}


def _summarize(root: Path, datasets: list[str], splits: tuple[str, ...], full: bool,
               say: Callable[..., None]) -> tuple[list[dict], list[str]]:
    """The summary rows and the problems of every dataset split (unchanged rows reused)."""
    previous = _previous_rows(root / SUMMARY)
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
    for row in rows:
        if (note := count_note(row["dataset"], row["split"], int(row["images"]))) is not None:
            say(note)
    return rows, problems


def count_note(dataset: str, split: str, images: int) -> str | None:
    """A line naming a split whose image count is not the published one (:data:`~aiblib.data.OFFICIAL_COUNTS`):
    a subset, an incomplete download, or the synthetic scenes; None when it matches or none is published."""
    official = OFFICIAL_COUNTS.get((dataset, split))
    if official is None or official == images:
        return None
    return (f"{dataset}/{split}: {images} images where the published set has {official} (a subset, an incomplete "
            "download, or the synthetic scenes)")


def prepare(root: str | Path, *, datasets: list[str] | None = None, splits: tuple[str, ...] = ("train", "val"),
            full: bool = False, verbose: bool = True) -> pd.DataFrame:
    """Prepare ``root`` (see the module docstring); returns the summary DataFrame.

    ``df.attrs["problems"]`` lists the problems found (each names its file);
    ``df.attrs["train_ids"]`` reports the Cityscapes trainId conversion.
    """
    root = check_root(root)
    if datasets is None:
        datasets = _datasets_found(root)
    for d in datasets:
        if d not in FOLDERS:
            raise ConfigError(f"unknown dataset {d!r}; choose from {tuple(FOLDERS)}")
    say = print if verbose else (lambda *a, **k: None)
    train_ids = None
    if "cityscapes" in datasets:
        train_ids = make_train_ids(root / FOLDERS["cityscapes"])
        say(f"cityscapes labelTrainIds: {train_ids['annotations']} annotations, {train_ids['existing']} already done, "
            f"{train_ids['created']} created with cityscapesscripts createTrainIdLabelImgs")
    rows, problems = _summarize(root, datasets, splits, full, say)
    df = pd.DataFrame(rows)
    df.to_csv(root / SUMMARY, index=False)
    plist = root / PROBLEMS
    if problems:
        plist.write_text("\n".join(problems) + "\n")
    elif plist.exists():
        plist.unlink()
    df.attrs["problems"] = problems
    df.attrs["train_ids"] = train_ids
    return df

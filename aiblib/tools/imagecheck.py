"""Every image and label of a data root decoded as training reads them, in parallel; every damaged file listed.

``python -m aiblib prepare --check-images [--root DATA_ROOT | --camvid PATH] [--workers N]``

When to use it: once after downloading or copying a data set, and before a long run. A truncated
or damaged PNG/JPEG (a partial download, a disk error) stops training with one line at the
iteration that first draws it, which may be hours in; this finds all of them in one pass. Each
pair is read by the dataset's own ``load`` (the image decoded whole, the label decoded and its
values checked, the two sizes compared), for every split of every dataset found (cityscapes,
bdd100k, nightcity-fine; or every folder of a CamVid folder), in ``workers`` processes.

A file in an image or label folder that is not a regular file (a FIFO, a device, a socket) is listed
as such, found by ``stat`` and never opened: opening a FIFO waits for a writer, and reading a device
may never end. The dataset listing skips such files, so its partner is listed as unpaired too.

:func:`check_images` returns one row per dataset split (``dataset, split, pairs, damaged``) with
the problems, one line each naming its file, in ``summary.attrs["problems"]``.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from aiblib.data import CAMVID_SPLITS, FOLDERS, SPLITS, CamVidDataset, DataError, SegmentationDataset, find_pairs
from aiblib.errors import MissingFile
from aiblib.paths import project_path

__all__ = ["check_images"]

_CHUNK = 16  # pairs sent to a worker process at a time


def _pair_problem(item: tuple[bool, Path, Path]) -> str | None:
    """The one-line problem of an (is_camvid, image, label) pair, or None when both read and fit."""
    camvid, image, label = item
    dataset = (CamVidDataset if camvid else SegmentationDataset)([(image, label)])
    try:
        dataset.load(0)
    except (DataError, OSError) as exc:
        return " ".join(str(exc).split())
    return None


_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"))


def _not_regular(folder: Path) -> list[str]:
    """One line per entry under ``folder`` that is neither a regular file nor a folder, by ``stat`` (never opened)."""
    found = []
    for parent, _, names in os.walk(folder):
        for name in sorted(names):
            path = Path(parent) / name
            try:
                mode = path.stat().st_mode
            except OSError:  # a dangling link, or gone since the walk
                continue
            if not stat.S_ISREG(mode):
                kind = next((k for test, k in _KINDS if test(mode)), "special file")
                found.append(f"{path} is a {kind}, not a regular file; it was not opened")
    return found


def _splits(root: Path, *, camvid: bool, datasets: list[str] | None) -> list[tuple[str, str]]:
    """The (layout, split or folder) pairs to read under ``root``."""
    if camvid:
        folders = sorted({f for split in CAMVID_SPLITS.values() for f in split.folders})
        return [("camvid", folder) for folder in folders]
    found = [d for d, folder in FOLDERS.items() if (root / folder).is_dir()] if datasets is None else datasets
    if not found:
        raise DataError(f"no dataset folder under {root}; expected one or more of {sorted(set(FOLDERS.values()))}")
    return [(d, split) for d in found for split in SPLITS]


def check_images(root: str | Path, *, camvid: bool = False, datasets: list[str] | None = None,
                 workers: int = 0) -> pd.DataFrame:
    """Read every pair under ``root`` (a data root, or with ``camvid`` a CamVid folder) in ``workers``
    processes (0: one per CPU); see the module docstring for the summary and its problems."""
    root = project_path(root)
    if not root.is_dir():
        raise MissingFile(f"no folder {root} to check")
    rows, problems, todo = [], [], []
    for dataset, split in _splits(root, camvid=camvid, datasets=datasets):
        try:
            pairing = find_pairs(dataset, root, split)
        except DataError as exc:
            if dataset != "camvid" and split not in ("train", "val"):
                continue  # a test split is optional
            problems.append(str(exc).splitlines()[0])
            continue
        folders = dict.fromkeys((pairing.image_dir, pairing.label_dir))
        special = [line for folder in folders for line in _not_regular(folder)]
        problems += special + list(pairing.unpaired)
        todo += [(dataset, split, image, label) for image, label in pairing.pairs]
        rows.append({"dataset": dataset, "split": split, "pairs": len(pairing.pairs), "damaged": len(special)})
    # spawned, not forked: a fork of a process with running threads (torch's, a notebook kernel's) can inherit a
    # held lock and wait on it forever (seen: the test suite's process, after an in-process training)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, mp_context=context) as pool:
        found = list(pool.map(_pair_problem, [(d == "camvid", i, lab) for d, _, i, lab in todo], chunksize=_CHUNK))
    for (dataset, split, _, _), problem in zip(todo, found):
        if problem is not None:
            problems.append(problem)
            next(r for r in rows if (r["dataset"], r["split"]) == (dataset, split))["damaged"] += 1
    summary = pd.DataFrame(rows, columns=["dataset", "split", "pairs", "damaged"])
    summary.attrs["problems"] = problems
    return summary

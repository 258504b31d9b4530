"""Checkpoints: safe loading, atomic saving, MMSegmentation conversion, ImageNet initialisation,
and where a run keeps them (:func:`checkpoint_dir`, :func:`last_checkpoint`).

An aiblib checkpoint is a dict ``{"format": "aiblib", "version": 1, "model_config": {...},
"model": state_dict, ...}`` (the engine adds ``optimizer``, ``scheduler``, ``iteration``,
``rng``, ``config``). ``safe_load`` reads any torch checkpoint without executing pickled code:
only tensors, plain containers, numpy values and a few torch value types are constructed;
every other class (e.g. MMEngine's ``HistoryBuffer``, or a ``__reduce__`` calling ``os.system``)
becomes an inert ``Placeholder`` that records its name and arguments.
"""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import re
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aiblib.errors import ConfigError, MissingFile, UserError
from aiblib.model import AIBRSegmentor, ModelConfig, build_model
from aiblib.paths import project_path
from aiblib.storage.atomic import atomic_copy, atomic_write, ensure_free_space, verify_zip

FORMAT, VERSION = "aiblib", 1
# model_config keys renamed since checkpoints were first written: old name -> new name
RENAMED_KEYS = {"deterministic": "mean_mask"}


class CheckpointError(UserError, RuntimeError):
    """A file that does not load as a checkpoint (damaged, or something else); the message names it."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    """The folder of a run's checkpoints: ``run_dir/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def last_checkpoint(run_dir: str | os.PathLike) -> Path:
    """A run's latest checkpoint, the one training resumes from and evaluation reads by default."""
    return checkpoint_dir(run_dir) / "last.pth"


# ---------------------------------------------------------------------------------------------
# Safe loading


class Placeholder:
    """Inert stand-in for an object of a class that is not on the allow-list.

    ``module`` and ``name`` say which class it stood for; ``args`` and ``state`` keep what
    the pickle held (themselves loaded safely). Nothing of the real class is imported or run.
    """

    module = ""
    name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Placeholder":
        obj = object.__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<placeholder for {self.module}.{self.name}>"


_PLACEHOLDERS: dict[tuple[str, str], type] = {}


def _placeholder(module: str, name: str) -> type:
    key = (module, name)
    if key not in _PLACEHOLDERS:
        _PLACEHOLDERS[key] = type(f"Placeholder[{module}.{name}]", (Placeholder,), {"module": module, "name": name})
    return _PLACEHOLDERS[key]


def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
        ("_codecs", "encode"): lambda s, enc="latin1": str(s).encode(str(enc)),
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = np._core.multiarray._reconstruct
        allowed[(mod, "scalar")] = np._core.multiarray.scalar
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` never imports: allow-list or ``Placeholder``."""

    _allow: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if SafeUnpickler._allow is None:
            SafeUnpickler._allow = _allowed()
        if (module, name) in SafeUnpickler._allow:
            return SafeUnpickler._allow[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "numpy.dtypes":
            cls = getattr(np.dtypes, name, None)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                return cls
        return _placeholder(module, name)


def _safe_pickle_module() -> types.ModuleType:
    mod = types.ModuleType("aiblib_safe_pickle")
    mod.Unpickler = SafeUnpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: SafeUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.__dict__["__name__"] = "aiblib_safe_pickle"
    return mod


def safe_load(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """Load a torch checkpoint (zip or legacy format) without executing code from it.

    Tensors, dicts/lists/tuples, numbers, strings, numpy values, ``torch.Size``, devices and
    dtypes load as themselves; any other object becomes a ``Placeholder``. A file that does not
    load raises :class:`CheckpointError` (a ``RuntimeError``) naming it.
    """
    path = project_path(path)
    if not path.is_file():
        raise MissingFile(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False, pickle_module=_safe_pickle_module())
    except Exception as e:  # noqa: BLE001 - name the file
        raise CheckpointError(f"could not read checkpoint {path}: {type(e).__name__}: {' '.join(str(e).split())}") from e


def save_atomic(obj: Any, path: str | os.PathLike, *, note: str = "") -> Path:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace`` it into place (see
    :func:`aiblib.storage.atomic.atomic_write`: out of space is a :class:`StorageError`, nothing is left
    behind). Every record gets its CRC-32, which :func:`verify_checkpoint` checks."""
    crc = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(True)
    try:
        return atomic_write(path, lambda f: torch.save(obj, f), note=note)
    finally:
        torch.serialization.set_crc32_options(crc)


def model_checkpoint(model: AIBRSegmentor, **extra: Any) -> dict[str, Any]:
    """The aiblib checkpoint dict for ``model`` (``pretrained`` cleared: the weights are inside).

    The weights are CPU copies of the state dict, so the file loads anywhere (SyncBN and BN
    share names, so it loads into either).
    """
    cfg = model.config.replace(pretrained="")
    weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return {"format": FORMAT, "version": VERSION, "model_config": cfg.to_dict(), "model": weights, **extra}


def save_training_checkpoint(state: dict, ckpt_dir: Path, *, keep_copy: bool) -> Path:
    """Write ``last.pth`` atomically; with ``keep_copy`` first ``iter_NNNNNN.pth``, then ``last.pth`` as a
    copy of it (a file of its own: damage to one is not damage to both). Returns the file written.

    Refuses (:class:`StorageError`) before writing when the file system says the checkpoint, about
    the size of the previous ``last.pth``, will not fit; out of space while writing is the same
    error. Either way the previous ``last.pth`` is intact and no temporary file is left.
    """
    last = ckpt_dir / "last.pth"
    previous = last.stat().st_size if last.is_file() else 0
    note = (f"; the previous checkpoint {last} is intact" if previous else "; no checkpoint was written yet") + \
        "; free some space, then run the same command again to resume"
    ensure_free_space(ckpt_dir, previous * (2 if keep_copy else 1), f"the checkpoint of iteration {state['iteration']}",
                      note)
    if not keep_copy:
        return save_atomic(state, last, note=note)
    kept = save_atomic(state, ckpt_dir / f"iter_{state['iteration']:06d}.pth", note=note)
    atomic_copy(kept, last, note=f"; {kept.name} was written and is whole; run the same command again to resume")
    return kept


def training_checkpoints(ckpt_dir: Path) -> list[Path]:
    """A run's checkpoints: ``last.pth`` (when present), then ``iter_NNNNNN.pth``, newest first."""
    kept = sorted((p for p in ckpt_dir.glob("iter_*.pth") if p.stem[5:].isdigit()), key=lambda p: -int(p.stem[5:]))
    last = ckpt_dir / "last.pth"
    return ([last] if last.is_file() else []) + kept


def verify_checkpoint(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` cannot be a whole ``torch.save`` checkpoint (a short phrase), or None
    (:func:`aiblib.storage.atomic.verify_zip`: the size and CRC-32 of every record)."""
    return verify_zip(path)


def sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """What a scored checkpoint was: ``path`` (absolute), ``sha256``, ``bytes``, and when its
    metadata reads, ``format`` ("aiblib", "mmsegmentation" or "unknown") and ``iteration``."""
    path = Path(path)
    identity: dict[str, Any] = {"path": str(path.resolve()), "sha256": sha256(path), "bytes": path.stat().st_size}
    try:
        data = safe_load(path)
    except Exception as exc:  # noqa: BLE001 - informative only; load_model reports real problems
        identity["note"] = f"metadata unreadable: {exc}"
        return identity
    if isinstance(data, dict):
        identity["format"] = data.get("format", "mmsegmentation" if "state_dict" in data else "unknown")
        iteration = data.get("iteration")
        if iteration is None and isinstance(data.get("meta"), dict):
            iteration = data["meta"].get("iter")
        if iteration is not None:
            try:
                identity["iteration"] = int(iteration)
            except (TypeError, ValueError):  # a placeholder for a numpy scalar, say
                identity["iteration"] = str(iteration)
    return identity


# ---------------------------------------------------------------------------------------------
# MMSegmentation conversion

# (MMSeg prefix, aiblib prefix); the first that matches wins.
MMSEG_RENAMES = (
    ("backbone.att_module_mu.0.", "attention.mu_conv."),
    ("backbone.att_module_std.0.", "attention.std_conv."),
    ("backbone.", "backbone."),
    ("decode_head.", "decode_head."),
    ("auxiliary_head.", "aux_head."),
)


def _state_dict_of(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        sd = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if sd:
            return sd
    raise ConfigError("no state dict of tensors found (looked at 'state_dict', 'model' and the top level)")


def infer_mmseg_config(sd: dict[str, torch.Tensor]) -> ModelConfig:
    """Depth, attention, classes and head widths from an MMSeg AIBR / DeepLabV3+ state dict."""
    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise ConfigError(f"not an MMSegmentation DeepLabV3+ state dict: missing {key!r}")
        return sd[key]

    need("backbone.stem.0.weight")
    bottleneck = "backbone.layer1.0.conv3.weight" in sd
    n3 = len({int(m.group(1)) for k in sd if (m := re.match(r"backbone\.layer3\.(\d+)\.", k))})
    depth = {(False, 2): 18, (True, 6): 50, (True, 23): 101}.get((bottleneck, n3))
    if depth is None:
        raise ConfigError(f"unsupported ResNet: {'Bottleneck' if bottleneck else 'BasicBlock'} with {n3} blocks in stage 3")
    aux = sd.get("auxiliary_head.convs.0.conv.weight")
    return ModelConfig(
        depth=depth,
        num_classes=int(need("decode_head.conv_seg.weight").shape[0]),
        attention="backbone.att_module_mu.0.weight" in sd,
        aspp_channels=int(need("decode_head.bottleneck.conv.weight").shape[0]),
        skip_channels=int(need("decode_head.c1_bottleneck.conv.weight").shape[0]),
        aux_channels=0 if aux is None else int(aux.shape[0]),
    )


def convert_mmseg_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ModelConfig, dict[str, list[str]]]:
    """Rename an MMSeg state dict to aiblib names and infer its ``ModelConfig``.

    Returns ``(state_dict, config, report)``; report lists ``mapped`` (source keys),
    ``unmapped`` (source keys with no aiblib counterpart, including shape mismatches) and
    ``missing`` (aiblib keys the source did not provide). The output stride cannot be read
    from weights: it is the reference's 8 (override with ``load_model(..., output_stride=16)``).
    """
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    cfg = infer_mmseg_config(sd)
    target = AIBRSegmentor(cfg).state_dict()
    out: dict[str, torch.Tensor] = {}
    report: dict[str, list[str]] = {"mapped": [], "unmapped": [], "missing": []}
    for key, value in sd.items():
        new = next((dst + key[len(src):] for src, dst in MMSEG_RENAMES if key.startswith(src)), None)
        if new is None or new not in target or target[new].shape != value.shape:
            why = "no counterpart" if new is None or new not in target else f"shape {tuple(value.shape)} != {tuple(target[new].shape)}"
            report["unmapped"].append(f"{key} ({why})")
            continue
        out[new] = value
        report["mapped"].append(key)
    report["missing"] = sorted(set(target) - set(out))
    return out, cfg, report


# ---------------------------------------------------------------------------------------------
# Loading models


def load_model(path: str | os.PathLike, **overrides: Any) -> AIBRSegmentor:
    """Rebuild a model (in eval mode) from an aiblib checkpoint or an MMSegmentation one.

    ``overrides`` change configuration fields, e.g. ``mean_mask=True, test_samples=1``.
    Raises ValueError naming the file when keys are missing or left over.
    """
    obj = safe_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        saved = {RENAMED_KEYS.get(k, k): v for k, v in obj["model_config"].items()}
        cfg = ModelConfig.from_dict({**saved, "pretrained": "", **overrides})
        sd = obj["model"]
    else:
        try:
            sd, inferred, report = convert_mmseg_state_dict(_state_dict_of(obj))
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if report["missing"] or report["unmapped"]:
            raise ConfigError(f"{path}: MMSeg checkpoint does not match the inferred model {inferred}: "
                             f"missing {report['missing']}, unmapped {report['unmapped']}")
        cfg = inferred.replace(**{**overrides, "pretrained": ""})
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path}: state dict does not match the model: missing {list(missing)}, unexpected {list(unexpected)}")
    return model.eval()


def init_pretrained(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Initialise ``model.backbone`` (or ``model`` if it is a backbone) from an ImageNet ResNet file.

    Accepts torchvision ResNet files (``conv1``/``bn1`` 7x7 stem: the V1c stem stays random,
    those keys are reported) and MMSegmentation ``resnet*_v1c`` files (``stem.*``, possibly
    under ``state_dict`` and/or a ``backbone.`` prefix). Returns a report with ``format``,
    ``loaded``, ``unused`` (file keys not loaded, with the reason) and ``missing`` (backbone keys
    left at their initialisation).
    """
    backbone = getattr(model, "backbone", model)
    sd = {k.removeprefix("backbone."): v for k, v in _state_dict_of(safe_load(path)).items()}
    fmt = "mmseg_v1c" if any(k.startswith("stem.") for k in sd) else "torchvision"
    own = backbone.state_dict()
    load, unused = {}, []
    for key, value in sd.items():
        if key not in own:
            unused.append(f"{key} (no counterpart)")
        elif own[key].shape != value.shape:
            unused.append(f"{key} (shape {tuple(value.shape)} != {tuple(own[key].shape)})")
        else:
            load[key] = value
    if not load:
        raise ConfigError(f"{path}: no key matches the ResNet-V1c backbone (is it a ResNet of depth {backbone.depth}?)")
    backbone.load_state_dict(load, strict=False)
    return {"path": str(path), "format": fmt, "loaded": sorted(load), "unused": unused,
            "missing": sorted(set(own) - set(load))}


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, *, output_stride: int = 8,
                 beta: float | None = None) -> tuple[ModelConfig, dict[str, list[str]]]:
    """Convert an MMSegmentation AIBR / DeepLabV3+ checkpoint ``src`` into an aiblib one at ``dst``.

    The weights do not tell the output stride (the reference's is 8) nor β (recorded only);
    keys of the model that the file lacks stay at their initialisation and are reported.
    Returns ``(config, report)`` as :func:`convert_mmseg_state_dict`; raises ValueError when
    ``src`` is not a DeepLabV3+ state dict.
    """
    obj = safe_load(src)
    sd, cfg, report = convert_mmseg_state_dict(_state_dict_of(obj))
    cfg = cfg.replace(output_stride=output_stride, **({} if beta is None else {"beta": beta}))
    model = build_model(cfg)
    model.load_state_dict(sd, strict=False)
    source: dict[str, Any] = {"path": str(src), "unmapped": report["unmapped"], "missing": report["missing"]}
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if isinstance(meta, dict):
        source["meta"] = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
    save_atomic(model_checkpoint(model, converted_from=source), dst)
    return cfg, report

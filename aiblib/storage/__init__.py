"""Files on disk that both training and evaluation reach: atomic writes (:mod:`.atomic`), checkpoints
(:mod:`.checkpoint`), the run log (:mod:`.runlog`) and the run lock (:mod:`.runlock`).

Floor 3: imports only ``aiblib.errors``, ``aiblib.paths``, ``aiblib.model`` and ``aiblib.data``.
"""

from aiblib.storage.atomic import atomic_copy, atomic_write, ensure_free_space, reporting, verify_zip, write_text_atomic
from aiblib.storage.checkpoint import (
    CheckpointError,
    Placeholder,
    checkpoint_dir,
    convert_file,
    describe_checkpoint,
    init_pretrained,
    last_checkpoint,
    load_model,
    model_checkpoint,
    safe_load,
    save_atomic,
    save_training_checkpoint,
    training_checkpoints,
    verify_checkpoint,
)
from aiblib.storage.runlock import RunLock
from aiblib.storage.runlog import ENVIRONMENT_KEYS, LOG_NAME, RunLog, json_safe, read_log, training_environment

__all__ = [
    "atomic_copy", "atomic_write", "ensure_free_space", "reporting", "verify_zip", "write_text_atomic",
    "CheckpointError", "Placeholder", "checkpoint_dir", "convert_file", "describe_checkpoint", "init_pretrained",
    "last_checkpoint", "load_model", "model_checkpoint", "safe_load", "save_atomic", "save_training_checkpoint",
    "training_checkpoints", "verify_checkpoint",
    "RunLock", "ENVIRONMENT_KEYS", "LOG_NAME", "RunLog", "json_safe", "read_log",
    "training_environment",
]

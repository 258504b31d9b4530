"""aiblib: AIBR (information-bottleneck spatial attention) on DeepLabV3+ / ResNet-V1c.

The top-level names are imported lazily so that ``import aiblib.data`` does not pay
for the model code (and the other way round).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ModelConfig": "aiblib.model",
    "build_model": "aiblib.model",
    "load_model": "aiblib.checkpoint",
    "Config": "aiblib.config",
    "load_config": "aiblib.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aiblib' has no attribute {name!r}")

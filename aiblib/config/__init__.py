"""What a run is and where it runs: the configuration of ``params/*.yaml`` (:mod:`.experiment`) and
the process it resolves to (:mod:`.runtime`: device, precision, process group, random state).

Floor 3: imports only ``aiblib.errors``, ``aiblib.paths``, ``aiblib.model`` and ``aiblib.data``.
"""

from aiblib.config.experiment import (
    CONFIG_KEYS,
    MODEL_KEYS,
    RUNTIME_KEYS,
    Config,
    check_resumable,
    images_per_process,
    load_config,
    parse_overrides,
)
from aiblib.config.runtime import (
    Process,
    barrier,
    broadcast_buffers,
    compiled,
    environment,
    memory_mb,
    native_bf16,
    process_group,
    raise_on_every_rank,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
    state_digest,
    sync,
    torch_settings,
)

__all__ = [
    "CONFIG_KEYS", "MODEL_KEYS", "RUNTIME_KEYS", "Config", "check_resumable", "images_per_process",
    "load_config", "parse_overrides",
    "Process", "raise_on_every_rank", "barrier", "broadcast_buffers", "compiled", "environment", "memory_mb", "native_bf16", "process_group",
    "resolve_precision", "rng_state", "seed_everything", "set_rng_state", "state_digest", "sync", "torch_settings",
]

"""The managers that keep a long job alive and legible.

``ResourceManager`` watches memory, CPU and disk against the job's real limits;
``CheckpointManager`` saves and restores state crash-safely; ``ProgressManager`` shows
progress in a terminal and as heartbeat lines in batch logs; ``CacheManager`` caches
expensive results in memory and on disk; ``LogManager`` writes structured logs;
``ManagerContext`` builds all five and coordinates them; ``RunDir`` names where each part of
a run directory lives.

Names are imported on first use, so ``import lensing_ssc.processing.managers`` stays cheap
for command-line tools that need only one manager.

Example:
    >>> from lensing_ssc.processing.managers import CacheManager
    >>> with CacheManager(max_size_mb=64) as cache:
    ...     cache.put("answer", 42)
    ...     cache.get("answer")
    42
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lensing_ssc.processing.managers.cache import CacheManager
    from lensing_ssc.processing.managers.checkpoint import CheckpointManager
    from lensing_ssc.processing.managers.context import ManagerContext
    from lensing_ssc.processing.managers.log import LogManager
    from lensing_ssc.processing.managers.progress import ProgressManager
    from lensing_ssc.processing.managers.resource import ResourceManager
    from lensing_ssc.processing.managers.rundir import RunDir

__all__ = [
    "CacheManager",
    "CheckpointManager",
    "LogManager",
    "ManagerContext",
    "ProgressManager",
    "ResourceManager",
    "RunDir",
]

_MODULES = {
    "CacheManager": "cache",
    "CheckpointManager": "checkpoint",
    "LogManager": "log",
    "ManagerContext": "context",
    "ProgressManager": "progress",
    "ResourceManager": "resource",
    "RunDir": "rundir",
}


def __getattr__(name: str) -> Any:
    module_name = _MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

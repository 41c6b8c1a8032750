"""lensing_ssc: weak-lensing super-sample covariance studies that survive, resume and scale out.

Every public name is offered here, imported on first use so that ``import lensing_ssc``
stays cheap::

    from lensing_ssc import ManagerContext, ProcessingConfig, ConfigError, run_patch_statistics

Their homes, which the guides use, are :mod:`lensing_ssc.processing.managers` (the five
managers, :class:`ManagerContext`, :class:`RunDir`), :mod:`lensing_ssc.processing.runner`
(:class:`TaskRunner`, :func:`run_map`), :mod:`lensing_ssc.core.config`
(:class:`ProcessingConfig`), :mod:`lensing_ssc.core.base.exceptions` (the errors) and
:mod:`lensing_ssc.pipelines` (the patch-statistics job). ``docs/architecture.md`` shows how
the packages fit together.

Example:
    >>> import lensing_ssc
    >>> issubclass(lensing_ssc.ConfigError, lensing_ssc.LensingSSCError)
    True
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from lensing_ssc._version import __version__

# A library is quiet unless asked: without this, Python's last-resort handler would print
# our warnings on stderr. A LogManager, or the command line, decides where records go.
logging.getLogger("lensing_ssc").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from lensing_ssc.core.base.exceptions import (
        AnalysisError,
        CacheError,
        CheckpointError,
        ConfigError,
        InterruptedRunError,
        LensingSSCError,
        LoggingError,
        ProgressError,
        ResourceError,
    )
    from lensing_ssc.core.config import ProcessingConfig
    from lensing_ssc.pipelines import (
        PipelineConfig,
        PipelineRun,
        read_results,
        run_patch_statistics,
    )
    from lensing_ssc.processing.managers import (
        CacheManager,
        CheckpointManager,
        LogManager,
        ManagerContext,
        ProgressManager,
        ResourceManager,
        RunDir,
    )
    from lensing_ssc.processing.runner import MapResult, TaskFailure, TaskRunner, run_map

_HOMES = {
    "lensing_ssc.core.base.exceptions": (
        "AnalysisError",
        "CacheError",
        "CheckpointError",
        "ConfigError",
        "InterruptedRunError",
        "LensingSSCError",
        "LoggingError",
        "ProgressError",
        "ResourceError",
    ),
    "lensing_ssc.core.config": ("ProcessingConfig",),
    "lensing_ssc.pipelines": (
        "PipelineConfig",
        "PipelineRun",
        "read_results",
        "run_patch_statistics",
    ),
    "lensing_ssc.processing.managers": (
        "CacheManager",
        "CheckpointManager",
        "LogManager",
        "ManagerContext",
        "ProgressManager",
        "ResourceManager",
        "RunDir",
    ),
    "lensing_ssc.processing.runner": ("MapResult", "TaskFailure", "TaskRunner", "run_map"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AnalysisError",
    "CacheError",
    "CacheManager",
    "CheckpointError",
    "CheckpointManager",
    "ConfigError",
    "InterruptedRunError",
    "LensingSSCError",
    "LogManager",
    "LoggingError",
    "ManagerContext",
    "MapResult",
    "PipelineConfig",
    "PipelineRun",
    "ProcessingConfig",
    "ProgressError",
    "ProgressManager",
    "ResourceError",
    "ResourceManager",
    "RunDir",
    "TaskFailure",
    "TaskRunner",
    "__version__",
    "read_results",
    "run_map",
    "run_patch_statistics",
]


def __getattr__(name: str) -> Any:
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

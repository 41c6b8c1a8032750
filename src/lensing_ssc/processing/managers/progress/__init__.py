"""The ProgressManager: bars in a terminal or notebook, heartbeat lines in a batch log.

Private parts: :mod:`._task` and :mod:`._state` (counts of a task), :mod:`._clock` (rates and
ETAs), :mod:`._snapshot` (the value objects), :mod:`._display` and :mod:`._live` (plain lines,
rich and Jupyter tables), :mod:`._reporter` (counts from worker processes). The manager
itself is in :mod:`._manager`.
"""

from ._manager import (
    ENV_ENABLED,
    ProgressManager,
    ProgressReporter,
    ProgressSnapshot,
    ProgressTask,
)
from ._reporter import UnsentCounts

__all__ = [
    "ENV_ENABLED",
    "ProgressManager",
    "ProgressReporter",
    "ProgressSnapshot",
    "ProgressTask",
    "UnsentCounts",
]

"""A sampler that replays given figures: test callbacks and stops without using memory.

Like httpx's ``MockTransport``: pass it as ``ResourceManager(sampler=...)`` to drive the
manager through chosen states (a warning, a breach, a recovery) in tests of code that
reacts to them. Real measuring is :mod:`.sampling`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from lensing_ssc.processing.managers.resource._usage import ResourceUsage

__all__ = ["ReplaySampler"]


class ReplaySampler:
    """Returns the given figures in turn, then repeats the last one.

    Args:
        figures: Each a mapping of :class:`ResourceUsage` fields (``{"memory_mb": 900.0}``),
            stamped with the time of the call, or a ready :class:`ResourceUsage`. With none,
            every sample is ``{"memory_mb": 100.0}``.

    Example:
        >>> from lensing_ssc.processing.managers.resource._manager import ResourceManager
        >>> sampler = ReplaySampler({"memory_mb": 500.0}, {"memory_mb": 1200.0})
        >>> rm = ResourceManager(memory_limit_mb=1000, sampler=sampler)
        >>> rm.check_limits().ok, rm.get_current_usage().memory_mb, sampler.calls
        (True, 1200.0, 2)
        >>> rm.close()
    """

    def __init__(self, *figures: Mapping[str, Any] | ResourceUsage) -> None:
        self.figures = list(figures) or [{"memory_mb": 100.0}]
        self.calls = 0
        self.closed = False
        self._lock = threading.Lock()

    def sample(self) -> ResourceUsage:
        """The next figures (the last ones once all were replayed)."""
        with self._lock:
            figures = self.figures[min(self.calls, len(self.figures) - 1)]
            self.calls += 1
        if isinstance(figures, ResourceUsage):
            return figures
        return ResourceUsage(timestamp=time.time(), **figures)

    def close(self) -> None:
        """Mark the sampler closed (the manager closes its sampler on ``close()``)."""
        self.closed = True

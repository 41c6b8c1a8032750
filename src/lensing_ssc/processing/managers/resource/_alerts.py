"""Lists of user callbacks that one failing callback cannot break.

Used by the ResourceManager for its warning, limit and stop callbacks: registering is
thread-safe (copy on write), and calling logs each callback's exception with its traceback
instead of letting it reach the monitor thread. When callbacks fire is the manager's call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["CallbackList"]

_log = logging.getLogger("lensing_ssc.processing.managers.resource")


class CallbackList:
    """Callbacks called in registration order; exceptions are logged, never raised.

    Args:
        kind: Named in the log message of a failing callback (``"warning"``, ``"limit"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._callbacks: tuple[Callable[..., object], ...] = ()

    def add(self, callback: Callable[..., object]) -> None:
        """Register ``callback``."""
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

    def __len__(self) -> int:
        return len(self._callbacks)

    def notify(self, *args: object) -> None:
        """Call every callback with ``args``."""
        for callback in self._callbacks:
            try:
                callback(*args)
            except Exception:  # a user's callback must never kill the thread that calls it
                _log.exception("resource %s callback %r failed", self.kind, callback)

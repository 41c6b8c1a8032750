"""Process events for log managers: interpreter exit, ``fork``, SIGTERM, worker exit.

* **Exit**: one :mod:`atexit` hook closes every open manager, which writes every queued
  record (``logging.shutdown``, which runs after it, flushes the handlers once more).
* **fork**: just before a fork the parent manager opens its worker socket
  (:mod:`._transport`), and starts receiving right after; in the child the manager
  forgets the parent's queue, file and threads, and on its first record connects to the
  parent, so the parent's writer writes the child's records. Forked children started by
  :mod:`multiprocessing` leave through ``os._exit``, which skips :mod:`atexit`; a
  :class:`multiprocessing.util.Finalize` flushes them instead (:func:`flush_at_worker_exit`).
* **SIGTERM**: only when asked (``handle_sigterm=True``), :class:`SigtermChain` writes every
  record, then does what was there before: calls the previous Python handler, ignores the
  signal if it was ignored, or restores the default action and re-sends the signal, so the
  process still ends with "killed by SIGTERM". Without it, SIGTERM's default action ends
  the process at once; records older than ``flush_interval`` are already written.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from lensing_ssc.core.base.exceptions import LoggingError

__all__ = ["ProcessAware", "SigtermChain", "flush_at_worker_exit", "register", "unregister"]


class ProcessAware(Protocol):
    """What a manager does at process events."""

    def close(self) -> None: ...

    def _before_fork(self) -> None: ...

    def _after_fork_in_parent(self) -> None: ...

    def _after_fork_in_child(self) -> None: ...


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def register(manager: ProcessAware) -> None:
    """Include ``manager`` in exit and fork handling until it is closed."""
    _LIVE.add(manager)


def unregister(manager: ProcessAware) -> None:
    _LIVE.discard(manager)


def _live() -> list[ProcessAware]:
    return list(_LIVE)


def _close_all_at_exit() -> None:
    for manager in _live():
        manager.close()


def _before_fork() -> None:
    for manager in _live():
        manager._before_fork()


def _after_fork_in_parent() -> None:
    for manager in _live():
        manager._after_fork_in_parent()


def _after_fork_in_child() -> None:
    for manager in _live():
        manager._after_fork_in_child()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def flush_at_worker_exit(close: Callable[[], None]) -> None:
    """Call ``close`` when a :mod:`multiprocessing` worker exits (which skips atexit)."""
    from multiprocessing import util

    util.Finalize(None, close, exitpriority=100)


class SigtermChain:
    """A SIGTERM handler that flushes, then hands over to what was installed before.

    Raises:
        LoggingError: when not called from the main thread (Python allows signal handlers
            to be installed only there).
    """

    def __init__(self, flush: Callable[[], None]) -> None:
        self.check_main_thread()
        self._flush: Callable[[], None] | None = flush
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)

    @staticmethod
    def check_main_thread() -> None:
        """Raise :class:`LoggingError` unless called from the main thread."""
        if threading.current_thread() is not threading.main_thread():
            raise LoggingError(
                "handle_sigterm=True needs the main thread",
                value=threading.current_thread().name,
                hint="create the LogManager in the main thread, or call flush() from your own "
                "SIGTERM handler",
            )

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._flush is not None:
            self._flush()
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def restore(self) -> None:
        """Put the previous handler back, or (if another was installed on top) stop flushing."""
        self._flush = None
        if signal.getsignal(signal.SIGTERM) == self._handle:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, previous)

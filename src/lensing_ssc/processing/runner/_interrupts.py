"""Telling a Ctrl-C from a task's own ``KeyboardInterrupt``, and describing any error safely.

Whatever a task raises is that task's failure: the runner records it and goes on. That
includes ``SystemExit`` (``sys.exit()`` deep in a library) and a ``KeyboardInterrupt`` the
task raises itself; before, either ended the whole run on every executor, recorded nothing,
and so ended every rerun at the same item (#22, point 7). The one exception is the
``KeyboardInterrupt`` that a SIGINT raises: the person at the terminal ending the run.

Python runs signal handlers in the main thread only, so a ``KeyboardInterrupt`` in a worker
thread, or in a pool's worker process (which ignores SIGINT:
:func:`._worker.process_worker_init`), is always the task's own. In the main thread (the
serial loop, an executor that runs tasks as they are submitted), :class:`InterruptWatch`
counts the SIGINTs that arrive while tasks run, passing each on to the handler that was
installed (Python's, which raises ``KeyboardInterrupt``, or the context's, which asks for a
graceful stop first); a ``KeyboardInterrupt`` with none counted is the task's own
(:func:`is_task_failure`).

:func:`error_message` gives an exception's message even when its ``__str__`` raises
(#22, point 9: such an exception crashed the serial loop and, elsewhere, failed every item
of its batch). The retry loops are in :mod:`._worker` and :mod:`._engine`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["InterruptWatch", "error_message", "is_task_failure", "type_name"]


class InterruptWatch:
    """Counts the SIGINTs that reach this process while it is entered (``with``).

    Only in the main thread, and only where SIGINT has a Python handler, which goes on
    handling each one; elsewhere it does nothing and counts nothing (no signal can raise
    there). On exit the previous handler is put back, unless a task replaced the watch's
    own meanwhile.
    """

    def __init__(self) -> None:
        self.count = 0
        self._previous: Callable[[int, FrameType | None], Any] | None = None

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        previous, self._previous = self._previous, None
        if previous is not None and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> Any:
        self.count += 1
        previous = self._previous
        if previous is None:  # a SIGINT caught between exit and restore: Python's own way
            raise KeyboardInterrupt
        return previous(signum, frame)


def is_task_failure(exc: BaseException, interrupted: bool) -> bool:
    """Whether ``exc``, raised out of a task, is that task's failure rather than the run's end.

    Everything is, ``SystemExit`` included, except a ``KeyboardInterrupt`` while a SIGINT
    arrived during the call (``interrupted``: an :class:`InterruptWatch` counted one).
    """
    return not (interrupted and isinstance(exc, KeyboardInterrupt))


def type_name(cls: type) -> str:
    """The qualified name of an exception class (``module.Name``, builtins bare)."""
    try:
        name = str(cls.__qualname__)
        module = str(cls.__module__)
    except Exception:  # a class whose names are computed, and fail
        return "<unnamed exception type>"
    return name if module == "builtins" else f"{module}.{name}"


def error_message(exc: BaseException) -> str:
    """``str(exc)``, or, when that raises, what it raised, by type."""
    try:
        return str(exc)
    except Exception as failure:  # user code may raise anything: it is described
        return (
            f"<the message of a {type_name(type(exc))} could not be made: its __str__ raised "
            f"{type_name(type(failure))}>"
        )

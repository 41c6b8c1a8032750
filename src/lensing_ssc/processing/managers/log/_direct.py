"""The callers' fast path: :class:`DirectLogger`, a :class:`logging.Logger` without LogRecords.

For each call at or above its level, a stdlib logger looks up the caller's frame, builds a
:class:`logging.LogRecord` (times, process, thread and their names) and walks its handlers:
about 5 µs, most of it for what the ``json`` and ``standard`` formats never show. When
the one handler that would see the record is a manager's
:class:`~._writer.EnqueueHandler`, and its pipeline ``takes_tuples`` (not the ``detailed``
format, no ``add_handler``), and the call has no ``exc_info`` or ``stack_info`` and meets no
filter, a DirectLogger queues a :data:`~._format.RecordTuple` instead: the time, level,
logger name, the message rendered as ``msg % args`` (as the handler renders it, also when
that fails), a copy of ``extra`` and the context fields. Every other call goes the
stdlib's way, so a DirectLogger differs from a Logger only in what a record costs; an
``extra`` key that ``makeRecord`` refuses still raises its ``KeyError``.

``LogManager.get_logger`` creates the loggers it returns as DirectLoggers
(:func:`get_direct_logger`), registered as usual, so ``logging.getLogger(name)`` returns
the same object. A logger that exists already keeps its class: changing the class of a
live object would make its calls below the level half as slow again (0.19 against
0.13 µs: CPython then looks the object's attributes up in a dict), and an application's
``logging.setLoggerClass`` is respected.
Where records go afterwards is :mod:`._writer`; their formats are :mod:`._format`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from time import time as _now
from typing import Any

from lensing_ssc.processing.managers.log._context import context_getter
from lensing_ssc.processing.managers.log._format import RECORD_NAMES, safe_str
from lensing_ssc.processing.managers.log._writer import EnqueueHandler

__all__ = ["DirectLogger", "get_direct_logger", "render_message"]

_NULL = logging.NullHandler
_class_lock = threading.Lock()


def render_message(msg: object, args: Any) -> str:
    """``msg % args`` as :meth:`logging.LogRecord.getMessage` renders it; never raises."""
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]  # logger.info("%(a)s", {"a": 1}), as LogRecord.__init__ does
    try:
        return str(msg) % args
    except Exception as exc:  # a caller's bad format string must not raise here
        return f"<unformattable message {safe_str(msg)!r}: {exc!r}>"


def _sole_handler(logger: logging.Logger) -> EnqueueHandler | None:
    """The manager's handler, when it is the only one that would handle a record here."""
    found: EnqueueHandler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        for handler in node.handlers:
            kind = type(handler)
            if kind is EnqueueHandler and found is None:
                found = handler  # type: ignore[assignment]
            elif kind is not _NULL:
                return None
        if not node.propagate:
            break
        node = node.parent
    return found


class DirectLogger(logging.Logger):
    """A :class:`logging.Logger` that queues a tuple where nothing needs a LogRecord."""

    def _log(
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Mapping[str, object] | None = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        if not (exc_info or stack_info or self.filters or self.disabled):
            handler = _sole_handler(self)
            if (
                handler is not None
                and level >= handler.level
                and not handler.filters
                and handler.pipeline.takes_tuples
                and (extra is None or RECORD_NAMES.isdisjoint(extra))
            ):
                if args:
                    msg = render_message(msg, args)
                fields = None if extra is None else dict(extra)
                handler.put((_now(), level, self.name, msg, fields, context_getter()))
                return
        # One frame more to skip (this one) to find the caller, as Logger.findCaller counts.
        super()._log(level, msg, args, exc_info, extra, stack_info, stacklevel + 1)


def get_direct_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, created as a :class:`DirectLogger` if it is new.

    A logger another thread creates at the same moment may be a DirectLogger too, which
    only makes its calls cheaper.
    """
    manager = logging.Logger.manager
    if isinstance(manager.loggerDict.get(name), logging.Logger):
        return logging.getLogger(name)  # it exists: its class stays (module docstring)
    with _class_lock:
        chosen = manager.loggerClass
        if (chosen or logging.getLoggerClass()) is not logging.Logger:
            return logging.getLogger(name)  # the application chose a class of its own
        manager.loggerClass = DirectLogger
        try:
            return manager.getLogger(name)
        finally:
            manager.loggerClass = chosen

"""Context fields of log records: ``log_context``, ``bind_context``, ``current_context``.

The fields live in one :class:`contextvars.ContextVar` holding an immutable mapping, so
they nest (an inner block adds to and overrides the outer block's fields; leaving it brings
the outer ones back), and they are separate per thread and per asyncio task. A thread
started by hand begins with no fields; :func:`bind_context` carries the caller's fields
(and every other context variable, as :func:`asyncio.to_thread` does) into work run on
other threads: executors, the task runner, callbacks.

The handler copies the current mapping onto each record as it is logged (one attribute
store); rendering the fields is in :mod:`._format`. Fields reach other *processes*
only as data: send :func:`current_context` along and enter ``log_context(**fields)`` there.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

__all__ = ["CONTEXT_ATTR", "bind_context", "context_getter", "current_context", "log_context"]

P = ParamSpec("P")
R = TypeVar("R")

#: Name of the record attribute that carries the context mapping to the writer.
CONTEXT_ATTR = "_lssc_context"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "lensing_ssc_log_context", default=_EMPTY
)

#: The fastest way to read the current mapping (a bound C method), for the handler.
context_getter: Callable[[], Mapping[str, Any]] = _CONTEXT.get


@contextmanager
def log_context(**fields: Any) -> Iterator[Mapping[str, Any]]:
    """Add ``fields`` to every record logged inside the block, in this thread or task.

    Blocks nest: inner fields override outer ones of the same name, and leaving a block
    restores exactly what was there before, also when the block raises.

    Args:
        **fields: Names and values written with each record (JSON: top-level keys;
            standard and detailed formats: ``name=value`` after the message).

    Yields:
        A read-only view of all fields now in force.

    Example:
        >>> with log_context(operation="data_processing"):
        ...     with log_context(step="validation") as fields:
        ...         dict(fields)
        {'operation': 'data_processing', 'step': 'validation'}
    """
    merged = MappingProxyType({**_CONTEXT.get(), **fields})
    token = _CONTEXT.set(merged)
    try:
        yield merged
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, Any]:
    """The fields in force here, as a new plain dict (e.g. to send to a worker process).

    Example:
        >>> with log_context(map_id=7):
        ...     current_context()
        {'map_id': 7}
    """
    return dict(_CONTEXT.get())


def bind_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so it runs with the context in force *now*, on whichever thread calls it.

    Use it when handing work to threads: ``executor.submit(bind_context(work), item)``
    or ``threading.Thread(target=bind_context(loop))``. Each call runs in its own copy of
    the captured context, so one wrapped function may run on many threads at once, and
    fields it sets do not leak back to the caller.

    Args:
        fn: Any callable.

    Returns:
        A callable with ``fn``'s signature and metadata.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with log_context(step="fit"), ThreadPoolExecutor(2) as pool:
        ...     pool.submit(bind_context(current_context)).result()
        {'step': 'fit'}
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return bound

"""What a :class:`~._task_runner.TaskRunner` is given besides its executor, and its checks.

:class:`RunnerHooks` is how a coordinating context (``ManagerContext``) plugs into every
run: stop checks, progress, completions, worker set-up and what workers send back.
:data:`MAX_WORKERS` bounds the workers a runner starts. :func:`check_int` and
:func:`check_seconds` check the runner's numeric arguments, when it is built and for each
``map`` that overrides them, with the same ``ConfigError``.

Not here: the runner itself (:mod:`._task_runner`), its executor (:mod:`._runner_executor`)
and its runs (:mod:`._runs`).

Example:
    >>> try:
    ...     check_seconds("stop_timeout", -1, positive=False, hint="e.g. 5.0")
    ... except ConfigError as exc:
    ...     print(exc.field, exc.value)
    stop_timeout -1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing.runner._engine import StopCheck
from lensing_ssc.processing.runner._results import TaskFailure

__all__ = ["MAX_WORKERS", "RunnerHooks", "check_int", "check_seconds"]


@dataclass(frozen=True)
class RunnerHooks:
    """How a coordinating context plugs into every run of a :class:`~._task_runner.TaskRunner`.

    Attributes:
        should_stop: Checked before each submission (and while waiting); a truthy answer
            stops the run gracefully. A string answer names the reason (``"SIGTERM"``) in
            the ``InterruptedRunError``.
        on_progress: ``f(n)``: ``n`` more items settled (completed, failed, or taken from
            the journal at the start unless ``on_restored`` is given). Called in the thread
            that called ``map``.
        on_restored: ``f(n)``: ``n`` items an earlier run settled, taken from the journal at
            the start; a progress display counts them as resumed, not as this run's work.
        on_complete: ``f(key, result)`` per item completed by this run, once durable.
        on_failure: ``f(failure)`` per item failed after its retries, once durable.
        context_wrapper: ``wrap(fn) -> fn`` applied, in the calling thread, to each task
            given to a thread executor (tasks already run in a copy of the caller's
            ``contextvars``); not used by process or Dask executors.
        worker_initializer: Called as ``f(*initargs)`` once in each worker process (pools
            the runner starts, Dask workers, processes of a user's executor); never in the
            runner's own process. Must be picklable for Dask and user executors.
        initargs: Arguments of ``worker_initializer``.
        worker_events: On Dask, ``{topic: handler}``: the runner's Client subscribes each
            handler to its event topic (``Worker.log_event`` in workers); the handler
            runs on the Client's event loop thread with each ``(timestamp, message)``.
        worker_flush: Called in each worker process of Dask or a user's executor after
            every task, before its results go back (the context flushes worker logs).
            What it returns, unless ``None``, travels back with the task's results.
        on_carried: ``f(payload)`` with what ``worker_flush`` returned in a worker, in the
            thread that called ``map``, as the task's results arrive (the context adds the
            progress counts that could not reach it otherwise).
    """

    should_stop: StopCheck | None = None
    on_progress: Callable[[int], None] | None = None
    on_restored: Callable[[int], None] | None = None
    on_complete: Callable[[str, Any], None] | None = None
    on_failure: Callable[[TaskFailure], None] | None = None
    context_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None
    worker_initializer: Callable[..., None] | None = None
    initargs: tuple[Any, ...] = ()
    worker_events: Mapping[str, Callable[[Any], None]] = field(default_factory=dict)
    worker_flush: Callable[[], Any] | None = None
    on_carried: Callable[[Any], None] | None = None


MAX_WORKERS = 4096
"""Most workers a runner starts. Far above the cores of any node this runs on (a 4-socket
node has a few hundred), so a larger count is a typo, which would start thousands of
processes or threads; past 2**31 Python's pools fail with ``OverflowError``."""


def check_int(
    name: str, value: Any, minimum: int, hint: str, *, maximum: int | None = None
) -> None:
    """Raise ``ConfigError`` naming ``name`` unless ``value`` is an integer in range."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        wanted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be an integer {wanted}", value=value, hint=hint, field=name)


def check_seconds(name: str, value: Any, *, positive: bool, hint: str) -> None:
    """Raise ``ConfigError`` naming ``name`` unless ``value`` is a number of seconds."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not ok or value < 0 or (positive and value == 0):
        raise ConfigError(
            f"{name} must be a number of seconds {'> 0' if positive else '>= 0'}",
            value=value,
            hint=hint,
            field=name,
        )

"""What runs inside a worker: the retry loop, outcomes, and once-per-process set-up.

:func:`run_unit` is the one function every executor runs: it calls the user's function on a
few ``(index, item)`` pairs, retrying each failure ``retries`` times ``retry_delay`` seconds
apart (not an ``ImportError``, nor an exception whose ``retryable`` attribute is false: see
:func:`retryable`), and returns a :class:`UnitReport`: one :class:`Outcome` per item.
Nothing a task raises escapes it (``SystemExit`` included; only a Ctrl-C's
``KeyboardInterrupt`` ends the run, :mod:`._interrupts`), so a failing item costs only its
own result; the traceback travels back as text (always picklable), and an exception whose
message cannot be made is described by its type.

Per-process set-up (the log configuration of the run, say) happens in two ways: pools the
runner creates call :func:`process_worker_init` when each worker starts; executors it does
not create (Dask, a user's executor) carry a :class:`WorkerSetup` in each task, which runs
the initializer once per worker process and, after each task, its ``after`` (the context
flushes the worker's log records there, so on Dask they travel ahead of the task's
result). What ``after`` returns rides back in the task's :class:`UnitReport` (the context
returns the progress counts that found no other way to the driver: a user's executor on
another node reaches no local socket). Scheduling is in :mod:`._engine`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lensing_ssc.processing.runner._interrupts import (
    InterruptWatch,
    error_message,
    is_task_failure,
    type_name,
)

__all__ = [
    "Outcome",
    "RetryPolicy",
    "UnitReport",
    "WorkerSetup",
    "describe_error",
    "process_worker_init",
    "retryable",
    "run_unit",
]

logger = logging.getLogger("lensing_ssc.processing.runner")

_PARENT_POLL = 0.5


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how far apart, a failing item is tried again.

    Attributes:
        retries: Extra attempts after the first (0: try once).
        delay: Seconds to wait before each retry.
    """

    retries: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one item in a worker.

    Attributes:
        index: The item's position in the run.
        ok: Whether ``value`` is a result (else it is ``(error_type, message, traceback)``).
        value: The result, or the error triple.
        attempts: Calls made.
        seconds: Wall time of all attempts.
    """

    index: int
    ok: bool
    value: Any
    attempts: int
    seconds: float


@dataclass(frozen=True)
class UnitReport:
    """What one task sends back: its items' outcomes, and what its worker carries along.

    Attributes:
        outcomes: One :class:`Outcome` per item, in the task's order.
        carried: What the worker set-up's ``after`` returned (``None``: nothing), for the
            runner's ``on_carried`` hook in the driver.
    """

    outcomes: list[Outcome]
    carried: Any = None


def describe_error(exc: BaseException) -> tuple[str, str, str]:
    """``(qualified type name, message, formatted traceback)`` of an exception.

    Never raises: an exception whose ``__str__`` raises is described by its type and by what
    that raised (:func:`._interrupts.error_message`), and so is a traceback that cannot be
    formatted.
    """
    cls = type(exc)
    try:
        trace = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    except Exception as failure:  # the traceback module guards str(); not everything else
        trace = f"<the traceback could not be formatted: {type_name(type(failure))}>"
    return type_name(cls), error_message(exc), trace


def retryable(exc: BaseException) -> bool:
    """Whether trying again may help: ``exc.retryable`` when it says (the package's errors
    do: bad data or settings fail the same way every time), never for an ``ImportError``
    (a missing package, ``ModuleNotFoundError``, fails every attempt the same way), else
    ``True``."""
    if isinstance(exc, ImportError):
        return False
    return bool(getattr(exc, "retryable", True))


def run_one(
    func: Callable[[Any], Any],
    index: int,
    item: Any,
    policy: RetryPolicy,
    interrupts: InterruptWatch | None = None,
) -> Outcome:
    """Call ``func(item)`` with retries; whatever it raises is its failure (``SystemExit``
    too), except a ``KeyboardInterrupt`` while ``interrupts`` counted a SIGINT: a Ctrl-C
    ends the run (:mod:`._interrupts`)."""
    start = time.perf_counter()
    attempts = 0
    while True:
        attempts += 1
        heard = 0 if interrupts is None else interrupts.count
        try:
            value = func(item)
        except BaseException as exc:
            if not is_task_failure(exc, interrupts is not None and interrupts.count != heard):
                raise
            if attempts > policy.retries or not retryable(exc):
                return Outcome(
                    index, False, describe_error(exc), attempts, time.perf_counter() - start
                )
            logger.warning(
                "item %d failed (attempt %d of %d), retrying: %s: %s",
                index,
                attempts,
                policy.retries + 1,
                type(exc).__name__,
                error_message(exc),
            )
            if policy.delay > 0:
                time.sleep(policy.delay)
            continue
        return Outcome(index, True, value, attempts, time.perf_counter() - start)


def run_unit(
    func: Callable[[Any], Any],
    pairs: Sequence[tuple[int, Any]],
    policy: RetryPolicy,
    setup: WorkerSetup | None = None,
) -> UnitReport:
    """Run ``func`` on each ``(index, item)`` pair; one :class:`Outcome` per pair, in order."""
    if setup is not None:
        setup.ensure()
    with InterruptWatch() as interrupts:
        outcomes = [run_one(func, index, item, policy, interrupts) for index, item in pairs]
    carried = None if setup is None else setup.finish()
    return UnitReport(outcomes, carried)


_done_setups: set[str] = set()
_setup_lock = threading.Lock()


@dataclass(frozen=True)
class WorkerSetup:
    """An initializer to run once in every worker process other than the runner's own.

    Attributes:
        initializer: Called as ``initializer(*initargs)``; must be picklable.
        initargs: Its arguments; must be picklable.
        runner_pid: The runner's process id (tasks running there need no set-up).
        token: Unique per runner, so one worker serving two runners sets up for each.
        after: Called after each task in those processes, before its outcomes go back;
            what it returns (picklable, ``None`` for nothing) goes back with them. An
            exception it raises is logged, never the items' failure.
    """

    initializer: Callable[..., None]
    initargs: tuple[Any, ...]
    runner_pid: int
    token: str
    after: Callable[[], Any] | None = None

    def ensure(self) -> None:
        """Run the initializer here unless this process already did (or is the runner)."""
        if os.getpid() == self.runner_pid or self.token in _done_setups:
            return
        with _setup_lock:
            if self.token not in _done_setups:
                self.initializer(*self.initargs)
                _done_setups.add(self.token)

    def finish(self) -> Any:
        """Run ``after`` here, unless this is the runner's process or there is none.

        Returns what ``after`` returned, to travel back with the task's outcomes (``None``
        when it did not run or failed).
        """
        if self.after is None or os.getpid() == self.runner_pid:
            return None
        try:
            return self.after()
        except Exception:  # forwarding what a task logged never fails the task
            logger.exception("the worker's after-task step failed; the results still go back")
            return None


def process_worker_init(initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Start-up of a worker process in a pool the runner owns.

    Ctrl-C reaches the whole process group; workers ignore it and let the runner decide
    (it stops gracefully, see :mod:`._engine`). A daemon thread ends the worker when its
    parent dies (the runner was killed), so no orphan keeps computing. Then the run's own
    initializer, if any.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_parent,
        args=(os.getppid(),),
        name="lensing_ssc-runner-parent-watch",
        daemon=True,
    ).start()
    if initializer is not None:
        initializer(*initargs)


def _exit_with_parent(parent_pid: int) -> None:
    never = threading.Event()
    while not never.wait(_PARENT_POLL):
        if os.getppid() != parent_pid:
            os._exit(1)

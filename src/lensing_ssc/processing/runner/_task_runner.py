"""Map a function over items with any executor, resumably: :class:`TaskRunner` and :func:`run_map`.

A run calls ``func(item)`` for each item and returns a :class:`MapResult` whose ``results``
are in input order. With a ``journal`` file, every finished item is appended to it, and a
rerun skips what an earlier (killed, stopped or failed) run completed. A failing item is
retried ``retries`` times and then recorded with its traceback; the other items go on.
An item that kills its worker process is recorded the same way. When ``should_stop()``
turns true, nothing new is submitted, what finishes within ``stop_timeout`` is saved, and
:class:`~lensing_ssc.core.base.exceptions.InterruptedRunError` is raised.

Executors: ``"serial"`` (this thread), ``"threads"``, ``"processes"``, ``"dask"`` (a local
cluster, or ``scheduler_address=`` to join one), a ``distributed.Client``, any
``concurrent.futures.Executor`` instance (used as is), or a zero-argument factory of one
(``mpi4py.futures.MPIPoolExecutor``: the runner owns it and rebuilds it if a worker dies).

This module checks the runner's arguments and takes each ``map`` call; ``TaskRunner`` is
built on its executor (:mod:`._runner_executor`) and its runs (:mod:`._runs`), and takes
:class:`~._options.RunnerHooks` (:mod:`._options`).

Not here: signal handling, resource limits and progress display (``ManagerContext``, in
:mod:`lensing_ssc.processing.managers`, wires them into :class:`~._options.RunnerHooks`). The
journal format, keys and scheduling are private modules of this package;
``docs/runner.md`` is the user guide.

Example:
    >>> from lensing_ssc.processing.runner import run_map
    >>> run_map(abs, [-2, 3, -5]).results
    [2, 3, 5]
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import resolve_codec
from lensing_ssc.processing.runner._adapter import EXECUTOR_NAMES
from lensing_ssc.processing.runner._executors import check_dask_start, resolve_scheduler
from lensing_ssc.processing.runner._fork_guard import PoolStarts
from lensing_ssc.processing.runner._options import (
    MAX_WORKERS,
    RunnerHooks,
    check_int,
    check_seconds,
)
from lensing_ssc.processing.runner._results import MapResult
from lensing_ssc.processing.runner._runs import RunnerRuns
from lensing_ssc.processing.runner._worker import RetryPolicy

__all__ = ["TaskRunner", "run_map"]

R = TypeVar("R")


class TaskRunner(RunnerRuns):
    """Runs functions over items on one executor, journalled and resumable.

    Args:
        executor: ``"serial"``, ``"threads"``, ``"processes"``, ``"dask"``, a
            ``concurrent.futures.Executor`` instance (borrowed: never shut down), a
            zero-argument factory returning one (owned, rebuilt if a worker dies), or a
            ``distributed.Client``.
        max_workers: Workers to start, at most :data:`MAX_WORKERS` (default: usable CPUs;
            threads: CPUs + 4, ≤ 32); for a user's executor, what it reports (see
            :attr:`max_workers`).
        retries: Extra attempts for an item that raises or kills its worker.
        retry_delay: Seconds between attempts.
        chunksize: Items per task, or ``"auto"``: sized from measured item times so a task
            lasts ~0.1 s (processes) or ~0.25 s (Dask). A SIGKILL redoes at most the items
            in flight: ``max_in_flight`` tasks of ``chunksize`` items.
        max_in_flight: Tasks submitted at once (default, per worker: two, or enough for
            about 0.1 s of queued work, at most 16).
        stop_timeout: On a graceful stop, seconds to let running items finish before
            they are abandoned (process workers are then killed).
        no_workers_timeout: Seconds a Dask cluster may have no workers before the run
            stops as on a graceful stop (``InterruptedRunError``); a lost scheduler stops
            it at once.
        fsync: Group-commit the journal to stable storage; ``False`` survives a killed
            process but not a machine crash.
        commit_interval: Seconds between journal fsyncs (stretched to 10 fsync durations
            on slow filesystems); completions are reported (``on_complete``, progress) only
            once their record is on disk. Each fsync briefly stalls the journal's writes,
            so shorter intervals cost more.
        result_compression: Codec for results above 64 KiB in the journal.
        scheduler_address: With ``"dask"``, join this scheduler instead of starting a
            local cluster: an address (``tcp://host:8786``) or the file ``dask scheduler
            --scheduler-file`` writes. Default: ``DASK_SCHEDULER_ADDRESS`` when set.
        mp_context: Start method (``"fork"``, ``"spawn"``, ``"forkserver"``) or context of
            the worker processes of ``"processes"`` (default: Python's, but not a fork of a
            process where GNU OpenMP threads run: ``docs/runner.md``) and of the local
            ``"dask"`` cluster (default: ``"forkserver"`` where there is one; ``"fork"``
            is refused there).
        hooks: Callbacks for a coordinating context (:class:`RunnerHooks`).

    Raises:
        ConfigError: An argument is out of range or of the wrong type.

    Example:
        >>> with TaskRunner("threads", max_workers=2) as runner:
        ...     runner.map(str.upper, ["a", "b"]).results
        ['A', 'B']
    """

    def __init__(
        self,
        executor: Any = "serial",
        *,
        max_workers: int | None = None,
        retries: int = 0,
        retry_delay: float = 0.0,
        chunksize: int | Literal["auto"] = "auto",
        max_in_flight: int | None = None,
        stop_timeout: float = 5.0,
        no_workers_timeout: float = 60.0,
        fsync: bool = True,
        commit_interval: float = 0.2,
        result_compression: str = "auto",
        scheduler_address: str | None = None,
        mp_context: multiprocessing.context.BaseContext | str | None = None,
        hooks: RunnerHooks | None = None,
    ) -> None:
        if max_workers is not None:
            check_int(
                "max_workers",
                max_workers,
                1,
                "e.g. 4, or None for the usable CPUs",
                maximum=MAX_WORKERS,
            )
        check_int("retries", retries, 0, "0 tries each item once")
        check_seconds("retry_delay", retry_delay, positive=False, hint="e.g. 1.0")
        if chunksize != "auto":
            check_int("chunksize", chunksize, 1, 'e.g. 10, or "auto"')
        if max_in_flight is not None:
            check_int("max_in_flight", max_in_flight, 1, "e.g. 4 per worker")
        check_seconds("stop_timeout", stop_timeout, positive=False, hint="e.g. 5.0")
        check_seconds("no_workers_timeout", no_workers_timeout, positive=True, hint="e.g. 60")
        check_seconds("commit_interval", commit_interval, positive=True, hint="e.g. 0.2")
        resolve_codec(result_compression)  # ConfigError now, not one per large result later
        methods = multiprocessing.get_all_start_methods()
        if isinstance(mp_context, str) and mp_context not in methods:
            raise ConfigError(
                f"unknown start method {mp_context!r}",
                value=mp_context,
                field="mp_context",
                hint=f"use one of {', '.join(methods)}",
            )
        if isinstance(executor, str) and executor not in EXECUTOR_NAMES:
            raise ConfigError(
                f"unknown executor {executor!r}",
                value=executor,
                field="executor",
                hint=f"use one of {', '.join(EXECUTOR_NAMES)}, or an Executor",
            )
        if scheduler_address is not None and executor != "dask":
            raise ConfigError(
                "scheduler_address is only used with executor='dask'",
                value=scheduler_address,
                field="scheduler_address",
                hint="pass executor='dask' too",
            )
        scheduler_address = resolve_scheduler(scheduler_address, executor)
        check_dask_start(executor, mp_context, scheduler_address)
        self._executor_spec = executor
        self._max_workers = max_workers
        self._policy = RetryPolicy(retries, float(retry_delay))
        self._chunksize = None if chunksize == "auto" else int(chunksize)
        self._max_in_flight = max_in_flight
        self._stop_timeout = float(stop_timeout)
        self._no_workers_timeout = float(no_workers_timeout)
        self._fsync = fsync
        self._commit_interval = float(commit_interval)
        self._compression = result_compression
        self._scheduler_address = scheduler_address
        self._mp_context = mp_context
        self._pool_starts = PoolStarts(mp_context)  # how "processes" starts, at each start
        self.hooks = hooks or RunnerHooks()
        self._token = uuid.uuid4().hex
        self._adapter = None
        self._kind = "executor"  # until a non-named executor is started
        self._ledger = None
        self._lock = threading.Lock()
        self._closed = False

    def map(
        self,
        func: Callable[[Any], R],
        items: Iterable[Any],
        *,
        journal: str | os.PathLike[str] | None = None,
        key: Callable[[Any], Any] | None = None,
        resume: bool = True,
        rerun_failed: bool = True,
        retries: int | None = None,
        retry_delay: float | None = None,
        chunksize: int | Literal["auto"] | None = None,
        on_complete: Callable[[str, Any], None] | None = None,
        name: str | None = None,
    ) -> MapResult[R]:
        """Run ``func`` over ``items``; results in input order.

        Args:
            func: Called as ``func(item)``; picklable for process and Dask executors.
            items: The inputs (materialised into a list).
            journal: File recording each finished item; a rerun with the same journal
                skips them. ``None``: nothing is saved.
            key: Names each item (``str`` or ``int``); default: position + content hash.
                See ``docs/runner.md`` for how keys decide what is reused.
            resume: ``False`` empties the journal first.
            rerun_failed: Try items that failed in an earlier run again (``False``: report
                their recorded failure).
            retries, retry_delay, chunksize: Override the runner's for this run (the
                same executor, its workers and what they hold, serve every run).
            on_complete: ``f(key, result)`` per item completed by this run, once durable
                (in addition to ``hooks.on_complete``).
            name: The run's name in logs and status (default: the journal's file name).

        Returns:
            The :class:`MapResult`; check ``.failures``.

        Raises:
            InterruptedRunError: ``should_stop()`` turned true, or the Dask scheduler was
                lost or its cluster had no workers for ``no_workers_timeout`` seconds,
                before every item was done; every finished item is saved; ``.value`` is
                the partial :class:`MapResult`. (A stop while the last items run, which
                then finish, returns the whole result.)
            CheckpointError: The journal cannot be used (locked by another run, unwritable).
            ConfigError: Bad arguments, unpicklable items without ``key=``, duplicate keys.
        """
        if not callable(func):
            raise ConfigError(
                "func must be callable",
                value=func,
                field="func",
                hint="pass a function of one item",
            )
        policy = self._policy
        if retries is not None or retry_delay is not None:
            if retries is not None:
                check_int("retries", retries, 0, "0 tries each item once")
            if retry_delay is not None:
                check_seconds("retry_delay", retry_delay, positive=False, hint="e.g. 1.0")
            policy = RetryPolicy(
                policy.retries if retries is None else retries,
                policy.delay if retry_delay is None else float(retry_delay),
            )
        fixed = self._chunksize
        if chunksize is not None:
            if chunksize != "auto":
                check_int("chunksize", chunksize, 1, 'e.g. 10, or "auto"')
            fixed = None if chunksize == "auto" else int(chunksize)
        with self._lock:
            return self._map(
                func,
                list(items),
                journal,
                key,
                resume,
                rerun_failed,
                policy,
                fixed,
                on_complete,
                name,
            )

    def get_status(self) -> dict[str, Any]:
        """JSON-ready state: executor, running workers, and the current (or last) run.

        Example:
            >>> TaskRunner().get_status()
            {'executor': 'serial', 'workers': 1, 'run': None}
        """
        adapter = self._adapter
        if self._executor_spec == "serial":
            workers = 1
        else:
            workers = 0 if adapter is None else adapter.workers()
        ledger = self._ledger
        return {
            "executor": self.executor_kind,
            "workers": workers,
            "run": None if ledger is None else ledger.snapshot().to_dict(),
        }

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_map(
    func: Callable[[Any], R],
    items: Iterable[Any],
    *,
    executor: Any = "serial",
    journal: str | os.PathLike[str] | None = None,
    key: Callable[[Any], Any] | None = None,
    **options: Any,
) -> MapResult[R]:
    """Run ``func`` over ``items`` once with a fresh :class:`TaskRunner`, then close it.

    ``options`` are :class:`TaskRunner`'s keyword arguments (``max_workers``, ``retries``, ...).

    Example:
        >>> run_map(len, ["ab", "c"], executor="threads").results
        [2, 1]
    """
    with TaskRunner(executor, **options) as runner:
        return runner.map(func, items, journal=journal, key=key)

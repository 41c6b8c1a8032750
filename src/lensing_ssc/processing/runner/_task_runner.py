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

Not here: signal handling, resource limits and progress display (``ManagerContext``, in
:mod:`lensing_ssc.processing.managers`, wires them into :class:`RunnerHooks`). The journal
format, keys and scheduling are private modules of this package;
``docs/runner.md`` is the user guide.

Example:
    >>> from lensing_ssc.processing.runner import run_map
    >>> run_map(abs, [-2, 3, -5]).results
    [2, 3, 5]
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from lensing_ssc.core.base.exceptions import ConfigError, InterruptedRunError
from lensing_ssc.core.io import resolve_codec
from lensing_ssc.processing.runner._adapter import EXECUTOR_NAMES, Adapter
from lensing_ssc.processing.runner._engine import StopCheck, run_parallel, run_serial
from lensing_ssc.processing.runner._executors import (
    build_adapter,
    class_path,
    executor_class,
    forks_workers,
    is_dask_client,
    resolve_scheduler,
    runs_in_this_process,
    worker_count,
)
from lensing_ssc.processing.runner._fork_guard import PoolStarts
from lensing_ssc.processing.runner._journal import Journal
from lensing_ssc.processing.runner._keys import function_identity, item_keys
from lensing_ssc.processing.runner._ledger import Ledger, Reporters
from lensing_ssc.processing.runner._pools import PoolAdapter
from lensing_ssc.processing.runner._results import MapResult, RunSnapshot, TaskFailure
from lensing_ssc.processing.runner._worker import RetryPolicy, WorkerSetup

if TYPE_CHECKING:
    from lensing_ssc.processing.runner._dask import ClusterWorker, DaskAdapter

__all__ = [
    "MAX_WORKERS",
    "MapResult",
    "RunSnapshot",
    "RunnerHooks",
    "TaskFailure",
    "TaskRunner",
    "run_map",
]

logger = logging.getLogger("lensing_ssc.processing.runner")

R = TypeVar("R")


@dataclass(frozen=True)
class RunnerHooks:
    """How a coordinating context plugs into every run of a :class:`TaskRunner`.

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


def _check_int(
    name: str, value: Any, minimum: int, hint: str, *, maximum: int | None = None
) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        wanted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ConfigError(f"{name} must be an integer {wanted}", value=value, hint=hint, field=name)


def _check_seconds(name: str, value: Any, *, positive: bool, hint: str) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not ok or value < 0 or (positive and value == 0):
        raise ConfigError(
            f"{name} must be a number of seconds {'> 0' if positive else '>= 0'}",
            value=value,
            hint=hint,
            field=name,
        )


class TaskRunner:
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
            ``"dask"`` cluster (default: ``"forkserver"`` where there is one).
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
            _check_int(
                "max_workers",
                max_workers,
                1,
                "e.g. 4, or None for the usable CPUs",
                maximum=MAX_WORKERS,
            )
        _check_int("retries", retries, 0, "0 tries each item once")
        _check_seconds("retry_delay", retry_delay, positive=False, hint="e.g. 1.0")
        if chunksize != "auto":
            _check_int("chunksize", chunksize, 1, 'e.g. 10, or "auto"')
        if max_in_flight is not None:
            _check_int("max_in_flight", max_in_flight, 1, "e.g. 4 per worker")
        _check_seconds("stop_timeout", stop_timeout, positive=False, hint="e.g. 5.0")
        _check_seconds("no_workers_timeout", no_workers_timeout, positive=True, hint="e.g. 60")
        _check_seconds("commit_interval", commit_interval, positive=True, hint="e.g. 0.2")
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
        self._adapter: Adapter | None = None
        self._kind = "executor"  # until a non-named executor is started
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def executor_kind(self) -> str:
        """``"serial"``, ``"threads"``, ``"processes"``, ``"dask"`` or ``"executor"``."""
        spec = self._executor_spec
        if isinstance(spec, str):
            return spec
        return "dask" if is_dask_client(spec) else self._kind

    @property
    def executor_name(self) -> str:
        """What runs the items, for a record: the executor's name (``"dask"`` for a Client
        too), else the class of the user's executor as ``module.Class``
        (``"mpi4py.futures.MPIPoolExecutor"``, also for the class passed as a factory).

        A factory that is no class is named by what it builds (built now if it is not yet).

        Example:
            >>> from concurrent.futures import ThreadPoolExecutor
            >>> with ThreadPoolExecutor(2) as pool:
            ...     TaskRunner(pool).executor_name
            'concurrent.futures.ThreadPoolExecutor'
        """
        spec = self._executor_spec
        if isinstance(spec, str) or is_dask_client(spec):
            return self.executor_kind
        cls = executor_class(spec)
        if cls is None:
            adapter = self._adapter_now()
            if not isinstance(adapter, PoolAdapter):  # build_adapter's answer to a factory
                raise TypeError(f"a factory needs a pool adapter, got {type(adapter).__name__}")
            cls = adapter.executor_class()
        return class_path(cls)

    @property
    def max_workers(self) -> int:
        """Items run at once: 1 serially, else ``max_workers`` or the executor's default.

        The default is the usable CPUs (threads: CPUs + 4, at most 32): the number the
        executor is started with. A joined Dask cluster is asked (connecting to it now):
        the threads of its workers. A user's executor is asked too (a factory's is built
        now): ``num_workers`` of mpi4py's ``MPIPoolExecutor``, the ``max_workers`` of a
        standard pool; one that does not say is planned for with the usable CPUs.

        Example:
            >>> TaskRunner("threads", max_workers=3).max_workers
            3
        """
        spec = self._executor_spec
        asks_pool = self._max_workers is None and not isinstance(spec, str)
        if self.joins_cluster or asks_pool:
            return self._adapter_now().workers()
        return worker_count(spec, self._max_workers)

    @property
    def joins_cluster(self) -> bool:
        """Whether items run on a Dask cluster the runner joins rather than starts."""
        return self._scheduler_address is not None or (
            not isinstance(self._executor_spec, str) and is_dask_client(self._executor_spec)
        )

    @property
    def scheduler_address(self) -> str | None:
        """The Dask scheduler joined (given, from a scheduler file or the environment)."""
        if self._scheduler_address is not None:
            return self._scheduler_address
        if not self.joins_cluster or self._adapter is None:
            return None
        return self._dask_adapter().scheduler_address

    def cluster_workers(self) -> tuple[ClusterWorker, ...]:
        """The workers of a joined Dask cluster, asked of its scheduler; ``()`` otherwise.

        Each :class:`~._dask.ClusterWorker` has its ``nthreads`` and ``memory_limit``
        (bytes, ``None`` for none): what a memory estimate of the run's workers needs.
        """
        if not self.joins_cluster:
            return ()
        return self._dask_adapter().cluster_workers()

    def _dask_adapter(self) -> DaskAdapter:
        # Imported here: distributed takes a second to import, and only Dask runs need it.
        from lensing_ssc.processing.runner._dask import DaskAdapter

        adapter = self._adapter_now()
        if not isinstance(adapter, DaskAdapter):  # joins_cluster promised a Dask executor
            raise TypeError(f"a joined cluster needs a Dask adapter, got {type(adapter).__name__}")
        return adapter

    def worker_count(self) -> int:
        """Workers the executor has: a joined Dask cluster's workers, else :attr:`max_workers`.

        For a joined cluster this asks its scheduler (``client.scheduler_info()``); a worker
        with several threads counts once, as Dask counts it.
        """
        if self.joins_cluster:
            return len(self.cluster_workers())
        return self.max_workers

    @property
    def runs_in_this_process(self) -> bool:
        """Whether items run in this process: serially, in threads or a thread pool.

        Items that run elsewhere (processes, Dask, a user's executor) see nothing of this
        process's state set after their workers started.
        """
        return runs_in_this_process(self._executor_spec)

    @property
    def forks_workers(self) -> bool:
        """Whether worker processes start as forks of this one, inheriting its memory.

        True only for ``"processes"`` with the ``fork`` start method (``mp_context``, else
        Python's default unless GNU OpenMP threads run here, see ``docs/runner.md``), and
        for the local cluster of ``"dask"`` with ``mp_context`` ``"fork"`` (by default its
        workers fork from a fork server): what this process computed before the first
        :meth:`map` is then in every worker without being recomputed or sent. For a
        process pool, the answer is the choice made at its last start, or, before it
        starts, the choice made now (its start makes it again, with the task in hand).
        """
        if self._executor_spec == "processes":
            return self._pool_starts.current().forks
        return forks_workers(self._executor_spec, self._mp_context) and not self.joins_cluster

    def _start_pool(self) -> multiprocessing.context.BaseContext | None:
        """The context of the process pool starting now (chosen afresh at each start)."""
        return self._pool_starts.start(self.hooks.worker_initializer, self.hooks.initargs)

    def _adapter_now(self) -> Adapter:
        if self._adapter is None:
            hooks = self.hooks
            on_dask = self.executor_kind == "dask"
            initargs = hooks.initargs
            setup = None
            if hooks.worker_initializer is not None:
                setup = WorkerSetup(
                    hooks.worker_initializer,
                    initargs,
                    os.getpid(),
                    self._token,
                    after=hooks.worker_flush,
                )
            self._adapter = build_adapter(
                self._executor_spec,
                max_workers=self._max_workers,
                scheduler_address=self._scheduler_address,
                mp_context=self._mp_context,
                context_wrapper=hooks.context_wrapper,
                worker_initializer=hooks.worker_initializer,
                initargs=initargs,
                setup=setup,
            )
            self._adapter.no_workers_timeout = self._no_workers_timeout
            if self._executor_spec == "processes" and isinstance(self._adapter, PoolAdapter):
                self._adapter.start_context = self._start_pool
            self._kind = self._adapter.kind
            if on_dask and hooks.worker_events:
                self._dask_adapter().listen(hooks.worker_events)
        self._closed = False
        return self._adapter

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
                _check_int("retries", retries, 0, "0 tries each item once")
            if retry_delay is not None:
                _check_seconds("retry_delay", retry_delay, positive=False, hint="e.g. 1.0")
            policy = RetryPolicy(
                policy.retries if retries is None else retries,
                policy.delay if retry_delay is None else float(retry_delay),
            )
        fixed = self._chunksize
        if chunksize is not None:
            if chunksize != "auto":
                _check_int("chunksize", chunksize, 1, 'e.g. 10, or "auto"')
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

    def _map(
        self,
        func: Callable[[Any], Any],
        items: list[Any],
        journal_path: str | os.PathLike[str] | None,
        key: Callable[[Any], Any] | None,
        resume: bool,
        rerun_failed: bool,
        policy: RetryPolicy,
        chunksize: int | None,
        on_complete: Callable[[str, Any], None] | None,
        name: str | None,
    ) -> MapResult[Any]:
        hooks = self.hooks
        started = time.perf_counter()
        path = None if journal_path is None else Path(journal_path)
        run_name = name or (path.name if path is not None else "map")
        if path is None and key is None:
            keys = [str(index) for index in range(len(items))]
        else:
            keys = item_keys(items, key)
        reporters = Reporters(
            on_complete=tuple(f for f in (hooks.on_complete, on_complete) if f is not None),
            on_failure=() if hooks.on_failure is None else (hooks.on_failure,),
            on_progress=hooks.on_progress,
            on_restored=hooks.on_restored,
        )
        journal = None
        contents = None
        if path is not None:
            journal, contents = Journal.open(
                path,
                function=function_identity(func),
                keys=keys,
                resume=resume,
                fsync=self._fsync,
                commit_interval=self._commit_interval,
                compression=self._compression,
            )
        ledger = Ledger(run_name, keys, journal, reporters)
        self._ledger = ledger
        try:
            if contents is not None:
                ledger.restore(contents, rerun_failed=rerun_failed)
                if contents.damaged_bytes or contents.torn_bytes:
                    logger.warning(
                        "journal %s: skipped %d damaged bytes, cut %d torn bytes",
                        path,
                        contents.damaged_bytes,
                        contents.torn_bytes,
                    )
                contents = None  # the ledger keeps 8 bytes per restored item, not the key index
            logger.info(
                "run %s: %d items, %d from an earlier run, executor %s",
                run_name,
                len(items),
                len(items) - len(ledger.todo),
                self._describe(),
            )
            if not ledger.todo:
                reason = None
            elif self._executor_spec == "serial":
                reason = run_serial(ledger, func, items, policy, hooks.should_stop)
            else:
                self._pool_starts.task = func
                reason = run_parallel(
                    ledger,
                    func,
                    items,
                    self._adapter_now(),
                    policy,
                    chunksize=chunksize,
                    max_in_flight=self._max_in_flight,
                    should_stop=hooks.should_stop,
                    stop_timeout=self._stop_timeout,
                    on_carried=hooks.on_carried,
                )
        finally:
            ledger.running = False
            if journal is not None:
                journal.close()
        result = ledger.result(time.perf_counter() - started)
        logger.info(
            "run %s: %d completed, %d from an earlier run, %d failed, %d left, %.2f s",
            run_name,
            result.completed,
            result.skipped,
            result.failed,
            result.remaining,
            result.elapsed,
        )
        if reason is not None and not result.remaining:
            # The stop came while the last items ran, and they finished: the run is whole.
            logger.info("run %s: a stop (%s) came after its last item started", run_name, reason)
        elif reason is not None:
            raise InterruptedRunError(
                f"run {run_name!r} stopped ({reason}) with {result.remaining} of "
                f"{len(items)} items left; every finished item is saved",
                value=result,
                signal_name=reason,
                hint="run it again with the same journal to finish"
                if path is not None
                else "pass journal= to keep finished items across runs",
            )
        return result

    def _describe(self) -> str:
        """The executor in a log line, without starting it (a finished run needs none)."""
        if self._adapter is None:
            return self.executor_kind
        return f"{self._adapter.kind} ({self._adapter.workers()} workers)"

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

    def close(self) -> None:
        """Shut down what the runner started (pools, a local Dask cluster); idempotent.

        A later :meth:`map` starts them again.
        """
        if self._closed:
            return
        self._closed = True
        adapter, self._adapter = self._adapter, None
        if adapter is not None:
            adapter.close()

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

"""The executor a :class:`~._task_runner.TaskRunner` runs items on: started, asked, closed.

:class:`RunnerExecutor` is the base of ``TaskRunner``. It declares what the runner's
constructor settles about its executor, builds the executor's adapter on first use
(:mod:`._executors`: a pool, a Dask client, a user's executor), answers what a caller plans
with (its kind and name, how many workers, whether they fork from this process or run in
it, the workers of a joined Dask cluster) and closes what it started.

Not here: the runner's arguments and ``map`` (:mod:`._task_runner`), one run over the
items (:mod:`._runs`), the adapters themselves (:mod:`._adapter`, :mod:`._pools`,
:mod:`._dask`).

Example:
    >>> from lensing_ssc.processing.runner import TaskRunner
    >>> with TaskRunner("threads", max_workers=2) as runner:
    ...     runner.executor_kind, runner.runs_in_this_process
    ('threads', True)
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from typing import TYPE_CHECKING, Any

from lensing_ssc.processing.runner._adapter import Adapter
from lensing_ssc.processing.runner._executors import (
    build_adapter,
    class_path,
    executor_class,
    forks_workers,
    is_dask_client,
    runs_in_this_process,
    worker_count,
)
from lensing_ssc.processing.runner._fork_guard import PoolStarts
from lensing_ssc.processing.runner._options import RunnerHooks
from lensing_ssc.processing.runner._pools import PoolAdapter
from lensing_ssc.processing.runner._worker import WorkerSetup

if TYPE_CHECKING:
    from lensing_ssc.processing.runner._dask import ClusterWorker, DaskAdapter

__all__ = ["RunnerExecutor"]


class RunnerExecutor:
    """The executor side of a :class:`~._task_runner.TaskRunner`.

    ``TaskRunner.__init__`` sets every attribute declared here.
    """

    hooks: RunnerHooks
    _executor_spec: Any  # a name, an Executor, a factory of one, or a distributed.Client
    _max_workers: int | None  # as given; None: the executor's default
    _scheduler_address: str | None  # the Dask scheduler joined, if any
    _mp_context: multiprocessing.context.BaseContext | str | None  # as given
    _pool_starts: PoolStarts  # how "processes" starts, at each start
    _no_workers_timeout: float
    _token: str  # unique per runner: a worker serving two runners sets up for each
    _adapter: Adapter | None  # None until first use, and after close()
    _kind: str  # the adapter's kind once built; "executor" until then
    _closed: bool

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
            >>> from lensing_ssc.processing.runner import TaskRunner
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
            >>> from lensing_ssc.processing.runner import TaskRunner
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

    def _describe(self) -> str:
        """The executor in a log line, without starting it (a finished run needs none)."""
        if self._adapter is None:
            return self.executor_kind
        return f"{self._adapter.kind} ({self._adapter.workers()} workers)"

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

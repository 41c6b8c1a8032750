"""The Dask executor: a local cluster by default, a scheduler address, or the user's Client.

Imported only when Dask is asked for (``executor="dask"`` or a ``distributed.Client``),
because importing ``distributed`` takes about a second. Without the ``dask`` extra, asking
for it raises ``ModuleNotFoundError`` naming the extra.

- Default: a ``LocalCluster`` of ``n_workers`` single-threaded worker processes, dashboard
  off, Dask's own logs at CRITICAL only. The runner owns it and closes it. Two of Dask's
  background activities are turned down there (:data:`LOCAL_CLUSTER_CONFIG`): each wakes a
  thread of every worker process, which takes the GIL from the running task (and, on a
  machine with as many workers as cores, a core from another worker).
- ``scheduler_address``: join a running cluster (``dask-scheduler``, ``dask-jobqueue``); the
  runner owns only its Client.
- A ``distributed.Client``: used as is, never closed by the runner.

When a worker dies, Dask fails the tasks it held with ``KilledWorker`` (the cluster the
runner starts allows no reruns: ``distributed.scheduler.allowed-failures`` is 0; a joined
cluster keeps its own setting). Dask's attribution is loose (a worker holds queued tasks
too), so the runner treats these items as suspects and runs each alone, as for a process
pool (:mod:`._engine`). The Nanny restarts dead workers. Dask's own logs, which repeat
these failures, are kept to CRITICAL in the cluster the runner starts. Generic executors
are in :mod:`._pools`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from lensing_ssc.processing.runner._adapter import Adapter
from lensing_ssc.processing.runner._worker import WorkerSetup

try:
    import dask
    import distributed
except ImportError:  # pragma: no cover - exercised only without the dask extra
    dask = None  # type: ignore[assignment]
    distributed = None  # type: ignore[assignment]

__all__ = ["LOCAL_CLUSTER_CONFIG", "DaskAdapter"]

_WORKER_REFRESH = 2.0

LOCAL_CLUSTER_CONFIG: dict[str, object] = {
    # A dead worker fails its tasks at once; the runner then runs the suspects alone.
    "distributed.scheduler.allowed-failures": 0,
    # The statistical profiler samples the running task's stack every 10 ms, taking the GIL
    # from it each time; its only reader is the dashboard, which is off. Measured on 2
    # cores with pure-Python tasks: a third of the time tasks spent off the CPU.
    "distributed.worker.profile.enabled": False,
    # Event-loop health ticks, 50 a second in every process of the cluster (scheduler,
    # nannies, workers); once a second still reports a loop blocked for 3 s.
    "distributed.admin.tick.interval": "1s",
}
"""Dask settings of the cluster the runner starts (a joined cluster keeps its own)."""


class DaskAdapter(Adapter):
    """Runs tasks on a Dask cluster (see the module docstring for which one).

    Raises:
        ModuleNotFoundError: ``distributed`` is not installed.
    """

    kind = "dask"
    # A Dask task costs ~6 ms of CPU between client, scheduler and worker (measured with
    # no-op tasks on 2 cores); at 0.25 s per task that is ~2 % of the work, at 0.1 s 6 %.
    chunk_target = 0.25

    def __init__(
        self,
        *,
        client: Any | None,
        scheduler_address: str | None,
        n_workers: int,
        setup: WorkerSetup | None,
    ) -> None:
        if distributed is None:
            raise ModuleNotFoundError(
                'the Dask executor needs the "dask" extra: pip install "lensing-ssc[dask]"',
                name="distributed",
            )
        self.task_setup = setup
        self._given = client
        self._address = scheduler_address
        self._n_workers = n_workers
        self._client: Any = client
        self._cluster: Any = None
        self._workers = n_workers
        self._workers_at = 0.0

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` in use (started on first use)."""
        if self._client is None:
            self._start()
        return self._client

    def _start(self) -> None:
        if self._address is not None:
            self._client = distributed.Client(self._address, set_as_default=False)
            return
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            self._cluster = distributed.LocalCluster(
                n_workers=self._n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # The scheduler still serves /health on an HTTP port (8787 unless told):
                # a free local port, so several clusters never clash or warn.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.CRITICAL,
            )
        self._client = distributed.Client(self._cluster, set_as_default=False)

    def workers(self) -> int:
        now = time.monotonic()
        if now - self._workers_at >= _WORKER_REFRESH:
            threads = sum(self.client.nthreads().values())
            self._workers = threads or self._n_workers  # a cluster still scaling up
            self._workers_at = now
        return self._workers

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def is_worker_death(self, exc: BaseException) -> bool:
        return isinstance(exc, distributed.KilledWorker)

    def rebuild(self) -> None:
        """Nothing to do: the Nanny replaces dead workers itself."""

    def cancel_queued(self, futures: Iterable[Any]) -> None:
        """Nothing: Dask cannot tell queued from running tasks; they get the stop timeout."""

    def terminate(self, futures: Iterable[Any]) -> None:
        """Cancel the tasks; close the cluster we started (the next run starts another)."""
        pending = list(futures)
        if pending and self._client is not None:
            self._client.cancel(pending)
        if self._cluster is not None:
            self.close()

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._cluster = None
        if client is not None and client is not self._given:
            self._client = None
            client.close()
        if cluster is not None:
            cluster.close()

"""The Dask executor: a local cluster by default, a scheduler address, or the user's Client.

Imported only when Dask is asked for (``executor="dask"`` or a ``distributed.Client``),
because importing ``distributed`` takes about a second. Without the ``dask`` extra, asking
for it raises ``ModuleNotFoundError`` naming the extra.

- Default: a ``LocalCluster`` of ``n_workers`` single-threaded worker processes, dashboard
  off, Dask's own logs at CRITICAL only. The runner owns it and closes it. Dask's
  background activities that serve only the dashboard or other workloads are turned down
  there (:data:`LOCAL_CLUSTER_CONFIG`): each wakes a thread of every worker process, which
  takes the GIL from the running task (and, on a machine with as many workers as cores, a
  core from another worker). Its workers start from a fork server by default
  (:func:`~._executors.dask_start_method`): a single-threaded process, started once per
  process before ``distributed`` is imported here, that preloads ``distributed`` and this
  package's modules and forks each worker, which then starts in a fraction of a second
  instead of importing them afresh (~2 s of CPU each, as Dask's default ``spawn`` does);
  what each worker would still read as it starts, the server reads once for all
  (:mod:`._fork_warmup`). Its workers share this machine's cores, and say so
  (``workers_per_core``): the scheduling loop sizes their tasks by the work they do, not
  by how long they take while other workers hold the cores (:mod:`._chunk_sizer`).
  ``mp_context="spawn"`` starts them afresh; ``"fork"`` is refused with a ``ConfigError``
  when the runner is made (:data:`~._executors.FORK_REFUSED` says why). A worker the Nanny
  starts again after a death starts Dask's default way: the start method is a setting of
  the whole process, set only while the cluster starts. Every worker ignores SIGINT, as
  pool workers do (a Ctrl-C reaches the whole process group; the runner decides), and
  forgets signal handlers a fork copied from this process (:func:`dask_setup`).
- ``scheduler_address``: join a running cluster (``dask scheduler``, ``dask-jobqueue``); the
  runner owns only its Client. A scheduler that does not answer within Dask's connect
  timeout (``distributed.comm.timeouts.connect``) is a ``ConfigError`` naming the address.
- A ``distributed.Client``: used as is, never closed by the runner.

A joined cluster is asked, not assumed: :meth:`DaskAdapter.cluster_workers` lists its
workers with their threads and memory limits (:class:`ClusterWorker`). Which address to
join (a scheduler file, ``DASK_SCHEDULER_ADDRESS``) is decided in :mod:`._executors`.

When a worker dies, Dask fails the tasks it held with ``KilledWorker`` (the cluster the
runner starts allows no reruns: ``distributed.scheduler.allowed-failures`` is 0; a joined
cluster keeps its own setting). Dask's attribution is loose (a worker holds queued tasks
too), so the runner treats these items as suspects and runs each alone, as for a process
pool (:mod:`._parallel_run`). The Nanny restarts dead workers. Dask's own logs, which repeat
these failures, are kept to CRITICAL in the cluster the runner starts. A joined cluster
may rerun a task on ``allowed-failures`` more workers before it gives up:
:meth:`DaskAdapter.death_tries` tells the loop how many runs one ``KilledWorker`` stands
for, so the runner's ``retries`` bound the runs in total.

Two faults of the cluster end a run like a graceful stop rather than as failed items
(:meth:`DaskAdapter.fault`): a lost scheduler (its connection closed, the Client gone),
and a cluster without workers for longer than ``no_workers_timeout`` seconds (a warning is
logged once when the wait begins).

Each task's result is fetched on the Client's event loop as soon as the task ends, never
under a timeout that would cancel Dask's gather midway. While the runner holds a Client it
opened, ``distributed``'s client logger writes to the runner's logger, so to the run's log
file, not to stderr: a user of ``lensing-ssc run`` sees the run's one-line report of a
fault, not Dask's lines about it. Both are in :mod:`._dask_client`.

Workers' log records and progress counts reach the driver through Dask itself, never a
local socket (a worker on another host cannot reach one): workers send them as events
(``Worker.log_event``) and :meth:`DaskAdapter.listen` subscribes the driver's handlers to
their topics on the Client (again on each Client it starts; a user's Client is
unsubscribed on close). Why events, and what they cost:
:mod:`lensing_ssc.processing.managers._executor_events`. Generic executors are in
:mod:`._pools`.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing.runner._adapter import Adapter
from lensing_ssc.processing.runner._dask_client import (
    CLIENT_LOG,
    client_log_dropped,
    fetch_when_done,
)
from lensing_ssc.processing.runner._worker import WorkerSetup

try:
    import dask
    import distributed
except ImportError:  # pragma: no cover - exercised only without the dask extra
    dask = None  # type: ignore[assignment]
    distributed = None  # type: ignore[assignment]

__all__ = ["LOCAL_CLUSTER_CONFIG", "ClusterWorker", "DaskAdapter", "dask_setup"]

logger = logging.getLogger("lensing_ssc.processing.runner")

_WORKER_REFRESH = 2.0
# The worker count is asked at most this often while a cluster has none, and the
# question waits this long at most: a scheduler that does not answer is the Client's
# to notice (its connection closes), and a run must not hang on it meanwhile.
_EMPTY_REFRESH = 0.25
_ASK_TIMEOUT = 5.0
_LIVE_CLIENT = ("newly-created", "running")

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
    # Three more wake-ups of an idle cluster, in this process (scheduler, nannies) and in
    # every worker: work stealing rebalances 10 times a second (the runner's tasks are
    # independent and wait on the scheduler, so there is nothing to steal); the system
    # monitor's CPU, network and disk samples feed only the dashboard; the memory monitor
    # reads each worker's RSS 10 times a second (twice a second still pauses or restarts
    # a worker that outgrows its limit). Measured on 2 shared cores, an idle cluster took
    # 29 ms of CPU a second with 2 workers and 135 with 16 (7 % of both cores), and 12 and
    # 55 with these three settings.
    "distributed.scheduler.work-stealing": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "500ms",
}
"""Dask settings of the cluster the runner starts (a joined cluster keeps its own)."""

_START_METHOD = "distributed.worker.multiprocessing-method"


@dataclass(frozen=True)
class ClusterWorker:
    """One worker of a Dask cluster, as its scheduler describes it.

    Attributes:
        address: The worker's address (``tcp://10.0.0.7:40123``).
        nthreads: Tasks it runs at once.
        memory_limit: Its memory limit in bytes; ``None`` when it has none.
    """

    address: str
    nthreads: int
    memory_limit: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "address": self.address,
            "nthreads": self.nthreads,
            "memory_limit": self.memory_limit,
        }


class DaskAdapter(Adapter):
    """Runs tasks on a Dask cluster (see the module docstring for which one).

    Raises:
        ModuleNotFoundError: ``distributed`` is not installed.
    """

    kind = "dask"
    # A Dask task costs ~6 ms of CPU between client, scheduler and worker (measured with
    # no-op tasks on 2 cores); at 0.25 s per task that is ~2 % of the work, at 0.1 s 6 %.
    chunk_target = 0.25
    task_overhead = 0.006

    def __init__(
        self,
        *,
        client: Any | None,
        scheduler_address: str | None,
        n_workers: int,
        setup: WorkerSetup | None,
        start_method: str = "spawn",
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
        if client is None and scheduler_address is None:  # our cluster, on this machine's CPUs
            self.workers_per_core = max(1.0, n_workers / usable_cpus())
        self._start_method = start_method
        self._client: Any = client
        self._cluster: Any = None
        self._workers = n_workers
        self._workers_at = 0.0
        self._empty_since: float | None = None
        self._warned = False
        self._topics: dict[str, Callable[[Any], None]] = {}
        self._subscribed: Any = None  # the Client the topics are subscribed on
        self._tasks: dict[Future[Any], Any] = {}  # each fetch's Dask future, until fetched
        self._routes_log = False  # whether this adapter holds CLIENT_LOG

    def listen(self, topics: Mapping[str, Callable[[Any], None]]) -> None:
        """Subscribe each handler to its event topic, on this Client and each one started.

        A handler runs on the Client's event loop thread with each ``(timestamp, message)``
        that a worker sent with ``log_event(topic, message)``.
        """
        self._topics.update(topics)
        self._subscribed = None
        if self._client is not None:
            self._subscribe(self._client)

    def _subscribe(self, client: Any) -> None:
        if self._topics and self._subscribed is not client:
            for topic, handler in self._topics.items():
                client.subscribe_topic(topic, handler)
            self._subscribed = client

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` in use (started on first use)."""
        if self._client is None:
            self._start()
            if not self._routes_log:
                CLIENT_LOG.hold()
                self._routes_log = True
        self._subscribe(self._client)
        return self._client

    @property
    def joined(self) -> bool:
        """Whether the cluster is someone else's (an address or a Client), not one we start."""
        return self._address is not None or self._given is not None

    @property
    def scheduler_address(self) -> str | None:
        """The scheduler's address: the one joined, the Client's, or the local cluster's."""
        if self._address is not None:
            return self._address
        if self._client is None:
            return None
        return str(self._client.scheduler.address)

    def cluster_workers(self) -> tuple[ClusterWorker, ...]:
        """The cluster's workers now, asked of its scheduler (starts the cluster if needed)."""
        client = self.client
        try:
            info = client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before 2025 has no n_workers and lists every worker
            info = client.scheduler_info()
        return tuple(
            ClusterWorker(
                address=str(address),
                nthreads=int(worker.get("nthreads", 1)),
                memory_limit=int(worker["memory_limit"]) if worker.get("memory_limit") else None,
            )
            for address, worker in sorted(info.get("workers", {}).items())
        )

    def _start(self) -> None:
        if self._address is not None:
            try:
                self._client = distributed.Client(self._address, set_as_default=False)
            except OSError as exc:  # TimeoutError included: nothing answered in time
                timeout = dask.config.get("distributed.comm.timeouts.connect")
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {self._address!r} "
                    f"(waited {timeout}): {exc}",
                    value=self._address,
                    hint="check that `dask scheduler` is running, that this node can reach its "
                    "host and port, and that the scheduler file is the current one",
                    field="scheduler",
                ) from exc
            return
        settings = {**LOCAL_CLUSTER_CONFIG, _START_METHOD: self._start_method}
        with dask.config.set(settings):
            self._cluster = distributed.LocalCluster(
                n_workers=self._n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # The scheduler still serves /health on an HTTP port (8787 unless told):
                # a free local port, so several clusters never clash or warn.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.CRITICAL,
                preload=[__name__],  # dask_setup() in each worker, before it takes tasks
            )
        self._client = distributed.Client(self._cluster, set_as_default=False)

    def workers(self) -> int:
        self._ask_threads(_WORKER_REFRESH)
        return self._workers

    def _ask_threads(self, every: float) -> None:
        """Ask the scheduler for its worker threads, if the last answer is ``every`` s old.

        Not asked when the scheduler is lost; no answer in time keeps the last count.
        """
        now = time.monotonic()
        if now - self._workers_at < every:
            return
        client = self.client
        if client.status not in _LIVE_CLIENT:
            return
        self._workers_at = now
        try:
            ncores = client.sync(client.scheduler.ncores, callback_timeout=_ASK_TIMEOUT)
        except OSError:  # TimeoutError included; a closed connection shows in client.status
            return
        threads = sum(ncores.values())
        self._workers = threads or self._n_workers  # a cluster still scaling up
        self._empty_since = None if threads else self._empty_since or now

    def death_tries(self, exc: BaseException) -> int:
        """Runs one ``KilledWorker`` stands for: the scheduler's ``allowed-failures`` + 1."""
        if isinstance(exc, distributed.KilledWorker):
            return 1 + max(int(exc.allowed_failures), 0)
        return 1

    def fault(self, exc: BaseException | None = None) -> str | None:
        """A lost scheduler, or no workers for longer than ``no_workers_timeout``; else ``None``."""
        client = self._client
        if client is None:
            return None
        if exc is not None:
            if isinstance(exc, distributed.comm.CommClosedError):
                return self._lost(f"{type(exc).__name__}: {exc}")
            if (
                isinstance(exc, CancelledError)
                and getattr(exc, "reason", None) == "scheduler-connection-lost"
            ):
                return self._lost("the connection closed")
            if client.status not in _LIVE_CLIENT:
                return self._lost(f"the Client is {client.status}")
            return None
        if client.status not in _LIVE_CLIENT:
            return self._lost(f"the connection closed (the Client is {client.status})")
        grace = self.no_workers_timeout
        every = _WORKER_REFRESH if self._empty_since is None else _EMPTY_REFRESH
        self._ask_threads(min(every, grace / 4))
        if self._empty_since is None:
            self._warned = False
            return None
        if not self._warned:
            self._warned = True
            logger.warning(
                "the Dask cluster at %s has no workers; waiting up to %g s for one",
                self.scheduler_address,
                grace,
            )
        waited = time.monotonic() - self._empty_since
        if waited < grace:
            return None
        self._empty_since = None  # the next run waits afresh
        self._warned = False
        return f"the Dask cluster at {self.scheduler_address} had no workers for {waited:.1f} s"

    def _lost(self, detail: str) -> str:
        first = detail.strip().splitlines()[0] if detail.strip() else "connection closed"
        return f"lost the Dask scheduler at {self.scheduler_address}: {first}"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Submit ``fn(*args)``; the future returned is done once its result is here.

        The result is fetched as soon as the task ends, by a fetch nothing cancels
        (:func:`~._dask_client.fetch_when_done`, which says why): a result lost with its
        worker is waited for until it is computed again or :meth:`terminate` cancels the
        task, while the scheduling loop goes on asking :meth:`fault`.
        """
        client = self.client
        task = client.submit(fn, *args, pure=False)
        fetched = fetch_when_done(client, task)
        self._tasks[fetched] = task
        fetched.add_done_callback(self._fetched)
        return fetched

    def _fetched(self, fetched: Future[Any]) -> None:
        self._tasks.pop(fetched, None)  # the Dask future goes: its result is released

    def is_worker_death(self, exc: BaseException) -> bool:
        return isinstance(exc, distributed.KilledWorker)

    def rebuild(self) -> None:
        """Nothing to do: the Nanny replaces dead workers itself."""

    def cancel_queued(self, futures: Iterable[Any]) -> None:
        """Nothing: Dask cannot tell queued from running tasks; they get the stop timeout."""

    def terminate(self, futures: Iterable[Any]) -> None:
        """Cancel the tasks; close the cluster we started (the next run starts another).

        After a lost scheduler there is nothing to cancel: the Client we opened is closed,
        so that the next run connects afresh (a user's Client is left as it is).
        """
        pending = [task for f in futures if (task := self._tasks.get(f)) is not None]
        client = self._client
        if client is not None and client.status not in _LIVE_CLIENT:
            if client is not self._given:
                self.close()
            return
        # Cancelling tasks whose results are being fetched makes Dask log the interrupted
        # gather as an error with a traceback: the stop the run already reports in one line.
        with client_log_dropped():
            if pending and client is not None:
                client.cancel(pending)
            if self._cluster is not None:
                self.close()

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._cluster = None
        given = self._given
        if given is not None and given is self._subscribed and given.status in _LIVE_CLIENT:
            for topic in self._topics:  # leave the user's Client as it was given
                given.unsubscribe_topic(topic)
        self._subscribed = None
        if client is not None and client is not self._given:
            self._client = None
            if client.status in _LIVE_CLIENT:
                client.close()
            else:
                # Closing a Client that is reconnecting to a lost scheduler cancels its
                # reconnection, which Dask logs as an error with a traceback: that is the
                # fault the run already reports in one line.
                with client_log_dropped():
                    client.close()
        if cluster is not None:
            cluster.close()
        if self._routes_log:
            self._routes_log = False
            CLIENT_LOG.release()


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker of the runner's cluster as it starts.

    Runs in the worker's main thread, the only one that may set signal handlers. SIGINT is
    ignored, as in the runner's pool workers: a Ctrl-C reaches the whole process group and
    the runner decides what stops. Python handlers a forked worker copied from this
    process (a context's graceful-stop handlers) go back to the default action: they would
    act on the copy of a run that this process is not running.
    """
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except ValueError:  # a real-time or reserved signal Python does not handle
            continue
        if callable(handler):
            signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

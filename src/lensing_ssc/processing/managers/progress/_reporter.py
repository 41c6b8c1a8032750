"""Progress reports from worker processes to the parent's ``ProgressManager``.

``ProgressTask.reporter()`` hands out a :class:`ProgressReporter`: a small picklable handle
(an address, a random token and a task id) that a worker process — a ``multiprocessing``
pool, a ``ProcessPoolExecutor``, a forked child — calls ``.update(n)`` on. Each call sends
one 16-byte record (task id, amount) to the parent's report server (:func:`open_server`),
whose thread adds it to the task. Nothing is buffered in the worker, so a count is in the
parent's socket buffer when ``update`` returns; ``drain()`` (called by ``get_status()`` and
when a task closes) reads whatever has arrived, which keeps counts exact.

In a Dask worker the socket is not used at all (the worker may be on another host): each
``update`` is one Dask event ``[task id, amount]`` on the manager's topic
(:mod:`lensing_ssc.processing.managers._executor_events`), which reaches the driver once its
Client subscribes the manager's ``take_worker_event`` to ``executor_topic`` (the task
runner's Dask adapter does, given ``RunnerHooks.worker_events``; ``ManagerContext.map``
wires it). Events and task results share the worker's ordered stream, so the counts a task
sent are in before its result.

In a worker that cannot reach the parent's socket (a process of an MPI pool on another
node, say), the counts are not dropped: they are kept in the process, per tree and task,
until :func:`take_unsent` hands them over. The task runner calls it after each task in the
processes of a user's executor (the context's ``worker_flush``) and carries them back with
the task's results, to the driver's ``ProgressManager.take_worker_counts``. In a process
no runner serves, they stay there: one number per task of the tree, never more.

This module is the record format only: the socket, its token, the server thread and what
happens across ``fork`` are :mod:`lensing_ssc.processing.managers._channel`'s.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from lensing_ssc.processing.managers._channel import (
    Address,
    ChannelClient,
    ChannelError,
    ChannelServer,
    address_family,
)
from lensing_ssc.processing.managers._executor_events import current_dask_worker, send_event
from lensing_ssc.processing.managers.progress._clock import Number, check_amount

__all__ = [
    "REPORTS_THREAD_NAME",
    "ProgressReporter",
    "UnsentCounts",
    "amount_of_event",
    "open_server",
    "reset_unsent",
    "take_unsent",
]

REPORTS_THREAD_NAME = "lensing_ssc-progress-reports"
_RECORD = struct.Struct("<Qd")  # task id, amount

UnsentCounts = dict[str, dict[int, Number]]
"""Counts no channel took, by the tree's topic and the task's id: what a worker carries."""

# This process's counts that reached no parent yet; private, emptied by take_unsent().
_unsent: UnsentCounts = {}
_unsent_lock = threading.Lock()


def _keep(topic: str, task_id: int, amount: Number) -> None:
    with _unsent_lock:
        tasks = _unsent.setdefault(topic, {})
        tasks[task_id] = tasks.get(task_id, 0) + amount


def take_unsent() -> UnsentCounts | None:
    """The counts this process's reporters could not send since the last call, or ``None``.

    Each is handed out once. The driver adds them with
    ``ProgressTask.take_worker_counts``; counts of another tree are left out there.
    """
    global _unsent
    with _unsent_lock:
        taken, _unsent = _unsent, {}
    return taken or None


def reset_unsent() -> None:
    """Forget this process's unsent counts (for tests)."""
    take_unsent()


class ProgressReporter:
    """Advance one task of a parent process's ``ProgressManager`` from any local process.

    Made by ``ProgressManager.reporter()`` or ``ProgressTask.reporter()``; pickle it into
    worker processes (as a pool task argument, say). Each copy connects on first use.

    Example:
        >>> def work(chunk, reporter):
        ...     for item in chunk:
        ...         ...  # compute
        ...         reporter.update(1)
        >>> # pool.starmap(work, [(chunk, pm.reporter()) for chunk in chunks])

    Where the parent cannot be reached, or once its manager is closed, counts are kept in
    this process for :func:`take_unsent` (see the module's docstring); ``update`` never
    raises for it.
    """

    def __init__(self, address: Address, token: str, task_id: int, topic: str = "") -> None:
        self._address = address
        self._token = token
        self._task_id = task_id
        self._topic = topic
        # No connect timeout: a full backlog delays a count, it does not drop it.
        self._client = ChannelClient(address, token, timeout=None)
        self._gone = False

    def __getstate__(self) -> dict[str, Any]:
        return {
            "address": self._address,
            "family": address_family(self._address),  # for code opening its own socket
            "token": self._token,
            "task_id": self._task_id,
            "topic": self._topic,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._address = state["address"]
        self._token = state["token"]
        self._task_id = state["task_id"]
        self._topic = state.get("topic", "")
        self._client = ChannelClient(self._address, self._token, timeout=None)
        self._gone = False

    def __repr__(self) -> str:
        return f"ProgressReporter(task_id={self._task_id}, address={self._address!r})"

    def update(self, n: Number = 1) -> None:
        """Add ``n`` finished items to the task in the parent process.

        Raises:
            ProgressError: ``n`` is negative, not finite or not a number.
        """
        amount = check_amount(n)
        if self._gone:
            _keep(self._topic, self._task_id, amount)
            return
        if self._topic:
            worker = current_dask_worker()
            if worker is not None:
                if not send_event(worker, self._topic, [self._task_id, amount]):
                    self._gone = True  # the worker is closing: it may go with the result
                    _keep(self._topic, self._task_id, amount)
                return
        try:
            self._client.send(_RECORD.pack(self._task_id, float(amount)))
        except ChannelError:
            # Out of reach (another node), or the parent closed its manager: from now on
            # the counts wait for the task's result to carry them.
            self._gone = True
            _keep(self._topic, self._task_id, amount)

    def close(self) -> None:
        """Close this copy's connection (also done when the copy is garbage collected)."""
        self._client.close()

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def amount_of_event(event: Any) -> tuple[int, Number]:
    """``(task id, amount)`` of one Dask event ``(timestamp, [task id, amount])``."""
    _, (task_id, amount) = event
    return int(task_id), amount


def open_server(deliver: Callable[[int, Number], None]) -> ChannelServer:
    """The parent's report server, started: each record goes to ``deliver(task_id, n)``.

    Raises:
        ChannelError: no socket could be bound.
    """

    def read_records(buffer: bytearray) -> None:
        usable = len(buffer) - len(buffer) % _RECORD.size
        for task_id, amount in _RECORD.iter_unpack(bytes(buffer[:usable])):
            deliver(task_id, int(amount) if amount.is_integer() else amount)
        del buffer[:usable]

    server = ChannelServer(read_records, name=REPORTS_THREAD_NAME)
    server.start()
    return server

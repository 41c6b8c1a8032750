"""The state of one parallel run: its tasks in flight, and what each one's end means.

:class:`ParallelRun` submits chunks of items to an executor adapter (each a task of
:func:`~._worker.run_unit`), keeps the futures in flight, and settles each one that ends:
its outcomes go to the ledger, its measured time to the :class:`~._chunk_sizer.ChunkSizer`,
and what its worker carried back beside them to ``on_carried``. Futures report back
through the run's ``done`` queue, fed by their done-callbacks.

A worker process that dies breaks a process pool and fails every task in flight (Dask
fails the tasks queued on that worker). Those items become suspects: the pool is rebuilt
and each suspect is run alone; one that kills its worker alone is the culprit, tried
``retries`` more times and then recorded as failed (``WorkerDied``), while the others
complete normally. A Dask scheduler may have run a task on several workers before it
reports the death (its ``allowed-failures``): each item's runs are counted with those
(:meth:`Adapter.death_tries`), and an item is not submitted again once a further
submission would take it past ``retries + 1`` runs. A one-item task that the scheduler
already ran on several dying workers is taken as its item's own death, without a run alone.

A fault of the executor itself (:meth:`Adapter.fault`) is kept as :attr:`ParallelRun.fault`
and leaves the items for the next run. Fetching a done task's result is checked for a
fault too: a Dask result lost with its worker before it was fetched would otherwise be
awaited for ever on a cluster left without workers.

Not here: the loop that drives a run, stops it and ends it (:mod:`._engine`), the task
sizes (:mod:`._chunk_sizer`), what runs in the worker (:mod:`._worker`).
"""

from __future__ import annotations

import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from lensing_ssc.processing.runner._adapter import Adapter
from lensing_ssc.processing.runner._chunk_sizer import ChunkSizer
from lensing_ssc.processing.runner._ledger import Ledger
from lensing_ssc.processing.runner._worker import RetryPolicy, describe_error, run_unit

__all__ = ["WORKER_DIED", "ParallelRun"]

# Seconds the loop first waits for a done task's result, doubled at each further wait. A
# Dask result still lives on its worker when the task is reported done; if that worker
# dies meanwhile, fetching it waits for it to be computed again, forever on a cluster left
# without workers. Between waits the loop asks the executor for a fault.
_RESULT_WAIT = 1.0
WORKER_DIED = "WorkerDied"


@dataclass
class _Unit:
    """The items of one submitted task, and the executor generation it went to."""

    indexes: list[int]
    generation: int
    alone: bool = False


@dataclass
class ParallelRun:
    """State of one parallel run: the items waiting, the tasks in flight, the suspects."""

    ledger: Ledger
    func: Callable[[Any], Any]
    items: Sequence[Any]
    adapter: Adapter
    policy: RetryPolicy
    sizer: ChunkSizer
    max_in_flight: int | None
    waiting: deque[int]
    on_carried: Callable[[Any], None] | None = None
    done: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    in_flight: dict[Any, _Unit] = field(default_factory=dict)
    suspects: deque[int] = field(default_factory=deque)
    starts: Counter[int] = field(default_factory=Counter)
    tries: Counter[int] = field(default_factory=Counter)  # runs that died, counted
    reruns: Counter[int] = field(default_factory=Counter)  # runs the scheduler added
    stopping: bool = False
    fault: str | None = None

    def submit(self, indexes: list[int], *, alone: bool = False) -> None:
        """Submit ``indexes`` as one task (``alone``: a suspect run by itself)."""
        pairs = [(index, self.items[index]) for index in indexes]
        args = (self.func, pairs, self.policy, self.adapter.task_setup)
        try:
            future = self.adapter.submit(run_unit, *args)
        except BrokenExecutor:  # broke before its failed futures reached us
            self.adapter.rebuild()
            future = self.adapter.submit(run_unit, *args)
        except Exception as exc:
            fault = self.adapter.fault(exc)
            if fault is None:
                raise
            self.fault = self.fault or fault
            self.waiting.extendleft(reversed(indexes))  # left for the next run
            return
        self.starts.update(indexes)
        self.in_flight[future] = _Unit(indexes, self.adapter.generation, alone)
        self.ledger.in_flight += len(indexes)
        future.add_done_callback(self.done.put)

    def fill(self) -> None:
        """Submit waiting items until the window of tasks in flight is full."""
        if self.fault is not None:
            return
        if self.suspects:
            if not self.in_flight:  # run each suspect alone, so a death names its item
                self.submit([self.suspects.popleft()], alone=True)
            return
        workers = self.adapter.workers()
        cap = self.max_in_flight or workers * self.sizer.tasks_per_worker()
        waiting = self.waiting
        while waiting and len(self.in_flight) < cap:
            size = min(self.sizer.size(len(waiting), workers), len(waiting))
            self.submit([waiting.popleft() for _ in range(size)])

    def settle(self, future: Any) -> None:
        """Record the outcomes of a task reported done, or what its loss means."""
        if future in self.in_flight and not future.done():
            # Reported done, then undone: a Dask result lost with its worker before it was
            # fetched, to be computed again. Waiting for it here would block the loop (and
            # its fault checks) while the cluster may have no worker left to compute it.
            future.add_done_callback(self.done.put)
            return
        unit = self.in_flight.pop(future, None)
        if unit is None:
            return
        self.ledger.in_flight -= len(unit.indexes)
        try:
            report = self._result(future)
            if report is None:  # the executor failed meanwhile: left for the next run
                return
        except CancelledError as exc:
            self.fault = self.fault or self.adapter.fault(exc)
            return
        except Exception as exc:
            self._lost(unit, exc)
            return
        if report.carried is not None and self.on_carried is not None:
            self.on_carried(report.carried)
        outcomes = report.outcomes
        seconds = 0.0
        for outcome in outcomes:
            seconds += outcome.seconds
            if outcome.ok:
                self.ledger.record_success(outcome.index, outcome.value, outcome.attempts)
            else:
                error_type, message, trace = outcome.value
                self.ledger.record_failure(
                    outcome.index, error_type, message, trace, outcome.attempts
                )
        self.sizer.observe(seconds, len(outcomes))

    def _result(self, future: Any) -> Any:
        """The task's report, or ``None`` if the executor fails while it is fetched."""
        wait = _RESULT_WAIT
        while True:
            started = time.monotonic()
            try:
                return future.result(timeout=wait)
            except (TimeoutError, FutureTimeout):
                if time.monotonic() - started < wait / 2:
                    raise  # the task's own error, not the wait's
                fault = self.adapter.fault()
                if fault is not None:
                    self.fault = self.fault or fault
                    return None
                wait *= 2

    def _lost(self, unit: _Unit, exc: Exception) -> None:
        """A task came back without outcomes: its worker died, or the transport failed."""
        fault = self.adapter.fault(exc)
        if fault is not None:  # the executor is gone, not the items: left for the next run
            self.fault = self.fault or fault
            return
        if not self.adapter.is_worker_death(exc):
            error = describe_error(exc)
            for index in unit.indexes:
                self.ledger.record_failure(index, *error, self.starts[index])
            return
        if self.stopping:
            return  # the stop leaves these for the next run
        if unit.generation == self.adapter.generation:
            self.adapter.rebuild()
        runs = self.adapter.death_tries(exc)
        self.reruns.update(dict.fromkeys(unit.indexes, runs - 1))
        if len(unit.indexes) == 1 and (unit.alone or runs > 1):
            # Its own death: it ran alone, or the scheduler saw it on `runs` dying workers.
            # A death among other tasks may be a neighbour's and is not counted.
            index = unit.indexes[0]
            self.tries[index] += runs
            if self.tries[index] + runs > self.policy.retries + 1:
                self._died(index, str(exc))
            else:
                self.suspects.appendleft(index)
        else:
            self.suspects.extend(unit.indexes)

    def _died(self, index: int, detail: str) -> None:
        message = (
            "the worker process running this item died (os._exit, a signal, or the "
            f"out-of-memory killer): {detail}"
        )
        attempts = self.starts[index] + self.reruns[index]
        self.ledger.record_failure(index, WORKER_DIED, message, "", attempts)

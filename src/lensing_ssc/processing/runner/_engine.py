"""The scheduling loops: serial in the calling thread, and parallel over an executor adapter.

Both check ``should_stop()`` before each submission; once it is true they submit nothing
new, cancel queued tasks that have not started, give running items up to ``stop_timeout``
seconds to finish (the serial loop's one item simply finishes), make every finished item
durable, and return the stop reason.
:mod:`lensing_ssc.processing.runner` turns that into ``InterruptedRunError``. A
``KeyboardInterrupt`` (an impatient second Ctrl-C) does not wait: the parallel loop ends
the running tasks (killing process-pool workers), keeps what had finished, and re-raises.
Whenever the loop kills workers, the processes their tasks started end with them
(:mod:`._process_tree`).

The parallel loop keeps at most ``max_in_flight`` tasks submitted (default: per worker, two,
or enough for about 0.1 s of queued work, at most 16), each a chunk of items
(``chunksize``, or sized so a task holds about the executor's ``chunk_target`` of work,
and, as the last items are spread over the workers, so that the executor's
``task_overhead`` stays a small share of each task). Work is the items' measured time
divided by the executor's ``workers_per_core``: on a machine with more workers than
cores, an item takes that many times longer than the work it does. An executor with a
per-task overhead first gets one single-item task per worker, to measure the items. Futures
report back through a queue fed by their done-callbacks; the journal's commit thread posts
to the same queue, so durable completions are reported without polling. What a worker
carries back beside a task's outcomes (:attr:`~._worker.UnitReport.carried`) goes to
``on_carried`` in this thread, before the outcomes are recorded.

A worker process that dies breaks a process pool and fails every task in flight (Dask
fails the tasks queued on that worker). Those items become suspects: the pool is rebuilt
and each suspect is run alone; one that kills its worker alone is the culprit, tried
``retries`` more times and then recorded as failed (``WorkerDied``), while the others
complete normally. A Dask scheduler may have run a task on several workers before it
reports the death (its ``allowed-failures``): each item's runs are counted with those
(:meth:`Adapter.death_tries`), and an item is not submitted again once a further
submission would take it past ``retries + 1`` runs. A one-item task that the scheduler
already ran on several dying workers is taken as its item's own death, without a run alone.

A fault of the executor itself (:meth:`Adapter.fault`: a lost Dask scheduler, a cluster
without workers for too long) ends the run like a stop, at once: nothing is journalled as
failed, what finished is saved, and the fault is returned as the stop reason. Fetching a
done task's result is checked for a fault too: a Dask result lost with its worker before
it was fetched would otherwise be awaited for ever on a cluster left without workers.
"""

from __future__ import annotations

import logging
import math
import queue
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from lensing_ssc.processing.runner._adapter import Adapter
from lensing_ssc.processing.runner._interrupts import (
    InterruptWatch,
    error_message,
    is_task_failure,
)
from lensing_ssc.processing.runner._ledger import Ledger
from lensing_ssc.processing.runner._process_tree import end_orphans, note_tree
from lensing_ssc.processing.runner._worker import (
    RetryPolicy,
    describe_error,
    retryable,
    run_unit,
)

__all__ = ["ChunkSizer", "StopCheck", "run_parallel", "run_serial"]

StopCheck = Callable[[], "bool | str | None"]

logger = logging.getLogger("lensing_ssc.processing.runner")

_POLL = 0.1
_MAX_CHUNK = 1000
_QUEUED_SECONDS = 0.1
_MAX_TASKS_PER_WORKER = 16
# A task of items of known length holds enough of them that the executor's per-task
# overhead is at most this share of its work, even as the last items are spread over the
# workers: the pipeline's patches (~10 ms of work each) on a Dask cluster (~6 ms a task)
# end three to a task rather than one, and no worker waits on a longer task than ~30 ms.
_OVERHEAD_SHARE = 0.2
# Seconds the loop first waits for a done task's result, doubled at each further wait. A
# Dask result still lives on its worker when the task is reported done; if that worker
# dies meanwhile, fetching it waits for it to be computed again, forever on a cluster left
# without workers. Between waits the loop asks the executor for a fault.
_RESULT_WAIT = 1.0
WORKER_DIED = "WorkerDied"


def _stop_reason(should_stop: StopCheck | None) -> str | None:
    if should_stop is None:
        return None
    answer = should_stop()
    if not answer:
        return None
    return answer if isinstance(answer, str) else "stop requested"


def run_serial(
    ledger: Ledger,
    func: Callable[[Any], Any],
    items: Sequence[Any],
    policy: RetryPolicy,
    should_stop: StopCheck | None,
) -> str | None:
    """Run the ledger's items one by one here; returns the stop reason, or ``None``.

    Whatever a task raises is its failure, ``SystemExit`` included; a ``KeyboardInterrupt``
    ends the run only when a SIGINT came during the task (a Ctrl-C, :mod:`._interrupts`).
    """
    with InterruptWatch() as interrupts:
        return _serial_loop(ledger, func, items, policy, should_stop, interrupts)


def _serial_loop(
    ledger: Ledger,
    func: Callable[[Any], Any],
    items: Sequence[Any],
    policy: RetryPolicy,
    should_stop: StopCheck | None,
    interrupts: InterruptWatch,
) -> str | None:
    record_success = ledger.record_success
    release = ledger.release
    retries = policy.retries
    journal = ledger.journal
    for index in ledger.todo:
        reason = _stop_reason(should_stop)
        if reason is not None:
            ledger.flush()
            return reason
        item = items[index]
        attempts = 0
        started = time.perf_counter()
        while True:
            attempts += 1
            heard = interrupts.count
            try:
                value = func(item)
            except BaseException as exc:
                if not is_task_failure(exc, interrupts.count != heard):
                    raise
                if attempts > retries or not retryable(exc):
                    ledger.record_failure(index, *describe_error(exc), attempts)
                    break
                logger.warning(
                    "item %d failed (attempt %d of %d), retrying: %s: %s",
                    index,
                    attempts,
                    retries + 1,
                    type(exc).__name__,
                    error_message(exc),
                )
                reason = _pause(policy.delay, should_stop)
                if reason is not None:  # the item is left for the next run
                    ledger.flush()
                    return reason
                continue
            record_success(index, value, attempts)
            break
        # Group commit reports short items within a commit window or so. A long item would
        # hold back its own report until the next one ends: sync now, when one fsync costs
        # at most 2 % of the item.
        if journal is not None and time.perf_counter() - started >= max(
            journal.commit_interval, 50 * journal.last_sync_seconds
        ):
            ledger.flush()
        else:
            release()
    ledger.flush()
    return None


def _pause(delay: float, should_stop: StopCheck | None) -> str | None:
    """Wait ``delay`` seconds before a retry; returns a stop reason if one comes meanwhile."""
    deadline = time.monotonic() + delay
    while True:
        reason = _stop_reason(should_stop)
        if reason is not None:
            return reason
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(left, _POLL))


@dataclass
class ChunkSizer:
    """Items per task: fixed, or sized from measured item times to hold ``target`` seconds
    of work.

    ``overhead`` is what each task costs beyond its items (:attr:`Adapter.task_overhead`);
    ``sharing`` the workers that share each core (:attr:`Adapter.workers_per_core`), by
    which an item's measured time is divided to give its work.
    """

    fixed: int | None
    target: float
    mean: float | None = None
    task_mean: float | None = None
    overhead: float = 0.0
    sharing: float = 1.0

    def observe(self, seconds: float, count: int) -> None:
        """Fold a task's measured time (per item and per task) into the running means."""
        per_item = seconds / max(count, 1)
        self.mean = per_item if self.mean is None else 0.8 * self.mean + 0.2 * per_item
        self.task_mean = seconds if self.task_mean is None else 0.8 * self.task_mean + 0.2 * seconds

    def tasks_per_worker(self) -> int:
        """Tasks to keep submitted per worker: at least 2, and ~0.1 s of queued work.

        The queued work is what a worker runs while the runner is slow to hand it more (on
        a loaded machine the runner's own process waits for a core too; where workers share
        cores, a hand-off takes ``sharing`` times longer, and as much more is queued). Before
        any task has been measured: 2, or 1 where each task has an overhead (its items are
        sized once the first one is back).
        """
        if self.task_mean is None:
            return 1 if self.overhead > 0 else 2
        queued = _QUEUED_SECONDS * max(self.sharing, 1.0)
        return max(
            2,
            min(_MAX_TASKS_PER_WORKER, 1 + math.ceil(queued / max(self.task_mean, 1e-6))),
        )

    def size(self, remaining: int, workers: int) -> int:
        """Items for the next task, leaving enough tasks to keep every worker busy, but
        never so few that the per-task overhead passes its share of the task."""
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:
            return 1
        work = max(self.mean, 1e-9) / max(self.sharing, 1.0)
        wanted = int(self.target / work)
        spread = remaining // (2 * max(workers, 1))
        floor = math.ceil(self.overhead / (_OVERHEAD_SHARE * work))
        return max(1, min(max(spread, floor), wanted, _MAX_CHUNK))


@dataclass
class _Unit:
    indexes: list[int]
    generation: int
    alone: bool = False


@dataclass
class _Parallel:
    """State of one parallel run."""

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


def _terminate(adapter: Adapter, futures: list[Any]) -> None:
    """Stop the running tasks now, and the processes that their killed workers started."""
    tree = note_tree() if adapter.kind != "threads" else None
    adapter.terminate(futures)
    if tree is not None:
        end_orphans(tree)


def run_parallel(
    ledger: Ledger,
    func: Callable[[Any], Any],
    items: Sequence[Any],
    adapter: Adapter,
    policy: RetryPolicy,
    *,
    chunksize: int | None,
    max_in_flight: int | None,
    should_stop: StopCheck | None,
    stop_timeout: float,
    on_carried: Callable[[Any], None] | None = None,
) -> str | None:
    """Run the ledger's items on ``adapter``; returns the stop reason, or ``None``.

    ``on_carried(payload)`` takes what a worker sent back beside a task's outcomes.
    """
    run = _Parallel(
        ledger,
        func,
        items,
        adapter,
        policy,
        ChunkSizer(
            chunksize,
            adapter.chunk_target,
            overhead=adapter.task_overhead,
            sharing=adapter.workers_per_core,
        ),
        max_in_flight,
        deque(ledger.todo),
        on_carried,
    )
    journal = ledger.journal
    if journal is not None:
        journal.set_listener(lambda: run.done.put(None))
    reason: str | None = None
    deadline = 0.0
    try:
        while True:
            if reason is None:
                reason = _stop_reason(should_stop)
                if reason is not None:
                    run.stopping = True
                    deadline = time.monotonic() + stop_timeout
                    adapter.cancel_queued(list(run.in_flight))
            fault = run.fault or adapter.fault()
            if fault is not None:  # nothing running can finish: no stop timeout to wait
                run.stopping = True
                reason = reason or fault
                _terminate(adapter, list(run.in_flight))
                break
            if reason is None:
                run.fill()
            if not run.in_flight:
                break
            timeout = _POLL if reason is None else min(_POLL, deadline - time.monotonic())
            if reason is not None and timeout <= 0:
                _terminate(adapter, list(run.in_flight))
                break
            try:
                first = run.done.get(timeout=timeout)
            except queue.Empty:
                first = None
            batch = [first]
            while True:
                try:
                    batch.append(run.done.get_nowait())
                except queue.Empty:
                    break
            for future in batch:
                if future is not None:
                    run.settle(future)
            ledger.release()
    except KeyboardInterrupt:
        # Stop now, not after the running tasks: closing the pool would wait for them.
        _terminate(adapter, list(run.in_flight))
        raise
    finally:
        if journal is not None:
            journal.set_listener(None)
        ledger.in_flight = 0
        ledger.flush()  # also when the loop raised: what finished stays saved
    return reason if reason is not None else run.fault

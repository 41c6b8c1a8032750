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

The parallel loop keeps at most ``max_in_flight`` tasks submitted (default: what
:meth:`~._chunk_sizer.ChunkSizer.tasks_per_worker` says per worker), each a chunk of items
sized by :class:`~._chunk_sizer.ChunkSizer`. Futures report back through a queue fed by
their done-callbacks; the journal's commit thread posts to the same queue, so durable
completions are reported without polling. What a worker carries back beside a task's
outcomes (:attr:`~._worker.UnitReport.carried`) goes to ``on_carried`` in this thread,
before the outcomes are recorded.

A fault of the executor itself (:meth:`Adapter.fault`: a lost Dask scheduler, a cluster
without workers for too long) ends the run like a stop, at once: nothing is journalled as
failed, what finished is saved, and the fault is returned as the stop reason.

Not here: the tasks in flight, how each task's end is settled and what a dead worker
means for its items (:mod:`._parallel_run`), the task sizes (:mod:`._chunk_sizer`), the
retries inside a worker (:mod:`._worker`), the journal (:mod:`._ledger`, :mod:`._journal`).
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from lensing_ssc.processing.runner._adapter import Adapter
from lensing_ssc.processing.runner._chunk_sizer import ChunkSizer
from lensing_ssc.processing.runner._interrupts import (
    InterruptWatch,
    error_message,
    is_task_failure,
)
from lensing_ssc.processing.runner._ledger import Ledger
from lensing_ssc.processing.runner._parallel_run import ParallelRun
from lensing_ssc.processing.runner._process_tree import end_orphans, note_tree
from lensing_ssc.processing.runner._worker import RetryPolicy, describe_error, retryable

__all__ = ["StopCheck", "run_parallel", "run_serial"]

StopCheck = Callable[[], "bool | str | None"]

logger = logging.getLogger("lensing_ssc.processing.runner")

_POLL = 0.1


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
    run = ParallelRun(
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

"""The book-keeping of one run: results in input order, the journal, and durable reporting.

A :class:`Ledger` takes each finished item, appends it to the journal, and reports it (the
``on_complete`` / ``on_failure`` / ``on_progress`` hooks) only once its record is durable;
without a journal it reports at once. It also restores what an earlier run completed: as
offsets into the journal, read back only when the results are used.
Scheduling is in :mod:`._engine`; the record format in :mod:`._journal`.
"""

from __future__ import annotations

import logging
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.runner._journal import Journal, JournalContents
from lensing_ssc.processing.runner._records import RecordReader, failure_fields
from lensing_ssc.processing.runner._results import (
    MapResult,
    ResultSequence,
    RunSnapshot,
    TaskFailure,
)

__all__ = ["Ledger", "Reporters"]

logger = logging.getLogger("lensing_ssc.processing.runner")


@dataclass(frozen=True)
class Reporters:
    """Where finished items are reported, once durable.

    Attributes:
        on_complete: Each called as ``f(key, result)`` per newly completed item.
        on_failure: Each called as ``f(failure)`` per item failed after its retries.
        on_progress: Called as ``f(n)`` with the number of items just settled (completed,
            failed, or taken from an earlier run unless ``on_restored`` is given), in batches.
        on_restored: Called once as ``f(n)`` with the number of items an earlier run settled,
            taken from the journal at the start (so a display can tell them from new work).
    """

    on_complete: tuple[Callable[[str, Any], None], ...] = ()
    on_failure: tuple[Callable[[TaskFailure], None], ...] = ()
    on_progress: Callable[[int], None] | None = None
    on_restored: Callable[[int], None] | None = None


def _zeros(offsets: array[int]) -> list[int]:
    """The items without an offset: those no earlier run completed."""
    if not offsets.count(0):
        return []
    return [index for index, at in enumerate(offsets) if not at]


class Ledger:
    """Results, failures and counters of one run; the only writer of its journal."""

    def __init__(
        self, name: str, keys: Sequence[str], journal: Journal | None, reporters: Reporters
    ) -> None:
        self.name = name
        self.keys = keys
        self.results: list[Any] = [None] * len(keys)
        self.failures: dict[int, TaskFailure] = {}
        self.todo: Sequence[int] = range(len(keys))
        self.completed = 0
        self.skipped = 0
        self.in_flight = 0
        self.running = True
        self.journal = journal
        self._reporters = reporters
        self._pending: deque[tuple[int, int, Any, TaskFailure | None]] = deque()
        self._offsets: array[int] | None = None
        self._reader: RecordReader | None = None

    def restore(self, contents: JournalContents, *, rerun_failed: bool) -> None:
        """Take results (and, unless ``rerun_failed``, failures) of earlier runs; report them.

        Only where each result is kept: its offset in the journal (8 bytes per item, the
        ``offsets`` of a journal read with this run's keys), which :meth:`result` hands to
        the :class:`ResultSequence` that reads it back when used.
        """
        keys = self.keys
        offsets = contents.offsets
        if offsets is None and contents.done:  # indexed per recorded key: look items up
            done = contents.done
            offsets = array("q", [done.get(key, -1) + 1 for key in keys])
        self.skipped = 0 if offsets is None else len(offsets) - offsets.count(0)
        failed = {} if rerun_failed else contents.failed
        if self.skipped or failed:
            todo: Sequence[int] = range(len(keys)) if offsets is None else _zeros(offsets)
            if failed:
                kept = []
                for index in todo:
                    key = keys[index]
                    if key in failed:
                        self.failures[index] = TaskFailure(
                            index=index, key=key, **failure_fields(failed[key])
                        )
                    else:
                        kept.append(index)
                todo = kept
            self.todo = todo
        if self.skipped:
            self._offsets = offsets
            self._reader = RecordReader(contents.path) if contents.path is not None else None
        settled = len(keys) - len(self.todo)
        report = self._reporters.on_restored or self._reporters.on_progress
        if settled and report is not None:
            report(settled)

    def record_success(self, index: int, value: Any, attempts: int) -> None:
        """Store an item's result and journal it; a result that cannot be pickled fails the item."""
        journal = self.journal
        if journal is None:
            self.results[index] = value
            self.completed += 1
            self._report(value, None, index)
            return
        try:
            seq = journal.append_done(self.keys[index], value)
        except CheckpointError:
            raise
        except Exception as exc:  # pickling the result failed: the item cannot be saved
            self.record_failure(
                index,
                type(exc).__qualname__,
                f"the result cannot be saved in the journal: {exc}",
                "",
                attempts,
            )
            return
        self.results[index] = value
        self._pending.append((seq, index, value, None))

    def record_failure(
        self, index: int, error_type: str, message: str, traceback: str, attempts: int
    ) -> None:
        """Record an item as failed after ``attempts`` tries."""
        failure = TaskFailure(
            index=index,
            key=self.keys[index],
            error_type=error_type,
            message=message,
            traceback=traceback,
            attempts=attempts,
        )
        self.failures[index] = failure
        logger.error("%s", failure.describe())
        journal = self.journal
        if journal is None:
            self._report(None, failure, index)
            return
        fields = {
            "error_type": error_type,
            "message": message,
            "traceback": traceback,
            "attempts": attempts,
        }
        self._pending.append(
            (journal.append_failed(self.keys[index], fields), index, None, failure)
        )

    def release(self) -> None:
        """Report every pending item whose journal record is now durable."""
        pending = self._pending
        if not pending or self.journal is None:
            return
        durable = self.journal.durable_seq
        released = 0
        on_complete = self._reporters.on_complete
        on_failure = self._reporters.on_failure
        while pending and pending[0][0] <= durable:
            _, index, value, failure = pending.popleft()
            released += 1
            if failure is None:
                self.completed += 1
                for report_done in on_complete:
                    report_done(self.keys[index], value)
            else:
                for report_failed in on_failure:
                    report_failed(failure)
        if released and self._reporters.on_progress is not None:
            self._reporters.on_progress(released)

    def flush(self) -> None:
        """Make everything recorded durable now, and report it."""
        if self.journal is not None:
            self.journal.sync()
            self.release()

    def _report(self, value: Any, failure: TaskFailure | None, index: int) -> None:
        if failure is None:
            for report_done in self._reporters.on_complete:
                report_done(self.keys[index], value)
        else:
            for report_failed in self._reporters.on_failure:
                report_failed(failure)
        if self._reporters.on_progress is not None:
            self._reporters.on_progress(1)

    def snapshot(self) -> RunSnapshot:
        """Where the run stands now."""
        return RunSnapshot(
            name=self.name,
            total=len(self.keys),
            completed=self.completed,
            skipped=self.skipped,
            failed=len(self.failures),
            in_flight=self.in_flight,
            running=self.running,
        )

    def result(self, elapsed: float) -> MapResult[Any]:
        """The run's :class:`MapResult` (call after :meth:`flush`)."""
        failures = tuple(self.failures[index] for index in sorted(self.failures))
        remaining = len(self.keys) - self.skipped - self.completed - len(failures)
        if self._offsets is not None and self._reader is not None:
            results = ResultSequence(self.results, self.keys, self._offsets, self._reader)
        else:
            results = ResultSequence(self.results)
        return MapResult(
            results=results,
            keys=tuple(self.keys),
            failures=failures,
            completed=self.completed,
            skipped=self.skipped,
            remaining=remaining,
            elapsed=elapsed,
        )

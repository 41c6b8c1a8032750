"""The value objects of a task run: :class:`MapResult`, :class:`TaskFailure`, :class:`RunSnapshot`.

They are what :meth:`~lensing_ssc.processing.runner.TaskRunner.map` returns, what the
``on_failure`` hook receives, and what ``get_status()`` reports. A run's results are a
:class:`ResultSequence`: in memory where the run computed them, read back from the journal
(:class:`._records.RecordReader`) where they were restored from an earlier run. Scheduling is
in :mod:`._engine`, persistence in :mod:`._journal`.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar, overload

from lensing_ssc.processing.runner._records import RecordReader

__all__ = ["MapResult", "ResultSequence", "RunSnapshot", "TaskFailure"]

R = TypeVar("R")

_LIST_REPR_UP_TO = 1000
"""Longest sequence shown as a list by ``repr``; longer ones are summarised, not loaded."""


class ResultSequence(Sequence[R]):
    """A run's results in input order, loaded from the journal where they were restored.

    Acts as a read-only list: ``len``, iteration, indexing and slicing (a slice is a
    ``list``), ``==`` with a list. Results the run computed are held in memory; results
    restored from an earlier run's journal are read back from the file each time they are
    used (nothing is cached: iterate once, or ``list()`` it to keep them all in memory).
    Iterating reads the journal a block at a time, so memory stays bounded whatever the
    number of results. ``json`` needs a real list: ``json.dumps(list(result.results))``.

    Args:
        values: One entry per item: the result computed by this run, else ``None``.
        keys: The items' keys (to check each record read back), when ``offsets`` is given.
        offsets: Per item, 1 + the offset of its record in the journal, or 0 for an item
            not restored from it.
        reader: Reads the records back.

    Example:
        >>> ResultSequence([1, 4, None])[1:], ResultSequence([1, 4]) == [1, 4]
        ([4, None], True)
    """

    __slots__ = ("_keys", "_offsets", "_reader", "_values")
    __hash__ = None  # type: ignore[assignment]  # mutable-list semantics of ==: unhashable

    def __init__(
        self,
        values: list[R],
        keys: Sequence[str] = (),
        offsets: array[int] | None = None,
        reader: RecordReader | None = None,
    ) -> None:
        if (offsets is None) != (reader is None):
            raise TypeError("offsets and reader go together")
        self._values = values
        self._keys = keys
        self._offsets = offsets
        self._reader = reader

    def __reduce__(self) -> tuple[Any, ...]:
        return ResultSequence, (self._values, self._keys, self._offsets, self._reader)

    @property
    def restored(self) -> int:
        """How many results are read from the journal rather than held in memory."""
        offsets = self._offsets
        return 0 if offsets is None else len(offsets) - offsets.count(0)

    def __len__(self) -> int:
        return len(self._values)

    def _at(self, index: int) -> R:
        offsets = self._offsets
        if offsets is not None and offsets[index]:
            return self._reader.load(offsets[index] - 1, self._keys[index])  # type: ignore[union-attr]
        return self._values[index]

    @overload
    def __getitem__(self, index: int) -> R: ...

    @overload
    def __getitem__(self, index: slice) -> list[R]: ...

    def __getitem__(self, index: int | slice) -> R | list[R]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self._values)))]
        position = operator.index(index)
        size = len(self._values)
        if position < 0:
            position += size
        if not 0 <= position < size:
            raise IndexError(f"result index {index} out of range for {size} results")
        return self._at(position)

    def __iter__(self) -> Iterator[R]:
        offsets = self._offsets
        if offsets is None:
            yield from self._values
            return
        load = self._reader.load  # type: ignore[union-attr]
        keys = self._keys
        for index, value in enumerate(self._values):
            at = offsets[index]
            yield load(at - 1, keys[index]) if at else value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (list, ResultSequence)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __repr__(self) -> str:
        if len(self) <= _LIST_REPR_UP_TO:
            return repr(list(self))
        return f"<ResultSequence of {len(self)} results, {self.restored} in the journal>"


@dataclass(frozen=True)
class TaskFailure:
    """One item that failed after all its attempts.

    Attributes:
        index: Position of the item in the input.
        key: The item's stable key (see :mod:`lensing_ssc.processing.runner`).
        error_type: Qualified name of the exception, or ``"WorkerDied"`` when the item
            killed the process running it (``os._exit``, a signal, the out-of-memory killer).
        message: ``str()`` of the exception.
        traceback: The formatted traceback from the worker (empty for a dead worker).
        attempts: How many times the item was tried.
    """

    index: int
    key: str
    error_type: str
    message: str
    traceback: str
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    def describe(self) -> str:
        """One line: ``item 3 (key) failed after 2 attempts: ValueError: bad``."""
        return (
            f"item {self.index} ({self.key}) failed after {self.attempts} attempt"
            f"{'s' if self.attempts != 1 else ''}: {self.error_type}: {self.message}"
        )


@dataclass(frozen=True)
class MapResult(Generic[R]):
    """Results of one run, in input order.

    ``results[i]`` is the value for ``items[i]``, or ``None`` when that item failed or was
    not reached (a stopped run). Iterating, indexing and ``len()`` act on ``results``.

    Attributes:
        results: One entry per input item, in input order: from a run, a
            :class:`ResultSequence`, which reads results restored from the journal back from
            the file when they are used.
        keys: The items' keys, in input order.
        failures: Items that failed after their retries, in input order.
        completed: Items computed by this run.
        skipped: Items whose result came from the journal of an earlier run.
        remaining: Items neither done nor failed (non-zero only for a stopped run).
        elapsed: Seconds the run took.

    Example:
        >>> result = MapResult(results=[1, 4], keys=("a", "b"), failures=(), completed=2,
        ...                    skipped=0, remaining=0, elapsed=0.1)
        >>> list(result), result.ok
        ([1, 4], True)
    """

    results: Sequence[R | None]
    keys: tuple[str, ...]
    failures: tuple[TaskFailure, ...]
    completed: int
    skipped: int
    remaining: int
    elapsed: float

    @property
    def failed(self) -> int:
        """Number of failed items."""
        return len(self.failures)

    @property
    def ok(self) -> bool:
        """True when every item has a result."""
        return not self.failures and self.remaining == 0

    def __iter__(self) -> Iterator[R | None]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> R | None:
        return self.results[index]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: counts, elapsed time and the failures (without results)."""
        return {
            "total": len(self.results),
            "completed": self.completed,
            "skipped": self.skipped,
            "failed": self.failed,
            "remaining": self.remaining,
            "elapsed": self.elapsed,
            "failures": [failure.to_dict() for failure in self.failures],
        }


@dataclass(frozen=True)
class RunSnapshot:
    """Where a run stands at one moment (``TaskRunner.get_status()["run"]``).

    Attributes:
        name: The run's name (the journal's file name, or ``"map"``).
        total: Items in the run.
        completed: Items computed by this run so far (durable when journalled).
        skipped: Items taken from an earlier run's journal.
        failed: Items failed after their retries.
        in_flight: Items submitted and not yet back.
        running: Whether the run is still going.
    """

    name: str
    total: int
    completed: int
    skipped: int
    failed: int
    in_flight: int
    running: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

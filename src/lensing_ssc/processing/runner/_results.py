"""The value objects of a task run: :class:`MapResult`, :class:`TaskFailure`, :class:`RunSnapshot`.

They are what :meth:`~lensing_ssc.processing.runner.TaskRunner.map` returns, what the
``on_failure`` hook receives, and what ``get_status()`` reports. Scheduling is in
:mod:`._engine`, persistence in :mod:`._journal`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

__all__ = ["MapResult", "RunSnapshot", "TaskFailure"]

R = TypeVar("R")


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
        results: One entry per input item, in input order.
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

    results: list[R | None]
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

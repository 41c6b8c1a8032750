"""What a task journal holds, read without running anything: counts and failures.

:func:`read_journal_summary` is the public reader behind ``lensing-ssc tasks`` and the
failure listing of ``lensing-ssc run``: it indexes a journal file (:mod:`._records`), as a
resumed run does, and keeps the number of finished items and each failure with its error.
Results are not loaded. Writing journals is :mod:`._journal`; using them to resume is
:mod:`._ledger`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.runner._records import failure_fields, read_journal

__all__ = ["JournalFailure", "JournalSummary", "read_journal_summary"]


@dataclass(frozen=True)
class JournalFailure:
    """One item a journal records as failed, with no later success.

    Attributes:
        key: The item's stable key.
        error_type: Qualified name of the exception (``"WorkerDied"`` for a killed worker).
        message: ``str()`` of the exception.
        attempts: How many times the item was tried.
    """

    key: str
    error_type: str
    message: str
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "key": self.key,
            "error_type": self.error_type,
            "message": self.message,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class JournalSummary:
    """The counts and failures of one journal file.

    Attributes:
        path: The journal file.
        name: The ``map`` call's name (the file's stem: ``maps`` for ``tasks/maps.journal``).
        completed: Items with a result in the journal.
        failures: Items whose last record is a failure, in the order they failed.
        damaged_bytes: Bytes of damaged records skipped inside the file.
        torn_bytes: Bytes of a record torn at the end by a crash.
    """

    path: Path
    name: str
    completed: int
    failures: tuple[JournalFailure, ...]
    damaged_bytes: int
    torn_bytes: int

    @property
    def failed(self) -> int:
        """How many items failed."""
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "path": str(self.path),
            "name": self.name,
            "completed": self.completed,
            "failed": self.failed,
            "failures": [failure.to_dict() for failure in self.failures],
            "damaged_bytes": self.damaged_bytes,
            "torn_bytes": self.torn_bytes,
        }


def read_journal_summary(path: str | Path) -> JournalSummary:
    """Count the finished and failed items of a journal file, with each failure's error.

    Safe while a run appends to the journal: the file is read, never locked or changed.

    Args:
        path: A journal file (``RUN_DIR/tasks/<name>.journal``).

    Raises:
        CheckpointError: The file cannot be read.

    Example:
        >>> from lensing_ssc.processing.runner import run_map
        >>> _ = run_map(abs, [-1, 2], executor="serial", journal="j.journal")
        >>> summary = read_journal_summary("j.journal")
        >>> summary.completed, summary.failed
        (2, 0)
    """
    path = Path(path)
    try:
        contents, _ = read_journal(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"could not read the task journal {str(path)!r}: {exc}",
            value=str(path),
            hint="give a journal file of a run directory's tasks/ directory",
        ) from exc
    failures = []
    for key, fields in contents.failed.items():
        known = failure_fields(fields)
        failures.append(
            JournalFailure(
                key=key,
                error_type=known["error_type"],
                message=known["message"],
                attempts=known["attempts"],
            )
        )
    return JournalSummary(
        path=path,
        name=path.stem,
        completed=len(contents.done),
        failures=tuple(failures),
        damaged_bytes=contents.damaged_bytes,
        torn_bytes=contents.torn_bytes,
    )

"""The task runner: map a function over items with any executor, journalled and resumable.

Private parts: :mod:`._task_runner` (``TaskRunner`` and ``run_map``), :mod:`._engine` (the
serial and parallel scheduling loops), :mod:`._ledger`, :mod:`._journal` and :mod:`._appender`
(the book-keeping and the completion journal), :mod:`._keys` (item keys and function
identities), :mod:`._worker` (what runs in workers), :mod:`._executors` and :mod:`._dask`
(executor adapters), :mod:`._results` (the value objects), :mod:`._summary` (reading a
journal's counts and failures without running anything).
"""

from ._adapter import EXECUTOR_NAMES, ExecutorName
from ._summary import JournalFailure, JournalSummary, read_journal_summary
from ._task_runner import (
    MapResult,
    RunnerHooks,
    RunSnapshot,
    TaskFailure,
    TaskRunner,
    run_map,
)

__all__ = [
    "EXECUTOR_NAMES",
    "ExecutorName",
    "JournalFailure",
    "JournalSummary",
    "MapResult",
    "RunSnapshot",
    "RunnerHooks",
    "TaskFailure",
    "TaskRunner",
    "read_journal_summary",
    "run_map",
]

"""The task runner: map a function over items with any executor, journalled and resumable.

Private parts: :mod:`._task_runner` (``TaskRunner`` and ``run_map``), :mod:`._engine` (the
serial and parallel scheduling loops), :mod:`._ledger`, :mod:`._journal` and :mod:`._appender`
(the book-keeping and the completion journal), :mod:`._keys` (item keys and function
identities), :mod:`._names` (a journal's name from what its function computes),
:mod:`._worker` (what runs in workers), :mod:`._executors` and :mod:`._dask` (executor
adapters), :mod:`._process_tree` (ending what killed workers' tasks started),
:mod:`._results` (the value objects), :mod:`._summary` (reading a journal's counts and
failures without running anything).
"""

from ._adapter import EXECUTOR_NAMES, ExecutorName
from ._names import journal_name
from ._summary import JournalFailure, JournalSummary, read_journal_summary
from ._task_runner import (
    MAX_WORKERS,
    MapResult,
    RunnerHooks,
    RunSnapshot,
    TaskFailure,
    TaskRunner,
    run_map,
)

# Plain sorted order (tests/test_public_api.py), not isort's constants-first order.
__all__ = [  # noqa: RUF022
    "EXECUTOR_NAMES",
    "ExecutorName",
    "JournalFailure",
    "JournalSummary",
    "MAX_WORKERS",
    "MapResult",
    "RunSnapshot",
    "RunnerHooks",
    "TaskFailure",
    "TaskRunner",
    "journal_name",
    "read_journal_summary",
    "run_map",
]

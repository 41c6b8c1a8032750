"""The task runner: map a function over items with any executor, journalled and resumable.

Private parts: :mod:`._task_runner` (``TaskRunner``'s arguments and ``map``, and
``run_map``) over :mod:`._runner_executor` (its executor: started on first use, asked,
closed) and :mod:`._runs` (one run: keys, journal, ledger, the loop, a stop), with
:mod:`._options` (``RunnerHooks``, ``MAX_WORKERS`` and the argument checks), :mod:`._engine`
(the serial and parallel scheduling loops) with :mod:`._parallel_run` (a parallel run's
tasks in flight, and what a dead worker means for them) and :mod:`._chunk_sizer` (items
per task), :mod:`._ledger` (the book-keeping),
:mod:`._journal` (the completion journal: opening, locking, the commit thread) with
:mod:`._journal_appends` (appending records), :mod:`._journal_checks` (what opening checks),
:mod:`._records` (the record format and reading) and :mod:`._appender`, :mod:`._keys` (item
keys and function identities), :mod:`._names` (a journal's name from what its function
computes), :mod:`._worker` (what runs in workers), :mod:`._executors` and :mod:`._dask`
(executor adapters), :mod:`._process_tree` (ending what killed workers' tasks started),
:mod:`._results` (the value objects), :mod:`._summary` (reading a journal's counts and
failures without running anything).
"""

from ._adapter import EXECUTOR_NAMES, ExecutorName
from ._names import journal_name
from ._options import MAX_WORKERS, RunnerHooks
from ._results import MapResult, RunSnapshot, TaskFailure
from ._summary import JournalFailure, JournalSummary, read_journal_summary
from ._task_runner import TaskRunner, run_map

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

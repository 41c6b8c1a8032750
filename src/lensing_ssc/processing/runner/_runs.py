"""One run of :meth:`~._task_runner.TaskRunner.map`: from the items to the result or the stop.

:class:`RunnerRuns` is the base of ``TaskRunner`` that runs the items of one ``map`` call,
its arguments already checked: it gives every item its key (:mod:`._keys`), opens the
journal (:mod:`._journal`) and restores what earlier runs settled into the ledger
(:mod:`._ledger`), hands the rest to the serial or the parallel scheduling loop
(:mod:`._engine`), closes the journal, logs the counts and, when a stop left items
undone, raises ``InterruptedRunError`` carrying the partial result.

Not here: the arguments (:mod:`._task_runner`), the executor (:mod:`._runner_executor`),
what runs in workers (:mod:`._worker`).

Example:
    >>> from lensing_ssc.processing.runner import TaskRunner
    >>> with TaskRunner() as runner:
    ...     runner.map(abs, [-1, 2]).completed
    2
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import InterruptedRunError
from lensing_ssc.processing.runner._engine import run_parallel, run_serial
from lensing_ssc.processing.runner._journal import Journal
from lensing_ssc.processing.runner._keys import function_identity, item_keys
from lensing_ssc.processing.runner._ledger import Ledger, Reporters
from lensing_ssc.processing.runner._results import MapResult
from lensing_ssc.processing.runner._runner_executor import RunnerExecutor
from lensing_ssc.processing.runner._worker import RetryPolicy

__all__ = ["RunnerRuns"]

logger = logging.getLogger("lensing_ssc.processing.runner")


class RunnerRuns(RunnerExecutor):
    """The runs of a :class:`~._task_runner.TaskRunner`, which sets every attribute here.

    One run at a time: ``TaskRunner.map`` holds its lock around :meth:`_map`.
    """

    _max_in_flight: int | None  # tasks submitted at once; None: sized per executor
    _stop_timeout: float  # seconds running items may finish after a stop
    _fsync: bool  # the journal's group commit reaches stable storage
    _commit_interval: float  # seconds between the journal's fsyncs
    _compression: str  # codec of large results in the journal
    _ledger: Ledger | None  # the current (or last) run's, for get_status()

    def _map(
        self,
        func: Callable[[Any], Any],
        items: list[Any],
        journal_path: str | os.PathLike[str] | None,
        key: Callable[[Any], Any] | None,
        resume: bool,
        rerun_failed: bool,
        policy: RetryPolicy,
        chunksize: int | None,
        on_complete: Callable[[str, Any], None] | None,
        name: str | None,
    ) -> MapResult[Any]:
        """Run ``func`` over ``items``, the arguments checked by ``map``; the result in order."""
        hooks = self.hooks
        started = time.perf_counter()
        path = None if journal_path is None else Path(journal_path)
        run_name = name or (path.name if path is not None else "map")
        if path is None and key is None:
            keys = [str(index) for index in range(len(items))]
        else:
            keys = item_keys(items, key)
        reporters = Reporters(
            on_complete=tuple(f for f in (hooks.on_complete, on_complete) if f is not None),
            on_failure=() if hooks.on_failure is None else (hooks.on_failure,),
            on_progress=hooks.on_progress,
            on_restored=hooks.on_restored,
        )
        journal = None
        contents = None
        if path is not None:
            journal, contents = Journal.open(
                path,
                function=function_identity(func),
                keys=keys,
                resume=resume,
                fsync=self._fsync,
                commit_interval=self._commit_interval,
                compression=self._compression,
            )
        ledger = Ledger(run_name, keys, journal, reporters)
        self._ledger = ledger
        try:
            if contents is not None:
                ledger.restore(contents, rerun_failed=rerun_failed)
                if contents.damaged_bytes or contents.torn_bytes:
                    logger.warning(
                        "journal %s: skipped %d damaged bytes, cut %d torn bytes",
                        path,
                        contents.damaged_bytes,
                        contents.torn_bytes,
                    )
                contents = None  # the ledger keeps 8 bytes per restored item, not the key index
            logger.info(
                "run %s: %d items, %d from an earlier run, executor %s",
                run_name,
                len(items),
                len(items) - len(ledger.todo),
                self._describe(),
            )
            if not ledger.todo:
                reason = None
            elif self._executor_spec == "serial":
                reason = run_serial(ledger, func, items, policy, hooks.should_stop)
            else:
                self._pool_starts.task = func
                reason = run_parallel(
                    ledger,
                    func,
                    items,
                    self._adapter_now(),
                    policy,
                    chunksize=chunksize,
                    max_in_flight=self._max_in_flight,
                    should_stop=hooks.should_stop,
                    stop_timeout=self._stop_timeout,
                    on_carried=hooks.on_carried,
                )
        finally:
            ledger.running = False
            if journal is not None:
                journal.close()
        result = ledger.result(time.perf_counter() - started)
        logger.info(
            "run %s: %d completed, %d from an earlier run, %d failed, %d left, %.2f s",
            run_name,
            result.completed,
            result.skipped,
            result.failed,
            result.remaining,
            result.elapsed,
        )
        if reason is not None and not result.remaining:
            # The stop came while the last items ran, and they finished: the run is whole.
            logger.info("run %s: a stop (%s) came after its last item started", run_name, reason)
        elif reason is not None:
            raise InterruptedRunError(
                f"run {run_name!r} stopped ({reason}) with {result.remaining} of "
                f"{len(items)} items left; every finished item is saved",
                value=result,
                signal_name=reason,
                hint="run it again with the same journal to finish"
                if path is not None
                else "pass journal= to keep finished items across runs",
            )
        return result

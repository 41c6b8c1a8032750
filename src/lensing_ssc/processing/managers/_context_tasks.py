"""``ManagerContext.map`` and ``runner_for``: the context's task-running half.

:class:`ContextTasks` runs a function over items with the resumable task runner
(:mod:`lensing_ssc.processing.runner`), on the managers a
:class:`~lensing_ssc.processing.managers.context.ManagerContext` built: each call's journal
lives under the run directory, each settled item advances a progress row named for the
call, and thread workers see the caller's log context. Worker processes log into the run's
log, through the local socket (:mod:`._channel`) or, on Dask, as Dask events
(:mod:`._executor_events`); progress counts that reach neither come back with the task's
results. The runner a call uses is kept for the next call with the same executor settings
(:mod:`._kept_runners`), and closed with the context.

The context's other half, building the managers and coordinating them (stop requests,
checkpoints carrying the progress tree, the status file), is in
:mod:`lensing_ssc.processing.managers.context`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from lensing_ssc.core.base.exceptions import InterruptedRunError
from lensing_ssc.processing.managers._kept_runners import (
    InLogContext,
    KeptRunner,
    ProgressRelay,
    RunnerShelf,
)
from lensing_ssc.processing.managers._signals import StopSignals
from lensing_ssc.processing.managers.log import LogManager, LogWorkerConfig, bind_context
from lensing_ssc.processing.managers.progress import ProgressManager, UnsentCounts
from lensing_ssc.processing.managers.rundir import RunDir
from lensing_ssc.processing.runner import MapResult, RunnerHooks, TaskRunner, journal_name

__all__ = ["ContextTasks"]

R = TypeVar("R")


class ContextTasks:
    """The task-running methods of ``ManagerContext``, over the managers it built.

    ``ManagerContext.__init__`` sets every attribute declared here.
    """

    log: LogManager
    progress: ProgressManager
    _run_dir: RunDir
    _stops: StopSignals
    _runners: RunnerShelf
    # The defaults of map and runner_for.
    _executor: Any
    _max_workers: int | None
    _retries: int
    # The context's: checkpoint and raise InterruptedRunError once a stop was requested.
    _raise_if_stopping: Callable[[], None]

    def map(
        self,
        func: Callable[[Any], R],
        items: Iterable[Any],
        *,
        name: str | None = None,
        executor: Any = None,
        max_workers: int | None = None,
        retries: int | None = None,
        key: Callable[[Any], Any] | None = None,
        resume: bool = True,
        **runner_options: Any,
    ) -> MapResult[R]:
        """Run ``func`` over ``items``, resumably, on any executor.

        Finished items are journalled under ``run_dir/tasks/<name>.journal``; a rerun skips
        them, and a journal another function wrote is refused, naming both. Each settled
        item advances a progress subtask named ``name``. Thread workers see the caller's
        log context; process and Dask workers log into the run's log, with
        ``task=<name>``. The executor is kept for the next call with the same
        executor, ``max_workers`` and options (its workers, and what they hold, carry
        over) and closed with the context.

        Args:
            func: Called as ``func(item)``; picklable for process and Dask executors.
            items: The inputs.
            name: Names the journal and the progress row. Default: a module-level
                function's name; for a lambda, closure, partial, bound method or callable
                object, its name and a digest of its code and what it captures
                (``lambda-3f2a9c01b7d4``), so that no two computations share a journal;
                one that captures what cannot be digested (a lock, an open file) needs it.
            executor: ``"serial"``, ``"threads"``, ``"processes"``, ``"dask"``, an
                ``Executor``, ...; default the context's.
            max_workers, retries: Override the context's defaults.
            key: Names each item; see :meth:`TaskRunner.map`.
            resume: ``False`` forgets what an earlier run of ``name`` completed.
            **runner_options: Further :class:`TaskRunner` options (``chunksize``,
                ``stop_timeout``, ``scheduler_address``, ...); ``chunksize`` applies to
                this call only.

        Raises:
            InterruptedRunError: a graceful stop was requested; finished items are saved.
            ConfigError: the journal holds another function's results, or ``func`` needs
                ``name=``.
        """
        self._raise_if_stopping()
        items = list(items)
        label: str = name or journal_name(func)
        journal = self._run_dir.journal(label)
        journal.parent.mkdir(parents=True, exist_ok=True)
        chunksize = runner_options.pop("chunksize", None)
        kept = self._take_runner(executor, max_workers, runner_options)
        if not kept.runner.runs_in_this_process:  # its workers outlive this call
            func = InLogContext(func, {"task": label})
        try:
            with (
                self.progress.subprogress(label, total=len(items)) as task,
                self.log.log_context(task=label),
            ):
                kept.relay.target = task.update
                kept.relay.restored_target = task.count_restored
                return kept.runner.map(
                    func,
                    items,
                    journal=journal,
                    key=key,
                    resume=resume,
                    name=label,
                    retries=self._retries if retries is None else retries,
                    chunksize=chunksize,
                )
        except InterruptedRunError:
            self._raise_if_stopping()
            raise
        finally:
            self._runners.give_back(kept)

    def runner_for(
        self, executor: Any = None, *, max_workers: int | None = None, **runner_options: Any
    ) -> TaskRunner:
        """The runner :meth:`map` runs on with these arguments, to ask what it will do.

        It is the very runner kept for ``map`` (built now if there is none yet; its executor
        starts with the first ``map``), so its answers are the run's: ``max_workers`` (items
        at once), ``runs_in_this_process``, ``forks_workers``. Run items with :meth:`map`,
        which adds the journal, progress and log context.

        Args:
            executor, max_workers, **runner_options: As for :meth:`map`; default the
                context's.

        Example:
            >>> from lensing_ssc.processing.managers import ManagerContext
            >>> with ManagerContext(executor="threads", max_workers=2, stop_signals=()) as ctx:
            ...     runner = ctx.runner_for()
            ...     runner.max_workers, runner.runs_in_this_process
            (2, True)
        """
        runner_options.pop("chunksize", None)  # a per-call setting: any runner serves it
        kept = self._take_runner(executor, max_workers, runner_options)
        self._runners.give_back(kept)
        return kept.runner

    def _take_runner(
        self, executor: Any, max_workers: int | None, options: dict[str, Any]
    ) -> KeptRunner:
        """The idle runner with these settings (the context's where ``None``), or a new one."""
        executor = self._executor if executor is None else executor
        max_workers = self._max_workers if max_workers is None else max_workers
        return self._runners.take(
            executor,
            max_workers,
            options,
            lambda relay: self._build_runner(executor, max_workers, relay, options),
        )

    def _build_runner(
        self, executor: Any, max_workers: int | None, relay: ProgressRelay, options: dict[str, Any]
    ) -> TaskRunner:
        runner = TaskRunner(executor, max_workers=max_workers, retries=self._retries, **options)
        if runner.executor_kind == "dask":
            # Dask workers may run on other hosts: their records and counts travel as Dask
            # events, never through this machine's socket (or its /tmp).
            worker_config = self.log.executor_worker_config()
            events: dict[str, Callable[[Any], None]] = {
                worker_config.address.topic: self.log.take_worker_event,
                self.progress.executor_topic: self.progress.take_worker_event,
            }
        else:
            worker_config, events = self.log.worker_config(), {}
        runner.hooks = RunnerHooks(
            should_stop=lambda: self._stops.request.reason if self._stops.request else None,
            on_progress=relay,
            on_restored=relay.restored,
            context_wrapper=bind_context,
            worker_initializer=_attach_worker_logs,
            initargs=(worker_config,),
            worker_events=events,
            worker_flush=_after_worker_task,
            on_carried=self.progress.take_worker_counts,
        )
        return runner


def _attach_worker_logs(config: LogWorkerConfig) -> None:
    """Pool initializer: send the worker's records to the run's log writer."""
    LogManager.attach_worker(config)


def _after_worker_task() -> UnsentCounts | None:
    """After each task in a worker: send what it logged, ahead of the task's result, and
    return the progress counts that found no way to the driver, to go with the result."""
    LogManager.flush_workers()
    return ProgressManager.unsent_counts()

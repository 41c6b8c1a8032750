"""The task runners a :class:`~.context.ManagerContext` keeps between its ``map`` calls.

Starting an executor is not free: a process pool forks its workers, which set up their
logging, open the run's cache and start cold; a Dask cluster takes a second. And what the
workers hold in memory (a pipeline's maps, made in one stage and measured in the next)
goes with them. So a context keeps each runner it builds and hands it to the next
``map`` with the same executor settings (``runner_for`` hands out that same runner, for a
caller to ask how it will run); it closes them all when it closes. A runner
serves one call at a time: a ``map`` started while another uses it (from another thread)
gets a runner of its own, kept too.

Per call, a kept runner reports progress to that call's progress row
(:class:`ProgressRelay`), and in worker processes the call's function runs with the
call's log fields bound (:class:`InLogContext`), since the workers outlive the call. The
coordination itself is in :mod:`.context`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lensing_ssc.processing.managers.log import log_context
from lensing_ssc.processing.runner import TaskRunner

__all__ = ["InLogContext", "KeptRunner", "ProgressRelay", "RunnerShelf"]


class ProgressRelay:
    """Forwards a kept runner's progress to the progress row of the call using it.

    ``target`` counts new work; ``restored_target`` counts what the journal held from an
    earlier run (shown as resumed, left out of rate and ETA).
    """

    def __init__(self) -> None:
        self.target: Callable[[int], None] | None = None
        self.restored_target: Callable[[int], None] | None = None

    def __call__(self, n: int) -> None:
        target = self.target
        if target is not None:
            target(n)

    def restored(self, n: int) -> None:
        """Forward ``n`` items an earlier run settled."""
        target = self.restored_target
        if target is not None:
            target(n)


class InLogContext:
    """``func`` called with ``fields`` bound as log context, in whichever process runs it.

    Picklable when ``func`` is. ``__wrapped__`` names ``func``, so the run's journal
    records ``func`` as the function.
    """

    def __init__(self, func: Callable[[Any], Any], fields: Mapping[str, Any]) -> None:
        self.__wrapped__ = func
        self.fields = dict(fields)

    def __call__(self, item: Any) -> Any:
        with log_context(**self.fields):
            return self.__wrapped__(item)


@dataclass(eq=False)
class KeptRunner:
    """A runner, the settings it was built with, and where its progress goes."""

    executor: Any
    max_workers: int | None
    options: dict[str, Any]
    runner: TaskRunner
    relay: ProgressRelay = field(default_factory=ProgressRelay)

    def serves(self, executor: Any, max_workers: int | None, options: dict[str, Any]) -> bool:
        """Whether this runner was built with exactly these settings."""
        same_executor = self.executor is executor or (
            isinstance(executor, str) and self.executor == executor
        )
        return same_executor and self.max_workers == max_workers and self.options == options


class RunnerShelf:
    """Idle runners of one context, taken by a ``map`` call and given back after it."""

    def __init__(self) -> None:
        self._idle: list[KeptRunner] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(
        self,
        executor: Any,
        max_workers: int | None,
        options: dict[str, Any],
        build: Callable[[ProgressRelay], TaskRunner],
    ) -> KeptRunner:
        """An idle runner with these settings, or a new one from ``build(relay)``."""
        with self._lock:
            for index, kept in enumerate(self._idle):
                if kept.serves(executor, max_workers, options):
                    return self._idle.pop(index)
        relay = ProgressRelay()
        return KeptRunner(executor, max_workers, dict(options), build(relay), relay)

    def give_back(self, kept: KeptRunner) -> None:
        """Keep ``kept`` for the next call (or close it if the shelf is closed)."""
        kept.relay.target = kept.relay.restored_target = None
        with self._lock:
            if not self._closed:
                self._idle.append(kept)
                return
        kept.runner.close()

    def close(self) -> None:
        """Close every idle runner (pools, clusters); runners in use close when given back.

        Raises:
            Exception: the first error from closing a runner, after trying them all.
        """
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        errors: list[Exception] = []
        for kept in idle:
            try:
                kept.runner.close()
            except Exception as exc:  # close the others first, then report
                errors.append(exc)
        if errors:
            raise errors[0]

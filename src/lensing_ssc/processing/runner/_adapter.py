"""The one interface every executor adapter gives the scheduling loop, and the executor names.

:class:`Adapter` is what :mod:`._engine` drives: submit, count workers, tell a dead worker from
a failed task, rebuild, cancel, terminate, close. Its implementations are
:class:`~._pools.PoolAdapter` (``concurrent.futures`` executors) and
:class:`~._dask.DaskAdapter`; :func:`~._executors.build_adapter` picks one. The serial
executor needs none: the engine runs it in a plain loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

from lensing_ssc.processing.runner._worker import WorkerSetup

__all__ = ["EXECUTOR_NAMES", "Adapter", "ExecutorName", "Wrapper"]

ExecutorName = Literal["serial", "threads", "processes", "dask"]
"""The executors the runner builds by name (config files and the CLI offer exactly these)."""

EXECUTOR_NAMES: tuple[str, ...] = get_args(ExecutorName)

Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


class Adapter(ABC):
    """The interface the scheduling loop uses.

    Attributes:
        kind: ``"threads"``, ``"processes"``, ``"dask"`` or ``"executor"`` (a user's).
        generation: Increases each time the executor is rebuilt after a worker died.
        chunk_target: Seconds of work per task that make the per-task overhead negligible.
        task_overhead: Seconds of CPU a task costs beyond its items' own (0: negligible); the
            loop then puts enough known-short items in each task to keep it a small share.
        workers_per_core: Workers that share each core (a local cluster of more workers than
            cores): an item's measured seconds are that many times the work it did.
        task_setup: Set-up each task carries, for workers the runner did not start.
        no_workers_timeout: Seconds a cluster may have no workers before that is a fault.
    """

    kind: str = "executor"
    generation: int = 0
    chunk_target: float = 0.02
    task_overhead: float = 0.0
    workers_per_core: float = 1.0
    task_setup: WorkerSetup | None = None
    no_workers_timeout: float = 60.0

    @abstractmethod
    def workers(self) -> int:
        """How many items the executor runs at once."""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)``; returns a future with ``add_done_callback``."""

    @abstractmethod
    def is_worker_death(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a future) means the worker process died."""

    def death_tries(self, exc: BaseException) -> int:
        """How many times the task that ended with the worker death ``exc`` was run: 1.

        A Dask scheduler reruns such a task on other workers first (its allowed-failures).
        """
        return 1

    def fault(self, exc: BaseException | None = None) -> str | None:
        """Why the executor can run nothing more (its scheduler is gone, say), or ``None``.

        With ``exc`` (a future's or a submission's error): whether that error says so.
        A fault ends the run like a graceful stop, not as failed items; executors that
        cannot lose their scheduler have none.
        """
        return None

    @abstractmethod
    def rebuild(self) -> None:
        """Replace a broken executor; re-raises the breakage when that is not ours to do."""

    @abstractmethod
    def cancel_queued(self, futures: Iterable[Any]) -> None:
        """Cancel those of ``futures`` that have not started (a graceful stop begins)."""

    @abstractmethod
    def terminate(self, futures: Iterable[Any]) -> None:
        """Stop ``futures`` and running work now (a graceful stop ran out of time)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the adapter created (idempotent)."""

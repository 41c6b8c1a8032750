"""Adapters that give every executor the same small interface for the scheduling loop.

:class:`PoolAdapter` wraps a ``concurrent.futures.Executor``: a thread or process pool the
runner builds (and rebuilds when a worker process dies), a factory the user passes (an
executor class such as ``mpi4py.futures.MPIPoolExecutor`` counts), or an instance the user
passes (used as is, never shut down or rebuilt by us). The Dask adapter is in
:mod:`.dask_adapter`, imported only when Dask is asked for. :func:`build_adapter` turns the
``executor=`` argument into an adapter. The serial executor needs none: :mod:`.engine` runs
it in a plain loop.
"""

from __future__ import annotations

import contextvars
import functools
import multiprocessing.context
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.processing._runner.worker import WorkerSetup, process_worker_init

__all__ = ["EXECUTOR_NAMES", "Adapter", "PoolAdapter", "build_adapter", "usable_cpus"]

EXECUTOR_NAMES = ("serial", "threads", "processes", "dask")

Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Adapter(ABC):
    """The interface the scheduling loop uses.

    Attributes:
        kind: ``"threads"``, ``"processes"``, ``"dask"`` or ``"executor"`` (a user's).
        generation: Increases each time the executor is rebuilt after a worker died.
        chunk_target: Seconds of work per task that make the per-task overhead negligible.
        task_setup: Set-up each task carries, for workers the runner did not start.
    """

    kind: str = "executor"
    generation: int = 0
    chunk_target: float = 0.02
    task_setup: WorkerSetup | None = None

    @abstractmethod
    def workers(self) -> int:
        """How many items the executor runs at once."""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)``; returns a future with ``add_done_callback``."""

    @abstractmethod
    def is_worker_death(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a future) means the worker process died."""

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


class PoolAdapter(Adapter):
    """A ``concurrent.futures`` executor, owned (built from a factory) or borrowed.

    Args:
        kind: Name reported in the status.
        factory: Builds the executor; ``None`` with ``borrowed``.
        borrowed: A user's executor instance: used as is, not rebuilt, not shut down.
        n_workers: Items run at once (sizes the in-flight window).
        in_process: Tasks run in this process (threads): they get a copy of the submitting
            thread's ``contextvars`` and pass through ``context_wrapper``.
        context_wrapper: Wraps each task's callable at submission (threads only).
        task_setup: Set-up each task carries (executors whose workers we do not start).
    """

    def __init__(
        self,
        kind: str,
        *,
        factory: Callable[[], Executor] | None = None,
        borrowed: Executor | None = None,
        n_workers: int,
        in_process: bool,
        context_wrapper: Wrapper | None = None,
        task_setup: WorkerSetup | None = None,
    ) -> None:
        self.kind = kind
        self.task_setup = task_setup
        self._factory = factory
        self._executor: Executor | None = borrowed
        self._owned = borrowed is None
        self._n_workers = n_workers
        self._in_process = in_process
        if not in_process:
            # Each task wakes threads of this process (result handling, scheduling, the next
            # submission) and the worker's pipe; with as many workers as cores, those wake-ups
            # preempt workers and cool their caches. Measured on 2 cores with the pipeline's
            # patches: with ~20 ms tasks the workers needed ~6 % more CPU for the same work
            # than with ~80 ms tasks, and this process ~50 % more.
            self.chunk_target = 0.1
        self._wrapper = context_wrapper
        self._stale = False

    def _live(self) -> Executor:
        if self._executor is None or self._stale:
            return self._replace()
        return self._executor

    def _replace(self) -> Executor:
        if not self._owned or self._factory is None:
            raise BrokenExecutor(
                "the executor passed to the runner is broken and is not the runner's to "
                "rebuild; pass a factory (e.g. the executor class) to let the runner rebuild it"
            )
        old = self._executor
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        self._executor = new = self._factory()
        self._stale = False
        self.generation += 1
        return new

    def workers(self) -> int:
        return self._n_workers

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        executor = self._live()
        if self._in_process:
            call = fn if self._wrapper is None else self._wrapper(fn)
            return executor.submit(contextvars.copy_context().run, call, *args)
        return executor.submit(fn, *args)

    def is_worker_death(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokenExecutor)

    def rebuild(self) -> None:
        self._replace()

    def cancel_queued(self, futures: Iterable[Any]) -> None:
        for future in futures:
            future.cancel()

    def terminate(self, futures: Iterable[Any]) -> None:
        self.cancel_queued(futures)
        executor = self._executor
        if executor is None or not self._owned:
            return
        if isinstance(executor, ProcessPoolExecutor):
            _kill_workers(executor)
        executor.shutdown(wait=False, cancel_futures=True)
        self._stale = True  # threads cannot be killed: they finish, unused, in the old pool

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None and self._owned:
            # After terminate() nothing is waited for: abandoned threads end on their own.
            executor.shutdown(wait=not self._stale, cancel_futures=True)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
        return
    # Before 3.14 the pool exposes no way to stop a running task: end its processes.
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.kill()


def build_adapter(
    executor: Any,
    *,
    max_workers: int | None,
    scheduler_address: str | None,
    mp_context: multiprocessing.context.BaseContext | str | None,
    context_wrapper: Wrapper | None,
    worker_initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    setup: WorkerSetup | None,
) -> Adapter:
    """Turn an ``executor=`` argument (other than ``"serial"``) into an adapter.

    Raises:
        ConfigError: An unknown executor name or type.
        ModuleNotFoundError: ``"dask"`` without the ``dask`` extra.
    """
    if executor == "threads":
        n = max_workers or min(32, usable_cpus() + 4)
        return PoolAdapter(
            "threads",
            n_workers=n,
            in_process=True,
            context_wrapper=context_wrapper,
            factory=functools.partial(
                ThreadPoolExecutor, max_workers=n, thread_name_prefix="lensing_ssc-runner"
            ),
        )
    if executor == "processes":
        n = max_workers or usable_cpus()
        context = (
            multiprocessing.get_context(mp_context) if isinstance(mp_context, str) else mp_context
        )
        return PoolAdapter(
            "processes",
            n_workers=n,
            in_process=False,
            factory=functools.partial(
                ProcessPoolExecutor,
                max_workers=n,
                mp_context=context,
                initializer=process_worker_init,
                initargs=(worker_initializer, initargs),
            ),
        )
    if executor == "dask" or _is_dask_client(executor):
        from lensing_ssc.processing._runner.dask_adapter import DaskAdapter

        return DaskAdapter(
            client=None if executor == "dask" else executor,
            scheduler_address=scheduler_address,
            n_workers=max_workers or usable_cpus(),
            setup=setup,
        )
    if isinstance(executor, Executor):
        threads = isinstance(executor, ThreadPoolExecutor)
        return PoolAdapter(
            "executor",
            borrowed=executor,
            in_process=threads,
            n_workers=max_workers or usable_cpus(),
            context_wrapper=context_wrapper,
            task_setup=None if threads else setup,
        )
    if isinstance(executor, str):
        raise ConfigError(
            f"unknown executor {executor!r}",
            value=executor,
            hint=f"use one of {', '.join(EXECUTOR_NAMES)}, or pass a concurrent.futures.Executor",
            field="executor",
        )
    if callable(executor):
        return PoolAdapter(
            "executor",
            factory=executor,
            in_process=False,
            n_workers=max_workers or usable_cpus(),
            task_setup=setup,
        )
    raise ConfigError(
        f"executor must be a name, an Executor, an Executor factory or a Dask Client, "
        f"got {type(executor).__name__}",
        value=executor,
        hint=f"use one of {', '.join(EXECUTOR_NAMES)}",
        field="executor",
    )


def _is_dask_client(executor: Any) -> bool:
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(executor, distributed.Client)

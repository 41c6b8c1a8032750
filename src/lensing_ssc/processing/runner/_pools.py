"""Adapters over ``concurrent.futures`` executors: thread and process pools, and the user's.

:class:`PoolAdapter` wraps a thread or process pool the runner builds (and rebuilds when a
worker process dies), a factory the user passes (an executor class such as
``mpi4py.futures.MPIPoolExecutor`` counts), or an instance the user passes (used as is,
never shut down or rebuilt by us). A user's executor is asked how many workers it has
(:func:`pool_size`) unless the runner was told. A process pool the runner starts asks the
runner, at each start, how its workers start (:attr:`PoolAdapter.start_context`: a fork of
this process only where that cannot hang, :mod:`._fork_guard`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.processing.runner._adapter import Adapter, Wrapper
from lensing_ssc.processing.runner._worker import WorkerSetup

__all__ = ["PoolAdapter", "pool_size"]


def pool_size(executor: Executor) -> int | None:
    """The workers ``executor`` says it has, or ``None`` when it does not say.

    ``num_workers`` where there is one (mpi4py's ``MPIPoolExecutor``: the ranks serving
    its pool, which it starts to answer), else ``_max_workers`` (the standard library's
    thread and process pools, and executors modelled on them).

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> with ThreadPoolExecutor(max_workers=3) as pool:
        ...     pool_size(pool)
        3
    """
    for name in ("num_workers", "_max_workers"):
        value = getattr(executor, name, None)  # foreign classes: no interface to ask
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class PoolAdapter(Adapter):
    """A ``concurrent.futures`` executor, owned (built from a factory) or borrowed.

    Args:
        kind: Name reported in the status.
        factory: Builds the executor; ``None`` with ``borrowed``.
        borrowed: A user's executor instance: used as is, not rebuilt, not shut down.
        n_workers: Items run at once (sizes the in-flight window); ``None``: what the
            executor says once built (:func:`pool_size`), else the usable CPUs.
        in_process: Tasks run in this process (threads): they get a copy of the submitting
            thread's ``contextvars`` and pass through ``context_wrapper``.
        context_wrapper: Wraps each task's callable at submission (threads only).
        task_setup: Set-up each task carries (executors whose workers we do not start).

    Attributes:
        start_context: For a process pool the runner starts: called before each start of
            the pool (the first, and each rebuild), it returns the ``mp_context`` the pool
            starts with, overriding the factory's (``None``: Python's default). ``None``:
            the factory's own.
    """

    start_context: Callable[[], BaseContext | None] | None = None

    def __init__(
        self,
        kind: str,
        *,
        factory: Callable[..., Executor] | None = None,
        borrowed: Executor | None = None,
        n_workers: int | None,
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
        if self.start_context is None:
            new = self._factory()
        else:
            new = self._factory(mp_context=self.start_context())
        self._executor = new
        self._stale = False
        self.generation += 1
        return new

    def workers(self) -> int:
        if self._n_workers is None:
            self._n_workers = pool_size(self._live()) or usable_cpus()
        return self._n_workers

    def executor_class(self) -> type[Executor]:
        """The class of the executor the tasks run on (built now if it is not yet)."""
        return type(self._live())

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
            # The pipe's write end, read before the shutdown lets go of the pool's queues.
            writer = getattr(getattr(executor, "_result_queue", None), "_writer", None)
            killed = _kill_workers(executor)
            # The shutdown's wake-up reaches the pool's manager thread with the workers'
            # deaths, so it drops the cancelled tasks before it marks the pool broken
            # (Python 3.11 raises InvalidStateError for a cancelled task it marks).
            executor.shutdown(wait=False, cancel_futures=True)
            _unblock_results(killed, writer)
        else:
            executor.shutdown(wait=False, cancel_futures=True)
        self._stale = True  # threads cannot be killed: they finish, unused, in the old pool

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None and self._owned:
            # After terminate() nothing is waited for: abandoned threads end on their own.
            executor.shutdown(wait=not self._stale, cancel_futures=True)


def _kill_workers(pool: ProcessPoolExecutor) -> list[Any]:
    """End ``pool``'s worker processes now; return them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
        return processes
    # Before 3.14 the pool exposes no way to stop a running task: end its processes.
    for process in processes:
        if process.is_alive():
            process.kill()
    return processes


def _unblock_results(killed: list[Any], writer: Any) -> None:
    """Let the pool's manager thread end when a killed worker was sending a result.

    Such a worker leaves part of the result in the pipe, and the manager thread waits for
    the rest forever: this process holds the pipe's write end too, so no end-of-file
    comes, and the interpreter's exit joins that thread (``lensing-ssc run`` hung after a
    second Ctrl-C). Nothing in this process writes results: with its write end
    (``writer``) closed as well, the read ends in EOFError once the killed workers are gone.
    """
    for process in killed:
        process.join(timeout=5.0)
    if writer is not None:
        writer.close()

"""Draw a run's figures side by side in forked processes, where that is safe.

A run's figures cost ~0.5–1 s each of matplotlib's Python (axes, ticks, text), one core
each; drawn at once on two cores, the three take ~1.3 s instead of ~2.5 s. Children are
forked, not spawned: a fork starts in milliseconds with matplotlib already imported, a
spawned worker would first spend ~0.8 s importing it and the package.

:func:`fork_is_safe` says when forking is allowed: POSIX ``fork`` (not macOS, whose system
libraries may break in a forked child), more than one usable CPU
(:func:`lensing_ssc.core.base.cpus.usable_cpus`), and no other Python thread,
which a child would lose mid-step. :func:`run_forked` runs the first job in the calling
process and every other in a child of its own; a child's exception comes back pickled and
is raised in the caller once every child has ended, and an interrupted caller kills its
children before re-raising. Children leave with ``os._exit``: the caller's buffered output,
``atexit`` hooks and open files are not touched twice.

What is *not* here: what the jobs draw (:mod:`._run_figures`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from lensing_ssc.core.base.cpus import usable_cpus

__all__ = ["fork_is_safe", "run_forked"]


def fork_is_safe() -> bool:
    """Whether jobs may run in forked children here (POSIX, not macOS, 2+ CPUs, one thread).

    Example:
        >>> isinstance(fork_is_safe(), bool)
        True
    """
    return (
        hasattr(os, "fork")
        and sys.platform != "darwin"
        and usable_cpus() > 1
        and threading.active_count() == 1
    )


def _child(job: Callable[[], Any], write_end: int) -> None:
    """Run ``job`` in the forked child; send back nothing or its pickled error; never return."""
    status = 1
    try:
        try:
            job()
            payload = b""
            status = 0
        except BaseException as exc:  # every error goes back to the caller
            try:
                payload = pickle.dumps(exc)
            except (pickle.PicklingError, TypeError, AttributeError):
                payload = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    finally:
        os._exit(status)


def _fork(job: Callable[[], Any]) -> tuple[int, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(job, write_end)
    os.close(write_end)
    return pid, read_end


def _collect(pid: int, read_end: int) -> BaseException | None:
    """Wait for a child; its error, or ``None`` when it succeeded."""
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if payload:
        error = pickle.loads(payload)
        return error if isinstance(error, BaseException) else RuntimeError(repr(error))
    code = os.waitstatus_to_exitcode(status)
    if code != 0:  # killed before it could report, by the OOM killer say
        return ChildProcessError(
            f"the process drawing a figure (pid {pid}) ended with exit code {code} "
            "before reporting; the figures drawn beside it are written"
        )
    return None


def run_forked(jobs: Sequence[Callable[[], Any]]) -> None:
    """Run ``jobs`` at once: the first here, each other in a forked child; raise the first error.

    Call it only where :func:`fork_is_safe` holds.

    Args:
        jobs: Callables taking no argument; what they return is dropped.

    Raises:
        BaseException: The first job's error in ``jobs`` order, once every child has ended;
            :class:`ChildProcessError` (an ``OSError``) for a child that died without one.

    Example:
        >>> run_forked([lambda: None, lambda: None]) if fork_is_safe() else None
    """
    children: list[tuple[int, int]] = []
    errors: list[BaseException | None] = []
    try:
        for job in jobs[1:]:
            children.append(_fork(job))
        try:
            jobs[0]()
            errors.append(None)
        except Exception as exc:  # raised below, after the children are collected
            errors.append(exc)
        while children:
            errors.append(_collect(*children[0]))
            children.pop(0)
    finally:
        for pid, read_end in children:  # interrupted: end the children still running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):  # closed already if the wait was interrupted
                os.close(read_end)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    for error in errors:
        if error is not None:
            raise error

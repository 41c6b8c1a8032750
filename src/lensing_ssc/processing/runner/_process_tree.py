"""Ending what the tasks of killed worker processes started: no orphan outlives a stop.

A task may start processes of its own (``subprocess.run`` of a tool, a solver, a pool of
its own). When a stop kills the worker processes (:mod:`._engine`: a graceful stop whose
``stop_timeout`` ran out, a second Ctrl-C, an executor that failed), those processes would
be left behind, re-parented to ``init``, holding their memory and cores. So the engine
notes this process's tree (:func:`note_tree`) before it terminates the executor, and then
(:func:`end_orphans`) ends every process of that tree whose parent, or an ancestor, ended
with the executor's: SIGTERM, and SIGKILL to what is still there a second later.

Only descendants of processes that ended are touched: a process a task of a thread worker
started is a child of this process, which lives on, so it is left alone (threads cannot be
stopped either: their tasks finish on their own), and so are processes this program
started otherwise. Workers on other hosts (Dask, MPI) are their executor's to stop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psutil

__all__ = ["ProcessTree", "end_orphans", "note_tree"]

logger = logging.getLogger("lensing_ssc.processing.runner")

_END_WAIT = 1.0
"""Seconds to wait for the executor's processes to end after it was terminated (SIGKILL is
delivered at once; this is the slack for a loaded machine and for Dask's nannies)."""
_SETTLE = 0.05
"""Seconds to wait, once one process ended, for the others killed with it."""
_TERM_GRACE = 1.0
"""Seconds an orphan has to exit on SIGTERM before SIGKILL."""


@dataclass(frozen=True)
class ProcessTree:
    """This process's descendants at one moment: each one, and its parent's pid."""

    processes: dict[int, psutil.Process]
    parents: dict[int, int]


def note_tree() -> ProcessTree:
    """This process's descendants now (empty where the system cannot be asked)."""
    processes: dict[int, psutil.Process] = {}
    parents: dict[int, int] = {}
    try:
        descendants = psutil.Process().children(recursive=True)
    except psutil.Error:
        return ProcessTree({}, {})
    for process in descendants:
        try:
            parents[process.pid] = process.ppid()
        except psutil.Error:  # it ended meanwhile
            continue
        processes[process.pid] = process
    return ProcessTree(processes, parents)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def end_orphans(tree: ProcessTree) -> int:
    """End the processes of ``tree`` left behind by an ancestor that has ended since.

    Waits up to a second for the processes that have descendants to end (the executor's
    workers, just terminated); returns how many orphans were ended.
    """
    holders = {pid for pid in tree.parents.values() if pid in tree.processes}
    if not holders:  # no process of the tree started one of its own: nothing to orphan
        return 0
    deadline = time.monotonic() + _END_WAIT
    ended: set[int] = set()
    while not ended and time.monotonic() < deadline:
        ended = {pid for pid in holders if not _alive(tree.processes[pid])}
        if not ended:
            time.sleep(0.02)
    if not ended:
        return 0
    time.sleep(_SETTLE)
    ended = {pid for pid in holders if not _alive(tree.processes[pid])}
    orphans = [
        process
        for pid, process in tree.processes.items()
        if _ancestor_in(pid, ended, tree.parents) and _alive(process)
    ]
    for process in orphans:
        try:
            process.terminate()
        except psutil.Error:
            continue
    _, left = psutil.wait_procs(orphans, timeout=_TERM_GRACE)
    for process in left:
        try:
            process.kill()
        except psutil.Error:
            continue
    if orphans:
        logger.info(
            "stop: ended %d process(es) that tasks of the stopped workers had started",
            len(orphans),
        )
    return len(orphans)


def _ancestor_in(pid: int, ended: set[int], parents: dict[int, int]) -> bool:
    seen = set()
    parent = parents.get(pid)
    while parent is not None and parent not in seen:
        if parent in ended:
            return True
        seen.add(parent)
        parent = parents.get(parent)
    return False

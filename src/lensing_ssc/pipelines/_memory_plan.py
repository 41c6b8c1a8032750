"""The patch-statistics run's memory plan: refuse a run that cannot fit before it starts.

:func:`guard_memory` estimates the peak memory of a run on this host (this process, the
merged results it will hold, and the workers that share this host's memory limit) and
raises :class:`~lensing_ssc.core.base.exceptions.ResourceError` when the estimate is above
the limit; :func:`memory_limit_mb` reads that limit before anything is planned.
:func:`place_workers` says how many of the executor's workers hold memory on this host and
how each starts:

- the runner's own worker processes and a user's executor run here, each a copy of this
  process (a fork inherits its resident pages; a user's pool is not asked how it starts);
- an MPI pool (``mpi4py.futures.MPIPoolExecutor``, also as ``MPICommExecutor`` hands it
  out) has one driver, this process, and worker ranks that start as fresh interpreters,
  not copies of it. Under ``mpiexec``/``srun ... python -m mpi4py.futures`` the workers
  are the other ranks of ``MPI.COMM_WORLD``; those on this host are this host's ranks less
  the driver, as the launcher tells each rank (:func:`ranks_on_this_host`). Ranks on other
  hosts are held to their own hosts' memory, which this process cannot measure: with
  ranks spread evenly, the driver's host, which also holds the results, is the fullest.
  Where the launcher does not say (or the pool spawned its workers), every worker is
  counted here;
- a joined Dask cluster's workers are other processes, often on other hosts, each with its
  own ``memory_limit`` (:func:`_guard_cluster_memory`).

How tasks are placed is the task runner's (:mod:`lensing_ssc.processing.runner`); the
limits are the resource manager's (:mod:`lensing_ssc.processing.managers.resource`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lensing_ssc.core.base.exceptions import ResourceError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.pipelines._map_recipes import MapTask
from lensing_ssc.pipelines._tasks import WORKER_CACHE_MB
from lensing_ssc.processing.managers import ManagerContext, ResourceManager
from lensing_ssc.processing.runner import TaskRunner

__all__ = [
    "WorkerPlacement",
    "guard_memory",
    "memory_limit_mb",
    "place_workers",
    "ranks_on_this_host",
]

_MIB = 2**20
# Peak temporaries of one patch's statistics, in patch sizes (measured: 17-27 for 128² to
# 512² patches, quick to full settings).
_PATCH_WORK = 32
# Copies of each patch's statistics in this process by the end of a run: the journal's
# mapping, the records read back, the stacked samples, and room for the summaries (measured
# growth: ~4.6 × the packed values).
_RESULT_COPIES = 5
# What a worker process that starts afresh (an MPI rank) holds besides its work and cache:
# Python, numpy, scipy, h5py, mpi4py with its MPI library and this package. Measured: 112
# to 115 MiB per rank at the end of a small run under `mpiexec -n 4 python -m
# mpi4py.futures` (MPICH 5, Python 3.11), 8 MiB of which were the run's work and cache.
_FRESH_WORKER = 128 * _MIB
_MPI_EXECUTOR = "mpi4py."  # the module path of every mpi4py executor class
# What each launcher tells a rank about the ranks on its host, checked in this order.
_LOCAL_RANKS = (
    "MPI_LOCALNRANKS",  # Hydra: MPICH's and Intel MPI's mpiexec
    "OMPI_COMM_WORLD_LOCAL_SIZE",  # Open MPI's mpirun
    "MV2_COMM_WORLD_LOCAL_SIZE",  # MVAPICH2's mpirun_rsh
)
_SLURM_GROUP = re.compile(r"(\d+)(?:\(x(\d+)\))?")  # "16(x2)" in "16(x2),8"


@dataclass(frozen=True)
class WorkerPlacement:
    """How many of an executor's workers hold memory on this host, and how each starts.

    Attributes:
        here: Workers on this host (counted against its memory limit).
        total: All the executor's workers.
        fresh: Each starts as a fresh interpreter (an MPI rank), not a copy of this process.
        source: How ``here`` is known (``"MPI_LOCALNRANKS=4"``), empty when every worker
            is here by construction.
    """

    here: int
    total: int
    fresh: bool = False
    source: str = ""

    def start_bytes(self, used: float) -> float:
        """What each worker process holds before its first task, this process holding ``used``.

        Example:
            >>> WorkerPlacement(3, 3, fresh=True).start_bytes(6e9) / 2**20
            128.0
        """
        return float(_FRESH_WORKER) if self.fresh else used

    def to_dict(self) -> dict[str, Any]:
        return {"here": self.here, "total": self.total, "fresh": self.fresh, "source": self.source}


def _positive(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    value = int(text)
    return value if value > 0 else None


def _slurm_tasks_here(environ: Mapping[str, str]) -> int | None:
    """This node's tasks from srun's ``SLURM_STEP_TASKS_PER_NODE`` (``"16(x2),8"``)."""
    layout, node = environ.get("SLURM_STEP_TASKS_PER_NODE"), environ.get("SLURM_NODEID", "")
    if layout is None or not node.strip().isdigit():
        return None
    counts: list[int] = []
    for group in layout.split(","):
        match = _SLURM_GROUP.fullmatch(group.strip())
        if match is None:
            return None
        counts += [int(match[1])] * int(match[2] or 1)
    index = int(node)  # the node's place in the step, from 0
    return counts[index] if index < len(counts) and counts[index] > 0 else None


def ranks_on_this_host(
    environ: Mapping[str, str] | None = None, *, world_size: int | None = None
) -> tuple[int, str] | None:
    """The MPI ranks on this host as the launcher told this rank, and the variable that said.

    Hydra (MPICH, Intel MPI), Open MPI and MVAPICH2 each set a variable with the count;
    srun sets ``SLURM_STEP_TASKS_PER_NODE`` and ``SLURM_NODEID``. ``None`` where none
    of them is set or a value is not a count (or above ``world_size``).

    Example:
        >>> ranks_on_this_host({"MPI_LOCALNRANKS": "16"})
        (16, 'MPI_LOCALNRANKS=16')
        >>> ranks_on_this_host({"SLURM_STEP_TASKS_PER_NODE": "16(x2),8", "SLURM_NODEID": "2"})
        (8, 'SLURM_STEP_TASKS_PER_NODE=16(x2),8 on node 2')
    """
    environ = os.environ if environ is None else environ
    found: tuple[int, str] | None = None
    for name in _LOCAL_RANKS:
        count = _positive(environ.get(name))
        if count is not None:
            found = count, f"{name}={count}"
            break
    else:
        count = _slurm_tasks_here(environ)
        if count is not None:
            layout, node = environ["SLURM_STEP_TASKS_PER_NODE"], environ["SLURM_NODEID"]
            found = count, f"SLURM_STEP_TASKS_PER_NODE={layout} on node {node.strip()}"
    if found is None or (world_size is not None and found[0] > world_size):
        return None
    return found


def place_workers(runner: TaskRunner, environ: Mapping[str, str] | None = None) -> WorkerPlacement:
    """Where ``runner``'s workers hold memory: how many on this host, and how they start.

    Args:
        runner: The run's task runner, its executor started (its workers are asked).
        environ: The environment the launcher set (default: this process's).
    """
    total = runner.max_workers
    if not runner.executor_name.startswith(_MPI_EXECUTOR):
        return WorkerPlacement(total, total)
    mpi = sys.modules.get("mpi4py.MPI")  # imported by the pool that is running
    world = mpi.COMM_WORLD.Get_size() if mpi is not None else 1
    if world > 1 and total == world - 1:  # every other rank serves the pool
        local = ranks_on_this_host(environ, world_size=world)
        if local is not None:
            return WorkerPlacement(local[0] - 1, total, fresh=True, source=local[1])
        where = "the MPI launcher does not say which ranks share this host"
    else:
        where = "the pool spawned its ranks, wherever MPI put them"
    return WorkerPlacement(total, total, fresh=True, source=f"all counted here: {where}")


def memory_limit_mb(config: ProcessingConfig) -> float | None:
    """The job's memory limit (the config's, its cgroup's, its rlimits'), before any work:
    a plan is bounded by it before it is built (:func:`._inputs.plan_maps`)."""
    resources = ResourceManager(config=config)
    try:
        limit = resources.memory_limit
    finally:
        resources.close()
    return None if limit is None else limit.limit_mb


def guard_memory(
    ctx: ManagerContext,
    maps: Sequence[MapTask],
    runner: TaskRunner,
    values: int,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse to start a run whose estimated peak memory is above the job's memory limit.

    The job's memory on this host is the resident memory of this process and of the
    ``runner``'s workers that run here (:func:`place_workers`). A worker holds a map being
    made, a patch's temporaries and its own map cache; a worker process also holds what
    it starts with: a copy of this process's resident pages, or a fresh interpreter's
    (an MPI rank). In-process workers share this process's cache, which keeps the maps up
    to ``cache.max_size_mb``. This process also keeps every patch's statistics (``values``
    numbers each) to merge them. The workers of a joined Dask cluster are other processes,
    often on other nodes: each is held to its own ``memory_limit``, and this process's
    limit to what stays here.

    Raises:
        ResourceError: The estimate is above the limit; the message names its parts.
    """
    limit = ctx.resource.memory_limit
    joined = runner.joins_cluster
    if not maps or (limit is None and not joined):
        return
    used = (ctx.resource.get_current_usage().memory_mb or 0.0) * _MIB
    work = float(max(t.source.estimated_bytes() for t in maps))
    work += _PATCH_WORK * max(t.source.patch_bytes() for t in maps)
    maps_bytes = float(sum(t.source.output_bytes() for t in maps))
    n_patches = sum(t.source.output_bytes() // t.source.patch_bytes() for t in maps)
    here = used + _RESULT_COPIES * n_patches * values * 8.0
    if joined:
        _guard_cluster_memory(runner, work, min(WORKER_CACHE_MB * _MIB, maps_bytes))
        if limit is not None and here > limit.limit_mb * _MIB:
            raise ResourceError(
                f"this process needs about {here / _MIB:.0f} MiB ({used / _MIB:.0f} MiB now, "
                "then the merged results), more than the memory limit of "
                f"{limit.limit_mb:.0f} MiB ({limit.source})",
                value=limit.limit_mb,
                hint="give the driver's job more memory, or raise resources.memory_limit_mb",
            )
        return
    if limit is None:
        return
    in_process = runner.runs_in_this_process
    fewer = "fewer workers (--workers)"
    if in_process:
        placed = WorkerPlacement(runner.max_workers, runner.max_workers)
        cache = min(ctx.config.cache.max_size_mb * _MIB, maps_bytes)
        per_worker, here = work, here + cache
        parts = f"{work / _MIB:.0f} MiB per worker"
    else:
        placed = place_workers(runner, environ)
        cache = min(WORKER_CACHE_MB * _MIB, maps_bytes)
        start = placed.start_bytes(used)
        per_worker = start + work + cache
        started = "as a fresh MPI rank" if placed.fresh else "as a copy of this one"
        parts = (
            f"{per_worker / _MIB:.0f} MiB per worker process: {start / _MIB:.0f} MiB "
            f"{started}, {work / _MIB:.0f} MiB of work, {cache / _MIB:.0f} MiB of cached maps"
        )
        if placed.fresh:
            fewer = "fewer MPI ranks per host (srun --ntasks-per-node)"
    need = here + placed.here * per_worker
    if need > limit.limit_mb * _MIB:
        workers = f"{placed.here} worker(s)"
        if placed.fresh:
            workers = (
                f"{placed.here} of {placed.total} MPI worker(s) on this host ({placed.source})"
            )
        raise ResourceError(
            f"the run needs about {need / _MIB:.0f} MiB with {workers}: {parts}, and "
            f"{here / _MIB:.0f} MiB in this process ({used / _MIB:.0f} MiB now, then the merged "
            f"results{' and cached maps' if in_process else ''}); "
            f"more than the memory limit of {limit.limit_mb:.0f} MiB ({limit.source})",
            value=limit.limit_mb,
            hint=f"use {fewer}, a smaller cache.max_size_mb, smaller maps or patches, or "
            "raise resources.memory_limit_mb",
        )


def _guard_cluster_memory(runner: TaskRunner, work: float, cache: float) -> None:
    """Refuse a run whose tasks would not fit under a joined Dask worker's ``memory_limit``.

    A Dask worker runs ``nthreads`` tasks at once, each with ``work`` bytes, and keeps its
    own map cache (``cache`` bytes); it does not start as a copy of this process, so this
    process's memory is not counted. Workers without a limit are not checked.
    """
    for worker in runner.cluster_workers():
        if worker.memory_limit is None:
            continue
        need = worker.nthreads * work + cache
        if need > worker.memory_limit:
            raise ResourceError(
                f"Dask worker {worker.address} would need about {need / _MIB:.0f} MiB "
                f"({worker.nthreads} task(s) at once of {work / _MIB:.0f} MiB, and "
                f"{cache / _MIB:.0f} MiB of cached maps), more than its memory limit of "
                f"{worker.memory_limit / _MIB:.0f} MiB",
                value=worker.memory_limit,
                hint="start the workers with more memory (dask worker --memory-limit) or "
                "fewer threads (--nthreads), or use smaller maps or patches",
            )

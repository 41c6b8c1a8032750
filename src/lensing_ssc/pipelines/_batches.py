"""The ``patches`` stage on a GPU: patches in batches, each measured as stacks on the device.

With ``pipeline.device: gpu`` (or ``auto`` on a machine with one) the stage's runner tasks
are :class:`PatchBatch` es instead of single patches: consecutive patches of one geometry,
about :data:`TASK_BYTES` of patch data each, planned from the maps' summaries
(:func:`plan_batches`), so a rerun finds the same batches in the ``patch-batches`` journal.
They run one after the other in the run's own process (one device, one queue of work).

:class:`BatchWorker` stacks a batch's patches from the run's map store on the host, sends
them to the device in chunks sized to its free memory
(:meth:`~lensing_ssc.analysis.ArrayDevice.batch_size` over
:func:`~lensing_ssc.analysis.patch_statistics.working_bytes`), measures each chunk with
:func:`~lensing_ssc.analysis.compute_patch_statistics_batch`, brings its statistics home in
one transfer and returns each patch's :class:`._tasks.PackedStatistics`: what
:class:`._tasks.PatchWorker` returns on a CPU, with the noise drawn by the same seeded
generators (on the host), equal to ~1e-15. :func:`per_patch` turns the stage's result back
into one entry per patch for the merge.

Memory: a patch whose estimated working memory exceeds all the device's free memory is a
``ResourceError`` before anything is sent. Chunks are a power of two patches (at most what
fits): the same few shapes recur from batch to batch, so CuPy's cuFFT plans, cached per
shape with their work areas, are made once. A chunk the device runs out of memory for (an
error its :attr:`~lensing_ssc.analysis.ArrayDevice.out_of_memory` recognises: CuPy's
``OutOfMemoryError``, a ``MemoryError``, but also cuFFT's ``CUFFT_ALLOC_FAILED``) is
halved and sent again, with the same noise, after the device released what it keeps
(:attr:`~lensing_ssc.analysis.ArrayDevice.release_memory`: CuPy's cached plans and unused
pool blocks), and later batches start from the size that fitted; one patch that still does
not fit is a ``ResourceError`` naming the batch. The work runs with the device current
(:meth:`~lensing_ssc.analysis.ArrayDevice.activated`): CuPy puts new arrays on the
current device of the thread, whichever ``device=`` says.

A batch fails or succeeds whole: a patch the statistics refuse (NaNs, a constant map) fails
its batch, and each of the batch's patches is recorded with that error. The CPU's stage is
:mod:`._tasks`; the orchestration :mod:`.patch_statistics`.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.random import default_rng

from lensing_ssc.analysis import ArrayDevice, StatisticsSettings, compute_patch_statistics_batch
from lensing_ssc.analysis.patch_statistics import working_bytes
from lensing_ssc.core.base.exceptions import AnalysisError, ResourceError
from lensing_ssc.pipelines._tasks import PATCH_MEAN_KEY, MapStore, PackedStatistics, PatchTask
from lensing_ssc.processing.managers.log import log_context
from lensing_ssc.processing.runner import MapResult, TaskFailure

__all__ = ["TASK_BYTES", "BatchWorker", "FlatResults", "PatchBatch", "per_patch", "plan_batches"]

_log = logging.getLogger("lensing_ssc.pipelines")

TASK_BYTES = 256 * 2**20
"""Patch data per batch task (2048 patches of 128²): large enough to fill a GPU's queue in
device chunks, small enough that an interrupted run loses little and the host holds little."""


@dataclass(frozen=True)
class PatchBatch:
    """Consecutive patches of one geometry: the unit of the ``patches`` stage on a GPU."""

    tasks: tuple[PatchTask, ...]

    @property
    def key(self) -> str:
        """``"subpatches/map-0000/patch-0000+2047"``: the first patch's key and how many follow."""
        return f"{self.tasks[0].key}+{len(self.tasks) - 1}"


def plan_batches(
    tasks: Sequence[PatchTask], geometry: Mapping[str, tuple[int, float]]
) -> list[PatchBatch]:
    """Group ``tasks`` in order into batches of one geometry and at most :data:`TASK_BYTES`.

    Args:
        tasks: The patch tasks of the run, in plan order.
        geometry: ``(pixels, pixel size)`` of each map's patches, by map id.
    """
    batches: list[PatchBatch] = []
    current: list[PatchTask] = []
    size = 0
    shape: tuple[int, float] | None = None
    for task in tasks:
        this = geometry[task.map.map_id]
        patch_bytes = this[0] * this[0] * 8
        if current and (this != shape or size + patch_bytes > TASK_BYTES):
            batches.append(PatchBatch(tuple(current)))
            current, size = [], 0
        current.append(task)
        size += patch_bytes
        shape = this
    if current:
        batches.append(PatchBatch(tuple(current)))
    return batches


def _power_of_two(count: int) -> int:
    """The largest power of two ``≤ count`` (``count ≥ 1``)."""
    return 1 << (max(1, count).bit_length() - 1)


class BatchWorker:
    """Stage ``patches`` on a device: every statistic of a batch of patches.

    Args:
        store: Where the maps' patches come from.
        settings: What to compute.
        seed: The run's seed (each patch's noise is seeded by it, the map and the patch).
        device: Where to measure (:func:`lensing_ssc.analysis.select_device`).

    Runs in the run's process: :attr:`computed` collects the keys of the batches it
    measured, which :func:`per_patch` needs to tell them from batches of an earlier run.
    """

    def __init__(
        self, store: MapStore, settings: StatisticsSettings, seed: int, device: ArrayDevice
    ) -> None:
        self.store = store
        self.settings = settings
        self.seed = seed
        self.device = device
        self.computed: set[str] = set()
        # The chunk size that fitted after the device ran out of memory: later batches
        # start there rather than fail the same way first.
        self._fits: int | None = None

    def __call__(self, batch: PatchBatch) -> tuple[PackedStatistics, ...]:
        first = batch.tasks[0]
        with (
            log_context(map=first.map.map_id, patch=first.patch_index, step="statistics"),
            self.device.activated(),
        ):
            started = time.perf_counter()
            host = np.stack([self._patch(task) for task in batch.tasks])
            pixel = first.map.source.pixel_size_arcmin
            seeds = [t.map.noise_seed(self.seed, t.patch_index) for t in batch.tasks]
            per_patch_bytes = working_bytes(host.shape[-1], pixel, self.settings)
            try:
                step = self._first_step(per_patch_bytes, len(host))
                packed: list[PackedStatistics] = []
                start = 0
                while start < len(host):
                    stop = min(len(host), start + step)
                    try:
                        packed += self._chunk(host[start:stop], pixel, seeds[start:stop])
                    except Exception as exc:
                        if not self.device.out_of_memory(exc):
                            raise
                        step = self._smaller_step(batch, stop - start, per_patch_bytes, exc)
                        self._fits = step
                        continue
                    start = stop
            except Exception as exc:
                _log.warning("batch %s failed: %s", batch.key, exc)
                raise
            _log.debug(
                "batch %s: %d patches measured on %s in %.3f s (%d per device chunk)",
                batch.key,
                len(host),
                self.device.name,
                time.perf_counter() - started,
                step,
            )
        self.computed.add(batch.key)
        return tuple(packed)

    def _first_step(self, per_patch_bytes: int, patches: int) -> int:
        """Patches per chunk: a power of two that fits the device's free memory (all the
        batch where the memory is not bounded), no more than what fitted before."""
        fits = self.device.batch_size(per_patch_bytes)
        if fits is None:
            return patches
        step = _power_of_two(fits)
        return step if self._fits is None else min(step, self._fits)

    def _chunk(self, chunk: np.ndarray, pixel: float, seeds: list[Any]) -> list[PackedStatistics]:
        """Measure ``chunk`` on the device; its statistics come back in one transfer."""
        # Fresh generators per attempt: a chunk retried in halves draws the same noise.
        rngs = [default_rng(seed) for seed in seeds]
        on_device = self.device.asarray(chunk)
        stats = compute_patch_statistics_batch(on_device, pixel, self.settings, rngs)
        names = (*stats, PATCH_MEAN_KEY)
        shapes = (*((int(v.shape[-1]),) for v in stats.values()), (1,))
        values = self.device.gather_columns(list(stats.values()))
        # The patch's mean κ travels with its statistics, as on the CPU.
        means = np.array([[float(patch.mean())] for patch in chunk])
        rows = np.concatenate([np.asarray(values, dtype=np.float64), means], axis=1)
        return [PackedStatistics(names, shapes, row) for row in rows]

    def _smaller_step(
        self, batch: PatchBatch, size: int, per_patch_bytes: int, exc: Exception
    ) -> int:
        """Half of a chunk of ``size`` patches the device had no memory for, or raise."""
        self.device.release_memory()
        if size <= 1:
            raise ResourceError(
                f"the device ran out of memory measuring one patch of batch {batch.key} "
                f"(~{per_patch_bytes / 2**20:.0f} MiB of working memory estimated): {exc}",
                value=per_patch_bytes,
                hint="free the device (other processes, other runs), measure smaller patches "
                "or fewer statistics (bispectra), or use device 'cpu'",
            ) from exc
        _log.warning(
            "batch %s: %d patches at once did not fit on %s (%s); trying %d at a time",
            batch.key,
            size,
            self.device.name,
            exc,
            size // 2,
        )
        return size // 2

    def _patch(self, task: PatchTask) -> np.ndarray:
        patches, _ = self.store.patches(task.map)
        if not 0 <= task.patch_index < patches.shape[0]:
            raise AnalysisError(
                f"map {task.map.label} has {patches.shape[0]} patches, no patch {task.patch_index}",
                value=task.patch_index,
                hint="the map changed since the run was planned: rerun with --fresh",
            )
        return np.asarray(patches[task.patch_index])


class FlatResults(Sequence[Any]):
    """The results of batch tasks as one entry per patch, read batch by batch.

    Args:
        nested: The stage's results: per batch a tuple of per-patch results, or ``None``.
        sizes: Patches per batch.
    """

    def __init__(self, nested: Sequence[tuple[Any, ...] | None], sizes: Sequence[int]) -> None:
        self._nested = nested
        self._sizes = list(sizes)
        self._starts = list(itertools.accumulate(self._sizes, initial=0))
        self._held: tuple[int, tuple[Any, ...] | None] | None = None

    def __len__(self) -> int:
        return self._starts[-1]

    def __iter__(self) -> Iterator[Any]:
        for values, size in zip(self._nested, self._sizes, strict=True):
            yield from (values if values is not None else (None,) * size)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"result index {index} out of range for {len(self)} results")
        batch = bisect.bisect_right(self._starts, position) - 1
        if self._held is None or self._held[0] != batch:
            self._held = (batch, self._nested[batch])
        values = self._held[1]
        return None if values is None else values[position - self._starts[batch]]


def per_patch(
    batches: Sequence[PatchBatch], result: MapResult[Any], computed: set[str]
) -> MapResult[Any]:
    """The stage's :class:`MapResult` over batches as one over patches, in plan order.

    A failed batch is a failure of each of its patches (same error, same attempts).
    ``computed`` holds the keys of the batches this run measured (:attr:`BatchWorker.computed`);
    the other finished batches came from the journal of an earlier run. ``result`` is that
    of a finished stage (a stopped one raises before it returns): every batch that did not
    fail has its results.
    """
    sizes = [len(batch.tasks) for batch in batches]
    starts = list(itertools.accumulate(sizes, initial=0))
    failures = tuple(
        TaskFailure(
            index=starts[failure.index] + offset,
            key=task.key,
            error_type=failure.error_type,
            message=failure.message,
            traceback=failure.traceback,
            attempts=failure.attempts,
        )
        for failure in result.failures
        for offset, task in enumerate(batches[failure.index].tasks)
    )
    failed = {failure.index for failure in result.failures}
    completed = sum(
        size
        for i, (batch, size) in enumerate(zip(batches, sizes, strict=True))
        if i not in failed and batch.key in computed
    )
    finished = sum(size for i, size in enumerate(sizes) if i not in failed)
    return MapResult(
        results=FlatResults(result.results, sizes),
        keys=tuple(task.key for batch in batches for task in batch.tasks),
        failures=failures,
        completed=completed,
        skipped=finished - completed,
        remaining=0,
        elapsed=result.elapsed,
    )

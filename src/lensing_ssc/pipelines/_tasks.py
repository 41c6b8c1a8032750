"""The pipeline's two runner tasks: make a map's patches, and measure one patch.

:class:`MapWorker` runs once per map (stage ``maps``): it makes the map's patches through
:class:`MapStore`, which memoizes them in the run's
:class:`~lensing_ssc.processing.managers.CacheManager` with the place each was cut
(:class:`MapPatches`), and returns a small :class:`MapSummary` for the journal.
:class:`PatchWorker` runs once per patch (stage ``patches``): it takes the patches from the
store — a cache hit, in any process sharing the run's cache directory, or recomputed from
the seeded recipe if evicted — adds seeded shape noise and returns
:func:`~lensing_ssc.analysis.compute_patch_statistics`, packed into one array
(:class:`PackedStatistics`). Both log with the map, patch and step as context.

Workers travel to other processes by pickle; the live cache stays behind, and each process
opens the run's cache once (:func:`_process_local`) and keeps the map in hand, so the next
patch of the same map needs no lookup. What the synthetic maps of a recipe share (their
:class:`~lensing_ssc.analysis.fields.FieldPlan`) reaches workers that are not forks of the
run's process through the cache too (:meth:`MapStore.share_plans`): made once, read by
each. Recipes are in :mod:`._map_recipes` and :mod:`._healpix_maps`; the orchestration in
:mod:`.patch_statistics`.
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

# Imported with this module, not on first use (numpy's lazy default): every worker forked
# from the run's process would import numpy.random again, ~13 ms each.
from numpy.random import default_rng

from lensing_ssc.analysis import StatisticsSettings, compute_patch_statistics
from lensing_ssc.analysis.fields import FieldPlan
from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.pipelines._allocator import keep_freed_buffers
from lensing_ssc.pipelines._healpix_maps import HealpixMap
from lensing_ssc.pipelines._inputs import synthetic_recipes
from lensing_ssc.pipelines._map_recipes import MapSource, MapTask, SyntheticMap
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.log import log_context

__all__ = [
    "MAP_TAG",
    "PATCH_MEAN_KEY",
    "WORKER_CACHE_MB",
    "MapPatches",
    "MapStore",
    "MapSummary",
    "MapWorker",
    "PackedStatistics",
    "PatchTask",
    "PatchWorker",
]

PATCH_MEAN_KEY = "patch_mean"
"""Name of the patch's mean κ among its packed statistics (not a statistic key)."""

MAP_TAG = "pipeline-maps"
"""Tag of every cached map (``lensing-ssc cache invalidate RUN_DIR --tag pipeline-maps``)."""

_log = logging.getLogger("lensing_ssc.pipelines")


def _map_key(source: MapSource) -> Hashable:
    return source.cache_key()


def _plan_key(recipe: SyntheticMap) -> Hashable:
    return ("field-plan", *recipe.cache_key())


def _packed_plan(recipe: SyntheticMap) -> np.ndarray:
    return recipe.prepare().packed()


@dataclass(frozen=True, eq=False)
class MapPatches:
    """A map's patches and the place each was cut: what the run's cache keeps of a map.

    Attributes:
        patches: ``(k, n, n)`` read-only patches.
        positions: ``(k,)`` each patch's index among its map's planned places: the
            HEALPix patch centres, of which a map drops those its mask covers; for the other
            inputs, which drop none, 0 … k − 1. Maps cut on the same centres (the source
            redshifts of a realisation) hold the same place at the same position.

    The cache stores both as one float64 array (:meth:`packed`), so a map stays one raw
    entry that workers memory-map, not a pickle they must copy: ``h`` header rows, their
    values k, the k positions and zeros, then the patches (a contiguous view on reading).
    """

    patches: np.ndarray
    positions: np.ndarray

    def packed(self) -> np.ndarray:
        """The cache's array: header rows, then the patches (read-only)."""
        k, n = self.patches.shape[0], self.patches.shape[1]
        rows = _header_rows(k, n)
        out = np.zeros((rows + k, n, n))
        header = out[:rows].reshape(-1)
        header[0] = k
        header[1 : k + 1] = self.positions
        out[rows:] = self.patches
        out.setflags(write=False)  # cached values are shared: nobody may change them
        return out

    @classmethod
    def unpack(cls, packed: np.ndarray) -> MapPatches:
        """The patches (a view) and positions of an array made by :meth:`packed`."""
        n = packed.shape[1]
        k = int(packed[0, 0, 0])
        rows = _header_rows(k, n)
        positions = packed[:rows].reshape(-1)[1 : k + 1].astype(np.intp)
        return cls(packed[rows:], positions)


def _header_rows(k: int, n: int) -> int:
    """Patch-sized rows that hold k and k positions: one unless k ≥ n²."""
    return -(-(k + 1) // (n * n))


def _make_patches(source: MapSource) -> np.ndarray:
    if isinstance(source, HealpixMap):
        cut = source.cut()
        patches, positions = cut.patches, cut.indices
    else:
        patches = source.load()
        positions = np.arange(patches.shape[0])
    array = np.ascontiguousarray(patches, dtype=np.float64)
    return MapPatches(array, positions).packed()


class _Local:
    """What one process keeps for a run: its cache, the memoized loader, the map in hand.

    The map in hand (the last one used) serves the next patches of the same map without a
    lookup, also when the map is too large for the cache's memory tier.
    """

    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache
        # Not flushed to disk one by one: a map is remade from its seeded recipe or input
        # file, and an entry a power cut tore fails its digest check and is a miss.
        self.load: Any = cache.memoize(key=_map_key, tags=[MAP_TAG], durable=False)(_make_patches)
        # Made by the first process that asks (the run's, by share_plans), read by the others.
        self.plans: Any = cache.memoize(key=_plan_key, tags=[MAP_TAG], durable=False)(_packed_plan)
        self.prepared: set[SyntheticMap] = set()
        self.held: tuple[Hashable, MapPatches] | None = None

    def prepare(self, source: MapSource) -> None:
        """Keep the plan of a synthetic map's recipe in this process, read from the cache."""
        if not isinstance(source, SyntheticMap):
            return
        recipe = replace(source, seed=())
        if recipe not in self.prepared:
            source.prepare(FieldPlan.unpack(self.plans(recipe), source.field_pixels))
            self.prepared.add(recipe)


WORKER_CACHE_MB = 64
"""Memory tier of each worker process's cache, in MiB (at most ``cache.max_size_mb``).

A worker keeps the map in hand anyway, and reads other maps from the page cache through
verified memory maps; a memory tier as large as the parent's would keep every map the
worker made for the whole run, growing each worker by the run's size."""

# Worker processes open the run's cache once, on first use (keyed by process and run).
_PROCESS_LOCALS: dict[tuple[int, str], _Local] = {}


def _process_local(config_json: str) -> _Local:
    key = (os.getpid(), config_json)
    local = _PROCESS_LOCALS.get(key)
    if local is None:
        keep_freed_buffers()  # a fresh worker page-faults on every FFT buffer otherwise
        # Maps another worker made are mapped from the page cache and checked there:
        # reading them into fresh arrays costs a page fault per 4 KiB of new memory.
        config = ProcessingConfig.model_validate_json(config_json)
        size = min(config.cache.max_size_mb, WORKER_CACHE_MB)
        cache = CacheManager(size, config=config, memory_map="verify")
        local = _PROCESS_LOCALS[key] = _Local(cache)
        # Worker processes skip atexit; multiprocessing runs its finalizers on their exit.
        multiprocessing.util.Finalize(None, cache.close, exitpriority=10)
    return local


class MapStore:
    """The patches of each map, made once and shared through the run's cache.

    Args:
        config: The run's configuration (workers reopen its cache from it).
        cache: The run's open cache in this process (``ManagerContext.cache``).
    """

    def __init__(self, config: ProcessingConfig, cache: CacheManager | None = None) -> None:
        self._config_json = config.model_dump_json(include={"run_dir", "cache"})
        self._local = None if cache is None else _Local(cache)
        self._shares_plans = False

    def __getstate__(self) -> dict[str, Any]:
        return {"config_json": self._config_json, "shares_plans": self._shares_plans}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config_json = state["config_json"]
        self._shares_plans = state.get("shares_plans", False)
        self._local = None

    def _here(self) -> _Local:
        if self._local is None:
            self._local = _process_local(self._config_json)
        return self._local

    def cache(self) -> CacheManager:
        """The cache this process uses for the run."""
        return self._here().cache

    def share_plans(self, maps: Sequence[MapTask]) -> None:
        """Make what the synthetic maps of a run share, once per recipe, into the run's cache,
        from which workers that are not forks of this process read it instead of each
        computing it (forks inherit it: :func:`._inputs.prepare_maps`).

        Measured on 2 shared cores with the built-in run: a plan takes 50-100 ms of CPU to
        make (the halofit spectrum on a 512² grid and its transforms), ~1 ms to read.
        A recipe that cannot be prepared (a spectrum table with bad values, say) is skipped:
        its map tasks meet the same error and record it per map, as without sharing.
        """
        local = self._here()
        for recipe in synthetic_recipes(maps):
            try:
                local.prepare(recipe)
            except (AnalysisError, ConfigError):
                continue
        self._shares_plans = True

    def cut(self, task: MapTask) -> tuple[MapPatches, bool]:
        """Return ``(patches and their places, from_cache)`` for one map."""
        local = self._here()
        key = local.load.cache_key(task.source)
        held = local.held
        if held is not None and held[0] == key:
            return held[1], True
        hit = key in local.cache
        if not hit and self._shares_plans:
            local.prepare(task.source)
        cut = MapPatches.unpack(local.load(task.source))
        local.held = (key, cut)
        return cut, hit

    def patches(self, task: MapTask) -> tuple[np.ndarray, bool]:
        """Return ``(patches, from_cache)`` for one map: a read-only ``(k, n, n)`` array."""
        cut, hit = self.cut(task)
        return cut.patches, hit


@dataclass(frozen=True)
class MapSummary:
    """What the journal keeps of a made map: enough to plan its patch tasks.

    Attributes:
        map_id: The map's id.
        n_patches: Patches it holds.
        patch_pixels: Side of each patch.
        pixel_size_arcmin: Pixel side.
        from_cache: Whether its patches were already cached.
        positions: Each patch's place among the map's planned ones
            (:attr:`MapPatches.positions`); ``None`` when they are 0 … n_patches − 1, every
            place in order (and in a journal written before places were recorded).
    """

    map_id: str
    n_patches: int
    patch_pixels: int
    pixel_size_arcmin: float
    from_cache: bool
    positions: tuple[int, ...] | None = None


class MapWorker:
    """Stage ``maps``: make (or find) the patches of one map."""

    def __init__(self, store: MapStore) -> None:
        self.store = store

    def __call__(self, task: MapTask) -> MapSummary:
        with log_context(map=task.map_id, step="load"):
            started = time.perf_counter()
            try:
                cut, hit = self.store.cut(task)
            except Exception as exc:
                _log.warning("map %s failed: %s", task.label, exc)
                raise
            patches = cut.patches
            how = "from the cache" if hit else f"made in {time.perf_counter() - started:.2f} s"
            _log.info(
                "map %s: %d patches of %d² pixels (%s)",
                task.label,
                patches.shape[0],
                patches.shape[1],
                how,
            )
        return MapSummary(
            map_id=task.map_id,
            n_patches=int(patches.shape[0]),
            patch_pixels=int(patches.shape[1]),
            pixel_size_arcmin=float(task.source.pixel_size_arcmin),
            from_cache=hit,
            positions=(
                None
                if np.array_equal(cut.positions, np.arange(len(patches)))
                else tuple(int(p) for p in cut.positions)
            ),
        )


@dataclass(frozen=True)
class PatchTask:
    """One patch of one map: the unit of the ``patches`` stage."""

    map: MapTask
    patch_index: int

    @property
    def key(self) -> str:
        """``"subpatches/map-0003/patch-0012"``: the task's journal key."""
        return f"{self.map.map_id}/patch-{self.patch_index:04d}"


@dataclass(frozen=True, eq=False)
class PackedStatistics:
    """One patch's statistics as one float64 array, plus the names and shapes to unpack it.

    A patch's statistics are some 30 small arrays. Pickled as a dict they cost ~55 µs each
    way, paid three times per patch (worker to parent, parent into the journal, and back on
    a resume) and, with the parent sharing the cores with the workers, mostly on the
    workers' time; one array and two tuples cost a few µs. Stacking many patches copies
    each one's array once (see :class:`._stacking.RowStack`).

    Attributes:
        names: The statistic keys, in order.
        shapes: The shape of each statistic.
        values: All values, concatenated (float64).
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    values: np.ndarray

    @classmethod
    def pack(cls, stats: Mapping[str, np.ndarray]) -> PackedStatistics:
        """Pack ``{key: array}`` (float64 values, any shapes)."""
        arrays = [np.asarray(value, dtype=np.float64) for value in stats.values()]
        values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
        return cls(tuple(stats), tuple(a.shape for a in arrays), values)

    def __reduce__(self) -> tuple[Any, ...]:
        # As plain parts: a third of the default pickle's cost each way (~9 µs to ~3 µs),
        # paid per patch by the worker, the runner, its journal, and a resume.
        return (_packed_from_parts, (self.names, self.shapes, self.values.tobytes()))

    def columns(self) -> list[tuple[str, tuple[int, ...], slice]]:
        """Each statistic's key, shape and place in :attr:`values`."""
        out = []
        start = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = int(np.prod(shape, dtype=np.int64))
            out.append((name, shape, slice(start, start + size)))
            start += size
        return out

    def unpack(self) -> dict[str, np.ndarray]:
        """The statistics as ``{key: array}`` again (views into :attr:`values`)."""
        return {name: self.values[place].reshape(shape) for name, shape, place in self.columns()}


def _packed_from_parts(
    names: tuple[str, ...], shapes: tuple[tuple[int, ...], ...], values: bytes
) -> PackedStatistics:
    return PackedStatistics(names, shapes, np.frombuffer(values, dtype=np.float64))


class PatchWorker:
    """Stage ``patches``: every statistic of one patch, with seeded shape noise.

    Args:
        store: Where the map's patches come from.
        settings: What to compute.
        seed: The run's seed (the noise of each patch is seeded by it, the map and the patch).
    """

    def __init__(self, store: MapStore, settings: StatisticsSettings, seed: int) -> None:
        self.store = store
        self.settings = settings
        self.seed = seed

    def __call__(self, task: PatchTask) -> PackedStatistics:
        with log_context(map=task.map.map_id, patch=task.patch_index):
            with log_context(step="load"):
                patches, _ = self.store.patches(task.map)
                if not 0 <= task.patch_index < patches.shape[0]:
                    raise AnalysisError(
                        f"map {task.map.label} has {patches.shape[0]} patches, no patch "
                        f"{task.patch_index}",
                        value=task.patch_index,
                        hint="the map changed since the run was planned: rerun with --fresh",
                    )
            with log_context(step="statistics"):
                started = time.perf_counter()
                rng = default_rng(task.map.noise_seed(self.seed, task.patch_index))
                try:
                    stats = compute_patch_statistics(
                        patches[task.patch_index],
                        task.map.source.pixel_size_arcmin,
                        self.settings,
                        rng,
                    )
                except Exception as exc:
                    _log.warning("patch %s failed: %s", task.key, exc)
                    raise
                _log.debug("patch %s measured in %.3f s", task.key, time.perf_counter() - started)
        # The patch's mean κ travels with its statistics: the merge regresses them on it
        # (the super-sample response, :mod:`lensing_ssc.analysis.comparison`).
        mean = float(patches[task.patch_index].mean())
        return PackedStatistics.pack({**stats, PATCH_MEAN_KEY: np.array([mean])})

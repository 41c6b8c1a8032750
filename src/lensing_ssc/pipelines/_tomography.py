"""The pipeline's tomography: cross spectra between the source redshifts of each realisation.

A HEALPix set with maps at two or more source redshifts holds, per realisation (its maps'
fields other than ``zs``: ``seed=3``), one map per redshift. :func:`plan_tomography` finds
those realisations once the ``maps`` stage has made (and cached) every map;
:class:`TomographyWorker` is the ``tomography`` stage, one runner task per (set,
realisation): it takes the realisation's cached patches at every redshift and measures, per
patch, the auto and cross power spectra of
:func:`lensing_ssc.analysis.tomography.compute_tomographic_spectra`, with each redshift's
shape noise drawn from the generator its patch statistics used (so each auto spectrum is
the one in ``sets/<set>/zs=<z>/cl/...``, and the cross spectra carry no noise bias: the
redshifts' noise is independent). What the stage's results become (each set's joint data
vector, its summary and the comparisons between sets) is :mod:`._tomography_results`.

Patches of the redshifts of one realisation are matched by their place on the sky: the
maps stage records, with each map's patches, the index of each among the planned patch
centres (:class:`._tasks.MapPatches`, journalled in :class:`._tasks.MapSummary`), so a map
that dropped patches for its mask still pairs with the others at the places they all kept.
The places kept at some redshifts but not at all are left out and counted per realisation
(``meta/tomography``, the summary); a realisation missing a redshift, with a map that
failed, or with no place common to all its maps is left out whole, with the reason. The
results' layout is in :mod:`._results`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.random import default_rng

from lensing_ssc.analysis import StatisticsSettings
from lensing_ssc.analysis.tomography import compute_tomographic_spectra
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._healpix_maps import HealpixMap
from lensing_ssc.pipelines._map_recipes import MapTask
from lensing_ssc.pipelines._tasks import MapStore, MapSummary, PackedStatistics
from lensing_ssc.processing.managers.log import log_context

__all__ = [
    "RealisationTask",
    "TomographyPlan",
    "TomographyWorker",
    "plan_tomography",
]

_log = logging.getLogger("lensing_ssc.pipelines")


def realisation_label(metadata: Sequence[tuple[str, Any]]) -> str:
    """``"seed=3"``: a map's fields other than ``zs``, which name its realisation.

    Example:
        >>> realisation_label((("seed", 3), ("zs", 1.0))), realisation_label((("zs", 2.0),))
        ('seed=3', 'single')
    """
    parts = [f"{name}={value}" for name, value in metadata if name != "zs"]
    return ",".join(parts) or "single"


@dataclass(frozen=True)
class RealisationTask:
    """One realisation of a set at every source redshift: the unit of the ``tomography`` stage.

    ``maps`` holds its map at each of ``z_sources`` (ascending); ``positions`` the patch
    places every map kept, and ``rows[i]`` where each of them is in ``maps[i]``'s patches.
    """

    suite: str
    realisation: str
    z_sources: tuple[float, ...]
    maps: tuple[MapTask, ...]
    positions: tuple[int, ...]
    rows: tuple[tuple[int, ...], ...]

    @property
    def key(self) -> str:
        """``"bigbox/seed=3"``: the task's journal key."""
        return f"{self.suite}/{self.realisation}"


@dataclass(frozen=True)
class TomographyPlan:
    """What the ``tomography`` stage runs, and what it leaves out.

    Attributes:
        tasks: One per (set, realisation) with a usable map at every redshift of its set.
        z_sources: Per set with at least 2 source redshifts, those redshifts.
        skipped: Per set, ``{realisation: why it was left out}``.
        dropped: Per set, ``{realisation: patch places left out}``: kept by some of its
            maps, dropped for their mask by others (realisations that lost none omitted).
    """

    tasks: tuple[RealisationTask, ...]
    z_sources: dict[str, tuple[float, ...]]
    skipped: dict[str, dict[str, str]]
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)


def plan_tomography(
    maps: Sequence[MapTask], summaries: Sequence[MapSummary | None]
) -> TomographyPlan:
    """The realisations of every set with two or more source redshifts, after the maps stage.

    ``summaries[i]`` is what the maps stage made of ``maps[i]`` (``None``: failed or refused).
    A set whose maps at one redshift share their fields (no ``seed`` tells them apart)
    cannot be paired across redshifts: all of it is skipped, with the reason.
    """
    by_suite: dict[str, dict[str, dict[float, list[int]]]] = {}
    for i, task in enumerate(maps):
        if not task.suite or task.z_source is None:
            continue
        label = realisation_label(task.metadata)
        places = by_suite.setdefault(task.suite, {}).setdefault(label, {})
        places.setdefault(float(task.z_source), []).append(i)
    tasks: list[RealisationTask] = []
    redshifts: dict[str, tuple[float, ...]] = {}
    skipped: dict[str, dict[str, str]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for suite, realisations in by_suite.items():
        zs = tuple(sorted({z for places in realisations.values() for z in places}))
        if len(zs) < 2:
            continue
        redshifts[suite] = zs
        notes = skipped.setdefault(suite, {})
        shared = next(
            (
                (label, z, idx)
                for label, places in realisations.items()
                for z, idx in places.items()
                if len(idx) > 1
            ),
            None,
        )
        if shared is not None:
            label, z, idx = shared
            fields = "no field but zs" if label == "single" else f"the same fields ({label})"
            notes["*"] = (
                f"{len(idx)} maps at z_s = {z:g} have {fields}: {maps[idx[0]].label}, "
                f"{maps[idx[1]].label}; nothing tells their realisations apart (add {{seed}} "
                "to the set's pattern)"
            )
            continue
        for label, places in realisations.items():
            matched = _match(maps, summaries, places, zs)
            if isinstance(matched, str):
                notes[label] = matched
                continue
            common, rows, lost = matched
            if lost:
                dropped.setdefault(suite, {})[label] = lost
            chosen = tuple(maps[places[z][0]] for z in zs)
            tasks.append(RealisationTask(suite, label, zs, chosen, common, rows))
    return TomographyPlan(tuple(tasks), redshifts, {k: v for k, v in skipped.items() if v}, dropped)


def _positions(task: MapTask, summary: MapSummary) -> tuple[int, ...] | None:
    """Where each of a made map's patches was cut; ``None`` when its journal does not say."""
    if summary.positions is not None:
        return summary.positions
    if isinstance(task.source, HealpixMap) and (task.source.planned_patches() != summary.n_patches):
        return None  # dropped patches, journalled before the places were recorded
    return tuple(range(summary.n_patches))


def _match(
    maps: Sequence[MapTask],
    summaries: Sequence[MapSummary | None],
    places: Mapping[float, list[int]],
    zs: Sequence[float],
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int] | str:
    """The places all maps of a realisation kept, each map's rows there, and the places
    kept by only some; or why the realisation cannot give cross spectra."""
    missing = [z for z in zs if z not in places]
    if missing:
        return f"no map at z_s = {', '.join(f'{z:g}' for z in missing)}"
    kept: list[tuple[int, ...]] = []
    for z in zs:
        index = places[z][0]
        task, summary = maps[index], summaries[index]
        if summary is None:
            return f"its map at z_s = {z:g} ({task.label}) failed"
        positions = _positions(task, summary)
        if positions is None:
            return (
                f"its map at z_s = {z:g} ({task.label}) dropped patches for its mask and "
                "its journal does not say which: rerun with --fresh"
            )
        kept.append(positions)
    common = sorted(set(kept[0]).intersection(*kept[1:]))
    if not common:
        return "no patch place is kept by its maps at every z_s (their masks)"
    rows = tuple(tuple(_row_of(positions)[p] for p in common) for positions in kept)
    union = set().union(*kept)
    return tuple(common), rows, len(union) - len(common)


def _row_of(positions: Sequence[int]) -> dict[int, int]:
    return {place: row for row, place in enumerate(positions)}


class TomographyWorker:
    """Stage ``tomography``: the auto and cross spectra of every patch of one realisation.

    Args:
        store: Where the maps' patches come from (cached by the ``maps`` stage).
        settings: The run's statistics settings (ℓ bins, n_gal, ε).
        seed: The run's seed: each redshift's noise is that of its patch statistics.
    """

    def __init__(self, store: MapStore, settings: StatisticsSettings, seed: int) -> None:
        self.store = store
        self.settings = settings
        self.seed = seed

    def __call__(self, task: RealisationTask) -> PackedStatistics:
        with log_context(map=task.key, step="tomography"):
            started = time.perf_counter()
            cuts = [self.store.cut(m)[0] for m in task.maps]
            shapes = {cut.patches.shape[1:] for cut in cuts}
            placed = all(
                max(rows) < len(cut.positions)
                and np.array_equal(cut.positions[list(rows)], task.positions)
                for cut, rows in zip(cuts, task.rows, strict=True)
            )
            if len(shapes) != 1 or not placed:
                raise AnalysisError(
                    f"the maps of {task.key} no longer hold the patches planned: shapes "
                    f"{[cut.patches.shape for cut in cuts]}",
                    value=[cut.patches.shape for cut in cuts],
                    hint="the maps changed since the run was planned: rerun with --fresh",
                )
            pixel = task.maps[0].source.pixel_size_arcmin
            out: dict[str, list[np.ndarray]] = {}
            for place in range(len(task.positions)):
                # Each map's own row for this place: its patch, and the noise its patch
                # statistics drew.
                rows = [rows[place] for rows in task.rows]
                rngs = [
                    default_rng(m.noise_seed(self.seed, row))
                    for m, row in zip(task.maps, rows, strict=True)
                ]
                patches = [cut.patches[row] for cut, row in zip(cuts, rows, strict=True)]
                spectra = compute_tomographic_spectra(patches, pixel, self.settings, rngs)
                for key, values in spectra.items():
                    out.setdefault(key, []).append(values)
            _log.info(
                "tomography %s: %d patches at z_s %s in %.2f s",
                task.key,
                len(task.positions),
                ", ".join(f"{z:g}" for z in task.z_sources),
                time.perf_counter() - started,
            )
        return PackedStatistics.pack({key: np.stack(values) for key, values in out.items()})

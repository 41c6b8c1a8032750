"""The patch geometries of a run: settings that fit them, and one geometry per set.

A geometry is a patch's side in pixels and its pixel size in arcmin. :func:`check_geometries`
fails fast, once, when the statistics settings do not fit a geometry (too few modes in a
bin), before the run directory is claimed for the geometries the config fixes
(:func:`planned_geometries`) and after the maps stage for those only the patch files told;
:func:`drop_odd_geometries` fails the maps whose patches differ from the rest of their set,
since one covariance needs one geometry.

Not here: the statistics and their settings are :mod:`lensing_ssc.analysis`'s; the stages
that call these checks are :func:`.patch_statistics.run_patch_statistics`'s.

Example:
    >>> describe_geometry((64, 2.0))
    '64² × 2′'
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import MutableSequence, Sequence

import numpy as np

from lensing_ssc.analysis import StatisticsSettings, compute_patch_statistics
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._healpix_maps import HealpixMap
from lensing_ssc.pipelines._map_recipes import MapTask, SyntheticMap
from lensing_ssc.pipelines._merged_results import FailureRecord
from lensing_ssc.pipelines._tasks import MapSummary
from lensing_ssc.processing.managers.log import log_context

__all__ = [
    "check_geometries",
    "describe_geometry",
    "drop_odd_geometries",
    "planned_geometries",
]

_log = logging.getLogger("lensing_ssc.pipelines")

_ANALYSIS_ERROR = f"{AnalysisError.__module__}.{AnalysisError.__qualname__}"


def check_geometries(geometries: set[tuple[int, float]], settings: StatisticsSettings) -> int:
    """Fail fast, once, when the settings do not fit the patches (too few modes in a bin).

    Returns the number of values a patch's statistics hold (0 with no geometry to try).

    Raises:
        AnalysisError: ``settings`` do not fit one of ``geometries`` (naming it).
    """
    values = 0
    for pixels, pixel_size in sorted(geometries):
        probe = np.random.default_rng(0).standard_normal((pixels, pixels))
        try:
            with log_context(step="plan"):
                stats = compute_patch_statistics(
                    probe, pixel_size, settings, np.random.default_rng(0)
                )
        except AnalysisError as exc:
            raise AnalysisError(
                "pipeline.statistics does not fit patches of "
                f"{describe_geometry((pixels, pixel_size))}: {exc.message}",
                value=exc.value,
                hint=exc.hint,
            ) from exc
        values = max(values, sum(v.size for v in stats.values()))
    return values


def planned_geometries(maps: Sequence[MapTask]) -> set[tuple[int, float]]:
    """The patch geometries the config fixes before any map is made (not patch files')."""
    return {
        (task.source.patch_pixels, task.source.pixel_size_arcmin)
        for task in maps
        if isinstance(task.source, (SyntheticMap, HealpixMap))
    }


def drop_odd_geometries(
    maps: Sequence[MapTask], summaries: MutableSequence[MapSummary | None]
) -> list[FailureRecord]:
    """Fail the maps whose patches differ in size or pixel from the rest of their set.

    A set's covariance needs one data vector per patch of one geometry: the most common
    geometry of the set stays (on a tie, the first map's); each other map is a failure
    naming both geometries, and the run goes on without it.
    """
    by_set: dict[str, dict[int, tuple[int, float]]] = {}
    for i, (task, summary) in enumerate(zip(maps, summaries, strict=True)):
        if summary is not None:
            geometry = (summary.patch_pixels, summary.pixel_size_arcmin)
            by_set.setdefault(task.set_name, {})[i] = geometry
    records = []
    for set_name, geometries in by_set.items():
        counts = Counter(geometries.values())  # in first-seen order: max() keeps the first
        kept = max(counts, key=counts.__getitem__)
        if counts[kept] == len(geometries):
            continue
        example = maps[next(i for i, g in geometries.items() if g == kept)].label
        for i, geometry in geometries.items():
            if geometry == kept:
                continue
            task = maps[i]
            message = (
                f"{task.label} has patches of {describe_geometry(geometry)}, but the "
                f"{set_name} set's are {describe_geometry(kept)} ({example} and "
                f"{counts[kept] - 1} more): one covariance needs patches of one size and "
                "pixel; run other sizes separately"
            )
            with log_context(map=task.map_id, step="maps"):
                _log.error("maps %s refused: %s", task.map_id, message)
            records.append(FailureRecord("maps", task.map_id, _ANALYSIS_ERROR, message))
            summaries[i] = None
    return records


def describe_geometry(geometry: tuple[int, float]) -> str:
    """A geometry as a person reads it: side² × pixel size in arcmin."""
    pixels, pixel_size = geometry
    return f"{pixels}² × {pixel_size:g}′"

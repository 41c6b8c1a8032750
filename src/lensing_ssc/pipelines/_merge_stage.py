"""The ``merge`` stage of the patch-statistics run: from what the stages returned to its numbers.

:func:`merge_stages` reads each measured patch back from the journal into its set's rows
(the patch results are never all in memory, nor beside the stacked samples), counts the
patches masks dropped, merges the tomography, and hands all of it to
:func:`._results.merge_patch_results`. Writing the run's files then goes through
:func:`writing_output`, which turns a failed write (a full disk) into one
:class:`~lensing_ssc.core.base.exceptions.ResourceError` saying the tasks are saved;
:func:`describe_input` is the summary's line on what the maps were.

Not here: the numbers of the merge (means, covariances, comparisons) are
:mod:`._results`'s and :mod:`._tomography_results`'s; the results file's layout is
:mod:`._results`'s and the summary's wording :mod:`._summary`'s; running the stages and
writing the files is :func:`.patch_statistics.run_patch_statistics`'s.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import ResourceError
from lensing_ssc.pipelines._config import PipelineSection
from lensing_ssc.pipelines._inputs import dropped_patches
from lensing_ssc.pipelines._map_recipes import SET_DESCRIPTIONS, MapTask
from lensing_ssc.pipelines._merged_results import FailureRecord, MergedResults, merge_patch_results
from lensing_ssc.pipelines._sets import Comparison
from lensing_ssc.pipelines._stacking import RowStack
from lensing_ssc.pipelines._tasks import MapSummary, PatchTask
from lensing_ssc.pipelines._tomography import TomographyPlan
from lensing_ssc.pipelines._tomography_results import merge_tomography
from lensing_ssc.processing.runner import MapResult

__all__ = ["describe_input", "merge_stages", "writing_output"]

_log = logging.getLogger("lensing_ssc.pipelines")


def merge_stages(
    section: PipelineSection,
    config: dict[str, Any],
    maps: Sequence[MapTask],
    summaries: Sequence[MapSummary | None],
    patch_tasks: Sequence[PatchTask],
    patch_results: MapResult[Any],
    failures: Sequence[FailureRecord],
    comparisons: Sequence[Comparison],
    tomography: TomographyPlan,
    spectra: MapResult[Any] | None,
) -> MergedResults:
    """The run's merged numbers, from its maps, their patches' results and its tomography.

    Args:
        section: The run's pipeline section.
        config: The configuration to record, with what ran.
        maps: The run's maps; ``summaries[i]`` is what the maps stage made of ``maps[i]``
            (``None``: failed or refused).
        patch_tasks: The patches stage's tasks; ``patch_results`` their results.
        failures: Every stage's failures.
        comparisons: The compared pairs of sets.
        tomography: The tomography stage's plan; ``spectra`` its results, if it ran.
    """
    # Each patch's row goes into its set's arrays as it is read back from the journal: the
    # patch results are never all in memory, nor beside the stacked samples.
    grouped: dict[str, RowStack] = {}
    set_patches = Counter(patch.map.set_name for patch in patch_tasks)
    info: dict[str, tuple[str, int, float, int]] = {}
    metadata: dict[str, dict[str, Any]] = {}
    for task, summary in zip(maps, summaries, strict=True):
        if summary is None:
            continue
        if task.set_name not in grouped:
            grouped[task.set_name] = RowStack(set_patches[task.set_name])
        _, n_maps, _, _ = info.get(task.set_name, ("", 0, 0.0, 0))
        info[task.set_name] = (
            _set_description(section, task),
            n_maps + 1,
            summary.pixel_size_arcmin,
            summary.patch_pixels,
        )
        if task.suite:
            record = metadata.setdefault(
                task.set_name, {"set": task.suite, "z_source": task.z_source, "maps": []}
            )
            record["maps"].append({"map": task.map_id, "file": task.label, **dict(task.metadata)})
    patch_maps: dict[str, list[str]] = {}
    for patch, stats in zip(patch_tasks, patch_results.results, strict=True):
        if stats is not None:
            grouped[patch.map.set_name].add(stats)
            patch_maps.setdefault(patch.map.set_name, []).append(patch.map.map_id)
    dropped = dropped_patches(maps, [None if s is None else s.n_patches for s in summaries])
    if dropped:
        _log.warning(
            "%d patch(es) of %d map(s) dropped, masked above healpix.max_masked_fraction",
            sum(dropped.values()),
            len(dropped),
        )
    cross = merge_tomography(
        tomography,
        [] if spectra is None else spectra.results,
        comparisons=section.comparisons(),
        seed=section.seed,
        n_resamples=section.compare_resamples,
        confidence=section.compare_confidence,
    )
    return merge_patch_results(
        grouped,
        info=info,
        settings=section.statistics_settings(),
        failures=failures,
        config=config,
        dropped_patches=dropped,
        comparisons=comparisons,
        metadata=metadata,
        patch_maps=patch_maps,
        seed=section.seed,
        n_resamples=section.compare_resamples,
        confidence=section.compare_confidence,
        tomography=cross,
    )


@contextlib.contextmanager
def writing_output(path: Path) -> Iterator[None]:
    """Turn a failed write of a run's output (a full disk, say) into one clear error."""
    try:
        yield
    except OSError as exc:
        raise ResourceError(
            f"cannot write {str(path)!r}: {exc.strerror or exc}",
            value=str(path),
            hint="free space on its disk or choose another --run-dir, and rerun: every task "
            "is saved, only the merge runs again",
        ) from exc


def describe_input(section: PipelineSection, maps: Sequence[MapTask]) -> str:
    """The summary's words for what the run's maps are.

    Example:
        >>> describe_input(PipelineSection(), [])
        'synthetic lognormal fields (halofit C(ℓ), z_s = 1), seed 42'
    """
    if section.input == "healpix":
        hp = section.healpix
        names = hp.set_names()
        sets = "" if names == ["healpix"] else f" in {len(names)} set(s) ({', '.join(names)})"
        return (
            f"{len(maps)} HEALPix map(s){sets}, {hp.patch_size_deg:g}° gnomonic patches of "
            f"{hp.patch_pixels}² pixels"
        )
    if section.input == "patches":
        return f"{len(maps)} flat patch file(s), {section.patches.pixel_size_arcmin:g}′ pixels"
    syn = section.synthetic
    spectrum = (
        f"table {syn.spectrum_table}"
        if syn.spectrum_table is not None
        else f"halofit C(ℓ), z_s = {syn.cosmology.z_source:g}"
    )
    return f"synthetic {syn.kind} fields ({spectrum}), seed {section.seed}"


def _set_description(section: PipelineSection, task: MapTask) -> str:
    """The summary's words for a set: its own ``description``, else what its maps are."""
    if not task.suite or task.suite not in section.healpix.sets:
        return SET_DESCRIPTIONS[task.suite or task.set_name]
    text = section.healpix.sets[task.suite].description or (
        f"gnomonic patches of the HEALPix maps of set {task.suite!r}"
    )
    return text if task.z_source is None else f"{text}, z_s = {task.z_source:g}"

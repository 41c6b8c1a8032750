"""Merging per-patch statistics into ensemble summaries and comparisons: what a run found.

:func:`merge_patch_results` stacks the statistics of every patch of each set and summarises
them (mean, standard deviation, covariance, correlation; see
:mod:`lensing_ssc.analysis.covariance`), and compares every compared pair of sets
(:class:`._sets.Comparison`: the synthetic pair, or the declared ``compare``) with
:func:`lensing_ssc.analysis.comparison.compare_sets`: variance ratios, signal-to-noise with
the Hartlap factor, correlation matrices side by side, and the super-sample term predicted
from each statistic's response to the patch mean beside the measured excess, each with an
interval over maps (jackknife-t; for S/N a bootstrap seeded by the run's seed). It returns
a :class:`MergedResults`: a :class:`SetSummary` per set, a :class:`ComparisonResult` per
compared pair, the :class:`FailureRecord` of every map or patch that failed, and the
tomography merged by :mod:`._tomography_results`.

Not here: writing them to the results file and its layout (:mod:`._results`), reading that
file back (:mod:`._results_reading`), the text summary (:mod:`._summary`); the statistics
themselves are :mod:`lensing_ssc.analysis`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lensing_ssc.analysis import (
    EnsembleSummary,
    StatisticsSettings,
    summarize_statistics,
)
from lensing_ssc.analysis.comparison import SetComparison, compare_sets
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._sets import Comparison
from lensing_ssc.pipelines._stacking import PatchRow, RowStack
from lensing_ssc.pipelines._tasks import PATCH_MEAN_KEY
from lensing_ssc.pipelines._tomography_results import TomographyResults

__all__ = [
    "ComparisonResult",
    "FailureRecord",
    "MergedResults",
    "SetSummary",
    "merge_patch_results",
]


@dataclass(frozen=True)
class FailureRecord:
    """A map or patch that failed after its retries (the run went on without it)."""

    stage: str
    key: str
    error_type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {
            "stage": self.stage,
            "key": self.key,
            "error_type": self.error_type,
            "message": self.message,
        }


@dataclass(frozen=True, eq=False)
class SetSummary:
    """One patch set summarised: its samples ``(R, F)`` and ensemble summaries per key."""

    name: str
    description: str
    n_maps: int
    pixel_size_arcmin: float
    patch_pixels: int
    samples: dict[str, np.ndarray]
    summaries: dict[str, EnsembleSummary]
    metadata: dict[str, Any] = field(default_factory=dict)
    patch_mean: np.ndarray | None = None
    patch_maps: tuple[str, ...] = ()

    @property
    def n_patches(self) -> int:
        return next(iter(self.samples.values())).shape[0]


@dataclass(frozen=True, eq=False)
class ComparisonResult:
    """One compared pair: every statistic compared, with intervals over maps.

    ``ratio[key]`` is Var(numerator) / Var(denominator) per entry of the statistic.
    """

    comparison: Comparison
    compared: SetComparison
    seed: int

    @property
    def ratio(self) -> dict[str, np.ndarray]:
        """The variance ratio per statistic key."""
        return {key: c.variance_ratio for key, c in self.compared.statistics.items()}

    @property
    def label(self) -> str:
        """``"bigbox/zs=1 / tiled/zs=1"``: what was divided by what."""
        return f"{self.comparison.numerator} / {self.comparison.denominator}"


@dataclass(frozen=True, eq=False)
class MergedResults:
    """Everything the results file holds."""

    settings: StatisticsSettings
    sets: dict[str, SetSummary]
    comparisons: tuple[ComparisonResult, ...]
    failures: tuple[FailureRecord, ...]
    config: dict[str, Any]
    dropped_patches: dict[str, int] = field(default_factory=dict)
    tomography: TomographyResults = field(default_factory=TomographyResults)

    @property
    def ssc_ratio(self) -> dict[str, np.ndarray]:
        """The first comparison's variance ratios per statistic (empty without one)."""
        return self.comparisons[0].ratio if self.comparisons else {}

    @property
    def main_set(self) -> SetSummary:
        """The set the figures show first (sub-patches when present)."""
        return next(iter(self.sets.values()))

    @property
    def n_dropped(self) -> int:
        """Patches dropped for their mask, over all maps."""
        return sum(self.dropped_patches.values())

    def nu_normalisation(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per set and ``ngal=…/smoothing=…``: ``{"reference": …, "sigma": σ or None}``.

        ``sigma`` is ``None`` where each patch was divided by its own RMS (``"map"``).
        """
        s = self.settings
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, summary in self.sets.items():
            entries = out[name] = {}
            for n_gal in s.n_gal:
                for smoothing in s.smoothing_arcmin:
                    reference, sigma = s.nu_normalisation(
                        n_gal, smoothing, summary.pixel_size_arcmin, summary.patch_pixels
                    )
                    key = f"ngal={n_gal:g}/smoothing={smoothing:g}"
                    entries[key] = {"reference": reference, "sigma": sigma}
        return out


# Mixed into the seed of the resampling, so its draws are not those of any map or noise
# stream seeded by the run's seed alone.
_RESAMPLING_STREAM = 0x55C


def _stack(rows: Sequence[PatchRow] | RowStack) -> dict[str, np.ndarray]:
    """``{key: (R, F) array}`` of a set's patches (stacked as they came: :mod:`._stacking`)."""
    return (rows if isinstance(rows, RowStack) else RowStack.of(rows)).arrays()


def merge_patch_results(
    grouped: Mapping[str, Sequence[PatchRow] | RowStack],
    *,
    info: Mapping[str, tuple[str, int, float, int]],
    settings: StatisticsSettings,
    failures: Sequence[FailureRecord],
    config: dict[str, Any],
    dropped_patches: Mapping[str, int] | None = None,
    comparisons: Sequence[Comparison] | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    patch_maps: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    n_resamples: int = 200,
    confidence: float = 0.68,
    tomography: TomographyResults | None = None,
) -> MergedResults:
    """Summarise each set's patch results, and compare the sets of each compared pair.

    Args:
        grouped: Per set, the statistics of its patches in a stable order (packed, as the
            patch stage returns them, or ``{key: array}``), or a :class:`._stacking.RowStack`
            they were added to as they came.
        info: Per set, ``(description, n_maps, pixel_size_arcmin, patch_pixels)``.
        settings: The statistics settings of the run.
        failures: Maps and patches that failed.
        config: The run's configuration (JSON-ready).
        dropped_patches: Per map id, patches dropped for their mask (see
            :func:`._inputs.dropped_patches`).
        comparisons: The pairs of sets to divide; default: ``subpatches`` over
            ``periodic`` when both are there. A pair with a set that could not be summarised
            is left out and noted among the failures (stage ``merge``).
        metadata: Per set, what the results record of it beside its numbers (configured
            set, source redshift, the maps' fields).
        patch_maps: Per set, the map each row was cut from (intervals resample whole
            maps); default: every row its own map.
        seed: Seeds the resampling (the run's seed), so intervals are reproducible.
        n_resamples: Bootstrap resamples per comparison.
        confidence: Confidence level of the intervals.
        tomography: The sets' spectra across source redshifts, merged
            (:func:`._tomography_results.merge_tomography`); default none.

    Raises:
        AnalysisError: no set has the two patches a covariance needs.

    Example:
        >>> from lensing_ssc.analysis import StatisticsSettings
        >>> rows = {"periodic": [{"cl/ngal=0": np.full(3, v)} for v in (1.0, 2.0, 3.0)]}
        >>> merged = merge_patch_results(
        ...     rows,
        ...     info={"periodic": ("whole maps", 3, 1.0, 64)},
        ...     settings=StatisticsSettings(),
        ...     failures=[],
        ...     config={},
        ... )
        >>> merged.main_set.n_patches, merged.main_set.summaries["cl/ngal=0"].mean
        (3, array([2., 2., 2.]))
    """
    sets: dict[str, SetSummary] = {}
    notes = list(failures)
    for name, rows in grouped.items():
        if len(rows) < 2:
            notes.append(
                FailureRecord(
                    "merge",
                    name,
                    "AnalysisError",
                    f"set {name!r} has {len(rows)} measured patch(es); 2 are needed",
                )
            )
            continue
        stacked = _stack(rows)
        patch_mean = stacked.pop(PATCH_MEAN_KEY, None)
        labels = tuple((patch_maps or {}).get(name, ())) or tuple(
            f"row-{i}" for i in range(len(rows))
        )
        if len(labels) != len(rows):
            raise AnalysisError(
                f"set {name!r} has {len(rows)} patches but {len(labels)} map labels",
                value=(len(rows), len(labels)),
                hint="give the map of every patch, in the patches' order",
            )
        description, n_maps, pixel, pixels = info[name]
        sets[name] = SetSummary(
            name=name,
            description=description,
            n_maps=n_maps,
            pixel_size_arcmin=pixel,
            patch_pixels=pixels,
            samples=stacked,
            summaries=summarize_statistics(stacked),
            metadata=dict((metadata or {}).get(name, {})),
            patch_mean=None if patch_mean is None else patch_mean[:, 0].copy(),
            patch_maps=labels,
        )
    if not sets:
        raise AnalysisError(
            "no patch set has the 2 measured patches a covariance needs",
            value={name: len(rows) for name, rows in grouped.items()},
            hint=(
                f"{len(failures)} map(s) or patch(es) failed, listed above; fix them and rerun"
                if failures
                else "give each set at least 2 patches: more maps, or more patches per map"
            ),
        )
    if comparisons is None:
        comparisons = (
            [Comparison("", "subpatches", "periodic")]
            if {"subpatches", "periodic"} <= grouped.keys()
            else []
        )
    divided = []
    for index, comparison in enumerate(comparisons):
        missing = [n for n in (comparison.numerator, comparison.denominator) if n not in sets]
        if missing:
            notes.append(
                FailureRecord(
                    "merge",
                    f"ssc/{comparison.path}" if comparison.path else "ssc",
                    "AnalysisError",
                    f"{comparison.numerator} / {comparison.denominator} not compared: set "
                    f"{missing[0]!r} has no summary",
                )
            )
            continue
        top, bottom = sets[comparison.numerator], sets[comparison.denominator]
        compared = compare_sets(
            top.samples,
            bottom.samples,
            numerator_maps=top.patch_maps,
            denominator_maps=bottom.patch_maps,
            # One stream per comparison, from the run's seed: rerunning gives the same
            # intervals, and adding a comparison does not move the others'.
            rng=np.random.default_rng([seed, _RESAMPLING_STREAM, index]),
            patch_mean=top.patch_mean,
            n_resamples=n_resamples,
            confidence=confidence,
        )
        divided.append(ComparisonResult(comparison, compared, seed))
    return MergedResults(
        settings,
        sets,
        tuple(divided),
        tuple(notes),
        config,
        dict(dropped_patches or {}),
        tomography if tomography is not None else TomographyResults(),
    )

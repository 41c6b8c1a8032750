"""The tomography's results: each set's joint data vector across redshifts, and comparisons.

:func:`merge_tomography` takes what the ``tomography`` stage (:mod:`._tomography`) measured
per realisation, stacks every patch of a set's realisations into the joint data vector
(P = Z(Z+1)/2 spectra × F ℓ bins) and summarises it (:class:`TomographySummary`: mean,
covariance, correlation, r_ij(ℓ)), and compares declared pairs of sets
(:class:`TomographyComparison`) with
:func:`lensing_ssc.analysis.comparison.compare_sets`, resampling whole realisations.
:class:`TomographyResults` holds all of it with what was left out, and gives the results
file's datasets and ``meta/tomography``; the layout is in :mod:`._results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lensing_ssc.analysis import EnsembleSummary, summarize
from lensing_ssc.analysis.comparison import SetComparison, compare_sets
from lensing_ssc.analysis.tomography import cross_correlation, spectrum_pairs
from lensing_ssc.pipelines._tasks import PackedStatistics
from lensing_ssc.pipelines._tomography import TomographyPlan

__all__ = [
    "TomographyComparison",
    "TomographyResults",
    "TomographySummary",
    "merge_tomography",
]

# Mixed into the seed of the tomography comparisons' resampling (the set comparisons use
# another stream, so adding tomography moves none of their intervals).
_TOMOGRAPHY_STREAM = 0x70C


@dataclass(frozen=True, eq=False)
class TomographySummary:
    """One set's joint data vector across its source redshifts.

    Attributes:
        suite: The configured set.
        z_sources: Its source redshifts (ascending).
        realisations: The realisation of each row (``seed=3``).
        samples: Per statistic key (``cl/ngal=0``), ``(R, P, F)`` spectra of every patch.
        summaries: Per key, the summary of the flattened ``(R, P·F)`` vectors.
    """

    suite: str
    z_sources: tuple[float, ...]
    realisations: tuple[str, ...]
    samples: dict[str, np.ndarray]
    summaries: dict[str, EnsembleSummary]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The redshift indices of each spectrum (:func:`spectrum_pairs`)."""
        return spectrum_pairs(len(self.z_sources))

    def cross_correlation(self, key: str) -> np.ndarray:
        """r_ij(ℓ) of the mean spectra: ``(Z, Z, F)``."""
        return cross_correlation(self.samples[key].mean(axis=0), len(self.z_sources))


@dataclass(frozen=True, eq=False)
class TomographyComparison:
    """Two sets' joint data vectors compared at the source redshifts both have.

    ``path`` is where the numbers go under ``ssc/`` (``bigbox~tiled/tomography``).
    """

    path: str
    numerator: str
    denominator: str
    z_sources: tuple[float, ...]
    compared: SetComparison
    seed: int


@dataclass(frozen=True, eq=False)
class TomographyResults:
    """Everything the tomography adds to the results: summaries, comparisons, what was left out.

    ``skipped``: per set, the realisations left out and why; ``dropped``: per set, the patch
    places of a realisation left out because only some of its maps kept them.
    """

    summaries: dict[str, TomographySummary] = field(default_factory=dict)
    comparisons: tuple[TomographyComparison, ...] = ()
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The results file's datasets (``tomography/...`` and ``ssc/<a>~<b>/tomography/...``)."""
        out: dict[str, np.ndarray] = {}
        for suite, summary in self.summaries.items():
            base = f"tomography/{suite}"
            out[f"{base}/z_sources"] = np.array(summary.z_sources)
            out[f"{base}/pairs"] = np.array(summary.pairs, dtype=np.int64).reshape(-1, 2)
            index = {label: i for i, label in enumerate(dict.fromkeys(summary.realisations))}
            out[f"{base}/patch_map"] = np.array([index[r] for r in summary.realisations])
            for key, ensemble in summary.summaries.items():
                shape = summary.samples[key].shape[1:]
                out[f"{base}/{key}/mean"] = ensemble.mean.reshape(shape)
                out[f"{base}/{key}/std"] = ensemble.std.reshape(shape)
                out[f"{base}/{key}/covariance"] = ensemble.covariance
                out[f"{base}/{key}/correlation"] = ensemble.correlation
                out[f"{base}/{key}/cross_correlation"] = summary.cross_correlation(key)
                out[f"{base}/{key}/samples"] = summary.samples[key]
        for compared in self.comparisons:
            for key, statistic in compared.compared.statistics.items():
                for quantity, value in statistic.arrays().items():
                    out[f"ssc/{compared.path}/{key}/{quantity}"] = value
        return out

    def metadata(self) -> dict[str, Any]:
        """``meta/tomography``: per set its redshifts, pairs, realisations, what was skipped,
        and the patch places dropped (``{realisation: count}``, kept by only some z_s)."""
        sets = {
            suite: {
                "z_sources": list(s.z_sources),
                "pairs": [list(p) for p in s.pairs],
                "realisations": list(dict.fromkeys(s.realisations)),
                "n_patches": len(s.realisations),
                "skipped": self.skipped.get(suite, {}),
                "dropped_patches": self.dropped.get(suite, {}),
            }
            for suite, s in self.summaries.items()
        }
        for suite, notes in self.skipped.items():
            sets.setdefault(
                suite,
                {
                    "z_sources": [],
                    "pairs": [],
                    "realisations": [],
                    "n_patches": 0,
                    "skipped": notes,
                    "dropped_patches": self.dropped.get(suite, {}),
                },
            )
        comparisons = {
            c.path: {
                "numerator": c.numerator,
                "denominator": c.denominator,
                "z_sources": list(c.z_sources),
                "resampling": dict(c.compared.to_dict(), seed=c.seed),
            }
            for c in self.comparisons
        }
        return {"sets": sets, "comparisons": comparisons}


def _select(summary: TomographySummary, z_sources: Sequence[float]) -> dict[str, np.ndarray]:
    """The summary's ``(R, P'·F)`` vectors restricted to the spectra between ``z_sources``."""
    keep = [
        row
        for row, (i, j) in enumerate(summary.pairs)
        if summary.z_sources[i] in z_sources and summary.z_sources[j] in z_sources
    ]
    return {
        key: np.ascontiguousarray(rows[:, keep, :].reshape(rows.shape[0], -1))
        for key, rows in summary.samples.items()
    }


def merge_tomography(
    plan: TomographyPlan,
    results: Sequence[PackedStatistics | None],
    *,
    comparisons: Sequence[tuple[str, str]],
    seed: int,
    n_resamples: int,
    confidence: float,
) -> TomographyResults:
    """Stack each set's realisations into its joint data vector; compare the declared pairs.

    Args:
        plan: The stage's plan; ``results[i]`` is what ``plan.tasks[i]`` returned
            (``None``: it failed, and is listed among the run's failures).
        comparisons: The run's compared pairs of configured sets (``[("bigbox", "tiled")]``);
            pairs with fewer than 2 shared redshifts, or a set without tomography, are
            left out.
        seed, n_resamples, confidence: The resampling of the comparisons' intervals
            (whole realisations drawn with replacement).
    """
    skipped = {suite: dict(notes) for suite, notes in plan.skipped.items()}
    rows: dict[str, list[tuple[str, dict[str, np.ndarray]]]] = {}
    for task, packed in zip(plan.tasks, results, strict=True):
        if packed is None:
            skipped.setdefault(task.suite, {})[task.realisation] = "its tomography task failed"
            continue
        rows.setdefault(task.suite, []).append((task.realisation, packed.unpack()))
    summaries: dict[str, TomographySummary] = {}
    for suite, members in rows.items():
        keys = list(members[0][1])
        samples = {key: np.concatenate([m[1][key] for m in members]) for key in keys}
        labels = tuple(label for label, stats in members for _ in range(stats[keys[0]].shape[0]))
        if len(labels) < 2:
            skipped.setdefault(suite, {})["*"] = f"{len(labels)} patch(es): 2 are needed"
            continue
        summaries[suite] = TomographySummary(
            suite=suite,
            z_sources=plan.z_sources[suite],
            realisations=labels,
            samples=samples,
            summaries={k: summarize(v.reshape(v.shape[0], -1)) for k, v in samples.items()},
        )
    compared = []
    for index, (a, b) in enumerate(comparisons):
        if a not in summaries or b not in summaries:
            continue
        top, bottom = summaries[a], summaries[b]
        shared = tuple(z for z in top.z_sources if z in bottom.z_sources)
        if len(shared) < 2 or min(len(top.realisations), len(bottom.realisations)) < 3:
            continue
        result = compare_sets(
            _select(top, shared),
            _select(bottom, shared),
            numerator_maps=top.realisations,
            denominator_maps=bottom.realisations,
            rng=np.random.default_rng([seed, _TOMOGRAPHY_STREAM, index]),
            n_resamples=n_resamples,
            confidence=confidence,
        )
        compared.append(TomographyComparison(f"{a}~{b}/tomography", a, b, shared, result, seed))
    # Places dropped count only in the realisations the joint vectors hold.
    dropped = {
        suite: {label: n for label, n in counts.items() if label in summaries[suite].realisations}
        for suite, counts in plan.dropped.items()
        if suite in summaries
    }
    return TomographyResults(
        summaries,
        tuple(compared),
        {k: v for k, v in skipped.items() if v},
        {k: v for k, v in dropped.items() if v},
    )

"""The typed views of a results file: bins, summaries, comparisons, tomography.

The values :class:`._results_file.ResultsFile` hands out: :func:`parse_statistic_key`
splits a statistic key into its name and setting; :class:`Binning` holds a statistic's bin
centres, edges and units; :class:`StatisticSummary` one statistic of one set;
:class:`ResultsComparison` a compared pair of sets with a :class:`ComparedStatistic` per
statistic (variance ratios and intervals, S/N, SSC predicted and measured); and
:class:`TomographicSpectra` one set's auto and cross spectra across its source redshifts.
They read the file through the :class:`~._results_file.ResultsFile` that made them; the
file formats are read in :mod:`._results_reading`, the layout is in :mod:`._results`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lensing_ssc.analysis.comparison import StatisticComparison
from lensing_ssc.core.base.exceptions import AnalysisError

if TYPE_CHECKING:
    from lensing_ssc.pipelines._results_file import ResultsFile

__all__ = [
    "Binning",
    "ComparedStatistic",
    "ResultsComparison",
    "StatisticSummary",
    "TomographicSpectra",
    "parse_statistic_key",
]


def parse_statistic_key(key: str) -> tuple[str, float, float | None]:
    """``(name, n_gal, smoothing in arcmin or None)`` of a statistic key.

    Example:
        >>> parse_statistic_key("peaks/ngal=30/smoothing=2"), parse_statistic_key("cl/ngal=0")
        (('peaks', 30.0, 2.0), ('cl', 0.0, None))
    """
    name, *rest = key.split("/")
    values = dict(part.split("=", 1) for part in rest if "=" in part)
    if "ngal" not in values:
        raise AnalysisError(
            f"{key!r} is not a statistic key",
            value=key,
            hint="statistic keys read name/ngal=N[/smoothing=S], e.g. 'peaks/ngal=30/smoothing=2'",
        )
    smoothing = values.get("smoothing")
    return name, float(values["ngal"]), None if smoothing is None else float(smoothing)


@dataclass(frozen=True, eq=False)
class Binning:
    """The bins of a statistic: ``variable`` is ``"ℓ"`` (log-spaced) or ``"ν"`` (equal width)."""

    variable: str
    centers: np.ndarray
    edges: np.ndarray
    units: str

    @property
    def log(self) -> bool:
        """Whether the bins are log-spaced (ℓ), so a log axis shows them evenly."""
        return self.variable == "ℓ"

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "centers": self.centers.tolist(),
            "edges": self.edges.tolist(),
            "units": self.units,
        }


@dataclass(frozen=True, eq=False)
class StatisticSummary:
    """One statistic of one set (one source redshift): its bins, units and ensemble summary.

    ``set`` is the results' set name (``bigbox/zs=1``); ``units`` those of ``mean``
    (``covariance`` has their square).
    """

    set: str
    key: str
    name: str
    n_gal: float
    smoothing_arcmin: float | None
    units: str
    binning: Binning
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    samples: np.ndarray

    @property
    def n_patches(self) -> int:
        """Patches in the set (rows of ``samples``)."""
        return int(self.samples.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "key": self.key,
            "units": self.units,
            "binning": self.binning.to_dict(),
            "n_patches": self.n_patches,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }


@dataclass(frozen=True, eq=False, kw_only=True)
class ComparedStatistic(StatisticComparison):
    """One statistic of a compared pair as read back: the numbers of
    :class:`~lensing_ssc.analysis.comparison.StatisticComparison` (intervals are ``(2, F)``,
    low and high; the SSC fields are ``None`` in files without patch means), with the
    statistic's key, bins and units.
    """

    key: str
    binning: Binning
    units: str

    @property
    def has_ssc(self) -> bool:
        """Whether the predicted and measured SSC excess are there."""
        return self.ssc_predicted is not None and self.ssc_measured is not None


@dataclass(frozen=True, eq=False)
class ResultsComparison:
    """A compared pair of sets at one source redshift, read from a results file.

    ``path`` is where its numbers lie under ``ssc/`` (empty for the synthetic pair). A
    comparison of two sets' tomography (``bigbox~tiled/tomography``) has no single
    ``z_source`` but ``z_sources``, and each statistic's entries are its P spectra of F ℓ
    bins each, flattened (:attr:`TomographicSpectra.pairs` gives their order).
    """

    path: str
    numerator: str
    denominator: str
    z_source: float | None
    resampling: dict[str, Any]
    results: ResultsFile = field(repr=False)
    z_sources: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """``"bigbox/zs=1 / tiled/zs=1"``: what was divided by what."""
        return f"{self.numerator} / {self.denominator}"

    @property
    def prefix(self) -> str:
        return f"ssc/{self.path}/" if self.path else "ssc/"

    @property
    def statistics(self) -> tuple[str, ...]:
        """The statistic keys compared."""
        return tuple(
            k for k in self.results.statistics if f"{self.prefix}{k}/variance_ratio" in self.results
        )

    def statistic(self, key: str) -> ComparedStatistic:
        """The comparison of one statistic key (``cl/ngal=30``)."""
        base = f"{self.prefix}{key}/"
        if f"{base}variance_ratio" not in self.results:
            raise AnalysisError(
                f"comparison {self.label!r} has no statistic {key!r}",
                value=key,
                hint=f"choose from {', '.join(self.statistics)}",
            )
        values: dict[str, Any] = {
            name: self.results.get(f"{base}{name}")
            for name in StatisticComparison.__dataclass_fields__
        }
        return ComparedStatistic(
            key=key,
            binning=self.results.binning(key),
            units=self.results.units(f"{base}variance_ratio"),
            **values,
        )

    def joint(self) -> dict[str, dict[str, np.ndarray]]:
        """Per setting (``ngal=30/smoothing=2``): S/N of the joint data vector, its interval, h."""
        out: dict[str, dict[str, np.ndarray]] = {}
        start = f"{self.prefix}joint/"
        for path in self.results:
            if path.startswith(start) and path.endswith("/signal_to_noise"):
                setting = path[len(start) : -len("/signal_to_noise")]
                base = f"{start}{setting}/"
                out[setting] = {
                    q: self.results[f"{base}{q}"]
                    for q in ("signal_to_noise", "signal_to_noise_interval", "hartlap")
                }
        return out


@dataclass(frozen=True, eq=False)
class TomographicSpectra:
    """One set's auto and cross power spectra between its source redshifts, at one n_gal.

    The data vector of a patch is P = Z(Z+1)/2 spectra of F ℓ bins: ``pairs[p]`` is the
    (i, j) of spectrum p, indices into ``z_sources`` (``(0, 0), (0, 1), (1, 1)`` for two).
    ``mean`` and ``std`` are ``(P, F)``; ``covariance`` and ``correlation`` are the joint
    ``(P·F, P·F)`` matrices of the flattened vector (spectrum-major); ``cross_correlation``
    is r_ij(ℓ) ``(Z, Z, F)``; ``samples`` ``(R, P, F)``, with ``realisations[r]`` the
    realisation of row r (``seed=3``). ``units`` are those of ``mean`` (``sr``).
    """

    set: str
    key: str
    n_gal: float
    z_sources: tuple[float, ...]
    pairs: tuple[tuple[int, int], ...]
    binning: Binning
    units: str
    realisations: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    cross_correlation: np.ndarray
    samples: np.ndarray

    def pair_index(self, z_i: float, z_j: float) -> int:
        """The row of ``mean`` holding C_ij for source redshifts ``z_i`` and ``z_j``."""
        try:
            i, j = sorted((self.z_sources.index(float(z_i)), self.z_sources.index(float(z_j))))
        except ValueError:
            raise AnalysisError(
                f"set {self.set!r} has no source redshift pair ({z_i:g}, {z_j:g})",
                value=(z_i, z_j),
                hint=f"choose from z_s = {', '.join(f'{z:g}' for z in self.z_sources)}",
            ) from None
        return self.pairs.index((i, j))

    def spectrum(self, z_i: float, z_j: float) -> np.ndarray:
        """The mean C_ij(ℓ) between source redshifts ``z_i`` and ``z_j`` (``(F,)``)."""
        return np.asarray(self.mean[self.pair_index(z_i, z_j)])

"""Estimators of the patch statistics: power spectrum, bispectrum, PDF, peaks, minima, MFs.

Each estimator works on one square periodic patch and documents its normalisation in its
module. :func:`lensing_ssc.analysis.compute_patch_statistics` combines them over galaxy
densities and smoothing scales; theory to compare with is in :mod:`lensing_ssc.analysis.theory`.
"""

from __future__ import annotations

from lensing_ssc.analysis.statistics._nu_bins import NuBins, nu_bins
from lensing_ssc.analysis.statistics.bispectrum import (
    CONFIGURATIONS,
    BispectrumPlan,
    bispectra_from_fourier,
    bispectrum,
    bispectrum_plan,
)
from lensing_ssc.analysis.statistics.map_statistics import MAP_STATISTICS, map_statistics
from lensing_ssc.analysis.statistics.minkowski import minkowski_functionals
from lensing_ssc.analysis.statistics.pdf import pdf
from lensing_ssc.analysis.statistics.peaks import extrema_masks, minimum_counts, peak_counts
from lensing_ssc.analysis.statistics.power_spectrum import (
    EllBinning,
    band_average,
    binned_power_spectrum,
    ell_binning,
    log_ell_edges,
    power_spectrum_from_fourier,
)

__all__ = [
    "CONFIGURATIONS",
    "MAP_STATISTICS",
    "BispectrumPlan",
    "EllBinning",
    "NuBins",
    "band_average",
    "binned_power_spectrum",
    "bispectra_from_fourier",
    "bispectrum",
    "bispectrum_plan",
    "ell_binning",
    "extrema_masks",
    "log_ell_edges",
    "map_statistics",
    "minimum_counts",
    "minkowski_functionals",
    "nu_bins",
    "pdf",
    "peak_counts",
    "power_spectrum_from_fourier",
]

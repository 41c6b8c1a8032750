"""The science of lensing_ssc: convergence maps, patches, noise, smoothing, statistics, theory.

A pure numerical library, with no files, threads or managers: the patch-statistics pipeline
calls :func:`compute_patch_statistics` once per patch (on a GPU,
:func:`compute_patch_statistics_batch` once per batch) and merges the results with
:mod:`lensing_ssc.analysis.covariance`. Modules, by concern:

* :mod:`.spectra` — convergence power spectrum models (analytic halofit model, tables);
* :mod:`.fields` — Gaussian and lognormal flat-sky fields; :mod:`.ssc` — SSC patch sets;
* :mod:`.patches` — Fibonacci-grid gnomonic patches of HEALPix maps; ``.npy``/``.fits`` patches;
* :mod:`.sky` — full-sky lognormal HEALPix maps, and the example suites of an SSC study;
* :mod:`.noise`, :mod:`.smoothing` — shape noise and Gaussian smoothing;
* :mod:`.statistics` — power spectrum, bispectrum, PDF, peaks, minima, Minkowski functionals;
* :mod:`.theory` — Gaussian predictions (Tomita 1986; Bond & Efstathiou 1987);
* :mod:`.covariance` — mean, scatter, covariance, correlation, SSC covariance ratio;
* :mod:`.devices` — NumPy on the CPU or CuPy on a GPU (:func:`select_device`); every
  estimator takes one patch or a stack, of any array-API library;
* :mod:`.settings` — :class:`StatisticsSettings`;
* :mod:`.shells` — matter shells of a light cone (:class:`ShellTable`) and their δ;
  :mod:`.born` — κ from shells in the Born approximation (:class:`ConvergenceAccumulator`);
  :mod:`.lightcone` — FastPM light-cone particles binned into shells;
  :mod:`.shell_spectra` — the shells' Limber spectra and lognormal shells;
  :mod:`.healpix_files` — HEALPix FITS maps with their headers (guide: ``docs/kappa.md``).

Conventions, formulas and references: ``docs/analysis.md``.
"""

from __future__ import annotations

from lensing_ssc.analysis.born import (
    ConvergenceAccumulator,
    SourceDistribution,
    born_weights,
    born_weights_nz,
)
from lensing_ssc.analysis.covariance import (
    EnsembleSummary,
    covariance_ratio,
    stack_patch_statistics,
    summarize,
    summarize_statistics,
)
from lensing_ssc.analysis.devices import ArrayDevice, select_device
from lensing_ssc.analysis.fields import gaussian_field, lognormal_field
from lensing_ssc.analysis.noise import add_shape_noise, noise_sigma
from lensing_ssc.analysis.patch_statistics import (
    compute_patch_statistics,
    compute_patch_statistics_batch,
    statistic_key,
    statistic_keys,
)
from lensing_ssc.analysis.patches import (
    HealpixPatches,
    cut_healpix_patches,
    fibonacci_grid,
    gnomonic_patch,
    load_flat_patch,
    patch_centers,
)
from lensing_ssc.analysis.settings import STATISTIC_NAMES, StatisticsSettings
from lensing_ssc.analysis.shells import Background, Shell, ShellTable, density_contrast
from lensing_ssc.analysis.sky import ExampleSuites, lognormal_sky, write_example_suites
from lensing_ssc.analysis.smoothing import gaussian_smooth
from lensing_ssc.analysis.spectra import (
    ConvergenceSpectrum,
    HalofitConvergenceSpectrum,
    TabulatedSpectrum,
)
from lensing_ssc.analysis.ssc import SSCPatchSets, cut_subpatches, ssc_patch_sets
from lensing_ssc.analysis.theory import SpectralMoments, spectral_moments_on_grid

__all__ = [
    "STATISTIC_NAMES",
    "ArrayDevice",
    "Background",
    "ConvergenceAccumulator",
    "ConvergenceSpectrum",
    "EnsembleSummary",
    "ExampleSuites",
    "HalofitConvergenceSpectrum",
    "HealpixPatches",
    "SSCPatchSets",
    "Shell",
    "ShellTable",
    "SourceDistribution",
    "SpectralMoments",
    "StatisticsSettings",
    "TabulatedSpectrum",
    "add_shape_noise",
    "born_weights",
    "born_weights_nz",
    "compute_patch_statistics",
    "compute_patch_statistics_batch",
    "covariance_ratio",
    "cut_healpix_patches",
    "cut_subpatches",
    "density_contrast",
    "fibonacci_grid",
    "gaussian_field",
    "gaussian_smooth",
    "gnomonic_patch",
    "load_flat_patch",
    "lognormal_field",
    "lognormal_sky",
    "noise_sigma",
    "patch_centers",
    "select_device",
    "spectral_moments_on_grid",
    "ssc_patch_sets",
    "stack_patch_statistics",
    "statistic_key",
    "statistic_keys",
    "summarize",
    "summarize_statistics",
    "write_example_suites",
]

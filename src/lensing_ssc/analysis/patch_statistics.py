"""All statistics of one patch, for every galaxy density and smoothing scale of the settings.

:func:`compute_patch_statistics` is the unit of work of the patch-statistics pipeline. For
one ``(n, n)`` patch it

1. Fourier-transforms the patch once, and one map of unit white noise once;
2. for each n_gal, adds shape noise of σ_pix = ε/√(n_gal A_pix) in Fourier space (the same
   unit-noise realisation, rescaled, serves every n_gal: each setting's noise is correct on
   its own, and differences between settings are not blurred by independent draws);
3. measures the power spectrum and the bispectra of the noisy, unsmoothed patch;
4. for each smoothing scale σ_s, smooths, removes the smoothed patch's mean when
   ``subtract_patch_mean`` is set (by zeroing its ℓ = 0 mode, which no ℓ bin of step 3
   holds), converts to ν = κ_s/σ_ref (σ_ref from
   :meth:`~lensing_ssc.analysis.settings.StatisticsSettings.nu_normalisation`: the smoothed
   noise level, ``nu_sigma``, or the patch's own RMS) and measures the PDF, peaks, minima and
   Minkowski functionals in one pass.

Result keys (stable; the pipeline flattens them into data vectors, and they double as
HDF5 dataset paths) are built by :func:`statistic_key`::

    "cl/ngal=30"                         Ĉ per ℓ bin             (settings.ell_edges)
    "bispectrum_equilateral/ngal=30"     B̂ per bispectrum bin    (settings.bispectrum_edges)
    "bispectrum_isosceles/ngal=30", "bispectrum_squeezed/ngal=30"
    "pdf/ngal=30/smoothing=2"            PDF per ν bin           (settings.nu_edges)
    "peaks/…", "minima/…"                counts per ν bin
    "v0/…", "v1/…", "v2/…"               Minkowski functionals per ν bin

Numbers are formatted with ``:g`` (``ngal=7``, ``smoothing=2.5``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Imported with this module, not on first use (numpy's lazy default): a pipeline worker forked
# from a process that imported it then starts measuring at once.
from numpy.fft import irfft2, rfft2

from lensing_ssc.analysis._validation import check_patch, check_pixel_size
from lensing_ssc.analysis.noise import noise_sigma
from lensing_ssc.analysis.settings import STATISTIC_NAMES, StatisticsSettings
from lensing_ssc.analysis.smoothing import gaussian_window
from lensing_ssc.analysis.statistics import nu_bins
from lensing_ssc.analysis.statistics.bispectrum import (
    CONFIGURATIONS,
    bispectra_from_fourier,
    bispectrum_plan,
)
from lensing_ssc.analysis.statistics.map_statistics import MAP_STATISTICS, measure_map_statistics
from lensing_ssc.analysis.statistics.power_spectrum import ell_binning, power_spectrum_from_fourier
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "compute_patch_statistics",
    "noisy_fourier_modes",
    "statistic_key",
    "statistic_keys",
]

_FOURIER_STATISTICS = ("cl", *(f"bispectrum_{c}" for c in CONFIGURATIONS))


def statistic_key(name: str, n_gal: float, smoothing_arcmin: float | None = None) -> str:
    """Return the result key of statistic ``name`` at one setting.

    ``smoothing_arcmin`` is required for map statistics and must be ``None`` for the power
    spectrum and bispectra, which are measured before smoothing.

    Example:
        >>> statistic_key("peaks", 30, 2.0), statistic_key("cl", 0)
        ('peaks/ngal=30/smoothing=2', 'cl/ngal=0')
    """
    if name not in STATISTIC_NAMES:
        raise AnalysisError(
            f"unknown statistic {name!r}",
            value=name,
            hint=f"choose from {', '.join(STATISTIC_NAMES)}",
        )
    if name in _FOURIER_STATISTICS:
        if smoothing_arcmin is not None:
            raise AnalysisError(
                f"{name} is measured before smoothing; it has no smoothing key",
                value=smoothing_arcmin,
                hint="pass smoothing_arcmin=None",
            )
        return f"{name}/ngal={float(n_gal):g}"
    if smoothing_arcmin is None:
        raise AnalysisError(
            f"{name} is measured on smoothed maps: give smoothing_arcmin",
            value=None,
            hint="e.g. statistic_key(name, n_gal, 2.0)",
        )
    return f"{name}/ngal={float(n_gal):g}/smoothing={float(smoothing_arcmin):g}"


def statistic_keys(settings: StatisticsSettings) -> list[str]:
    """Return every key :func:`compute_patch_statistics` produces for ``settings``, in order."""
    return list(_iter_keys(settings))


def _iter_keys(settings: StatisticsSettings) -> Iterator[str]:
    for n_gal in settings.n_gal:
        for name in settings.statistics:
            if name in _FOURIER_STATISTICS:
                yield statistic_key(name, n_gal)
        for smoothing in settings.smoothing_arcmin:
            for name in settings.statistics:
                if name in MAP_STATISTICS:
                    yield statistic_key(name, n_gal, smoothing)


def noisy_fourier_modes(
    patch: np.ndarray,
    pixel_size_arcmin: float,
    settings: StatisticsSettings,
    rng: np.random.Generator,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(n_gal, rfft2 of the noisy patch)`` for every n_gal of ``settings``, in order.

    Steps 1 and 2 above: one unit-noise map is drawn from ``rng`` (only when some n_gal is
    above 0) and rescaled for each n_gal. :func:`compute_patch_statistics` and the cross
    spectra of :mod:`lensing_ssc.analysis.tomography` draw their noise here, so the same
    ``rng`` seed gives both the same noisy patch. ``patch`` must be validated already.
    """
    n = patch.shape[0]
    signal_k = rfft2(patch)
    sigmas = [noise_sigma(n_gal, pixel_size_arcmin, settings.epsilon) for n_gal in settings.n_gal]
    unit_noise_k = rfft2(rng.standard_normal((n, n))) if any(sigmas) else None
    for n_gal, sigma_pix in zip(settings.n_gal, sigmas, strict=True):
        if sigma_pix > 0 and unit_noise_k is not None:
            yield n_gal, signal_k + sigma_pix * unit_noise_k
        else:
            yield n_gal, signal_k


def compute_patch_statistics(
    patch: np.ndarray,
    pixel_size_arcmin: float,
    settings: StatisticsSettings | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Return every statistic of ``settings`` for one convergence patch, keyed as documented above.

    Args:
        patch: ``(n, n)`` convergence map, finite, treated as periodic.
        pixel_size_arcmin: Pixel side in arcminutes.
        settings: What to compute; defaults to ``StatisticsSettings()``.
        rng: Generator for the shape noise. Pass one seeded per patch
            (``numpy.random.default_rng([seed, patch_index])``) for reproducible, resumable runs.

    Example:
        >>> from lensing_ssc.analysis import (HalofitConvergenceSpectrum, StatisticsSettings,
        ...                                   gaussian_field)
        >>> rng = np.random.default_rng(0)
        >>> kappa = gaussian_field(128, 2.0, HalofitConvergenceSpectrum(), rng)
        >>> stats = compute_patch_statistics(kappa, 2.0, StatisticsSettings.quick(), rng)
        >>> stats["peaks/ngal=30/smoothing=5"].shape
        (12,)
    """
    array = check_patch(patch)
    pixel = check_pixel_size(pixel_size_arcmin)
    settings = StatisticsSettings() if settings is None else settings
    rng = np.random.default_rng() if rng is None else rng
    n = array.shape[0]
    names = set(settings.statistics)
    configurations = [c for c in CONFIGURATIONS if f"bispectrum_{c}" in names]
    map_names = {name for name in MAP_STATISTICS if name in names}
    # Build (and validate against this patch) every binning before the heavy work.
    binning = ell_binning(n, pixel, settings.ell_edges) if "cl" in names else None
    plan = (
        bispectrum_plan(n, pixel, settings.bispectrum_edges, settings.isosceles_ratio)
        if configurations
        else None
    )
    bins = nu_bins(settings.nu_edges)

    results: dict[str, np.ndarray] = {}
    for n_gal, kappa_k in noisy_fourier_modes(array, pixel, settings, rng):
        if binning is not None:
            results[statistic_key("cl", n_gal)] = power_spectrum_from_fourier(
                kappa_k, binning, pixel
            )
        if plan is not None:
            for config, values in bispectra_from_fourier(
                kappa_k, plan, pixel, configurations
            ).items():
                results[statistic_key(f"bispectrum_{config}", n_gal)] = values
        if not map_names:
            continue
        for smoothing in settings.smoothing_arcmin:
            smoothed_k = kappa_k * gaussian_window(n, pixel, smoothing)
            if settings.subtract_patch_mean:
                smoothed_k[0, 0] = 0.0
            smoothed = irfft2(smoothed_k, s=(n, n))
            _, shared_sigma = settings.nu_normalisation(n_gal, smoothing, pixel, n)
            sigma_ref = float(smoothed.std()) if shared_sigma is None else shared_sigma
            if not sigma_ref > 0:
                raise AnalysisError(
                    "the patch is constant after smoothing, so ν = κ/σ is undefined",
                    value=sigma_ref,
                    hint="check the input patch, or use n_gal > 0 with nu_reference='noise'",
                )
            measured = measure_map_statistics(smoothed, pixel, bins, sigma_ref, map_names)
            for name, values in measured.items():
                results[statistic_key(name, n_gal, smoothing)] = values
    return {key: results[key] for key in _iter_keys(settings)}

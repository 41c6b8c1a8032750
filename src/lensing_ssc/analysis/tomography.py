"""Tomography: power spectra between the source redshifts of one realisation, and their pairs.

A realisation seen at Z source redshifts z_1 < … < z_Z gives, per patch, the binned auto
spectra Ĉ_ii(ℓ) and the cross spectra Ĉ_ij(ℓ) (i < j) of its Z convergence patches, cut at
the same place on the sky. The P = Z(Z+1)/2 spectra are ordered by :func:`spectrum_pairs`,
the upper triangle row by row: (1,1), (1,2), …, (1,Z), (2,2), …, (Z,Z).

Conventions. Both patches are transformed as in
:mod:`lensing_ssc.analysis.statistics.power_spectrum`, and the cross estimator is

    Ĉ_ij(ℓ_b) = (A_pix / n²) · mean_{ℓ ∈ b} Re(FFT[κ_i] FFT[κ_j]*),

the same band average of the same modes, so Ĉ_ii is exactly the auto spectrum of
:func:`~lensing_ssc.analysis.compute_patch_statistics` and Ĉ_ij = Ĉ_ii when κ_i = κ_j.
Shape noise is added to each redshift's patch as
:func:`~lensing_ssc.analysis.patch_statistics.noisy_fourier_modes` adds it, from that
redshift's own generator: with the generators of the patch statistics, each auto spectrum
here is the one measured there, noise included. Noise is independent between redshifts (the
galaxies of two source bins are different galaxies), so it adds no bias to Ĉ_ij, i ≠ j, only
scatter; the auto spectra keep their noise bias σ_pix² A_pix.

:func:`cross_correlation` gives r_ij(ℓ) = C_ij / √(C_ii C_jj) of mean spectra (with noise,
r of the noisy maps; at n_gal = 0 that of the signal). Because the super-sample modes are
shared by every redshift of a realisation, they correlate the spectra of different
redshifts: the joint covariance of the stacked data vector (all P spectra) is the one the
pipeline summarises and compares (:mod:`lensing_ssc.analysis.covariance`,
:mod:`lensing_ssc.analysis.comparison`).

What is not here: which maps form a realisation, and running the patches (the pipeline's
``_tomography``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import array_device, is_array, namespace, to_numpy
from lensing_ssc.analysis._grid import ARCMIN, crop_rfft
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size
from lensing_ssc.analysis.patch_statistics import noisy_fourier_modes, statistic_key
from lensing_ssc.analysis.settings import StatisticsSettings
from lensing_ssc.analysis.statistics.power_spectrum import EllBinning, ell_binning
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "compute_tomographic_spectra",
    "cross_correlation",
    "cross_power_spectrum_from_fourier",
    "spectrum_pairs",
]


def spectrum_pairs(n_redshifts: int) -> list[tuple[int, int]]:
    """The (i, j) redshift indices of each spectrum of the data vector, i ≤ j, row by row.

    Example:
        >>> spectrum_pairs(3)
        [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    """
    return [(i, j) for i in range(n_redshifts) for j in range(i, n_redshifts)]


def cross_power_spectrum_from_fourier(
    first_k: Any, second_k: Any, binning: EllBinning, pixel_size_arcmin: float
) -> Any:
    """Return Ĉ_12(ℓ_b) from two patches' full ``rfft2`` (same geometry, same binning).

    Either may be a stack ``(..., n, n//2 + 1)`` of any array namespace (one spectrum per
    pair, ``(..., n_bins)``).
    """
    xp = namespace(first_k, second_k)
    first = crop_rfft(first_k, binning.n, binning.m)
    second = crop_rfft(second_k, binning.n, binning.m)
    power = xp.real(first) * xp.real(second) + xp.imag(first) * xp.imag(second)
    pixel_area = (pixel_size_arcmin * ARCMIN) ** 2
    return binning.bin_average(power) * pixel_area / binning.n**2


def compute_tomographic_spectra(
    patches: Any,
    pixel_size_arcmin: float,
    settings: StatisticsSettings,
    rngs: Sequence[np.random.Generator],
) -> dict[str, Any]:
    """Auto and cross power spectra of one patch seen at several source redshifts.

    Args:
        patches: One ``(n, n)`` convergence patch per source redshift, in redshift order,
            all of the same place on the sky: a sequence of patches, or a ``(Z, n, n)``
            stack (NumPy, CuPy or any array-API array; the spectra are then of its library).
        pixel_size_arcmin: Pixel side in arcminutes.
        settings: The ℓ bins, n_gal values and ε of the run (``cl`` must be among its
            statistics).
        rngs: One generator per patch for its shape noise: pass the ones the patch
            statistics of each redshift's patch use, and each auto spectrum is theirs.

    Returns:
        ``{"cl/ngal=30": (P, F)}`` per n_gal: P = Z(Z+1)/2 spectra in the order of
        :func:`spectrum_pairs`, F ℓ bins.

    Example:
        >>> from lensing_ssc.analysis import compute_patch_statistics
        >>> settings = StatisticsSettings.quick(statistics=["cl"], n_gal=[0])
        >>> kappa = np.random.default_rng(1).normal(0.0, 0.01, (64, 64))
        >>> rngs = [np.random.default_rng(i) for i in range(2)]
        >>> spectra = compute_tomographic_spectra([kappa, kappa], 2.0, settings, rngs)
        >>> cl = compute_patch_statistics(kappa, 2.0, settings)["cl/ngal=0"]
        >>> spectra["cl/ngal=0"].shape, bool(np.allclose(spectra["cl/ngal=0"], cl))
        ((3, 6), True)
    """
    if "cl" not in settings.statistics:
        raise AnalysisError(
            "tomographic spectra are power spectra, but the settings do not measure 'cl'",
            value=list(settings.statistics),
            hint="add 'cl' to the statistics",
        )
    stack = _redshift_stack(patches)
    count = stack.shape[0]
    if count < 2 or count != len(rngs):
        raise AnalysisError(
            f"need one patch per source redshift (at least 2) and one generator each: "
            f"{count} patch(es), {len(rngs)} generator(s)",
            value=(count, len(rngs)),
            hint="pass the realisation's patch at every redshift, with its noise generator",
        )
    pixel = check_pixel_size(pixel_size_arcmin)
    binning = ell_binning(stack.shape[-1], pixel, settings.ell_edges)
    pairs = spectrum_pairs(stack.shape[0])
    xp = namespace(stack)
    device = array_device(stack)
    firsts = xp.asarray([i for i, _ in pairs], device=device)
    seconds = xp.asarray([j for _, j in pairs], device=device)
    return {
        statistic_key("cl", n_gal): cross_power_spectrum_from_fourier(
            xp.take(modes, firsts, axis=0), xp.take(modes, seconds, axis=0), binning, pixel
        )
        for n_gal, modes in noisy_fourier_modes(stack, pixel, settings, rngs)
    }


def _redshift_stack(patches: Any) -> Any:
    """The patches of every redshift as one validated ``(Z, n, n)`` stack."""
    if is_array(patches) or isinstance(patches, np.ndarray):
        stack, _ = check_patch_stack(patches)
        return stack
    arrays = [check_patch_stack(patch)[0] for patch in patches]
    if not arrays:
        raise AnalysisError(
            "need one patch per source redshift, got none",
            value=0,
            hint="pass the realisation's patch at every redshift, with its noise generator",
        )
    shapes = [tuple(a.shape[1:]) for a in arrays]
    if len(set(shapes)) != 1:
        raise AnalysisError(
            f"the patches of one realisation differ in size: {shapes}",
            value=shapes,
            hint="cut every redshift's map into patches of one geometry",
        )
    return namespace(*arrays).concat(arrays, axis=0)


def cross_correlation(spectra: Any, n_redshifts: int) -> np.ndarray:
    """Return r_ij(ℓ) = C_ij / √(C_ii C_jj) as a ``(Z, Z, F)`` array from ``(P, F)`` spectra.

    NaN where an auto spectrum is not positive. The diagonal is 1. ``spectra`` may be of
    any array library (those of :func:`compute_tomographic_spectra` on a GPU): they are
    brought to the host in one transfer, and ``r`` is a NumPy array.

    Example:
        >>> spectra = np.array([[4.0], [1.0], [1.0]])      # C_11, C_12, C_22 in one ℓ bin
        >>> cross_correlation(spectra, 2)[:, :, 0].tolist()
        [[1.0, 0.5], [0.5, 1.0]]
    """
    # NumPy refuses to convert a device's arrays implicitly (CuPy, array_api_strict).
    values = np.asarray(to_numpy(spectra) if is_array(spectra) else spectra, dtype=float)
    pairs = spectrum_pairs(n_redshifts)
    if values.ndim != 2 or values.shape[0] != len(pairs):
        raise AnalysisError(
            f"expected ({len(pairs)}, F) spectra for {n_redshifts} redshifts, got shape "
            f"{values.shape}",
            value=values.shape,
            hint="pass the spectra in the order of spectrum_pairs(n_redshifts)",
        )
    matrix = np.empty((n_redshifts, n_redshifts, values.shape[1]))
    for row, (i, j) in enumerate(pairs):
        matrix[i, j] = matrix[j, i] = values[row]
    autos = np.array([matrix[i, i] for i in range(n_redshifts)])
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(autos[:, None, :] * autos[None, :, :])
        out = np.where(scale > 0, matrix / np.where(scale > 0, scale, 1.0), np.nan)
    return np.asarray(out)

"""Synthetic flat-sky convergence fields: Gaussian and lognormal, periodic, of a given C(ℓ).

* :func:`gaussian_field` — white noise filtered to the power spectrum in Fourier space, so
  the binned power of the result is C(ℓ) on average, exactly mode by mode.
* :func:`lognormal_field` — κ = λ (exp(g − σ_g²/2) − 1) with a Gaussian g whose correlation
  function is ξ_g = ln(1 + ξ_κ/λ²), so κ has the requested C(ℓ), a mean of zero and the
  skewness of a shifted lognormal (Coles & Jones 1991; Hilbert, Hartlap & Schneider 2011;
  Xavier et al. 2016). ``shift`` λ > 0 is the lowest value κ can take; the empty-beam
  convergence ``-HalofitConvergenceSpectrum.minimum_convergence()`` is a physical choice.

Pixels are point samples of the band-limited field (no pixel window); the ℓ = 0 mode is
set to zero, so each Gaussian field has zero mean. Sub-patches of large fields and the
matching periodic fields of an SSC study are built in :mod:`lensing_ssc.analysis.ssc`.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import lru_cache
from typing import Any

import numpy as np

from lensing_ssc.analysis._grid import ARCMIN, rfft_ell, rfft_mode_weights
from lensing_ssc.analysis._validation import MIN_PATCH_PIXELS, check_pixel_size, check_positive
from lensing_ssc.analysis.spectra import ConvergenceSpectrum
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "gaussian_correlation",
    "gaussian_field",
    "lognormal_field",
    "prepare_field",
    "shifted_lognormal",
    "spectrum_on_grid",
]


def _check_size(n_pixels: int) -> int:
    if isinstance(n_pixels, bool) or not isinstance(n_pixels, (int, np.integer)):
        raise AnalysisError(
            f"n_pixels must be an integer, got {n_pixels!r}",
            value=n_pixels,
            hint="give the number of pixels on a side, e.g. 256",
        )
    if n_pixels < MIN_PATCH_PIXELS:
        raise AnalysisError(
            f"n_pixels={n_pixels} is too small",
            value=n_pixels,
            hint=f"use at least {MIN_PATCH_PIXELS} pixels on a side",
        )
    return int(n_pixels)


def spectrum_on_grid(
    n_pixels: int, pixel_size_arcmin: float, spectrum: ConvergenceSpectrum
) -> np.ndarray:
    """Return C(|ℓ|) on the rfft2 grid of an ``n_pixels``-wide patch, with C = 0 at ℓ = 0.

    Raises ``AnalysisError`` if the spectrum returns the wrong shape, NaNs or negative values.
    """
    ell = rfft_ell(n_pixels, pixel_size_arcmin)
    cl = np.array(spectrum(ell), dtype=float)
    if cl.shape != ell.shape:
        raise AnalysisError(
            f"the spectrum returned shape {cl.shape} for ℓ of shape {ell.shape}",
            value=cl.shape,
            hint="a spectrum must map an ℓ array to C(ℓ) elementwise",
        )
    if not np.all(np.isfinite(cl)) or np.any(cl < 0):
        raise AnalysisError(
            "the spectrum returned NaN, infinite or negative C(ℓ)",
            value=None,
            hint="check the spectrum over the patch's ℓ range",
        )
    cl[0, 0] = 0.0
    return cl


def _amplitude(n_pixels: int, pixel_size_arcmin: float, spectrum: Any) -> np.ndarray:
    # Multiplying the rfft2 of unit white noise by √(C / A_pix) gives a map whose estimated
    # power A_pix |κ_k|² / n² is C(ℓ) (see statistics.power_spectrum for the convention).
    pixel_area = (pixel_size_arcmin * ARCMIN) ** 2
    amplitude = np.sqrt(spectrum_on_grid(n_pixels, pixel_size_arcmin, spectrum) / pixel_area)
    amplitude.setflags(write=False)
    return amplitude


_cached_amplitude = lru_cache(maxsize=16)(_amplitude)


def _amplitude_for(n: int, pixel: float, spectrum: ConvergenceSpectrum) -> np.ndarray:
    if isinstance(spectrum, Hashable):
        return _cached_amplitude(n, pixel, spectrum)
    return _amplitude(n, pixel, spectrum)  # an unhashable spectrum object: no caching


def _filtered_noise(
    amplitude: np.ndarray, n: int, n_fields: int | None, rng: np.random.Generator
) -> np.ndarray:
    shape = (n, n) if n_fields is None else (n_fields, n, n)
    noise_k = np.fft.rfft2(rng.standard_normal(shape))
    noise_k *= amplitude
    return np.fft.irfft2(noise_k, s=(n, n))


def _check_count(n_fields: int | None) -> int | None:
    if n_fields is None:
        return None
    if isinstance(n_fields, bool) or not isinstance(n_fields, (int, np.integer)) or n_fields < 1:
        raise AnalysisError(
            f"n_fields must be a positive integer or None, got {n_fields!r}",
            value=n_fields,
            hint="ask for at least one field",
        )
    return int(n_fields)


def gaussian_field(
    n_pixels: int,
    pixel_size_arcmin: float,
    spectrum: ConvergenceSpectrum,
    rng: np.random.Generator,
    *,
    n_fields: int | None = None,
) -> np.ndarray:
    """Draw periodic Gaussian convergence field(s) with power spectrum ``spectrum``.

    Args:
        n_pixels: Pixels on a side.
        pixel_size_arcmin: Pixel side in arcminutes.
        spectrum: C(ℓ), e.g. :class:`~lensing_ssc.analysis.spectra.HalofitConvergenceSpectrum`.
        rng: The random generator (``numpy.random.default_rng(seed)``).
        n_fields: Draw this many at once (shape ``(n_fields, n, n)``); ``None`` for one map.

    Example:
        >>> from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
        >>> kappa = gaussian_field(64, 2.0, HalofitConvergenceSpectrum(), np.random.default_rng(1))
        >>> kappa.shape
        (64, 64)
    """
    n = _check_size(n_pixels)
    pixel = check_pixel_size(pixel_size_arcmin)
    count = _check_count(n_fields)
    return _filtered_noise(_amplitude_for(n, pixel, spectrum), n, count, rng)


def gaussian_correlation(xi_kappa: np.ndarray, shift: float) -> np.ndarray:
    """Return ξ_g = ln(1 + ξ_κ/λ²), the correlation of the Gaussian field behind a lognormal κ.

    Shared by the flat-sky fields here and the full-sky maps of
    :mod:`lensing_ssc.analysis.sky`, which evaluate ξ_κ on their own grids.

    Raises:
        AnalysisError: ξ_κ/λ² reaches −1 or below (the shift is too small for the spectrum).
    """
    ratio = np.asarray(xi_kappa, dtype=float) / shift**2
    if ratio.min() <= -1.0:
        raise AnalysisError(
            f"shift λ={shift:g} is too small for this spectrum: ξ_κ/λ² reaches {ratio.min():.3g}",
            value=shift,
            hint="use a larger shift (|ξ_κ| must stay below λ²)",
        )
    return np.log1p(ratio)


def shifted_lognormal(g: np.ndarray, variance_g: float, shift: float) -> np.ndarray:
    """Turn a zero-mean Gaussian field ``g`` of variance σ_g² into κ = λ (exp(g − σ_g²/2) − 1).

    Works in place on ``g`` (any shape) and returns it: κ has mean zero and κ > −λ.
    """
    g -= 0.5 * variance_g
    np.exp(g, out=g)
    g -= 1.0
    g *= shift
    return g


@lru_cache(maxsize=16)
def _lognormal_plan(n: int, pixel: float, spectrum: Any, shift: float) -> tuple[np.ndarray, float]:
    pixel_area = (pixel * ARCMIN) ** 2
    cl = spectrum_on_grid(n, pixel, spectrum)
    xi_kappa = np.fft.irfft2(cl, s=(n, n)) / pixel_area
    cl_g = pixel_area * np.fft.rfft2(gaussian_correlation(xi_kappa, shift)).real
    cl_g[0, 0] = 0.0
    np.clip(cl_g, 0.0, None, out=cl_g)  # tiny negative values from the transform: not a spectrum
    weights = rfft_mode_weights(n)
    variance_g = float(np.sum(cl_g * weights[None, :])) / (n * n * pixel_area)
    amplitude = np.sqrt(cl_g / pixel_area)
    amplitude.setflags(write=False)
    return amplitude, variance_g


def lognormal_field(
    n_pixels: int,
    pixel_size_arcmin: float,
    spectrum: ConvergenceSpectrum,
    rng: np.random.Generator,
    *,
    shift: float,
    n_fields: int | None = None,
) -> np.ndarray:
    """Draw periodic shifted-lognormal convergence field(s) with power spectrum ``spectrum``.

    Args:
        n_pixels: Pixels on a side.
        pixel_size_arcmin: Pixel side in arcminutes.
        spectrum: Target C(ℓ) of κ.
        rng: The random generator.
        shift: λ > 0, the field's lower bound is −λ; smaller λ means a more skewed field.
        n_fields: Draw this many at once; ``None`` for one map.

    Example:
        >>> from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
        >>> model = HalofitConvergenceSpectrum()
        >>> rng = np.random.default_rng(2)
        >>> kappa = lognormal_field(64, 2.0, model, rng, shift=-model.minimum_convergence())
        >>> bool(kappa.min() > model.minimum_convergence())
        True
    """
    n = _check_size(n_pixels)
    pixel = check_pixel_size(pixel_size_arcmin)
    count = _check_count(n_fields)
    lam = check_positive(shift, name="shift", hint="give the lognormal shift λ > 0, e.g. 0.05")
    if isinstance(spectrum, Hashable):
        amplitude, variance_g = _lognormal_plan(n, pixel, spectrum, lam)
    else:  # an unhashable spectrum object: no caching
        amplitude, variance_g = _lognormal_plan.__wrapped__(n, pixel, spectrum, lam)
    return shifted_lognormal(_filtered_noise(amplitude, n, count, rng), variance_g, lam)


def prepare_field(
    n_pixels: int,
    pixel_size_arcmin: float,
    spectrum: ConvergenceSpectrum,
    *,
    shift: float | None = None,
) -> None:
    """Compute and keep the Fourier amplitudes that fields of this size and spectrum share.

    :func:`gaussian_field` (``shift=None``) and :func:`lognormal_field` (``shift=λ``) do this
    on their first call and keep the result for later ones (for hashable spectra). Calling it
    ahead is useful before forking worker processes: they inherit the result instead of each
    computing it again (for the halofit model, tens of milliseconds per process).

    Raises:
        AnalysisError: Bad size, pixel size or shift, or a spectrum that returns bad values.
    """
    n = _check_size(n_pixels)
    pixel = check_pixel_size(pixel_size_arcmin)
    if not isinstance(spectrum, Hashable):
        return  # nothing is kept for unhashable spectra
    if shift is None:
        _cached_amplitude(n, pixel, spectrum)
    else:
        lam = check_positive(shift, name="shift", hint="give the lognormal shift λ > 0, e.g. 0.05")
        _lognormal_plan(n, pixel, spectrum, lam)

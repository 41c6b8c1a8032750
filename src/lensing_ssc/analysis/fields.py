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

What every field of one size, pixel size, spectrum and shift shares — the spectrum on the
Fourier grid and, for a lognormal field, the Gaussian field's spectrum and variance — is a
:class:`FieldPlan`, computed on the first draw and kept in the process for the next ones
(:func:`prepare_field` computes it ahead, or keeps a plan another process computed).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from lensing_ssc.analysis._grid import ARCMIN, rfft_ell, rfft_mode_weights
from lensing_ssc.analysis._validation import MIN_PATCH_PIXELS, check_pixel_size, check_positive
from lensing_ssc.analysis.spectra import ConvergenceSpectrum
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "FieldPlan",
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


@dataclass(frozen=True, eq=False)
class FieldPlan:
    """What every field of one size, pixel size, spectrum and shift shares.

    Plain arrays: a plan computed in one process can be stored (:meth:`packed`) and kept in
    another (:func:`prepare_field` with ``plan=``), which then draws the same fields without
    evaluating the spectrum.

    Attributes:
        amplitude: ``√(C / A_pix)`` on the rfft2 grid, ``(n, n // 2 + 1)``, read-only: of κ
            for a Gaussian field, of the Gaussian field g behind κ for a lognormal one.
        variance_g: σ_g², the variance of that g (lognormal); ``None`` for a Gaussian field.

    Example:
        >>> from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
        >>> plan = prepare_field(64, 2.0, HalofitConvergenceSpectrum())
        >>> FieldPlan.unpack(plan.packed(), 64).amplitude.shape
        (64, 33)
    """

    amplitude: np.ndarray
    variance_g: float | None = None

    def packed(self) -> np.ndarray:
        """The plan as one read-only float64 array: σ_g² (NaN for none), then the amplitude."""
        out = np.empty(1 + self.amplitude.size)
        out[0] = math.nan if self.variance_g is None else self.variance_g
        out[1:] = self.amplitude.ravel()
        out.setflags(write=False)
        return out

    @classmethod
    def unpack(cls, packed: np.ndarray, n_pixels: int) -> FieldPlan:
        """The plan of an ``n_pixels``-wide field that :meth:`packed` made (its amplitude is
        a read-only view of ``packed``).

        Raises:
            AnalysisError: ``packed`` is not a packed plan of that size.
        """
        n = _check_size(n_pixels)
        shape = (n, n // 2 + 1)
        values = np.asarray(packed)
        if values.dtype != np.float64 or values.shape != (1 + shape[0] * shape[1],):
            raise AnalysisError(
                f"a packed field plan of {n}² pixels is {1 + shape[0] * shape[1]} float64 "
                f"values, got {values.dtype} of shape {values.shape}",
                value=values.shape,
                hint="unpack with the n_pixels the plan was made for",
            )
        amplitude = values[1:].reshape(shape)
        amplitude.setflags(write=False)
        variance = float(values[0])
        return cls(amplitude, None if math.isnan(variance) else variance)


# Plans of this process, oldest first, keyed (n, pixel, spectrum, shift or None).
_MAX_PLANS = 16
_plans: dict[tuple[Any, ...], FieldPlan] = {}
_plans_lock = threading.Lock()


def _keep(key: tuple[Any, ...], plan: FieldPlan) -> FieldPlan:
    with _plans_lock:
        _plans.pop(key, None)
        _plans[key] = plan
        while len(_plans) > _MAX_PLANS:
            del _plans[next(iter(_plans))]
    return plan


def _plan(n: int, pixel: float, spectrum: Any, shift: float | None) -> FieldPlan:
    """The kept plan, else one computed now (and kept, for a hashable spectrum)."""
    if not isinstance(spectrum, Hashable):
        return _make_plan(n, pixel, spectrum, shift)  # an unhashable spectrum object: not kept
    key = (n, pixel, spectrum, shift)
    plan = _plans.get(key)
    return plan if plan is not None else _keep(key, _make_plan(n, pixel, spectrum, shift))


def _make_plan(n: int, pixel: float, spectrum: Any, shift: float | None) -> FieldPlan:
    if shift is None:
        return FieldPlan(_amplitude(n, pixel, spectrum))
    amplitude, variance_g = _lognormal_plan(n, pixel, spectrum, shift)
    return FieldPlan(amplitude, variance_g)


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
    return _filtered_noise(_plan(n, pixel, spectrum, None).amplitude, n, count, rng)


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
    plan = _plan(n, pixel, spectrum, lam)
    noise = _filtered_noise(plan.amplitude, n, count, rng)
    # A plan kept under a shift is a lognormal one (prepare_field refuses others): it has σ_g².
    return shifted_lognormal(noise, cast(float, plan.variance_g), lam)


def prepare_field(
    n_pixels: int,
    pixel_size_arcmin: float,
    spectrum: ConvergenceSpectrum,
    *,
    shift: float | None = None,
    plan: FieldPlan | None = None,
) -> FieldPlan:
    """Compute and keep the :class:`FieldPlan` that fields of this size and spectrum share.

    :func:`gaussian_field` (``shift=None``) and :func:`lognormal_field` (``shift=λ``) do this
    on their first call and keep the result for later ones (for hashable spectra). Calling it
    ahead is useful before forking worker processes: they inherit the result instead of each
    computing it again (for the halofit model, tens of milliseconds per process). Workers that
    are not forks of this process can be given the plan instead: ``plan=`` keeps that one
    without computing anything (it must be the plan of these arguments, computed elsewhere).

    Returns:
        The plan kept (or, for an unhashable spectrum, computed and not kept).

    Raises:
        AnalysisError: Bad size, pixel size or shift, a spectrum that returns bad values, or a
            ``plan`` of another size or kind (Gaussian for lognormal, or the reverse).

    Example:
        >>> from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
        >>> plan = prepare_field(64, 2.0, HalofitConvergenceSpectrum(), shift=0.03)
        >>> prepare_field(64, 2.0, HalofitConvergenceSpectrum(), shift=0.03, plan=plan) is plan
        True
    """
    n = _check_size(n_pixels)
    pixel = check_pixel_size(pixel_size_arcmin)
    lam = None
    if shift is not None:
        lam = check_positive(shift, name="shift", hint="give the lognormal shift λ > 0, e.g. 0.05")
    if plan is None:
        return _plan(n, pixel, spectrum, lam)
    want = (n, n // 2 + 1)
    if plan.amplitude.shape != want or (plan.variance_g is None) != (lam is None):
        kind = "Gaussian" if plan.variance_g is None else "lognormal"
        raise AnalysisError(
            f"a {kind} field plan of shape {plan.amplitude.shape} cannot serve "
            f"{'Gaussian' if lam is None else 'lognormal'} fields of {n}² pixels",
            value=plan.amplitude.shape,
            hint="give the plan prepare_field returned for the same arguments",
        )
    if isinstance(spectrum, Hashable):
        _keep((n, pixel, spectrum, lam), plan)
    return plan

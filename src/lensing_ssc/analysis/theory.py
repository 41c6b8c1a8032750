"""Gaussian-field predictions for the map statistics, from the spectral moments σ0, σ1, σ2.

For a statistically isotropic Gaussian field smoothed with W(ℓ) (ℓ in inverse radians),

    σ_j² = ∫ d²ℓ/(2π)² ℓ^{2j} C(ℓ) W(ℓ)²,    γ = σ1² / (σ0 σ2).

σ0² is the variance, σ1² = ⟨|∇κ|²⟩ and σ2² = ⟨(∇²κ)²⟩. Here σ1 is reported per arcmin and
σ2 per arcmin², so the predictions below share the units of the estimators.

* PDF: the standard normal in ν = κ/σ0.
* Minkowski functionals (Tomita 1986; Matsubara 2003): V0 = ½ erfc(ν/√2),
  V1 = (σ1/σ0) e^{−ν²/2} / (8√2), V2 = (σ1/σ0)² ν e^{−ν²/2} / (2 (2π)^{3/2}).
* Peaks (Bond & Efstathiou 1987; Longuet-Higgins 1957): total density
  n_pk = σ2² / (8√3 π σ1²) = 1 / (4√3 π θ*²) with θ* = √2 σ1/σ2, and the height distribution
  n_pk(ν) = e^{−ν²/2} G(γ, γν) / ((2π)^{3/2} θ*²); minima mirror peaks, n_min(ν) = n_pk(−ν).

Moments can be computed on the exact Fourier grid of a patch (:func:`spectral_moments_on_grid`,
what a finite periodic patch contains) or for white shape noise alone. The binned forms match
the estimators in :mod:`lensing_ssc.analysis.statistics` bin for bin.

Tomography: :func:`cross_convergence_spectrum` is the Limber cross spectrum of κ between two
source planes z_1 ≤ z_2 (Hu 1999, ApJ 522, L21, eq. 3),

    C_12(ℓ) = (9/4) Ω_m² (H0/c)⁴ ∫₀^χ1 dχ (1+z)² (1 − χ/χ1)(1 − χ/χ2) P_NL((ℓ+½)/χ, z(χ)),

the product of both lensing efficiencies over the structures in front of the nearer source,
with the ingredients and quadrature of
:class:`~lensing_ssc.analysis.spectra.HalofitConvergenceSpectrum`, so that C_11 is its auto
spectrum. r_12 = C_12/√(C_11 C_22) < 1: the far source also sees the matter behind the near one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._cosmology import (
    HUBBLE_DISTANCE_H,
    comoving_distance,
    growth_factor,
    halofit_power,
    linear_power,
)
from lensing_ssc.analysis._grid import ARCMIN, rfft_ell, rfft_mode_weights
from lensing_ssc.analysis._validation import check_pixel_size
from lensing_ssc.analysis.fields import spectrum_on_grid
from lensing_ssc.analysis.smoothing import gaussian_window
from lensing_ssc.analysis.spectra import (
    ConvergenceSpectrum,
    HalofitConvergenceSpectrum,
    TabulatedSpectrum,
)
from lensing_ssc.analysis.statistics import nu_bins
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "SpectralMoments",
    "cross_convergence_spectrum",
    "gaussian_minimum_counts_binned",
    "gaussian_minkowski",
    "gaussian_minkowski_binned",
    "gaussian_pdf_binned",
    "gaussian_peak_counts_binned",
    "gaussian_peak_density",
    "gaussian_peak_height_density",
    "spectral_moments_on_grid",
]

_erfc = np.vectorize(math.erfc, otypes=[float])
_erf = np.vectorize(math.erf, otypes=[float])

# The multipoles and the Limber quadrature of HalofitConvergenceSpectrum (its ℓ table and
# its 256 redshift midpoints), so that a source plane's cross spectrum with itself is its
# auto spectrum to rounding (tests/analysis/test_analysis_theory.py checks it).
_CROSS_ELL = np.logspace(0.0, 5.5, 441)
_CROSS_NODES = 256


@dataclass(frozen=True)
class SpectralMoments:
    """Spectral moments of a smoothed field.

    Attributes:
        sigma0: Standard deviation of the field.
        sigma1: RMS gradient, per arcmin.
        sigma2: RMS Laplacian, per arcmin².
    """

    sigma0: float
    sigma1: float
    sigma2: float

    def __post_init__(self) -> None:
        for name in ("sigma0", "sigma1", "sigma2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise AnalysisError(
                    f"spectral moment {name}={value!r} must be finite and > 0",
                    value=value,
                    hint="check the spectrum and smoothing scale",
                )

    @property
    def gamma(self) -> float:
        """γ = σ1² / (σ0 σ2), between 0 and 1."""
        return self.sigma1**2 / (self.sigma0 * self.sigma2)

    @property
    def theta_star_arcmin(self) -> float:
        """θ* = √2 σ1/σ2 in arcmin, the characteristic peak separation scale."""
        return math.sqrt(2.0) * self.sigma1 / self.sigma2

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-ready view."""
        return {
            "sigma0": self.sigma0,
            "sigma1": self.sigma1,
            "sigma2": self.sigma2,
            "gamma": self.gamma,
        }


def spectral_moments_on_grid(
    n_pixels: int,
    pixel_size_arcmin: float,
    spectrum: ConvergenceSpectrum | None,
    smoothing_arcmin: float = 0.0,
    *,
    noise_sigma: float = 0.0,
) -> SpectralMoments:
    """Return σ0, σ1, σ2 summed over the Fourier modes of an ``n_pixels``-wide periodic patch.

    Args:
        n_pixels: Pixels on a side.
        pixel_size_arcmin: Pixel side in arcminutes.
        spectrum: Signal C(ℓ); ``None`` for noise only.
        smoothing_arcmin: Gaussian smoothing σ_s (0 for none), see :mod:`.smoothing`.
        noise_sigma: Per-pixel standard deviation of white noise added to the signal.

    The signal's ℓ = 0 mode counts as zero (as in :mod:`.fields`); the noise keeps its own,
    so unsmoothed noise alone has σ0 = ``noise_sigma`` exactly.
    """
    pixel = check_pixel_size(pixel_size_arcmin)
    pixel_area = (pixel * ARCMIN) ** 2
    power = np.full(rfft_ell(n_pixels, pixel).shape, noise_sigma**2 * pixel_area)
    if spectrum is not None:
        power += spectrum_on_grid(n_pixels, pixel, spectrum)
    power = power * gaussian_window(n_pixels, pixel, smoothing_arcmin) ** 2
    power *= rfft_mode_weights(n_pixels)[None, :]
    ell = rfft_ell(n_pixels, pixel) * ARCMIN  # per arcmin
    area = n_pixels**2 * pixel_area
    s0 = float(np.sum(power)) / area
    s1 = float(np.sum(power * ell**2)) / area
    s2 = float(np.sum(power * ell**4)) / area
    return SpectralMoments(math.sqrt(s0), math.sqrt(s1), math.sqrt(s2))


def gaussian_pdf_binned(nu_edges: npt.ArrayLike) -> np.ndarray:
    """Return the standard normal density averaged over each ν bin."""
    edges = nu_bins(nu_edges).edges
    cdf = 0.5 * _erfc(-edges / math.sqrt(2.0))
    return np.diff(cdf) / np.diff(edges)


def gaussian_minkowski(
    nu: np.ndarray, moments: SpectralMoments
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return Tomita's (V0, V1, V2) at thresholds ``nu`` (V1 per arcmin, V2 per arcmin²)."""
    nu = np.asarray(nu, dtype=float)
    ratio = moments.sigma1 / moments.sigma0
    gauss = np.exp(-0.5 * nu**2)
    v0 = 0.5 * _erfc(nu / math.sqrt(2.0))
    v1 = ratio * gauss / (8.0 * math.sqrt(2.0))
    v2 = ratio**2 * nu * gauss / (2.0 * (2.0 * math.pi) ** 1.5)
    return v0, v1, v2


def gaussian_minkowski_binned(
    nu_edges: npt.ArrayLike, moments: SpectralMoments
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return V0 at bin centres and the bin averages of V1 and V2, as the estimators report."""
    bins = nu_bins(nu_edges)
    lo, hi = bins.edges[:-1], bins.edges[1:]
    ratio = moments.sigma1 / moments.sigma0
    v0, _, _ = gaussian_minkowski(bins.centers, moments)
    gauss_integral = math.sqrt(math.pi / 2.0) * (
        _erf(hi / math.sqrt(2.0)) - _erf(lo / math.sqrt(2.0))
    )
    v1 = ratio * gauss_integral / (8.0 * math.sqrt(2.0)) / bins.width
    nu_gauss_integral = np.exp(-0.5 * lo**2) - np.exp(-0.5 * hi**2)
    v2 = ratio**2 * nu_gauss_integral / (2.0 * (2.0 * math.pi) ** 1.5) / bins.width
    return v0, v1, v2


def gaussian_peak_density(moments: SpectralMoments) -> float:
    """Return the total number of peaks per arcmin² of a 2-D Gaussian field, σ2²/(8√3π σ1²)."""
    return moments.sigma2**2 / (8.0 * math.sqrt(3.0) * math.pi * moments.sigma1**2)


def gaussian_peak_height_density(nu: np.ndarray, moments: SpectralMoments) -> np.ndarray:
    """Return the differential peak density n_pk(ν) per arcmin² per unit ν (BE87)."""
    nu = np.asarray(nu, dtype=float)
    g = moments.gamma
    a = 1.0 - g * g
    if a <= 1e-9:
        raise AnalysisError(
            f"γ={g:.6f} is too close to 1 for the peak height distribution",
            value=g,
            hint="the field's spectrum must span more than one scale",
        )
    x = g * nu
    b = 3.0 - 2.0 * g * g
    big_g = (
        (x * x - g * g) * (1.0 - 0.5 * _erfc(x / math.sqrt(2.0 * a)))
        + x * a * np.exp(-x * x / (2.0 * a)) / math.sqrt(2.0 * math.pi * a)
        + np.exp(-x * x / b) / math.sqrt(b) * (1.0 - 0.5 * _erfc(x / math.sqrt(2.0 * a * b)))
    )
    theta2 = moments.theta_star_arcmin**2
    return np.exp(-0.5 * nu**2) * big_g / ((2.0 * math.pi) ** 1.5 * theta2)


def gaussian_peak_counts_binned(
    nu_edges: npt.ArrayLike, moments: SpectralMoments, area_arcmin2: float
) -> np.ndarray:
    """Return the expected number of peaks per ν bin on a patch of ``area_arcmin2``."""
    bins = nu_bins(nu_edges)
    fine = np.linspace(0.0, 1.0, 65)
    grid = bins.edges[:-1, None] + bins.width * fine[None, :]
    density = gaussian_peak_height_density(grid, moments)
    return np.trapezoid(density, grid, axis=1) * area_arcmin2


def gaussian_minimum_counts_binned(
    nu_edges: npt.ArrayLike, moments: SpectralMoments, area_arcmin2: float
) -> np.ndarray:
    """Return the expected number of minima per ν bin (minima at ν are peaks of −κ at −ν)."""
    edges = nu_bins(nu_edges).edges
    return gaussian_peak_counts_binned(-edges[::-1], moments, area_arcmin2)[::-1]


def cross_convergence_spectrum(
    first: HalofitConvergenceSpectrum, second: HalofitConvergenceSpectrum
) -> TabulatedSpectrum:
    """Return the Limber cross spectrum C_12(ℓ) of κ between the source planes of two models.

    The models must differ at most in ``z_source``; the formula is in the module docstring.
    The result is tabulated on the auto spectra's multipoles and interpolated in log–log,
    like theirs; C_12 of a model with itself is its auto spectrum.

    Args:
        first, second: The spectra at the two source redshifts (either order).

    Raises:
        AnalysisError: the models' cosmologies differ.

    Example:
        >>> near = HalofitConvergenceSpectrum(z_source=1.0)
        >>> far = HalofitConvergenceSpectrum(z_source=2.0)
        >>> ell = np.array([100.0])
        >>> r = cross_convergence_spectrum(near, far)(ell) / np.sqrt(near(ell) * far(ell))
        >>> bool(0.5 < r[0] < 1.0)
        True
    """
    if dataclasses.replace(first, z_source=second.z_source) != second:
        raise AnalysisError(
            f"cross spectra need one cosmology at two source redshifts, got {first!r} and "
            f"{second!r}",
            value=(first, second),
            hint="use dataclasses.replace(model, z_source=z) for the second redshift",
        )
    near, far = sorted((first, second), key=lambda model: model.z_source)
    return _cross_table(near, far.z_source)


@lru_cache(maxsize=16)
def _cross_table(near: HalofitConvergenceSpectrum, z_far: float) -> TabulatedSpectrum:
    z_near = near.z_source
    z = np.linspace(0.0, z_near, _CROSS_NODES + 1)[1:] - 0.5 * z_near / _CROSS_NODES
    chi = comoving_distance(np.concatenate((z, [z_near])), near.omega_m, near.h)
    chi, chi_near = chi[:-1], float(chi[-1])
    # The far plane's distance as its own auto spectrum computes it (a grid ending at z_far).
    chi_far = float(comoving_distance(np.array([z_far]), near.omega_m, near.h)[0])
    k = (_CROSS_ELL[None, :] + 0.5) / chi[:, None]
    params = {
        "omega_m": near.omega_m,
        "omega_b": near.omega_b,
        "h": near.h,
        "n_s": near.n_s,
        "sigma8": near.sigma8,
    }
    if near.nonlinear:
        power = halofit_power(k, z, **params)
    else:
        power = linear_power(k, **params) * (growth_factor(z, near.omega_m) ** 2)[:, None]
    kernel = (1.0 + z) ** 2 * (1.0 - chi / chi_near) * (1.0 - chi / chi_far)
    hubble = near.h / HUBBLE_DISTANCE_H
    prefactor = 2.25 * near.omega_m**2 * hubble**4
    # The integrand vanishes at χ = 0 (P → 0 as k → ∞) and at the near plane.
    nodes = np.concatenate(([0.0], chi, [chi_near]))
    zeros = np.zeros((1, _CROSS_ELL.size))
    padded = np.vstack((zeros, kernel[:, None] * power, zeros))
    return TabulatedSpectrum(_CROSS_ELL, prefactor * np.trapezoid(padded, nodes, axis=0))

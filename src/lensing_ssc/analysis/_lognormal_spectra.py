"""The harmonic-space plan of a lognormal sky: the Gaussian fields' spectra and their factors.

:func:`lognormal_plan` turns the auto and cross spectra C_ij(ℓ) of Z shifted-lognormal κ
maps into what their Gaussian fields g_i are drawn with: the spectra C_g,ij(ℓ) of
ξ_g,ij = ln(1 + ξ_ij/(λ_i λ_j)) (the transform of :mod:`lensing_ssc.analysis.fields`), with
ξ(θ) = Σ (2ℓ+1)/(4π) C(ℓ) P_ℓ(cos θ) and C_g(ℓ) = 2π ∫ ξ_g P_ℓ d cos θ, both by
Gauss–Legendre quadrature on 2(ℓ_max + 1) nodes, the monopole of g set to zero; their lower
Cholesky factor at each ℓ, a pivot ≤ 0 giving a zero column; and each field's variance σ_g²
as drawn, for the exponential. Multipoles below ``ell_cut`` are zero in C and in C_g.
Plans are cached: a light cone's shells draw many maps of one nside.

Not here: checking the arguments, drawing the harmonic coefficients and the maps, and
removing what the exponential puts below the cut (:mod:`lensing_ssc.analysis.sky`); the
one-field transform on a flat patch (:mod:`lensing_ssc.analysis.fields`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from lensing_ssc.analysis.fields import gaussian_correlation
from lensing_ssc.analysis.spectra import ConvergenceSpectrum
from lensing_ssc.analysis.tomography import spectrum_pairs

__all__ = ["lognormal_plan"]


def _legendre(lmax: int, x: np.ndarray) -> np.ndarray:
    """P_ℓ(x) for ℓ = 0 … lmax (rows), by the three-term recurrence."""
    table = np.empty((lmax + 1, x.size))
    table[0] = 1.0
    if lmax > 0:
        table[1] = x
    for ell in range(2, lmax + 1):
        table[ell] = ((2 * ell - 1) * x * table[ell - 1] - (ell - 1) * table[ell - 2]) / ell
    return table


@lru_cache(maxsize=4)
def _quadrature(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Gauss–Legendre nodes cost an eigenvalue problem (0.6 s for n = 514); a light cone's
    # shells draw many maps of one nside.
    nodes, weights = np.polynomial.legendre.leggauss(n)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def _gaussian_spectra(cl: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """C_g(ℓ) of the Gaussian fields whose shifted exponentials have the spectra ``cl``.

    ``cl`` is ``(P, ℓ_max + 1)``, one spectrum per row; ``shifts[p]`` is √(λ_i λ_j) of its
    pair (λ for an auto spectrum), so ξ_g = ln(1 + ξ/(λ_i λ_j)).
    """
    lmax = cl.shape[1] - 1
    nodes, weights = _quadrature(2 * (lmax + 1))
    legendre = _legendre(lmax, nodes)
    ell = np.arange(lmax + 1)
    xi = ((2 * ell + 1) / (4 * math.pi) * cl) @ legendre
    xi_g = np.stack(
        [gaussian_correlation(row, shift) for row, shift in zip(xi, shifts, strict=True)]
    )
    cl_g = 2 * math.pi * ((weights * xi_g) @ legendre.T)
    cl_g[:, 0] = 0.0
    return np.asarray(cl_g)


def _cholesky(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of ``(L, Z, Z)`` symmetric matrices, one per ℓ.

    A pivot ≤ 0 (a multipole without power, or rounding in the transform's spectra) gives a
    zero column, so a matrix that is only positive semi-definite still has a factor.
    """
    n = matrix.shape[1]
    lower = np.zeros_like(matrix)
    for i in range(n):
        for j in range(i + 1):
            rest = matrix[:, i, j] - np.sum(lower[:, i, :j] * lower[:, j, :j], axis=1)
            if i == j:
                lower[:, i, i] = np.sqrt(np.clip(rest, 0.0, None))
            else:
                pivot = lower[:, j, j]
                lower[:, i, j] = np.divide(rest, pivot, out=np.zeros_like(rest), where=pivot > 0)
    return lower


@lru_cache(maxsize=8)
def lognormal_plan(
    lmax: int,
    spectra: tuple[ConvergenceSpectrum, ...],
    shifts: tuple[float, ...],
    ell_cut: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The Cholesky factors ``(ℓ_max + 1, Z, Z)`` of C_g(ℓ) and each field's variance σ_g².

    Args:
        lmax: The band limit ℓ_max.
        spectra: The Z(Z+1)/2 spectra C_ij(ℓ) of κ, in the order of
            :func:`lensing_ssc.analysis.tomography.spectrum_pairs`.
        shifts: λ_i > 0 of each map.
        ell_cut: Multipoles below this carry no power (0: none removed).

    Example:
        >>> from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
        >>> lower, variances = lognormal_plan(32, (HalofitConvergenceSpectrum(),), (0.02,), 0)
        >>> lower.shape, variances.shape, float(lower[0, 0, 0])
        ((33, 1, 1), (1,), 0.0)
    """
    pairs = spectrum_pairs(len(shifts))
    multipoles = np.arange(lmax + 1, dtype=float)
    cl = np.array([np.asarray(spectrum(multipoles), dtype=float) for spectrum in spectra])
    cl[:, :ell_cut] = 0.0
    lam = np.array(shifts)
    cl_g = _gaussian_spectra(cl, np.array([math.sqrt(lam[i] * lam[j]) for i, j in pairs]))
    cl_g[:, :ell_cut] = 0.0
    matrix = np.empty((lmax + 1, len(shifts), len(shifts)))
    for row, (i, j) in enumerate(pairs):
        matrix[:, i, j] = matrix[:, j, i] = cl_g[row]
    lower = _cholesky(matrix)
    # What the fields are drawn with, pivots clipped: their variances, for the exponential.
    power = np.einsum("lik,lik->li", lower, lower)
    variances = (2 * multipoles + 1) @ power / (4 * math.pi)
    lower.setflags(write=False)
    variances.setflags(write=False)
    return lower, variances

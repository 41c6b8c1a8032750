"""Convergence power spectra C(ℓ) that synthetic fields are drawn from.

Two implementations of the :class:`ConvergenceSpectrum` protocol (any callable ``ℓ → C(ℓ)``
works too):

* :class:`HalofitConvergenceSpectrum` — the built-in analytic model: flat ΛCDM with the
  Eisenstein & Hu (1998) no-wiggle linear spectrum normalised to σ8, the Takahashi et al.
  (2012) halofit non-linear correction, and the Limber (1953; Kaiser 1992) projection onto a
  single source plane. Defaults are Ω_m = 0.3, Ω_b = 0.05, h = 0.7, n_s = 0.96, σ8 = 0.8,
  z_s = 1. Accurate to ~5–10 % for ℓ ≲ 10⁴ against Boltzmann-code-plus-halofit spectra —
  plenty for synthetic test fields, not for parameter inference.
* :class:`TabulatedSpectrum` — a table (e.g. from CAMB or CCL) interpolated in log–log.

C(ℓ) is dimensionless (κ is), with ℓ in inverse radians. The model's equations are written
out in ``docs/analysis.md``; field generation is in :mod:`lensing_ssc.analysis.fields`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._cosmology import (
    HUBBLE_DISTANCE_H,
    check_cosmology,
    comoving_distance,
    growth_factor,
    halofit_power,
    linear_power,
)
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["ConvergenceSpectrum", "HalofitConvergenceSpectrum", "TabulatedSpectrum"]

_ELL_TABLE = np.logspace(0.0, 5.5, 441)  # ℓ where the analytic model is evaluated exactly
_N_LIMBER = 256


@runtime_checkable
class ConvergenceSpectrum(Protocol):
    """Anything that maps multipoles ℓ (array, inverse radians) to C(ℓ) of the same shape."""

    def __call__(self, ell: np.ndarray) -> np.ndarray: ...


def _loglog_interp(ell: np.ndarray, table_ell: np.ndarray, table_cl: np.ndarray) -> np.ndarray:
    # Log–log interpolation; power-law extrapolation from the two end points on each side.
    ell = np.asarray(ell, dtype=float)
    positive = ell > 0
    log_ell = np.log(np.where(positive, ell, 1.0))
    x, y = np.log(table_ell), np.log(table_cl)
    out = np.interp(log_ell, x, y)
    low_slope = (y[1] - y[0]) / (x[1] - x[0])
    high_slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
    out = np.where(log_ell < x[0], y[0] + low_slope * (log_ell - x[0]), out)
    out = np.where(log_ell > x[-1], y[-1] + high_slope * (log_ell - x[-1]), out)
    return np.where(positive, np.exp(out), 0.0)


@dataclass(frozen=True)
class HalofitConvergenceSpectrum:
    """Analytic convergence power spectrum of a single source plane in flat ΛCDM.

    C(ℓ) = (9/4) Ω_m² (H0/c)⁴ ∫₀^χs dχ (1+z)² (1 − χ/χs)² P_NL((ℓ+½)/χ, z(χ)),
    with P_NL from halofit (Takahashi et al. 2012) over an Eisenstein & Hu (1998) linear
    spectrum. C(0) is defined as 0 (a patch's mean is not part of the model).

    Args:
        omega_m: Matter density today Ω_m.
        omega_b: Baryon density today Ω_b (shapes the transfer function only).
        h: H0 / (100 km/s/Mpc).
        n_s: Primordial spectral index.
        sigma8: RMS linear density in 8 Mpc/h top-hat spheres today.
        z_source: Redshift of the source plane.
        nonlinear: ``False`` projects the linear spectrum instead of halofit's.

    Example:
        >>> spectrum = HalofitConvergenceSpectrum()
        >>> bool(1e-10 < spectrum(np.array([1000.0]))[0] < 1e-8)
        True
    """

    omega_m: float = 0.3
    omega_b: float = 0.05
    h: float = 0.7
    n_s: float = 0.96
    sigma8: float = 0.8
    z_source: float = 1.0
    nonlinear: bool = True

    def __post_init__(self) -> None:
        check_cosmology(self.omega_m, self.omega_b, self.h, self.n_s, self.sigma8)
        if not (math.isfinite(self.z_source) and 0.01 <= self.z_source <= 10.0):
            raise AnalysisError(
                f"z_source={self.z_source!r} is out of range",
                value=self.z_source,
                hint="use a source redshift between 0.01 and 10, e.g. 1.0",
            )

    def __call__(self, ell: np.ndarray) -> np.ndarray:
        """Return C(ℓ) for multipoles ``ell`` (any shape; ℓ ≤ 0 gives 0)."""
        return _loglog_interp(ell, _ELL_TABLE, _limber_table(self))

    def minimum_convergence(self) -> float:
        """Return the empty-beam convergence κ_min < 0 (light ray through a void everywhere).

        κ_min = −(3/2) Ω_m (H0/c)² ∫₀^χs dχ (1+z) χ (χs − χ)/χs. It bounds κ from below and is
        the natural scale for the shift of a lognormal field (Jain, Seljak & White 2000;
        Taruya et al. 2002); see :func:`lensing_ssc.analysis.fields.lognormal_field`.
        """
        z, chi, chi_s = _limber_grid(self)
        integrand = (1.0 + z) * chi * (chi_s - chi) / chi_s
        hubble = self.h / HUBBLE_DISTANCE_H
        return float(-1.5 * self.omega_m * hubble**2 * np.trapezoid(integrand, chi))


def _limber_grid(model: HalofitConvergenceSpectrum) -> tuple[np.ndarray, np.ndarray, float]:
    z = np.linspace(0.0, model.z_source, _N_LIMBER + 1)[1:] - 0.5 * model.z_source / _N_LIMBER
    z = np.concatenate((z, [model.z_source]))
    chi = comoving_distance(z, model.omega_m, model.h)
    return z, chi, float(chi[-1])


@lru_cache(maxsize=16)
def _limber_table(model: HalofitConvergenceSpectrum) -> np.ndarray:
    z, chi, chi_s = _limber_grid(model)
    z, chi = z[:-1], chi[:-1]  # the kernel vanishes at the source plane
    k = (_ELL_TABLE[None, :] + 0.5) / chi[:, None]
    params = {
        "omega_m": model.omega_m,
        "omega_b": model.omega_b,
        "h": model.h,
        "n_s": model.n_s,
        "sigma8": model.sigma8,
    }
    if model.nonlinear:
        power = halofit_power(k, z, **params)
    else:
        power = linear_power(k, **params) * (growth_factor(z, model.omega_m) ** 2)[:, None]
    hubble = model.h / HUBBLE_DISTANCE_H
    kernel = (1.0 + z) ** 2 * (1.0 - chi / chi_s) ** 2
    integrand = kernel[:, None] * power
    prefactor = 2.25 * model.omega_m**2 * hubble**4
    # Integrate from χ = 0 (integrand → 0 there: P at k → ∞ vanishes) through the grid.
    chi_nodes = np.concatenate(([0.0], chi, [chi_s]))
    padded = np.vstack((np.zeros((1, _ELL_TABLE.size)), integrand, np.zeros((1, _ELL_TABLE.size))))
    table = prefactor * np.trapezoid(padded, chi_nodes, axis=0)
    table.setflags(write=False)
    return table


@dataclass(frozen=True, eq=False)
class TabulatedSpectrum:
    """A convergence power spectrum given as a table, interpolated in log ℓ – log C.

    Outside the table C(ℓ) continues as the power law through its two end points; C(0) = 0.

    Args:
        ell: Strictly increasing positive multipoles.
        cl: C(ℓ) at those multipoles, all > 0.

    Example:
        >>> table = TabulatedSpectrum([10.0, 100.0, 1000.0], [1e-7, 1e-8, 1e-9])
        >>> float(table(np.array([316.2277660168379]))[0])  # doctest: +ELLIPSIS
        3.16...e-09
    """

    ell: npt.ArrayLike = field()
    cl: npt.ArrayLike = field()

    def __post_init__(self) -> None:
        ell = np.asarray(self.ell, dtype=float)
        cl = np.asarray(self.cl, dtype=float)
        if ell.ndim != 1 or ell.shape != cl.shape or ell.size < 2:
            raise AnalysisError(
                f"a spectrum table needs two 1-D arrays of equal length ≥ 2, got shapes "
                f"{ell.shape} and {cl.shape}",
                value=(ell.shape, cl.shape),
                hint="pass ell and cl as matching 1-D arrays",
            )
        if not (np.all(np.isfinite(ell)) and np.all(np.isfinite(cl))):
            raise AnalysisError(
                "the spectrum table contains NaN or infinite values",
                value=None,
                hint="remove non-finite rows from the table",
            )
        if np.any(ell <= 0) or np.any(np.diff(ell) <= 0):
            raise AnalysisError(
                "table multipoles must be positive and strictly increasing",
                value=ell[:5].tolist(),
                hint="sort the table and drop ℓ = 0",
            )
        if np.any(cl <= 0):
            raise AnalysisError(
                "table C(ℓ) must be > 0 for log-log interpolation",
                value=float(cl.min()),
                hint="drop rows where C(ℓ) ≤ 0",
            )
        ell.setflags(write=False)
        cl.setflags(write=False)
        object.__setattr__(self, "ell", ell)
        object.__setattr__(self, "cl", cl)

    def __call__(self, ell: np.ndarray) -> np.ndarray:
        """Return the interpolated C(ℓ) for multipoles ``ell`` (any shape; ℓ ≤ 0 gives 0)."""
        return _loglog_interp(ell, np.asarray(self.ell), np.asarray(self.cl))

"""Angular spectra of matter shells and of the κ they make, and lognormal shells to match.

* :class:`ShellDensitySpectrum` — C_i(ℓ) of δ averaged over shell i = [χ_a, χ_b), in the
  Limber approximation with the package's halofit P(k, z) (:mod:`._cosmology`):

      C_i(ℓ) = ∫_{χ_a}^{χ_b} dχ / (χ_b − χ_a)² · P((ℓ + ½)/χ, z(χ)) / χ²,

  by 32-point Gauss–Legendre quadrature across the shell, tabulated on 241 multipoles
  (ℓ = 1 … 10⁵) and interpolated in log–log
  (:class:`~lensing_ssc.analysis.spectra.TabulatedSpectrum`).
* :func:`shells_convergence_spectrum` — C_κ(ℓ) = Σ_i W_i² C_i(ℓ): the Limber spectrum of
  the Born κ of shells that are independent of each other (what Limber assumes of shells
  thicker than the correlation length), the prediction at the shells' resolution; the
  continuous one is :class:`~lensing_ssc.analysis.spectra.HalofitConvergenceSpectrum`.
* :func:`lognormal_shell` — a full-sky lognormal δ map with that spectrum and δ ≥ −1 (the
  shift λ = 1 of :func:`lensing_ssc.analysis.sky.lognormal_sky`): the built-in demo's
  stand-in for a simulation's shell. Shells of one realisation are drawn with independent
  seeds, so they are uncorrelated, as the Limber prediction above assumes.

Units: χ in Mpc, P in Mpc³, C(ℓ) dimensionless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lensing_ssc.analysis._cosmology import check_cosmology, halofit_power, linear_power
from lensing_ssc.analysis._cosmology import growth_factor as _growth
from lensing_ssc.analysis.shells import Background, Shell
from lensing_ssc.analysis.sky import lognormal_sky
from lensing_ssc.analysis.spectra import TabulatedSpectrum
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["ShellDensitySpectrum", "lognormal_shell", "shells_convergence_spectrum"]

_ELL = np.logspace(0.0, 5.0, 241)
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(32)


@dataclass(frozen=True)
class ShellDensitySpectrum:
    """C(ℓ) of the matter density contrast averaged over a shell ``chi_min ≤ χ < chi_max``.

    Args:
        chi_min, chi_max: The shell, in Mpc.
        omega_m, omega_b, h, n_s, sigma8: Flat ΛCDM parameters (as
            :class:`~lensing_ssc.analysis.spectra.HalofitConvergenceSpectrum`'s).
        nonlinear: ``False`` uses the linear spectrum instead of halofit's.

    Example:
        >>> spectrum = ShellDensitySpectrum(1000.0, 1200.0)
        >>> bool(spectrum(np.array([100.0]))[0] > spectrum(np.array([1000.0]))[0] > 0)
        True
    """

    chi_min: float
    chi_max: float
    omega_m: float = 0.3
    omega_b: float = 0.05
    h: float = 0.7
    n_s: float = 0.96
    sigma8: float = 0.8
    nonlinear: bool = True

    def __post_init__(self) -> None:
        check_cosmology(self.omega_m, self.omega_b, self.h, self.n_s, self.sigma8)
        if not (math.isfinite(self.chi_max) and 0.0 <= self.chi_min < self.chi_max):
            raise AnalysisError(
                f"shell {self.chi_min!r}–{self.chi_max!r} Mpc is empty or reversed",
                value=(self.chi_min, self.chi_max),
                hint="give 0 ≤ chi_min < chi_max in Mpc",
            )

    @classmethod
    def of(
        cls,
        shell: Shell,
        *,
        omega_b: float = 0.05,
        n_s: float = 0.96,
        sigma8: float = 0.8,
        nonlinear: bool = True,
        background: Background,
    ) -> ShellDensitySpectrum:
        """The spectrum of ``shell`` in ``background`` (its Ω_m and h) with these parameters."""
        return cls(
            shell.chi_min,
            shell.chi_max,
            omega_m=background.omega_m,
            omega_b=omega_b,
            h=background.h,
            n_s=n_s,
            sigma8=sigma8,
            nonlinear=nonlinear,
        )

    def table(self) -> TabulatedSpectrum:
        """The tabulated C(ℓ) (computed once per parameter set)."""
        return _shell_table(self)

    def __call__(self, ell: np.ndarray) -> np.ndarray:
        """Return C(ℓ) for multipoles ``ell`` (ℓ ≤ 0 gives 0)."""
        return self.table()(ell)


@lru_cache(maxsize=256)
def _shell_table(spectrum: ShellDensitySpectrum) -> TabulatedSpectrum:
    background = Background(omega_m=spectrum.omega_m, h=spectrum.h)
    half = 0.5 * (spectrum.chi_max - spectrum.chi_min)
    chi = spectrum.chi_min + half * (1.0 + _NODES)
    z = background.redshift(chi)
    k = (_ELL[None, :] + 0.5) / chi[:, None]
    params = {
        "omega_m": spectrum.omega_m,
        "omega_b": spectrum.omega_b,
        "h": spectrum.h,
        "n_s": spectrum.n_s,
        "sigma8": spectrum.sigma8,
    }
    if spectrum.nonlinear:
        power = halofit_power(k, z, **params)
    else:
        power = linear_power(k, **params) * (_growth(z, spectrum.omega_m) ** 2)[:, None]
    width = spectrum.chi_max - spectrum.chi_min
    cl = np.sum((half * _WEIGHTS / chi**2)[:, None] * power, axis=0) / width**2
    return TabulatedSpectrum(_ELL, cl)


def shells_convergence_spectrum(
    spectra: list[ShellDensitySpectrum], weights: np.ndarray
) -> TabulatedSpectrum:
    """C_κ(ℓ) = Σ_i W_i² C_i(ℓ) of independent shells with Born weights ``weights``."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(spectra),) or not np.any(w != 0):
        raise AnalysisError(
            f"need one weight per shell spectrum ({len(spectra)}), not all zero; got {w.shape}",
            value=w.shape,
            hint="pass born_weights(table, z_source) with the table's shell spectra",
        )
    total = sum(wi**2 * s(_ELL) for wi, s in zip(w, spectra, strict=True) if wi != 0)
    return TabulatedSpectrum(_ELL, np.asarray(total))


def lognormal_shell(nside: int, spectrum: ShellDensitySpectrum, seed: int) -> np.ndarray:
    """A full-sky lognormal δ map (RING) of C(ℓ) ``spectrum``, δ ≥ −1, mean ≈ 0.

    Band-limited to ℓ ≤ 2 nside like :func:`~lensing_ssc.analysis.sky.lognormal_sky`,
    which draws it with shift λ = 1 (δ = exp(g − σ²/2) − 1).
    """
    return lognormal_sky(nside, spectrum, seed, shift=1.0)

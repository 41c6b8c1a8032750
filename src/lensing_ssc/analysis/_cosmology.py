"""Matter power spectrum and background of flat ΛCDM, in pure numpy, for the κ spectrum model.

Covers: the Eisenstein & Hu (1998) "no-wiggle" transfer function (their eqs. 26–31),
σ8 normalisation with a top-hat window, the linear growth factor (Heath 1977 integral),
comoving distances, and the Takahashi et al. (2012) revision of halofit (Smith et al. 2003)
for the non-linear spectrum, restricted to w = −1. Radiation and neutrinos are neglected,
which is accurate to well under a per cent at the redshifts lensing cares about.

Units: k in Mpc⁻¹, P(k) in Mpc³, distances in Mpc. The public model built from this is
:class:`lensing_ssc.analysis.spectra.HalofitConvergenceSpectrum`; use a tabulated spectrum
(:class:`~lensing_ssc.analysis.spectra.TabulatedSpectrum`) for anything more precise.
"""

from __future__ import annotations

import math

import numpy as np

from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "HUBBLE_DISTANCE_H",
    "check_cosmology",
    "comoving_distance",
    "growth_factor",
    "halofit_power",
    "linear_power",
]

HUBBLE_DISTANCE_H = 2997.92458
"""c / (100 km/s/Mpc) in Mpc: the Hubble distance is this divided by h."""

_K_GRID = np.logspace(-5.0, 3.0, 1600)  # Mpc⁻¹, for σ8 and halofit's σ(R)


def check_cosmology(omega_m: float, omega_b: float, h: float, n_s: float, sigma8: float) -> None:
    """Raise ``AnalysisError`` for parameters outside the range the fits were made for."""
    checks = [
        ("omega_m", omega_m, 0.05 <= omega_m <= 0.95, "use 0.05 ≤ omega_m ≤ 0.95, e.g. 0.3"),
        ("omega_b", omega_b, 0.0 <= omega_b < omega_m, "use 0 ≤ omega_b < omega_m, e.g. 0.05"),
        ("h", h, 0.2 <= h <= 2.0, "use the dimensionless Hubble constant, e.g. 0.7"),
        ("n_s", n_s, 0.5 <= n_s <= 1.5, "use a spectral index near 1, e.g. 0.96"),
        ("sigma8", sigma8, 0.0 < sigma8 <= 3.0, "use 0 < sigma8 ≤ 3, e.g. 0.8"),
    ]
    for name, value, ok, hint in checks:
        if not (math.isfinite(value) and ok):
            raise AnalysisError(
                f"cosmological parameter {name}={value!r} is out of range", value=value, hint=hint
            )


def _e_of_z(z: np.ndarray, omega_m: float) -> np.ndarray:
    return np.sqrt(omega_m * (1.0 + z) ** 3 + 1.0 - omega_m)


def comoving_distance(z: np.ndarray, omega_m: float, h: float) -> np.ndarray:
    """Return the comoving distance (Mpc) to each redshift in ``z`` (flat universe)."""
    z = np.asarray(z, dtype=float)
    grid = np.linspace(0.0, max(float(np.max(z)), 1e-6), 4097)
    integrand = 1.0 / _e_of_z(grid, omega_m)
    steps = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(grid)
    cumulative = np.concatenate(([0.0], np.cumsum(steps)))
    return HUBBLE_DISTANCE_H / h * np.interp(z, grid, cumulative)


def growth_factor(z: np.ndarray, omega_m: float) -> np.ndarray:
    """Return the linear growth factor D(z), normalised to D(0) = 1 (flat ΛCDM)."""
    z = np.asarray(z, dtype=float)
    a_grid = np.linspace(0.0, 1.0, 8193)[1:]
    a_e = np.sqrt(omega_m / a_grid + (1.0 - omega_m) * a_grid**2)  # a·E(a)
    integrand = a_e**-3.0
    steps = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(a_grid)
    # ∫_0^{a_1} is tiny: the integrand vanishes like a^{3/2} there.
    head = 0.4 * a_grid[0] * integrand[0]
    cumulative = head + np.concatenate(([0.0], np.cumsum(steps)))
    unnormalised = a_e / a_grid * cumulative  # ∝ E(a) ∫ da/(aE)³
    a = 1.0 / (1.0 + z)
    return np.interp(a, a_grid, unnormalised) / unnormalised[-1]


def _transfer_no_wiggle(
    k: np.ndarray, omega_m: float, omega_b: float, h: float, t_cmb: float
) -> np.ndarray:
    # Eisenstein & Hu (1998), eqs. 26–31; k in Mpc⁻¹.
    om_h2 = omega_m * h * h
    ob_h2 = omega_b * h * h
    f_b = omega_b / omega_m
    theta = t_cmb / 2.7
    sound_horizon = 44.5 * math.log(9.83 / om_h2) / math.sqrt(1.0 + 10.0 * ob_h2**0.75)
    alpha = 1.0 - 0.328 * math.log(431.0 * om_h2) * f_b + 0.38 * math.log(22.3 * om_h2) * f_b**2
    gamma_eff = om_h2 * (alpha + (1.0 - alpha) / (1.0 + (0.43 * k * sound_horizon) ** 4))
    q = k * theta**2 / gamma_eff
    l0 = np.log(2.0 * math.e + 1.8 * q)
    c0 = 14.2 + 731.0 / (1.0 + 62.5 * q)
    return l0 / (l0 + c0 * q * q)


def _tophat(x: np.ndarray) -> np.ndarray:
    small = x < 1e-3
    safe = np.where(small, 1.0, x)
    exact = 3.0 * (np.sin(safe) - safe * np.cos(safe)) / safe**3
    return np.where(small, 1.0 - x * x / 10.0, exact)


def linear_power(
    k: np.ndarray,
    *,
    omega_m: float,
    omega_b: float,
    h: float,
    n_s: float,
    sigma8: float,
    t_cmb: float = 2.7255,
) -> np.ndarray:
    """Return the linear matter power spectrum P(k, z=0) in Mpc³, normalised to ``sigma8``."""
    k = np.asarray(k, dtype=float)

    def shape(kk: np.ndarray) -> np.ndarray:
        return kk**n_s * _transfer_no_wiggle(kk, omega_m, omega_b, h, t_cmb) ** 2

    delta2 = _K_GRID**3 * shape(_K_GRID) / (2.0 * math.pi**2)
    window = _tophat(_K_GRID * 8.0 / h) ** 2
    sigma8_sq_unnormalised = np.trapezoid(delta2 * window, np.log(_K_GRID))
    return sigma8**2 / sigma8_sq_unnormalised * shape(k)


def _gaussian_sigma_moments(
    delta2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # σ²(R) with a Gaussian window and the two integrals halofit's n_eff and C need,
    # on a grid of radii R (Mpc): I_j = ∫ Δ²(k) y^{2j} e^{-y²} dlnk with y = kR.
    # The trapezoid rule is a weighted sum, and y^{2j} = R^{2j} k^{2j}: one matrix of
    # e^{-y²} times three weight vectors gives all three integrals.
    radii = np.logspace(-3.5, 2.5, 600)
    step = np.diff(np.log(_K_GRID))
    weights = np.zeros_like(_K_GRID)
    weights[:-1] += 0.5 * step
    weights[1:] += 0.5 * step
    weights *= delta2
    k2 = _K_GRID**2
    gauss = np.exp(-((radii[:, None] * _K_GRID[None, :]) ** 2))
    r2 = radii**2
    i0 = gauss @ weights
    i1 = r2 * (gauss @ (weights * k2))
    i2 = r2 * r2 * (gauss @ (weights * k2 * k2))
    return radii, i0, i1, i2


def halofit_power(
    k: np.ndarray,
    z: np.ndarray,
    *,
    omega_m: float,
    omega_b: float,
    h: float,
    n_s: float,
    sigma8: float,
    t_cmb: float = 2.7255,
) -> np.ndarray:
    """Return the non-linear P(k, z) in Mpc³ (Takahashi et al. 2012 halofit, w = −1).

    Args:
        k: Wavenumbers in Mpc⁻¹, shape ``(n_z, n_k)`` or broadcastable with ``z[:, None]``.
        z: Redshifts, shape ``(n_z,)``.
    """
    z = np.atleast_1d(np.asarray(z, dtype=float))
    k = np.broadcast_to(np.asarray(k, dtype=float), np.broadcast_shapes(np.shape(k), (z.size, 1)))
    params = {
        "omega_m": omega_m,
        "omega_b": omega_b,
        "h": h,
        "n_s": n_s,
        "sigma8": sigma8,
        "t_cmb": t_cmb,
    }
    p0_grid = linear_power(_K_GRID, **params)
    radii, i0, i1, i2 = _gaussian_sigma_moments(_K_GRID**3 * p0_grid / (2.0 * math.pi**2))
    growth = growth_factor(z, omega_m)

    # Non-linear scale: D(z)² σ²_0(R) = 1, solved by interpolation in ln σ² (σ² decreases with R).
    ln_sigma2 = np.log(i0)
    ln_r_sigma = np.interp(-2.0 * np.log(growth), ln_sigma2[::-1], np.log(radii)[::-1])
    # At σ² = 1 the log-derivatives follow from I1/I0 and I2/I0, which do not depend on D(z).
    d1 = np.interp(ln_r_sigma, np.log(radii), i1 / i0)
    d2 = np.interp(ln_r_sigma, np.log(radii), i2 / i0)
    n_eff = (-3.0 + 2.0 * d1)[:, None]
    curv = (4.0 * d1 + 4.0 * d1**2 - 4.0 * d2)[:, None]
    k_sigma = np.exp(-ln_r_sigma)[:, None]

    e2 = _e_of_z(z, omega_m) ** 2
    om_z = (omega_m * (1.0 + z) ** 3 / e2)[:, None]
    n, c = n_eff, curv
    a_n = 10.0 ** (1.5222 + 2.8553 * n + 2.3706 * n**2 + 0.9903 * n**3 + 0.2250 * n**4 - 0.6038 * c)
    b_n = 10.0 ** (-0.5642 + 0.5864 * n + 0.5716 * n**2 - 1.5474 * c)
    c_n = 10.0 ** (0.3698 + 2.0404 * n + 0.8161 * n**2 + 0.5869 * c)
    gamma_n = 0.1971 - 0.0843 * n + 0.8460 * c
    alpha_n = np.abs(6.0835 + 1.3373 * n - 0.1959 * n**2 - 5.5274 * c)
    beta_n = 2.0379 - 0.7354 * n + 0.3157 * n**2 + 1.2490 * n**3 + 0.3980 * n**4 - 0.1682 * c
    nu_n = 10.0 ** (5.2105 + 3.6902 * n)
    f1, f2, f3 = om_z**-0.0307, om_z**-0.0585, om_z**0.0743

    p_lin = linear_power(k, **params) * (growth**2)[:, None]
    delta2_lin = k**3 * p_lin / (2.0 * math.pi**2)
    y = k / k_sigma
    quasi_linear = (
        delta2_lin
        * (1.0 + delta2_lin) ** beta_n
        / (1.0 + alpha_n * delta2_lin)
        * np.exp(-(y / 4.0 + y * y / 8.0))
    )
    halo_prime = a_n * y ** (3.0 * f1) / (1.0 + b_n * y**f2 + (c_n * f3 * y) ** (3.0 - gamma_n))
    halo = halo_prime / (1.0 + nu_n / (y * y))
    return (quasi_linear + halo) * 2.0 * math.pi**2 / k**3

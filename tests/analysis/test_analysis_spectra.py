"""The analytic κ power spectrum model and tabulated spectra, against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensing_ssc.analysis import HalofitConvergenceSpectrum, TabulatedSpectrum
from lensing_ssc.analysis._cosmology import (
    comoving_distance,
    growth_factor,
    halofit_power,
    linear_power,
)
from lensing_ssc.core.base.exceptions import AnalysisError

PARAMS = {"omega_m": 0.3, "omega_b": 0.05, "h": 0.7, "n_s": 0.96, "sigma8": 0.8}


def test_linear_spectrum_is_normalised_to_sigma8() -> None:
    """σ8 computed from P_lin with a top-hat of 8 Mpc/h equals the input to 0.1 %."""
    k = np.logspace(-4, 2, 20000)
    x = k * 8.0 / PARAMS["h"]
    window = 3 * (np.sin(x) - x * np.cos(x)) / x**3
    sigma8_sq = np.trapezoid(
        k**3 * linear_power(k, **PARAMS) * window**2 / (2 * np.pi**2), np.log(k)
    )
    assert math.sqrt(sigma8_sq) == pytest.approx(0.8, rel=1e-3)


def test_growth_factor_matches_carroll_press_turner() -> None:
    """D(z) agrees with the Carroll, Press & Turner (1992) fit within 1.5 % for z ≤ 3."""
    z = np.array([0.5, 1.0, 2.0, 3.0])
    om = 0.3

    def cpt(z_: np.ndarray) -> np.ndarray:
        e2 = om * (1 + z_) ** 3 + 1 - om
        om_z, ol_z = om * (1 + z_) ** 3 / e2, (1 - om) / e2
        g = 2.5 * om_z / (om_z ** (4 / 7) - ol_z + (1 + om_z / 2) * (1 + ol_z / 70))
        return g / (1 + z_)

    np.testing.assert_allclose(growth_factor(z, om), cpt(z) / cpt(np.array(0.0)), rtol=0.015)


def test_comoving_distance_matches_a_direct_integration() -> None:
    """χ(z) = (c/H0) ∫ dz/E(z) agrees with a 10⁶-point integration to 0.01 %."""
    for z_max in (0.3, 1.0, 2.5):
        z = np.linspace(0.0, z_max, 1_000_001)
        reference = 2997.92458 / 0.7 * np.trapezoid(1 / np.sqrt(0.3 * (1 + z) ** 3 + 0.7), z)
        assert comoving_distance(np.array([z_max]), 0.3, 0.7)[0] == pytest.approx(
            reference, rel=1e-4
        )


def test_halofit_equals_linear_on_large_scales_and_boosts_small_scales() -> None:
    """P_NL/P_lin is 1 within 2 % at k = 0.01/Mpc and above 3 at k = 1 h/Mpc, z = 0."""
    k = np.array([[0.01, 0.7]])
    ratio = halofit_power(k, np.array([0.0]), **PARAMS)[0] / linear_power(k[0], **PARAMS)
    assert ratio[0] == pytest.approx(1.0, abs=0.02)
    assert ratio[1] > 3.0


def test_convergence_spectrum_has_the_expected_amplitude_and_shape(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """ℓ(ℓ+1)C/2π at ℓ = 1000 lies in 3e-5…2e-4 (published z_s = 1 range) and rises with ℓ."""
    ell = np.array([100.0, 1000.0, 3000.0])
    d_ell = ell * (ell + 1) * spectrum(ell) / (2 * np.pi)
    assert 3e-5 < d_ell[1] < 2e-4
    assert np.all(np.diff(d_ell) > 0)


def test_nonlinear_spectrum_matches_linear_at_low_ell_and_exceeds_it_at_high_ell() -> None:
    """At ℓ = 10 halofit and linear agree within 5 %; at ℓ = 3000 halofit is > 5 × linear."""
    nonlinear = HalofitConvergenceSpectrum()
    linear = HalofitConvergenceSpectrum(nonlinear=False)
    ell = np.array([10.0, 3000.0])
    ratio = nonlinear(ell) / linear(ell)
    assert ratio[0] == pytest.approx(1.0, abs=0.05)
    assert ratio[1] > 5.0


def test_linear_convergence_spectrum_scales_as_sigma8_squared() -> None:
    """Doubling σ8 multiplies the linear C(ℓ) by 4 (to 1e-6)."""
    ell = np.array([50.0, 500.0])
    low = HalofitConvergenceSpectrum(sigma8=0.4, nonlinear=False)(ell)
    high = HalofitConvergenceSpectrum(sigma8=0.8, nonlinear=False)(ell)
    np.testing.assert_allclose(high / low, 4.0, rtol=1e-6)


def test_spectrum_grows_with_source_redshift_and_is_zero_at_ell_zero() -> None:
    """A farther source plane has more lensing power; C(0) = 0 and C(ℓ < 0) = 0."""
    near, far = HalofitConvergenceSpectrum(z_source=0.5), HalofitConvergenceSpectrum(z_source=2.0)
    assert far(np.array([1000.0]))[0] > 2 * near(np.array([1000.0]))[0]
    assert near(np.array([0.0, -5.0])).tolist() == [0.0, 0.0]


def test_empty_beam_convergence_is_a_few_per_cent_and_grows_with_redshift() -> None:
    """κ_min is −0.03…−0.1 for z_s = 1 and more negative for z_s = 2."""
    kappa_min = HalofitConvergenceSpectrum().minimum_convergence()
    assert -0.1 < kappa_min < -0.03
    assert HalofitConvergenceSpectrum(z_source=2.0).minimum_convergence() < kappa_min


@pytest.mark.parametrize(
    ("field", "value"),
    [("omega_m", 1.5), ("omega_b", 0.4), ("h", 0.0), ("sigma8", -0.8), ("z_source", 0.0)],
)
def test_unphysical_parameters_are_rejected(field: str, value: float) -> None:
    """An out-of-range cosmological parameter raises AnalysisError naming it and its value."""
    with pytest.raises(AnalysisError, match=field) as info:
        HalofitConvergenceSpectrum(**{field: value})  # type: ignore[arg-type]
    assert info.value.value == value


def test_table_reproduces_a_power_law_inside_and_outside() -> None:
    """Log–log interpolation is exact for a power law, also when extrapolating."""
    ell = np.array([10.0, 100.0, 1000.0])
    table = TabulatedSpectrum(ell, 1e-5 * ell**-1.5)
    query = np.array([3.0, 31.6, 500.0, 20000.0])
    np.testing.assert_allclose(table(query), 1e-5 * query**-1.5, rtol=1e-12)
    assert table(np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize(
    ("ell", "cl", "message"),
    [
        ([10.0, 5.0], [1e-9, 1e-9], "strictly increasing"),
        ([10.0, 20.0], [1e-9, -1e-9], "must be > 0"),
        ([10.0, 20.0, 30.0], [1e-9, 1e-9], "equal length"),
        ([10.0, float("nan")], [1e-9, 1e-9], "NaN"),
    ],
)
def test_bad_tables_are_rejected(ell: list[float], cl: list[float], message: str) -> None:
    """Unsorted, non-positive, mismatched or NaN tables raise AnalysisError."""
    with pytest.raises(AnalysisError, match=message):
        TabulatedSpectrum(ell, cl)

"""Shape noise: the per-pixel level σ = ε/√(n_gal A_pix), its power, and bad densities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensing_ssc.analysis import add_shape_noise, noise_sigma
from lensing_ssc.analysis._grid import ARCMIN
from lensing_ssc.analysis.statistics import binned_power_spectrum, ell_binning, log_ell_edges
from lensing_ssc.core.base.exceptions import AnalysisError


@pytest.mark.parametrize(("n_gal", "pixel"), [(7.0, 0.5), (30.0, 1.0), (50.0, 2.0)])
def test_noise_level_is_epsilon_over_root_n_gal_pixel_area(
    n_gal: float, pixel: float, rng: np.random.Generator
) -> None:
    """The measured per-pixel std of noise added to a zero map is ε/√(n_gal A_pix) within 1 %.

    With 4 × 128² pixels the std is known to 0.3 %, so 1 % is a 3 σ bound.
    """
    expected = 0.26 / math.sqrt(n_gal * pixel**2)
    assert noise_sigma(n_gal, pixel) == pytest.approx(expected, rel=1e-12)
    noise = np.stack([add_shape_noise(np.zeros((128, 128)), pixel, n_gal, rng) for _ in range(4)])
    assert noise.std() == pytest.approx(expected, rel=0.01)


def test_noise_power_is_flat_at_sigma_squared_pixel_area(rng: np.random.Generator) -> None:
    """Shape noise has Ĉ = σ² A_pix (sr) in every ℓ bin: mode-weighted mean within 3 %."""
    pixel, n_gal = 1.0, 15.0
    edges = log_ell_edges(300, 3000, 6)
    cls = np.array(
        [
            binned_power_spectrum(
                add_shape_noise(np.zeros((256, 256)), pixel, n_gal, rng), pixel, edges
            )
            for _ in range(6)
        ]
    )
    modes = ell_binning(256, pixel, edges).n_modes
    expected = noise_sigma(n_gal, pixel) ** 2 * (pixel * ARCMIN) ** 2
    assert np.sum(cls.mean(axis=0) * modes) / modes.sum() == pytest.approx(expected, rel=0.03)


def test_epsilon_scales_the_noise(rng: np.random.Generator) -> None:
    """Doubling ε doubles σ."""
    assert noise_sigma(30, 1.0, epsilon=0.52) == pytest.approx(2 * noise_sigma(30, 1.0))


def test_zero_density_means_no_noise(rng: np.random.Generator) -> None:
    """n_gal = 0 gives σ = 0 and returns an equal copy of the patch."""
    patch = rng.normal(size=(16, 16))
    assert noise_sigma(0, 1.0) == 0.0
    result = add_shape_noise(patch, 1.0, 0, rng)
    np.testing.assert_array_equal(result, patch)
    assert result is not patch


def test_input_patch_is_not_modified(rng: np.random.Generator) -> None:
    """Adding noise returns a new array and leaves the input untouched."""
    patch = np.zeros((16, 16))
    add_shape_noise(patch, 1.0, 30, rng)
    assert not patch.any()


@pytest.mark.parametrize("n_gal", [-1.0, -0.001, float("nan"), "many"])
def test_negative_or_non_numeric_density_is_rejected(n_gal: object) -> None:
    """n_gal < 0 (or not a number) raises AnalysisError naming the value and the fix."""
    with pytest.raises(AnalysisError, match="n_gal must be") as info:
        noise_sigma(n_gal, 1.0)  # type: ignore[arg-type]
    assert "0 means no noise" in str(info.value)
    assert info.value.value is n_gal


@pytest.mark.parametrize("epsilon", [0.0, -0.26, float("inf")])
def test_non_positive_epsilon_is_rejected(epsilon: float) -> None:
    """ε must be finite and > 0."""
    with pytest.raises(AnalysisError, match="epsilon must be > 0"):
        noise_sigma(30, 1.0, epsilon)

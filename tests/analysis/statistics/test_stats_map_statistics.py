"""PDF, peaks, minima, Minkowski functionals: Gaussian theory, toy maps, symmetry, bad input.

Every test taking ``xp`` runs on NumPy and on array_api_strict (see ``conftest.py``); the
Gaussian-theory tests measure their 30 maps as one stack.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    gaussian_field,
    gaussian_smooth,
    spectral_moments_on_grid,
)
from lensing_ssc.analysis.statistics import (
    MAP_STATISTICS,
    extrema_masks,
    map_statistics,
    minimum_counts,
    minkowski_functionals,
    pdf,
    peak_counts,
)
from lensing_ssc.analysis.statistics.peaks import wrap_pad
from lensing_ssc.analysis.theory import (
    gaussian_minimum_counts_binned,
    gaussian_minkowski_binned,
    gaussian_pdf_binned,
    gaussian_peak_counts_binned,
    gaussian_peak_density,
)
from lensing_ssc.core.base.exceptions import AnalysisError

from .conftest import host, on

N, PIXEL, SMOOTHING = 256, 1.0, 4.0
NU_EDGES = np.linspace(-3.0, 3.0, 13)
REALISATIONS = 30


@pytest.fixture(scope="module")
def gaussian_fields() -> tuple[np.ndarray, Any]:
    """30 smoothed Gaussian fields (a stack) and their spectral moments."""
    spectrum = HalofitConvergenceSpectrum()
    rng = np.random.default_rng(7)
    moments = spectral_moments_on_grid(N, PIXEL, spectrum, SMOOTHING)
    fields = gaussian_field(N, PIXEL, spectrum, rng, n_fields=REALISATIONS)
    return gaussian_smooth(fields, PIXEL, SMOOTHING), moments


@pytest.fixture
def gaussian_measurements(
    gaussian_fields: tuple[np.ndarray, Any], xp: Any
) -> tuple[dict[str, np.ndarray], Any, Any]:
    """Map statistics of the 30 fields, measured as one stack in ``xp``, with the stack."""
    smoothed, moments = gaussian_fields
    stack = on(xp, smoothed)
    measured = map_statistics(stack, PIXEL, NU_EDGES, moments.sigma0)
    return {name: host(measured[name]) for name in MAP_STATISTICS}, moments, stack


def _z(values: np.ndarray, expected: np.ndarray) -> np.ndarray:
    error = values.std(axis=0, ddof=1) / math.sqrt(values.shape[0])
    return (values.mean(axis=0) - expected) / error


def test_pdf_of_gaussian_fields_is_the_binned_normal(gaussian_measurements: tuple) -> None:
    """The mean PDF of 30 Gaussian maps is within 4 σ of the binned standard normal in every bin."""
    stacked, _, _ = gaussian_measurements
    assert np.all(np.abs(_z(stacked["pdf"], gaussian_pdf_binned(NU_EDGES))) < 4.0)


def test_minkowski_functionals_of_gaussian_fields_follow_tomita(
    gaussian_measurements: tuple,
) -> None:
    """V0, V1, V2 agree with Tomita's formulas within 4 σ (+ 2 % of V1 for finite differences).

    Central differences on a map smoothed over 4 pixels underestimate gradients by ~1.5 %,
    which matters only for V1, whose statistical error is of that order; V2's error is larger.
    """
    stacked, moments, _ = gaussian_measurements
    v0, v1, v2 = gaussian_minkowski_binned(NU_EDGES, moments)
    assert np.all(np.abs(_z(stacked["v0"], v0)) < 4.0)
    v1_error = stacked["v1"].std(axis=0, ddof=1) / math.sqrt(REALISATIONS)
    assert np.all(np.abs(stacked["v1"].mean(axis=0) - v1) < 4.0 * v1_error + 0.02 * v1)
    assert np.all(np.abs(_z(stacked["v2"], v2)) < 4.0)


def test_total_peak_density_of_gaussian_fields_follows_bond_efstathiou(
    gaussian_measurements: tuple,
) -> None:
    """All peaks per map, averaged over 30 maps, are σ2²/(8√3π σ1²) × area within 3 % (~3 σ)."""
    _, moments, stack = gaussian_measurements
    totals = host(extrema_masks(wrap_pad(stack))[0]).sum(axis=(1, 2))
    expected = gaussian_peak_density(moments) * (N * PIXEL) ** 2
    assert np.mean(totals) == pytest.approx(expected, rel=0.03)


def test_peak_and_minimum_counts_follow_the_gaussian_height_distribution(
    gaussian_measurements: tuple,
) -> None:
    """Binned peak and minimum counts are within 4 σ of BE87 wherever ≥ 8 are expected per map."""
    stacked, moments, _ = gaussian_measurements
    area = (N * PIXEL) ** 2
    for name, theory in (
        ("peaks", gaussian_peak_counts_binned(NU_EDGES, moments, area)),
        ("minima", gaussian_minimum_counts_binned(NU_EDGES, moments, area)),
    ):
        populated = theory >= 8
        assert populated.sum() >= 4
        z = _z(stacked[name][:, populated], theory[populated])
        assert np.all(np.abs(z) < 4.0), (name, z)


def test_one_pass_equals_the_separate_estimators(rng: np.random.Generator, xp: Any) -> None:
    """map_statistics returns exactly what pdf, peak_counts, minimum_counts and MFs return."""
    smoothed = gaussian_smooth(rng.normal(size=(96, 96)), 1.0, 2.0)
    sigma = float(smoothed.std())
    kappa = on(xp, smoothed)
    combined = {k: host(v) for k, v in map_statistics(kappa, 1.0, NU_EDGES, sigma).items()}
    np.testing.assert_array_equal(combined["pdf"], host(pdf(kappa, NU_EDGES, sigma)))
    np.testing.assert_array_equal(combined["peaks"], host(peak_counts(kappa, NU_EDGES, sigma)))
    np.testing.assert_array_equal(combined["minima"], host(minimum_counts(kappa, NU_EDGES, sigma)))
    v0, v1, v2 = (host(v) for v in minkowski_functionals(kappa, 1.0, NU_EDGES, sigma))
    np.testing.assert_allclose(combined["v0"], v0, rtol=1e-12)
    np.testing.assert_allclose(combined["v1"], v1, rtol=1e-12)
    np.testing.assert_allclose(combined["v2"], v2, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("pixels", "maps"), [(96, 5), (512, 2), (1024, 1)])
def test_every_numpy_blocking_gives_the_whole_map_sums(
    rng: np.random.Generator, xp: Any, pixels: int, maps: int
) -> None:
    """Small maps grouped, large maps one by one, a map of 2²⁰ pixels in blocks of rows: each
    map's statistics, in a stack or alone, are the whole-map one-hot sums of array_api_strict."""
    smoothed = gaussian_smooth(rng.normal(size=(maps, pixels, pixels)), 1.0, 2.0)
    sigmas = smoothed.std(axis=(1, 2))
    stacked = map_statistics(on(xp, smoothed), 1.0, NU_EDGES, sigmas)
    for i in range(maps):
        alone = map_statistics(smoothed[i], 1.0, NU_EDGES, float(sigmas[i]))
        for name in MAP_STATISTICS:
            scale = float(np.abs(alone[name]).max())
            np.testing.assert_allclose(
                host(stacked[name])[i], alone[name], rtol=1e-12, atol=1e-12 * scale, err_msg=name
            )


def test_statistics_depend_only_on_nu(rng: np.random.Generator, xp: Any) -> None:
    """Measuring κ with σ equals measuring κ/σ with σ = 1 (V1, V2 scale-free in ν)."""
    kappa = gaussian_smooth(rng.normal(size=(64, 64)), 1.0, 2.0) * 0.01
    scaled = map_statistics(on(xp, kappa / 0.004), 1.0, NU_EDGES)
    direct = map_statistics(on(xp, kappa), 1.0, NU_EDGES, 0.004)
    for name in MAP_STATISTICS:
        np.testing.assert_allclose(host(direct[name]), host(scaled[name]), rtol=1e-9, atol=1e-12)


def test_rotating_the_map_by_90_degrees_leaves_every_statistic_unchanged(
    rng: np.random.Generator, xp: Any
) -> None:
    """np.rot90 gives identical PDF, peaks, minima and V0, and V1, V2 equal to 1e-12."""
    kappa = gaussian_smooth(rng.normal(size=(128, 128)), 1.0, 2.0)
    sigma = float(kappa.std())
    reference = map_statistics(on(xp, kappa), 1.0, NU_EDGES, sigma)
    for turns in (1, 2, 3):
        rotated = map_statistics(on(xp, np.rot90(kappa, turns)), 1.0, NU_EDGES, sigma)
        for name in MAP_STATISTICS:
            np.testing.assert_allclose(
                host(rotated[name]), host(reference[name]), rtol=1e-12, atol=1e-15
            )


def test_single_bump_is_one_peak_in_its_bin_even_across_the_border(xp: Any) -> None:
    """A lone positive pixel is one peak, also in a corner (neighbours wrap around)."""
    for where in ((5, 5), (0, 0), (15, 0)):
        bump = np.zeros((16, 16))
        bump[where] = 2.2
        counts = host(peak_counts(on(xp, bump), NU_EDGES))
        assert counts.sum() == 1
        assert counts[np.searchsorted(NU_EDGES, 2.2) - 1] == 1
        assert host(minimum_counts(on(xp, -bump), NU_EDGES)).sum() == 1


def test_plateaus_are_neither_peaks_nor_minima(xp: Any) -> None:
    """Pixels tied with a neighbour are not extrema: a 2-pixel plateau and a flat map have none."""
    plateau = np.zeros((16, 16))
    plateau[4, 4:6] = 1.0
    assert host(peak_counts(on(xp, plateau), NU_EDGES)).sum() == 0
    peaks, minima = extrema_masks(wrap_pad(on(xp, np.ones((16, 16)))))
    assert not host(peaks).any()
    assert not host(minima).any()


def test_minkowski_functionals_of_a_smooth_disk_are_geometric(xp: Any) -> None:
    """For κ = exp(−r²/2s²), V0 = πR²/A, V1 = 2πR/4A and V2 = 1/A in bins inside (0, 1).

    R(t) = s √(−2 ln t) is the excursion radius at threshold t; V1 is averaged over the bin
    numerically. Tolerances: 2 % (pixelisation of a 20-pixel-wide disk).
    """
    n, s = 256, 20.0
    y, x = np.mgrid[:n, :n] - n / 2
    bump = np.exp(-(x**2 + y**2) / (2 * s**2))
    edges = np.linspace(0.2, 0.8, 4)
    v0, v1, v2 = (host(v) for v in minkowski_functionals(on(xp, bump), 1.0, edges))
    area = float(n * n)
    centres = 0.5 * (edges[1:] + edges[:-1])
    np.testing.assert_allclose(v0, np.pi * s**2 * -2 * np.log(centres) / area, rtol=0.02)
    fine = np.linspace(edges[:-1], edges[1:], 201)
    radius = s * np.sqrt(-2 * np.log(fine))
    np.testing.assert_allclose(
        v1, np.trapezoid(2 * np.pi * radius / (4 * area), fine, axis=0) / np.diff(edges), rtol=0.02
    )
    np.testing.assert_allclose(v2, 1.0 / area, rtol=0.02)


def test_pdf_counts_only_pixels_in_range(xp: Any) -> None:
    """Values outside the ν range are dropped: the PDF integrates to the in-range fraction."""
    values = np.tile([-10.0, 0.5, 1.5, 10.0], (8, 2))
    result = host(pdf(on(xp, values), [0.0, 1.0, 2.0]))
    assert result.tolist() == [0.25, 0.25]


def test_uneven_nu_edges_are_rejected() -> None:
    """ν bins must be equal-width: uneven edges raise AnalysisError suggesting numpy.linspace."""
    with pytest.raises(AnalysisError, match="equally spaced") as info:
        pdf(np.zeros((16, 16)), [0.0, 1.0, 3.0])
    assert "linspace" in str(info.value)


def test_unknown_map_statistic_is_rejected() -> None:
    """An unknown name raises AnalysisError naming it and listing the valid ones."""
    with pytest.raises(AnalysisError, match="unknown map statistic 'genus'") as info:
        map_statistics(np.zeros((16, 16)), 1.0, NU_EDGES, 1.0, names=("pdf", "genus"))
    assert info.value.value == "genus"


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf")])
def test_bad_sigma_is_rejected(sigma: float) -> None:
    """The ν normalisation must be finite and positive."""
    with pytest.raises(AnalysisError, match="sigma must be > 0"):
        peak_counts(np.zeros((16, 16)), NU_EDGES, sigma)


def test_nan_map_is_rejected(xp: Any) -> None:
    """A map with a NaN raises AnalysisError before any statistic is computed."""
    kappa = np.zeros((16, 16))
    kappa[0, 0] = np.nan
    with pytest.raises(AnalysisError, match="map contains 1 NaN"):
        minkowski_functionals(on(xp, kappa), 1.0, NU_EDGES)


@pytest.mark.slow
def test_peak_density_and_minkowski_functionals_at_percent_precision() -> None:
    """200 maps smoothed over 6 pixels: peaks within 1 %, V1 within 4 σ + 1 %, V2 within 4 σ."""
    spectrum = HalofitConvergenceSpectrum()
    rng = np.random.default_rng(99)
    smoothing = 6.0
    moments = spectral_moments_on_grid(N, PIXEL, spectrum, smoothing)
    totals, v1s, v2s = [], [], []
    for _ in range(10):
        for field in gaussian_field(N, PIXEL, spectrum, rng, n_fields=20):
            smooth = gaussian_smooth(field, PIXEL, smoothing)
            totals.append(extrema_masks(wrap_pad(smooth))[0].sum())
            _, v1, v2 = minkowski_functionals(smooth, PIXEL, NU_EDGES, moments.sigma0)
            v1s.append(v1)
            v2s.append(v2)
    assert np.mean(totals) == pytest.approx(gaussian_peak_density(moments) * N * N, rel=0.01)
    _, v1_theory, v2_theory = gaussian_minkowski_binned(NU_EDGES, moments)
    v1_error = np.std(v1s, axis=0, ddof=1) / np.sqrt(len(v1s))
    assert np.all(np.abs(np.mean(v1s, axis=0) - v1_theory) < 4 * v1_error + 0.01 * v1_theory)
    assert np.all(np.abs(_z(np.array(v2s), v2_theory)) < 4.0)

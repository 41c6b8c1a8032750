"""Bispectrum: triangle counts, zero for Gaussian fields, amplitude of a non-Gaussian field.

Every test taking ``xp`` runs on NumPy and on array_api_strict (see ``conftest.py``),
measuring its realisations as one stack.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import gaussian_field, lognormal_field
from lensing_ssc.analysis._arrays import rfft2
from lensing_ssc.analysis._grid import ARCMIN, rfft_ell
from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
from lensing_ssc.analysis.statistics import (
    CONFIGURATIONS,
    bispectra_from_fourier,
    bispectrum,
    bispectrum_plan,
    log_ell_edges,
)
from lensing_ssc.core.base.exceptions import AnalysisError

from .conftest import host, on

N, PIXEL = 128, 2.0
EDGES = log_ell_edges(300, 3000, 5)


def _all(patch: np.ndarray, xp: Any = None) -> dict[str, np.ndarray]:
    """Every configuration of a patch or a stack (host values), measured in ``xp``."""
    plan = bispectrum_plan(N, PIXEL, EDGES)
    values = patch if xp is None else on(xp, patch)
    measured = bispectra_from_fourier(rfft2(values), plan, PIXEL)
    return {name: host(result) for name, result in measured.items()}


def test_triangle_counts_match_brute_force_enumeration() -> None:
    """FFT-shell triangle counts equal a direct count of closed triangles on a 64² grid."""
    n, pixel, edges = 64, 10.0, np.array([300.0, 450.0, 700.0])
    plan = bispectrum_plan(n, pixel, edges, isosceles_ratio=0.5)
    ell_f = 2 * np.pi / (n * pixel * ARCMIN)
    k = np.arange(-n // 2, n // 2)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    modes = np.stack((kx.ravel(), ky.ravel()), axis=1)
    ell = np.hypot(modes[:, 0], modes[:, 1]) * ell_f

    def band(lo: float, hi: float) -> set[tuple[int, int]]:
        return {tuple(m) for m in modes[(ell >= lo) & (ell < hi)]}

    def count(b1: set, b2: set, b3: set) -> int:
        return sum((-a[0] - b[0], -a[1] - b[1]) in b3 for a, b in itertools.product(b1, b2))

    for b in range(2):
        side = band(edges[b], edges[b + 1])
        third = band(0.5 * edges[b], 0.5 * edges[b + 1])
        first = band(edges[0], edges[1])
        assert plan.triangles["equilateral"][b] == count(side, side, side)
        assert plan.triangles["isosceles"][b] == count(side, side, third)
        assert plan.triangles["squeezed"][b] == count(side, side, first)


def test_gaussian_field_bispectrum_is_consistent_with_zero(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator, xp: Any
) -> None:
    """Over 60 Gaussian fields the mean B̂ of every configuration and bin is within 4 σ of zero."""
    fields = gaussian_field(N, PIXEL, spectrum, rng, n_fields=60)
    results = _all(fields, xp)
    for name in CONFIGURATIONS:
        values = results[name]
        z = values.mean(axis=0) / (values.std(axis=0, ddof=1) / np.sqrt(len(values)))
        assert np.all(np.abs(z) < 4.0), (name, z)


def test_lognormal_field_has_a_detectably_positive_bispectrum(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator, xp: Any
) -> None:
    """The zero test can fail: 30 lognormal fields give an equilateral B̂ > 0 at over 5 σ."""
    fields = lognormal_field(N, PIXEL, spectrum, rng, shift=0.03, n_fields=30)
    values = _all(fields, xp)["equilateral"]
    z = values.mean(axis=0) / (values.std(axis=0, ddof=1) / np.sqrt(len(values)))
    assert np.all(z[2:] > 5.0), z


def _leading_order_theory(
    spectrum: HalofitConvergenceSpectrum, f_nl: float
) -> dict[str, np.ndarray]:
    # B(ℓ1,ℓ2,ℓ3) = 2 f (C1C2 + C2C3 + C3C1), averaged over the bin's triangles with the same
    # FFT-shell sums as the estimator, but evaluated here independently from the masks.
    plan = bispectrum_plan(N, PIXEL, EDGES)
    cl = spectrum(rfft_ell(N, PIXEL, plan.m))
    size = (plan.m, plan.m)
    c_side = np.fft.irfft2(cl[None] * plan.side_masks, s=size)
    c_third = np.fft.irfft2(cl[None] * plan.third_masks, s=size)
    n_side = np.fft.irfft2(plan.side_masks, s=size)
    n_third = np.fft.irfft2(plan.third_masks, s=size)
    eq = 3 * np.einsum("bij,bij,bij->b", c_side, c_side, n_side)
    iso = np.einsum("bij,bij,bij->b", c_side, c_side, n_third) + 2 * np.einsum(
        "bij,bij,bij->b", c_side, n_side, c_third
    )
    sq = np.einsum("bij,bij,ij->b", c_side, c_side, n_side[0]) + 2 * np.einsum(
        "bij,bij,ij->b", c_side, n_side, c_side[0]
    )
    sums = {"equilateral": eq, "isosceles": iso, "squeezed": sq}
    return {name: 2 * f_nl * sums[name] / plan.normalisation[name] for name in CONFIGURATIONS}


def test_quadratic_field_bispectrum_matches_leading_order_theory(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator, xp: Any
) -> None:
    """κ = g + f(g² − ⟨g²⟩) gives B̂ = 2f(C1C2+C2C3+C3C1): within 4 σ, and 10 % where σ < 3 %.

    f = 2 keeps one-loop corrections (∝ f² σ_g² ≈ 0.2 %) negligible; subtracting B̂ of g itself
    (whose mean is zero) on each realisation removes most of the Gaussian scatter.
    """
    f_nl = 2.0
    g = gaussian_field(N, PIXEL, spectrum, rng, n_fields=80)
    kappa = g + f_nl * (g**2 - (g**2).mean(axis=(1, 2), keepdims=True))
    theory = _leading_order_theory(spectrum, f_nl)
    measured, gaussian = _all(kappa, xp), _all(g, xp)
    for name in CONFIGURATIONS:
        values = measured[name] - gaussian[name]
        mean = values.mean(axis=0)
        error = values.std(axis=0, ddof=1) / np.sqrt(len(values))
        assert np.all(np.abs(mean - theory[name]) < 4 * error), (name, mean / theory[name])
        precise = error < 0.03 * np.abs(theory[name])
        assert precise.any()
        np.testing.assert_allclose(mean[precise], theory[name][precise], rtol=0.10)


def test_rotating_the_patch_by_90_degrees_leaves_the_bispectrum_unchanged(
    rng: np.random.Generator, xp: Any
) -> None:
    """np.rot90 of a patch gives the same B̂ in every configuration (to 1e-9 of its scale)."""
    patch = rng.normal(size=(N, N)) ** 2
    reference = _all(patch, xp)
    for turns in (1, 2, 3):
        rotated = _all(np.ascontiguousarray(np.rot90(patch, turns)), xp)
        for name in CONFIGURATIONS:
            scale = np.abs(reference[name]).max()
            np.testing.assert_allclose(rotated[name], reference[name], atol=1e-9 * scale)


def test_single_configuration_function_agrees_with_the_combined_one(
    rng: np.random.Generator, xp: Any
) -> None:
    """bispectrum(patch, ..., name) equals the combined computation for each configuration."""
    patch = rng.normal(size=(N, N)) ** 2
    combined = _all(patch, xp)
    for name in CONFIGURATIONS:
        single = bispectrum(on(xp, patch), PIXEL, EDGES, name)
        np.testing.assert_allclose(host(single), combined[name])


def test_unknown_configuration_is_rejected() -> None:
    """An unknown configuration name raises AnalysisError listing the valid ones."""
    with pytest.raises(AnalysisError, match="unknown bispectrum configuration 'folded'") as info:
        bispectrum(np.zeros((N, N)), PIXEL, EDGES, "folded")
    assert "equilateral, isosceles, squeezed" in str(info.value)


@pytest.mark.parametrize("ratio", [0.0, 2.0, -0.5, float("nan")])
def test_isosceles_ratio_outside_triangle_range_is_rejected(ratio: float) -> None:
    """isosceles_ratio must be in (0, 2): otherwise AnalysisError naming the value."""
    with pytest.raises(AnalysisError, match="isosceles_ratio"):
        bispectrum_plan(N, PIXEL, EDGES, isosceles_ratio=ratio)


def test_bin_without_triangles_is_rejected_with_a_fix() -> None:
    """Narrow bins on a small patch leave a bin without triangles: AnalysisError says so."""
    with pytest.raises(AnalysisError, match="has no closed triangle") as info:
        bispectrum_plan(32, 4.0, log_ell_edges(300, 600, 6))
    assert "wider bispectrum bins" in str(info.value)

"""SSC patch sets: tiling, matched periodic fields, the super-sample excess of lognormal fields."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    SSCPatchSets,
    covariance_ratio,
    cut_subpatches,
    ssc_patch_sets,
    summarize,
)
from lensing_ssc.analysis.statistics import binned_power_spectrum, log_ell_edges
from lensing_ssc.core.base.exceptions import AnalysisError

PATCH, PIXEL, PER_SIDE, LARGE = 128, 2.0, 4, 8
EDGES = log_ell_edges(300, 3000, 6)


def test_tiles_reassemble_into_the_field_without_overlap(rng: np.random.Generator) -> None:
    """Tiles are disjoint and, put back in row order, reproduce the field exactly."""
    field = rng.normal(size=(2, 64, 64))
    tiles = cut_subpatches(field, 16)
    assert tiles.shape == (32, 16, 16)
    rebuilt = tiles.reshape(2, 4, 4, 16, 16).transpose(0, 1, 3, 2, 4).reshape(2, 64, 64)
    np.testing.assert_array_equal(rebuilt, field)


def test_non_divisor_tile_size_is_rejected() -> None:
    """A tile size that does not divide the field raises AnalysisError naming it."""
    with pytest.raises(AnalysisError, match="patch_pixels=24 must be") as info:
        cut_subpatches(np.zeros((64, 64)), 24)
    assert info.value.value == 24


def _spectra(patches: np.ndarray) -> np.ndarray:
    return np.array([binned_power_spectrum(p, PIXEL, EDGES) for p in patches])


@pytest.fixture(scope="module")
def lognormal_sets() -> SSCPatchSets:
    """128 lognormal sub-patches of 8 fields 512² wide, and 128 periodic 128² fields."""
    model = HalofitConvergenceSpectrum()
    return ssc_patch_sets(
        kind="lognormal",
        patch_pixels=PATCH,
        pixel_size_arcmin=PIXEL,
        spectrum=model,
        patches_per_side=PER_SIDE,
        n_large_fields=LARGE,
        rng=np.random.default_rng(11),
        shift=-model.minimum_convergence(),
    )


def test_both_sets_have_the_same_size_scale_and_mean_spectrum(lognormal_sets: SSCPatchSets) -> None:
    """Both sets hold 128 patches of 128² at 2′, and their mean Ĉ agree within 10 %."""
    sets = lognormal_sets
    assert sets.subpatches.shape == sets.periodic.shape == (128, PATCH, PATCH)
    assert sets.pixel_size_arcmin == PIXEL
    sub, per = _spectra(sets.subpatches), _spectra(sets.periodic)
    np.testing.assert_allclose(sub.mean(axis=0), per.mean(axis=0), rtol=0.10)


def test_lognormal_subpatches_show_super_sample_excess_variance(
    lognormal_sets: SSCPatchSets,
) -> None:
    """Var Ĉ(sub-patches)/Var Ĉ(periodic) > 1.6 in the top two ℓ bins, and the mean κ varies more.

    With 128 patches a variance ratio is known to ~18 %, so 1.6 is > 3 σ above 1; the
    measured excess grows with ℓ as the Gaussian part of the variance shrinks.
    """
    sets = lognormal_sets
    ratio = covariance_ratio(
        summarize(_spectra(sets.subpatches)),
        summarize(_spectra(sets.periodic)),
    )
    diagonal = np.diag(ratio)
    assert np.all(diagonal[-2:] > 1.6), diagonal
    means_sub = sets.subpatches.mean(axis=(1, 2))
    means_per = sets.periodic.mean(axis=(1, 2))
    assert means_sub.var() > 10 * means_per.var()


def test_gaussian_subpatches_show_no_excess_power_variance(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """For Gaussian fields the pooled variance ratio over ℓ bins is 1 within 0.3 (~3 σ)."""
    sets = ssc_patch_sets(
        kind="gaussian",
        patch_pixels=PATCH,
        pixel_size_arcmin=PIXEL,
        spectrum=spectrum,
        patches_per_side=PER_SIDE,
        n_large_fields=LARGE,
        rng=np.random.default_rng(12),
    )
    sub, per = _spectra(sets.subpatches), _spectra(sets.periodic)
    pooled = np.mean(sub.var(axis=0, ddof=1) / per.var(axis=0, ddof=1))
    assert pooled == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "uniform"}, "unknown field kind 'uniform'"),
        ({"kind": "lognormal"}, "lognormal fields need a shift"),
        ({"patches_per_side": 0}, "patches_per_side must be a positive integer"),
        ({"n_large_fields": 1.5}, "n_large_fields must be a positive integer"),
    ],
)
def test_bad_patch_set_arguments_are_rejected(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator, kwargs: dict, message: str
) -> None:
    """Unknown kinds, a missing lognormal shift and bad counts raise AnalysisError."""
    arguments = {
        "kind": "gaussian",
        "patch_pixels": 16,
        "pixel_size_arcmin": 2.0,
        "spectrum": spectrum,
        "patches_per_side": 2,
        "n_large_fields": 1,
        "rng": rng,
    }
    arguments.update(kwargs)
    with pytest.raises(AnalysisError, match=message):
        ssc_patch_sets(**arguments)  # type: ignore[arg-type]

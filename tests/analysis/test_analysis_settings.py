"""StatisticsSettings: LSST-like defaults, validation with precise errors, round trips."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.analysis import STATISTIC_NAMES, StatisticsSettings
from lensing_ssc.core.base.exceptions import AnalysisError


def test_defaults_follow_lsst_like_choices() -> None:
    """ε = 0.26, n_gal ∈ {0, 7, 15, 30, 50}, σ_s 2–10 arcmin, ℓ 300–3000, every statistic."""
    defaults = StatisticsSettings()
    assert defaults.epsilon == 0.26
    assert defaults.n_gal == (0.0, 7.0, 15.0, 30.0, 50.0)
    assert min(defaults.smoothing_arcmin) == 2.0
    assert max(defaults.smoothing_arcmin) == 10.0
    assert defaults.ell_edges[0] == pytest.approx(300.0)
    assert defaults.ell_edges[-1] == pytest.approx(3000.0)
    assert defaults.statistics == STATISTIC_NAMES


def test_quick_subset_is_smaller_and_overridable() -> None:
    """quick() has fewer settings than the defaults, and accepts overrides."""
    quick = StatisticsSettings.quick()
    assert len(quick.n_gal) * len(quick.smoothing_arcmin) < 20
    assert StatisticsSettings.quick(n_gal=[0]).n_gal == (0.0,)


def test_bins_are_log_spaced_in_ell_and_uniform_in_nu() -> None:
    """ℓ edges have a constant ratio; ν edges a constant step; centres sit mid-bin."""
    s = StatisticsSettings(n_ell_bins=5, n_nu_bins=8, nu_min=-2, nu_max=2)
    ratios = s.ell_edges[1:] / s.ell_edges[:-1]
    np.testing.assert_allclose(ratios, ratios[0])
    np.testing.assert_allclose(np.diff(s.nu_edges), 0.5)
    np.testing.assert_allclose(s.nu_centers, np.arange(-1.75, 2.0, 0.5))
    assert s.bispectrum_edges.size == s.n_bispectrum_bins + 1


def test_unknown_statistic_suggests_the_closest_name() -> None:
    """'peak' raises AnalysisError naming it and suggesting 'peaks'."""
    with pytest.raises(AnalysisError, match="unknown statistic 'peak'") as info:
        StatisticsSettings(statistics=("cl", "peak"))
    assert "did you mean 'peaks'?" in str(info.value)
    assert info.value.value == "peak"


def test_negative_galaxy_density_is_rejected_with_the_value() -> None:
    """n_gal = −5 raises AnalysisError naming −5 and the fix."""
    with pytest.raises(
        AnalysisError, match=r"n_gal must be ≥ 0 galaxies per arcmin², got -5"
    ) as info:
        StatisticsSettings(n_gal=(0, -5))
    assert info.value.value == -5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_gal": ()}, "n_gal must list at least one value"),
        ({"n_gal": (7, 7)}, "n_gal lists a value twice"),
        ({"smoothing_arcmin": (-2,)}, "smoothing scale must be ≥ 0"),
        ({"epsilon": 0}, "epsilon must be > 0"),
        ({"ell_min": 3000, "ell_max": 300}, "need 0 < ell_min < ell_max"),
        ({"n_ell_bins": 0}, "n_ell_bins must be an integer ≥ 1"),
        ({"n_nu_bins": 2.5}, "n_nu_bins must be an integer ≥ 1"),
        ({"isosceles_ratio": 2.0}, "isosceles_ratio must be in"),
        ({"nu_min": 1, "nu_max": -1}, "need nu_min < nu_max"),
        ({"nu_reference": "nois"}, "did you mean 'noise'"),
        ({"statistics": ()}, "at least one statistic"),
        ({"statistics": ("cl", "cl")}, "lists a name twice"),
        ({"ell_max": float("inf")}, "ell_max must be finite"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict, message: str) -> None:
    """Each invalid field raises AnalysisError with a message naming the field."""
    with pytest.raises(AnalysisError, match=message):
        StatisticsSettings(**kwargs)


def test_unknown_field_in_a_mapping_suggests_the_closest_field() -> None:
    """from_mapping with 'smoothing' suggests 'smoothing_arcmin'."""
    with pytest.raises(AnalysisError, match="unknown statistics setting 'smoothing'") as info:
        StatisticsSettings.from_mapping({"smoothing": [2.0]})
    assert "did you mean 'smoothing_arcmin'?" in str(info.value)


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after construction."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        StatisticsSettings().epsilon = 0.3  # type: ignore[misc]


def test_statistics_are_reported_in_canonical_order() -> None:
    """Whatever order the user lists statistics in, they are stored in STATISTIC_NAMES order."""
    assert StatisticsSettings(statistics=("v2", "cl", "pdf")).statistics == ("cl", "pdf", "v2")


@settings(max_examples=40, deadline=None)
@given(
    n_gal=st.lists(
        st.sampled_from([0.0, 5.0, 7.5, 30.0, 50.0]), min_size=1, max_size=4, unique=True
    ),
    smoothing=st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=1, max_size=3, unique=True),
    names=st.lists(st.sampled_from(STATISTIC_NAMES), min_size=1, unique=True),
    n_nu_bins=st.integers(1, 40),
)
def test_status_round_trips_through_json(
    n_gal: list[float], smoothing: list[float], names: list[str], n_nu_bins: int
) -> None:
    """to_dict → JSON → from_mapping gives back equal settings for any valid choice."""
    original = StatisticsSettings(
        n_gal=tuple(n_gal),
        smoothing_arcmin=tuple(smoothing),
        statistics=tuple(names),
        n_nu_bins=n_nu_bins,
    )
    restored = StatisticsSettings.from_mapping(json.loads(json.dumps(original.to_dict())))
    assert restored == original


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nu_reference": "global"}, "nu_reference='global' needs nu_sigma"),
        ({"nu_sigma": [0.01]}, "nu_sigma is used only with nu_reference='global'"),
        ({"nu_reference": "global", "nu_sigma": [0.01, 0.02, 0.03]}, "one per smoothing scale"),
        ({"nu_reference": "global", "nu_sigma": [-0.01]}, "one positive σ"),
        ({"subtract_patch_mean": "yes"}, "subtract_patch_mean must be true or false"),
    ],
)
def test_nu_sigma_and_subtract_patch_mean_are_validated(
    overrides: dict[str, object], message: str
) -> None:
    """A global ν needs one positive σ per smoothing scale; the mean switch must be a bool."""
    with pytest.raises(AnalysisError, match=message):
        StatisticsSettings.quick(**overrides)


def test_one_nu_sigma_serves_every_smoothing_scale_and_round_trips() -> None:
    """A single nu_sigma is used for every σ_s, and to_dict/from_mapping keep it."""
    settings = StatisticsSettings.quick(nu_reference="global", nu_sigma=0.01)
    assert settings.nu_sigma == (0.01, 0.01)
    assert settings.subtract_patch_mean is True
    assert StatisticsSettings.from_mapping(settings.to_dict()) == settings

"""``ResultsFile.to_xarray()``: the results on labelled dimensions, bin coordinates, units."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lensing_ssc.pipelines import _xarray

try:
    import xarray
except ImportError:  # pragma: no cover - exercised only without the extra
    xarray = None

needs_xarray = pytest.mark.skipif(xarray is None, reason="needs the xarray extra")


@needs_xarray
def test_statistics_lie_on_set_n_gal_smoothing_and_bin_dimensions(tiny_results: Any) -> None:
    """Each statistic's mean, std and covariance sit on named dimensions with bin coordinates."""
    ds = tiny_results.to_xarray()
    assert list(ds["set"].values) == ["subpatches", "periodic"]
    assert "z_s" not in ds.dims  # synthetic sets have no source redshift
    assert ds["cl_mean"].dims == ("set", "n_gal", "ell")
    assert ds["peaks_mean"].dims == ("set", "n_gal", "smoothing", "nu")
    assert ds["peaks_covariance"].dims == ("set", "n_gal", "smoothing", "nu", "nu_2")
    summary = tiny_results.summary("peaks/ngal=30/smoothing=5", "periodic")
    np.testing.assert_array_equal(
        ds["peaks_mean"].sel(set="periodic", n_gal=30, smoothing=5).values, summary.mean
    )
    np.testing.assert_array_equal(
        ds["peaks_covariance"].sel(set="periodic", n_gal=30, smoothing=5).values,
        summary.covariance,
    )
    cl = tiny_results.summary("cl/ngal=0", "subpatches")
    np.testing.assert_array_equal(ds["ell"].values, cl.binning.centers)
    np.testing.assert_array_equal(ds["ell_low"].values, cl.binning.edges[:-1])
    np.testing.assert_array_equal(ds["ell_high"].values, cl.binning.edges[1:])
    np.testing.assert_array_equal(ds["nu"].values, summary.binning.centers)
    assert ds["ell"].attrs["units"] == "rad⁻¹"
    assert ds["n_gal"].attrs["units"] == "arcmin⁻²"
    assert ds["smoothing"].attrs["units"] == "arcmin"
    assert ds["cl_mean"].attrs["units"] == "sr"
    assert ds["cl_covariance"].attrs["units"] == "sr²"
    assert ds["v1_std"].attrs["units"] == "arcmin⁻¹"
    assert ds["cl_mean"].attrs["description"] == "power spectrum C_ℓ: mean over the set's patches"


@needs_xarray
def test_comparisons_lie_on_a_pair_dimension_with_intervals_and_roles(tiny_results: Any) -> None:
    """Variance ratios, their intervals and the S/N of each set are per compared pair."""
    ds = tiny_results.to_xarray()
    assert list(ds["pair"].values) == ["subpatches~periodic"]
    ratio = ds["cl_variance_ratio"].sel(pair="subpatches~periodic", n_gal=0)
    np.testing.assert_array_equal(ratio.values, tiny_results["ssc/cl/ngal=0/variance_ratio"])
    interval = ds["peaks_variance_ratio_interval"].sel(n_gal=30, smoothing=2).squeeze("pair")
    assert interval.dims == ("nu", "bound")
    stored = tiny_results["ssc/peaks/ngal=30/smoothing=2/variance_ratio_interval"]
    np.testing.assert_array_equal(interval.sel(bound="low").values, stored[0])
    np.testing.assert_array_equal(interval.sel(bound="high").values, stored[1])
    sn = ds["cl_signal_to_noise"].sel(pair="subpatches~periodic", n_gal=0)
    assert sn.dims == ("role",)
    assert list(sn["role"].values) == ["numerator", "denominator"]
    np.testing.assert_array_equal(sn.values, tiny_results["ssc/cl/ngal=0/signal_to_noise"])
    assert ds["cl_ssc_predicted"].attrs["units"] == "1"
    assert ds.attrs["source"] == str(tiny_results.path)


def test_without_xarray_the_error_names_the_extra(
    tiny_results: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without xarray, to_xarray() raises ModuleNotFoundError naming the xarray extra."""
    monkeypatch.setattr(_xarray, "xarray", None)
    with pytest.raises(ModuleNotFoundError) as info:
        tiny_results.to_xarray()
    assert str(info.value) == (
        'ResultsFile.to_xarray() needs xarray: pip install "lensing-ssc[xarray]"'
    )
    assert info.value.name == "xarray"

"""Full-sky lognormal maps and the example suites: spectrum, cut, determinism, headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.analysis import HalofitConvergenceSpectrum, lognormal_sky, write_example_suites
from lensing_ssc.analysis.sky import EXAMPLE_PATTERN, cut_multipole, lognormal_skies
from lensing_ssc.analysis.theory import cross_convergence_spectrum
from lensing_ssc.core.base.exceptions import AnalysisError

hp = pytest.importorskip("healpy")


def test_lognormal_sky_has_the_model_spectrum_and_the_shift_bound(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """A full-sky map's measured C(ℓ) matches the model over ℓ 20–200, and κ stays above −λ."""
    shift = -spectrum.minimum_convergence()
    kappa = lognormal_sky(128, spectrum, 5, shift=shift)
    measured = hp.anafast(kappa, lmax=200)[20:]
    expected = spectrum(np.arange(20, 201, dtype=float))
    # 181 multipoles of 2ℓ+1 modes each: the mean ratio scatters by ~1 %.
    assert np.mean(measured / expected) == pytest.approx(1.0, abs=0.06)
    assert kappa.min() > -shift
    assert abs(kappa.mean()) < 1e-3 * kappa.std()


def test_a_cut_removes_every_multipole_below_it_and_keeps_those_above(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """With ell_cut, anafast finds no power below the cut and the same power above it."""
    shift = -spectrum.minimum_convergence()
    full = hp.anafast(lognormal_sky(64, spectrum, 3, shift=shift))
    cut = hp.anafast(lognormal_sky(64, spectrum, 3, shift=shift, ell_cut=36))
    assert np.all(cut[:36] < 1e-6 * full[2:36].mean())
    assert np.mean(cut[40:120] / full[40:120]) == pytest.approx(1.0, abs=0.05)


def test_cut_multipole_is_the_patch_fundamental() -> None:
    """ℓ_cut = ⌈2π/θ⌉: 36 for 10°, 72 for 5°, 18 for 20°."""
    assert [cut_multipole(s) for s in (10.0, 5.0, 20.0)] == [36, 72, 18]


def test_example_suites_are_the_same_bytes_for_the_same_seed(tmp_path: Path) -> None:
    """Writing the suites twice gives identical files; another seed gives another map."""
    first = write_example_suites(tmp_path / "a", nside=32, seeds=[4, 5], z_sources=[1.0])
    again = write_example_suites(tmp_path / "b", nside=32, seeds=[4, 5], z_sources=[1.0])
    for suite in ("bigbox", "tiled"):
        pairs = zip(first.files[suite], again.files[suite], strict=True)
        assert all(a.read_bytes() == b.read_bytes() for a, b in pairs)
    seed4, seed5 = (hp.read_map(str(p)) for p in first.files["bigbox"])
    assert not np.allclose(seed4, seed5)


def test_example_suites_are_named_by_the_pattern_and_carry_their_header(tmp_path: Path) -> None:
    """Files are <suite>/kappa_zs{zs}_s{seed}.fits with suite, z_s, seed, cut and cosmology."""
    model = HalofitConvergenceSpectrum(sigma8=0.75)
    suites = write_example_suites(
        tmp_path, nside=32, seeds=[0, 7], z_sources=[1.0, 2.5], cosmology=model
    )
    names = [p.relative_to(tmp_path).as_posix() for p in suites.files["tiled"]]
    assert names == [
        "tiled/" + EXAMPLE_PATTERN.format(zs=z, seed=s) for z in ("1", "2.5") for s in (0, 7)
    ]
    _, header = hp.read_map(str(suites.files["tiled"][3]), h=True)
    cards = dict(header)
    assert (cards["SUITE"], cards["ZS"], cards["SEED"], cards["ELL_CUT"]) == ("tiled", 2.5, 7, 36)
    assert (cards["SIGMA8"], cards["OMEGA_M"], cards["NONLIN"]) == (0.75, 0.3, True)
    expected_shift = -HalofitConvergenceSpectrum(sigma8=0.75, z_source=2.5).minimum_convergence()
    assert cards["SHIFT"] == pytest.approx(expected_shift)
    assert dict(hp.read_map(str(suites.files["bigbox"][0]), h=True)[1])["ELL_CUT"] == 0
    assert suites.to_dict()["seeds"] == [0, 7]


def test_both_suites_share_the_seeds_phases(tmp_path: Path) -> None:
    """A seed's bigbox and tiled maps share its phases: their modes above the cut correlate."""
    suites = write_example_suites(tmp_path, nside=64, seeds=[2], z_sources=[1.0])
    bigbox, tiled = (hp.read_map(str(suites.files[s][0])) for s in ("bigbox", "tiled"))
    high = hp.map2alm(bigbox, lmax=128), hp.map2alm(tiled, lmax=128)
    ell = hp.Alm.getlm(128)[0]
    above = ell >= 60
    a, b = high[0][above], high[1][above]
    correlation = np.real(np.vdot(a, b)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real)
    assert correlation > 0.9


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [
        ({"nside": 100}, 100),
        ({"nside": 16}, 16),
        ({"seeds": [1, 1]}, [1, 1]),
        ({"z_sources": []}, []),
    ],
)
def test_bad_suite_arguments_are_analysis_errors(
    tmp_path: Path, kwargs: dict[str, object], value: object
) -> None:
    """A bad nside (not a power of 2, or below the cut), repeated seeds or no z_s is refused."""
    arguments: dict[str, object] = {"nside": 32, "seeds": [0], "z_sources": [1.0], **kwargs}
    with pytest.raises(AnalysisError) as caught:
        write_example_suites(tmp_path, **arguments)  # type: ignore[arg-type]
    assert caught.value.value == value
    assert caught.value.hint
    assert not list(tmp_path.iterdir())


def test_a_cut_above_the_band_limit_is_refused(spectrum: HalofitConvergenceSpectrum) -> None:
    """ell_cut beyond 2·nside is an AnalysisError naming the cut."""
    with pytest.raises(AnalysisError, match="outside 0 … 2·nside = 32") as caught:
        lognormal_sky(16, spectrum, 0, shift=0.1, ell_cut=40)
    assert caught.value.value == 40


def _band_correlation(first: np.ndarray, second: np.ndarray, lo: int, hi: int) -> float:
    """r of two maps over ℓ in [lo, hi): Σ C_12 / √(Σ C_11 Σ C_22), every mode weighted alike."""
    lmax = hi - 1
    c11, c22 = hp.anafast(first, lmax=lmax), hp.anafast(second, lmax=lmax)
    c12 = hp.anafast(first, second, lmax=lmax)
    weight = 2 * np.arange(lo, hi) + 1
    return float(
        np.sum(weight * c12[lo:]) / np.sqrt(np.sum(weight * c11[lo:]) * np.sum(weight * c22[lo:]))
    )


def test_example_redshifts_of_a_seed_correlate_as_the_limber_cross_spectrum_says(
    tmp_path: Path,
) -> None:
    """A seed's z_s = 1 and 2 maps have the theory's r_12(ℓ) (0.83–0.93, not 1) within 4σ."""
    suites = write_example_suites(tmp_path, nside=64, seeds=[0, 1], z_sources=[1.0, 2.0])
    near, far = (HalofitConvergenceSpectrum(z_source=z) for z in (1.0, 2.0))
    cross = cross_convergence_spectrum(near, far)
    bands = [(10, 36), (36, 64), (64, 129)]
    for suite in ("bigbox", "tiled"):
        files = suites.files[suite]  # by z_s, then seed
        for seed in range(2):
            first, second = (hp.read_map(str(files[z * 2 + seed])) for z in range(2))
            for lo, hi in bands:
                if suite == "tiled" and lo < suites.ell_cut:
                    continue
                ell = np.arange(lo, hi, dtype=float)
                weight = 2 * ell + 1
                expected = np.sum(weight * cross(ell)) / np.sqrt(
                    np.sum(weight * near(ell)) * np.sum(weight * far(ell))
                )
                # Var r̂ ≈ (1 − r²)²/N for N Gaussian modes (Fisher's z); the lognormal maps'
                # mode coupling widens it a little.
                error = (1.0 - expected**2) / np.sqrt(np.sum(weight))
                measured = _band_correlation(first, second, lo, hi)
                assert abs(measured - expected) < 4.0 * error, (suite, seed, lo, measured)
                assert expected < 0.93
                assert measured < 0.96


def test_correlated_skies_keep_each_maps_spectrum_and_the_first_maps_phases(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """Each map of lognormal_skies has its own C(ℓ); the first is lognormal_sky of the seed."""
    far = HalofitConvergenceSpectrum(z_source=2.0)
    shifts = [-spectrum.minimum_convergence(), -far.minimum_convergence()]
    spectra = [spectrum, cross_convergence_spectrum(spectrum, far), far]
    skies = lognormal_skies(128, spectra, 5, shifts=shifts)
    alone = lognormal_sky(128, spectrum, 5, shift=shifts[0])
    np.testing.assert_allclose(skies[0], alone, rtol=0, atol=1e-12 * np.abs(alone).max())
    ell = np.arange(20, 201, dtype=float)
    for sky, model in zip(skies, (spectrum, far), strict=True):
        measured = hp.anafast(sky, lmax=200)[20:]
        assert np.mean(measured / model(ell)) == pytest.approx(1.0, abs=0.06)
    assert np.all(skies[1] > -shifts[1])


def test_fully_correlated_spectra_draw_the_same_map_twice(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """C_11 = C_12 = C_22 with one shift: a singular matrix, factored, gives two equal maps."""
    shift = -spectrum.minimum_convergence()
    skies = lognormal_skies(32, [spectrum] * 3, 2, shifts=[shift, shift], ell_cut=8)
    np.testing.assert_allclose(skies[1], skies[0], rtol=0, atol=1e-6 * np.abs(skies[0]).max())


@pytest.mark.parametrize(
    ("n_spectra", "shifts", "match", "value"),
    [
        (2, [0.1, 0.1], "2 spectra are not the Z\\(Z\\+1\\)/2 auto and cross spectra", 2),
        (3, [0.1], "1 shift\\(s\\) for 2 map\\(s\\)", 1),
        (3, [0.1, -0.1], "shift must be > 0, got -0.1", -0.1),
    ],
)
def test_bad_correlated_sky_arguments_are_analysis_errors(
    spectrum: HalofitConvergenceSpectrum,
    n_spectra: int,
    shifts: list[float],
    match: str,
    value: object,
) -> None:
    """A spectrum count that is no Z(Z+1)/2, a shift per map missing, or λ ≤ 0 is refused."""
    with pytest.raises(AnalysisError, match=match) as caught:
        lognormal_skies(16, [spectrum] * n_spectra, 0, shifts=shifts)
    assert caught.value.value == value
    assert caught.value.hint

"""Mass shells and the Born convergence: weights, accumulation, particles binned into shells."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.analysis._cosmology import comoving_distance
from lensing_ssc.analysis.born import (
    ConvergenceAccumulator,
    SourceDistribution,
    born_convergence,
    born_weights,
    born_weights_nz,
    lensing_prefactor,
)
from lensing_ssc.analysis.shells import Background, ShellTable, density_contrast, expected_count
from lensing_ssc.core.base.exceptions import AnalysisError

hp = pytest.importorskip("healpy")
BG = Background(omega_m=0.3, h=0.7)


def write_usmesh(
    path: Path,
    positions: np.ndarray,
    aemit: np.ndarray,
    *,
    box: float = 1000.0,
    nc: int = 64,
    h: float = 0.7,
    omega_m: float = 0.3,
    n_edges: int = 16,
) -> None:
    """A FastPM usmesh catalogue: Header attrs, 1/Position, 1/Aemit, 1/. aemitIndex, by Aemit."""
    bigfile = pytest.importorskip("bigfile")
    order = np.argsort(aemit, kind="stable")
    positions, aemit = positions[order].astype("f4"), aemit[order].astype("f4")
    edges = np.linspace(float(aemit.min()), float(aemit.max()), n_edges)
    hist = np.bincount(np.searchsorted(edges, aemit, side="right"), minlength=n_edges + 1)
    with bigfile.File(str(path), create=True) as f:
        with f.create("Header") as header:
            header.attrs["BoxSize"] = [box]
            header.attrs["NC"] = np.array([nc], dtype="i8")
            header.attrs["OmegaM"] = [omega_m]
            header.attrs["HubbleParam"] = [h]
        with f.create("1/Position", dtype=("f4", 3), size=len(aemit), Nfile=2) as block:
            block.write(0, positions)
        with f.create("1/Aemit", dtype="f4", size=len(aemit), Nfile=1) as block:
            block.write(0, aemit)
        with f.create("1/.") as root:
            root.attrs["aemitIndex.edges"] = edges
            root.attrs["aemitIndex.size"] = hist.astype("i8")
            root.attrs["aemitIndex.offset"] = np.concatenate(([0], np.cumsum(hist))).astype("i8")


def light_cone(n: int, chi_max: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Particles uniform in a ball of radius chi_max (Mpc/h), with Aemit of their distance."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((n, 3))
    direction /= np.linalg.norm(direction, axis=1)[:, None]
    radius = chi_max * rng.uniform(0.02, 1.0, n) ** (1 / 3)
    z = BG.redshift(radius / BG.h)
    return direction * radius[:, None], 1.0 / (1.0 + z)


def test_a_single_shell_of_unit_delta_gives_the_analytic_lensing_weight() -> None:
    """κ of one δ = 1 shell is (3/2)Ω_m(H0/c)²∫(1+z)χ(1−χ/χs)dχ over the shell, to 1e-6."""
    table = ShellTable.from_redshift_edges([0.0, 0.3, 0.6, 0.9], BG)
    kappa = born_convergence([(1, np.ones(768))], table, [0.8], nside=8, allow_missing=True)[0]
    chi_s = comoving_distance(np.array([0.8]), 0.3, 0.7)[0]
    chi = np.linspace(table[1].chi_min, table[1].chi_max, 400001)
    z = np.interp(
        chi, comoving_distance(np.linspace(0, 1, 20001), 0.3, 0.7), np.linspace(0, 1, 20001)
    )
    integrand = (1 + z) * chi * (1 - chi / chi_s)
    expected = 1.5 * 0.3 * (0.7 / 2997.92458) ** 2 * np.trapezoid(integrand, chi)
    np.testing.assert_allclose(kappa, expected, rtol=1e-6)
    assert lensing_prefactor(BG) == pytest.approx(1.5 * 0.3 * (0.7 / 2997.92458) ** 2)


def test_shells_beyond_the_source_contribute_nothing_and_are_not_needed() -> None:
    """Shells behind z_s weigh exactly 0, are not needed, and any δ there leaves κ unchanged."""
    table = ShellTable.from_redshift_edges(np.linspace(0, 2, 11), BG)
    weights = born_weights(table, 1.0)
    assert np.all(weights[5:] == 0)
    assert np.all(weights[:5] > 0)
    rng = np.random.default_rng(1)
    maps = [rng.standard_normal(768) for _ in table]
    first = ConvergenceAccumulator(table, [1.0], 8)
    assert first.needed == (0, 1, 2, 3, 4)
    second = ConvergenceAccumulator(table, [1.0], 8)
    for i, m in enumerate(maps):
        first.add(i, m)
        second.add(i, m if i < 5 else 1e6 * m)
    np.testing.assert_array_equal(first.result(), second.result())


def test_a_source_inside_a_shell_counts_that_shell_up_to_the_source() -> None:
    """z_s halfway through a shell gives it a weight between 0 and its full weight."""
    table = ShellTable.from_redshift_edges([0.0, 0.5, 1.0], BG)
    inside = born_weights(table, 0.75)[1]
    full = born_weights(ShellTable.from_redshift_edges([0.0, 0.5, 0.75], BG), 0.75)[1]
    assert inside == pytest.approx(full, rel=1e-9)
    assert 0 < inside < born_weights(table, 1.5)[1]


def test_ring_and_nested_inputs_give_the_same_kappa() -> None:
    """The same shells given NESTED give the RING result, at the same and at other nsides."""
    table = ShellTable.from_redshift_edges(np.linspace(0, 1.2, 7), BG)
    rng = np.random.default_rng(2)
    maps = [rng.standard_normal(12 * 32**2) for _ in table]
    for nside in (16, 32, 64):
        ring = ConvergenceAccumulator(table, [1.0, 1.2], nside)
        nest = ConvergenceAccumulator(table, [1.0, 1.2], nside)
        for i, m in enumerate(maps):
            ring.add(i, m)
            nest.add(i, hp.reorder(m, r2n=True), nest=True)
        np.testing.assert_allclose(nest.result(), ring.result(), rtol=0, atol=1e-15)


def test_shells_of_another_nside_are_regraded_as_healpy_ud_grade_does() -> None:
    """Degraded shells average their children, upgraded ones repeat their parent (ud_grade)."""
    table = ShellTable.from_redshift_edges([0.0, 0.5], BG)
    delta = np.random.default_rng(3).standard_normal(12 * 32**2)
    weight = born_weights(table, 0.5)[0]
    for nside in (8, 128):
        kappa = born_convergence([(0, delta)], table, [0.5], nside=nside)[0]
        np.testing.assert_allclose(kappa, weight * hp.ud_grade(delta, nside), rtol=1e-12)


def test_counts_become_delta_against_the_given_or_the_map_mean() -> None:
    """Counts n give δ = n/n̄ − 1: against the expected n̄, else the map's mean."""
    counts = np.array([0.0, 2.0, 4.0, 6.0] * 192)
    np.testing.assert_allclose(density_contrast(counts, "counts")[:4], [-1, -1 / 3, 1 / 3, 1])
    np.testing.assert_allclose(density_contrast(counts, "counts", mean=2.0)[:4], [-1, 0, 1, 2])
    table = ShellTable.from_redshift_edges([0.0, 0.5], BG)
    from_counts = born_convergence([(0, counts)], table, [0.5], nside=8, kind="counts")
    from_delta = born_convergence([(0, density_contrast(counts, "counts"))], table, [0.5], 8)
    np.testing.assert_allclose(from_counts, from_delta, rtol=1e-12)
    shell = ShellTable.from_distance_edges([100.0, 200.0], BG)[0]
    assert expected_count(shell, 1.0, 1) * 12 == pytest.approx(shell.volume)


def test_an_empty_shell_of_counts_is_refused() -> None:
    """A shell with no particle has no δ: the error names the shell."""
    acc = ConvergenceAccumulator(ShellTable.from_redshift_edges([0.0, 0.5], BG), [0.5], 8)
    with pytest.raises(AnalysisError, match=r"shell 0 \(z 0.000–0.500.*mean counts per pixel is 0"):
        acc.add(0, np.zeros(768), kind="counts")


def test_a_shell_table_with_a_gap_is_refused_naming_both_shells() -> None:
    """Ranges 0–0.1, 0.1–0.2, 0.25–0.3: the gap between the second and third is named."""
    names = ["a.fits", "b.fits", "c.fits"]
    with pytest.raises(AnalysisError) as info:
        ShellTable.from_ranges(
            [(0.25, 0.3), (0.0, 0.1), (0.1, 0.2)], BG, names=[names[2], *names[:2]]
        )
    assert str(info.value).startswith(
        "shells b.fits (z 0.1–0.2) and c.fits (z 0.25–0.3) leave a gap of 0.05"
    )
    assert info.value.value == ("b.fits", "c.fits")


def test_a_shell_table_with_an_overlap_is_refused_naming_both_shells() -> None:
    """Distance ranges 100–250 Mpc and 200–300 Mpc overlap by 50 Mpc."""
    with pytest.raises(
        AnalysisError,
        match=r"shells range 0 \(χ 100–250\) and range 1 "
        r"\(χ 200–300\) leave a overlap of 50 Mpc",
    ):
        ShellTable.from_ranges([(100.0, 250.0), (200.0, 300.0)], BG, unit="mpc")


def test_ranges_that_touch_build_the_same_table_as_edges() -> None:
    """Touching ranges in any order make the table of the shared edges."""
    table = ShellTable.from_ranges([(0.2, 0.5), (0.0, 0.2)], BG)
    np.testing.assert_allclose(table.redshift_edges, [0.0, 0.2, 0.5])
    np.testing.assert_allclose(
        table.distance_edges, ShellTable.from_redshift_edges([0.0, 0.2, 0.5], BG).distance_edges
    )


def test_background_distances_are_the_package_distances_and_invert() -> None:
    """χ(z) agrees with the package's comoving_distance to 1e-5 and z(χ(z)) returns z."""
    z = np.linspace(0.05, 3.0, 60)
    np.testing.assert_allclose(BG.comoving_distance(z), comoving_distance(z, 0.3, 0.7), rtol=1e-5)
    np.testing.assert_allclose(BG.redshift(BG.comoving_distance(z)), z, rtol=1e-12)


def test_nz_weights_average_the_source_planes() -> None:
    """A narrow n(z) at z0 weighs shells as the plane at z0; a flat one as the mean plane."""
    table = ShellTable.from_redshift_edges(np.linspace(0, 1.5, 16), BG)
    narrow = SourceDistribution("narrow", [0.999, 1.0, 1.001], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        born_weights_nz(table, narrow), born_weights(table, 1.0), rtol=1e-5, atol=1e-7
    )
    flat = SourceDistribution("flat", [0.6, 1.4], [1.0, 1.0])
    planes = np.mean([born_weights(table, z) for z in np.linspace(0.6025, 1.3975, 160)], axis=0)
    np.testing.assert_allclose(born_weights_nz(table, flat), planes, rtol=1e-3, atol=1e-9)


def test_accumulating_a_shell_holds_no_full_size_temporary() -> None:
    """Adding a float32 shell at nside 256 allocates well under one map beyond the output."""
    table = ShellTable.from_redshift_edges([0.0, 0.5, 1.0], BG)
    acc = ConvergenceAccumulator(table, [1.0], 256, block=1 << 14)
    ring = np.ones(12 * 256**2, dtype=np.float32)
    nested = hp.reorder(ring, r2n=True)
    tracemalloc.start()
    try:
        acc.add(0, ring)
        acc.add(1, nested, nest=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * acc.kappa.nbytes


def test_particle_pixels_are_healpy_vec2pix_in_both_loops() -> None:
    """Pixels of random directions (poles included) equal healpy's, compiled or not."""
    from lensing_ssc.analysis._pixel_kernels import HAVE_NUMBA, ring_pixels

    rng = np.random.default_rng(4)
    positions = rng.standard_normal((50_000, 3)) * 1000
    positions[:100, 2] = np.abs(positions[:100, 2]) * 1e5  # near the north pole
    positions[100:110, :2] = 0.0  # on the axis
    for nside in (1, 16, 8192):
        reference = hp.vec2pix(nside, *positions.T)
        np.testing.assert_array_equal(ring_pixels(positions, nside, compiled=False), reference)
        if HAVE_NUMBA:
            np.testing.assert_array_equal(ring_pixels(positions, nside, compiled=True), reference)


def test_binning_counts_each_particle_in_its_shell_and_pixel() -> None:
    """Counts per shell are np.bincount of healpy pixels of the particles in each shell."""
    from lensing_ssc.analysis._pixel_kernels import HAVE_NUMBA
    from lensing_ssc.analysis.lightcone import ShellCounter

    positions, _ = light_cone(40_000, 2000.0)
    table = ShellTable.from_distance_edges([300.0, 900.0, 1500.0, 2500.0], BG)
    radius = np.linalg.norm(positions, axis=1) / BG.h
    loops = [False, True] if HAVE_NUMBA else [False]
    for compiled in loops:
        counter = ShellCounter(table, range(1, 3), 32, length_unit=1 / BG.h)
        from lensing_ssc.analysis import _pixel_kernels

        _pixel_kernels.count_particles(
            counter.counts, positions, counter.edges, nside=32, scale=1 / BG.h, compiled=compiled
        )
        for row, (low, high) in enumerate([(900.0, 1500.0), (1500.0, 2500.0)]):
            inside = (radius >= low) & (radius < high)
            expected = np.bincount(hp.vec2pix(32, *positions[inside].T), minlength=12 * 32**2)
            np.testing.assert_array_equal(counter.counts[row], expected)


def test_a_usmesh_catalogue_streams_only_the_rows_of_its_shells(tmp_path: Path) -> None:
    """bin_catalogue in small chunks reads the aemitIndex rows and counts as one pass would."""
    from lensing_ssc.analysis.lightcone import ShellCounter, UsmeshCatalogue, bin_catalogue

    positions, aemit = light_cone(30_000, 1800.0)
    write_usmesh(tmp_path / "usmesh", positions, aemit)
    table = ShellTable.from_distance_edges(np.linspace(100.0, 2500.0, 9), BG)
    with UsmeshCatalogue(tmp_path / "usmesh") as cat:
        assert cat.size == 30_000
        assert cat.header.particles_per_side == 64
        assert cat.number_density(0.7) == pytest.approx(64**3 / (1000 / 0.7) ** 3)
        counter = bin_catalogue(cat, table, range(2, 5), 16, chunk=1024)
        start, stop = cat.rows_between(*counter.scale_factor_range)
        assert 0 < stop - start < cat.size
        by_aemit = bin_catalogue(cat, table, range(2, 5), 16, radial="aemit", chunk=5000)
    direct = ShellCounter(table, range(2, 5), 16, length_unit=1 / 0.7)
    direct.add(positions)
    np.testing.assert_array_equal(counter.counts, direct.counts)
    # Aemit was made from each particle's float32-rounded distance: shells agree but for
    # particles within rounding of an edge.
    assert abs(int(by_aemit.counts.sum()) - int(direct.counts.sum())) <= 3


def test_a_catalogue_of_another_cosmology_is_refused(tmp_path: Path) -> None:
    """Shells with h = 0.7 refuse a light cone simulated with h = 0.6, naming both values."""
    from lensing_ssc.analysis.lightcone import UsmeshCatalogue, bin_catalogue

    positions, aemit = light_cone(100, 500.0)
    write_usmesh(tmp_path / "usmesh", positions, aemit, h=0.6)
    table = ShellTable.from_distance_edges([100.0, 700.0], BG)
    with (
        UsmeshCatalogue(tmp_path / "usmesh") as cat,
        pytest.raises(AnalysisError, match=r"simulated with h = 0.6, but the shells use h = 0.7"),
    ):
        bin_catalogue(cat, table, [0], 8)


def test_a_directory_without_positions_is_not_a_catalogue(tmp_path: Path) -> None:
    """Opening a bigfile without 1/Position says which blocks it has."""
    from lensing_ssc.analysis.lightcone import UsmeshCatalogue

    bigfile = pytest.importorskip("bigfile")
    with (
        bigfile.File(str(tmp_path / "other"), create=True) as f,
        f.create("2/Mass", dtype="f4", size=1) as block,
    ):
        block.write(0, np.ones(1, dtype="f4"))
    with pytest.raises(AnalysisError, match=r"has no 1/Position block \(it has 2/Mass\)"):
        UsmeshCatalogue(tmp_path / "other")


def test_healpix_files_round_trip_through_healpy(tmp_path: Path) -> None:
    """Maps written here read back in healpy, and healpy's NESTED maps read here as NESTED."""
    from lensing_ssc.analysis.healpix_files import read_healpix_map, write_healpix_map

    values = np.arange(12 * 16**2, dtype=float)
    write_healpix_map(tmp_path / "a.fits", values, header=[("Z_MIN", 0.25, "near edge")])
    back, header = hp.read_map(tmp_path / "a.fits", h=True)
    np.testing.assert_array_equal(back, values)
    assert dict(header)["Z_MIN"] == 0.25
    hp.write_map(tmp_path / "b.fits", values, nest=True, dtype=np.float64)
    stored = read_healpix_map(tmp_path / "b.fits")
    assert (stored.nside, stored.nest) == (16, True)
    np.testing.assert_array_equal(stored.values, values)


def test_shell_spectra_add_up_to_the_limber_convergence_spectrum() -> None:
    """Σ W_i² C_i(ℓ) of thin shells is the continuous Limber C_κ(ℓ) within 3% for ℓ 30–3000."""
    from lensing_ssc.analysis.shell_spectra import ShellDensitySpectrum, shells_convergence_spectrum
    from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum

    table = ShellTable.from_redshift_edges(np.linspace(0.0, 1.0, 21), BG)
    spectra = [ShellDensitySpectrum.of(s, background=BG) for s in table]
    ell = np.array([30.0, 100.0, 300.0, 1000.0, 3000.0])
    shells = shells_convergence_spectrum(spectra, born_weights(table, 1.0))(ell)
    limber = HalofitConvergenceSpectrum(z_source=1.0)(ell)
    np.testing.assert_allclose(shells, limber, rtol=0.03)
    assert math.isfinite(float(shells.sum()))

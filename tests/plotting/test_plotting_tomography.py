"""lensing_ssc.plotting.plot_tomography: spectra between redshifts, r_ij(ℓ), joint correlation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the figures need the plot extra")
pytest.importorskip("healpy", reason="the maps need the healpix extra")

import healpy

from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.core.config._loading import merge
from lensing_ssc.pipelines import PipelineConfig, ResultsFile, read_results, run_patch_statistics
from lensing_ssc.plotting import (
    OKABE_ITO,
    RUN_FIGURE_NAMES,
    TOMOGRAPHY_FIGURE_NAME,
    draw_run_figures,
    plot_tomography,
)

NSIDE = 32


def _run(run_dir: Path, pipeline: dict[str, object]) -> ResultsFile:
    config = PipelineConfig(
        run_dir=run_dir,
        logging={"console": False, "format": "json"},
        progress={"enabled": False},
        pipeline=merge({"executor": "serial", "retries": 0, "figures": False}, pipeline),
    )
    return read_results(run_patch_statistics(config).results_file)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> ResultsFile:
    """One set of white maps at z_s 1 and 2, the second a rescaled copy of the first plus noise."""
    root = tmp_path_factory.mktemp("tomography")
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        low = 0.01 * rng.standard_normal(12 * NSIDE**2)
        high = 2 * low + 0.01 * rng.standard_normal(low.size)
        for zs, sky in ((1, low), (2, high)):
            healpy.write_map(str(root / f"kappa_zs{zs}_s{seed}.fits"), sky, dtype=np.float64)
    sets = {"deep": {"maps": str(root / "kappa_*.fits"), "pattern": "kappa_zs{zs}_s{seed}.fits"}}
    return _run(
        root / "run",
        {
            "input": "healpix",
            "healpix": {"patch_size_deg": 30.0, "patch_pixels": 32, "sets": sets},
            "statistics": {
                "names": ["cl"],
                "n_gal": [0],
                "ell_min": 20,
                "ell_max": 150,
                "n_ell_bins": 3,
            },
        },
    )


def test_tomography_shows_every_spectrum_its_correlation_and_the_joint_matrix(
    results: ResultsFile,
) -> None:
    """Three panels: a line per redshift pair, r_12(ℓ), and the (pair, ℓ) correlation matrix."""
    figure = plot_tomography(results)
    spectra, coefficient, joint = figure.axes[:3]
    legend = [t.get_text() for t in spectra.get_legend().get_texts()]
    assert legend == ["z_s 1 × 1 (auto)", "z_s 1 × 2 (cross)", "z_s 2 × 2 (auto)"]
    assert [line.get_color() for line in spectra.get_lines()] == list(OKABE_ITO[:3])
    assert spectra.get_xlabel() == "multipole ℓ [rad⁻¹]"
    assert spectra.get_ylabel() == "ℓ² C_ℓ / 2π"
    (r_line,) = [line for line in coefficient.get_lines() if line.get_label() == "z_s 1 × 2"]
    # κ₂ = 2κ₁ + n with Var n = Var κ₁: r = 2/√5 ≈ 0.89.
    np.testing.assert_allclose(r_line.get_ydata(), 2 / np.sqrt(5), atol=0.05)
    assert coefficient.get_ylabel() == "r_ij = C_ij / √(C_ii C_jj) [1]"
    assert joint.get_images()[0].get_array().shape == (9, 9)
    assert [t.get_text() for t in joint.get_xticklabels()] == ["1×1", "1×2", "2×2"]
    assert figure.get_suptitle() == "deep: no shape noise; 3 realisations, 57 patches"


def test_a_run_with_tomography_draws_its_figure_after_the_three(
    results: ResultsFile, tmp_path: Path
) -> None:
    """draw_run_figures adds tomography.png for a run with tomography."""
    paths = draw_run_figures(results, tmp_path)
    assert [p.name for p in paths] == [*RUN_FIGURE_NAMES[:2], TOMOGRAPHY_FIGURE_NAME]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_results_without_tomography_are_refused_with_the_reason(tmp_path: Path) -> None:
    """plot_tomography on a run without tomography raises AnalysisError saying how to get one."""
    plain = _run(
        tmp_path / "run",
        {"synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 2}},
    )
    with pytest.raises(AnalysisError, match="the results hold no tomography") as info:
        plot_tomography(plain)
    assert "pipeline.tomography: true" in (info.value.hint or "")

"""lensing_ssc.plotting: the three figures of a results file, their labels, bands and ticks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib", reason="the figures need the plot extra")

import matplotlib

matplotlib.use("Agg")

from matplotlib.collections import FillBetweenPolyCollection, PolyCollection

from lensing_ssc.pipelines import ResultsFile
from lensing_ssc.plotting import (
    OKABE_ITO,
    RUN_FIGURE_NAMES,
    draw_run_figures,
    plot_comparison,
    plot_correlations,
    plot_statistic,
)


def _bands(ax: Any) -> list[Any]:
    return [c for c in ax.collections if isinstance(c, FillBetweenPolyCollection | PolyCollection)]


def _tick_texts(ax: Any) -> list[str]:
    ax.figure.canvas.draw()
    labels = [*ax.get_xticklabels(), *ax.get_yticklabels()]
    return [t.get_text() for t in labels if t.get_text()]


def test_a_statistic_has_one_line_and_band_per_set_and_units_in_its_labels(
    results: ResultsFile,
) -> None:
    """plot_statistic draws each set's mean with a band, labelled with n_gal, σ_s and units."""
    ax = plot_statistic(results, "v1/ngal=30/smoothing=2")
    assert len(ax.get_lines()) == 2
    assert len(_bands(ax)) == 2
    assert ax.get_ylabel() == "V₁ [arcmin⁻¹]"
    assert ax.get_xlabel() == "ν = κ / σ_ref [1]"
    assert "n_gal = 30 arcmin⁻², σ_s = 2′" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["subpatches (8 patches)", "periodic (8 patches)"]
    assert [line.get_color() for line in ax.get_lines()] == list(OKABE_ITO[:2])


def test_a_spectrum_has_log_axes_with_plain_tick_labels(results: ResultsFile) -> None:
    """C_ℓ on log axes is labelled with ℓ and C_ℓ, and no tick label reads like 9.5×10⁻¹."""
    ax = plot_statistic(results, "cl/ngal=30", sets=["subpatches"])
    assert len(ax.get_lines()) == 1
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert "ℓ" in ax.get_xlabel()
    assert "C_ℓ" in ax.get_ylabel()
    texts = _tick_texts(ax)
    assert texts
    assert not [t for t in texts if "×10" in t or "times" in t]
    assert "1000" in texts


def test_correlations_are_side_by_side_on_one_colour_scale(results: ResultsFile) -> None:
    """plot_correlations draws the pair's two matrices with one colour bar from −1 to 1."""
    figure = plot_correlations(results, "peaks/ngal=30/smoothing=2")
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(images) == 2
    assert {image.get_clim() for image in images} == {(-1.0, 1.0)}
    titles = [ax.get_title() for ax in figure.axes if ax.images]
    assert titles == ["subpatches (8 patches)", "periodic (8 patches)"]
    colourbars = [ax for ax in figure.axes if ax.get_ylabel() == "correlation coefficient [1]"]
    assert len(colourbars) == 1
    assert "σ_s = 2′" in figure.get_suptitle()


def test_a_comparison_shows_ratio_intervals_and_ssc_for_a_chosen_setting(
    results: ResultsFile,
) -> None:
    """plot_comparison draws, per statistic, the ratio with its interval and SSC predicted
    beside measured, each with its interval, at the chosen n_gal and σ_s."""
    figure = plot_comparison(results, statistics=["cl", "peaks"], n_gal=30, smoothing=5)
    shown = [ax for ax in figure.axes if ax.get_visible()]
    assert len(shown) == 4
    ratio, ssc = shown[0], shown[1]
    assert ratio.get_ylabel() == "Var(num) / Var(den) [1]"
    assert len(_bands(ratio)) == 1
    assert [t.get_text() for t in ssc.get_legend().get_texts()] == [
        "predicted R² Var(κ̄)",
        "measured",
    ]
    assert len(_bands(ssc)) == 2
    assert "n_gal = 30 arcmin⁻², σ_s = 5′" in shown[2].get_title()
    assert "68%" in figure.get_suptitle()
    for ax in shown:
        assert not [t for t in _tick_texts(ax) if "×10" in t]


def test_a_statistic_the_run_did_not_measure_is_refused(results: ResultsFile) -> None:
    """Asking for a statistic absent at the setting names the choices."""
    from lensing_ssc.core.base.exceptions import AnalysisError

    with pytest.raises(AnalysisError, match="no statistic 'kurtosis'"):
        plot_comparison(results, statistics=["kurtosis"])


def test_a_figure_saves_as_png(results: ResultsFile, tmp_path: Path) -> None:
    """A figure from the API saves to a PNG without pyplot."""
    path = tmp_path / "cl.png"
    plot_statistic(results, "cl/ngal=0").figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_a_call_names_the_plot_extra(
    results: ResultsFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing without matplotlib raises one ModuleNotFoundError naming the plot extra."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError) as info:
        plot_statistic(results, "cl/ngal=0")
    assert str(info.value) == (
        'lensing_ssc.plotting needs matplotlib: pip install "lensing-ssc[plot]"'
    )
    assert info.value.name == "matplotlib"


def test_a_run_s_figures_are_three_pngs_from_its_results_file(
    results: ResultsFile, tmp_path: Path
) -> None:
    """draw_run_figures on a results file's path writes the three PNGs, and nothing else."""
    assert results.path is not None
    directory = tmp_path / "figures"
    paths = draw_run_figures(str(results.path), directory)
    assert paths == [directory / name for name in RUN_FIGURE_NAMES]
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in paths)
    assert sorted(p.name for p in directory.iterdir()) == sorted(RUN_FIGURE_NAMES)


def test_a_run_s_figures_draw_from_what_read_results_returns(
    results: ResultsFile, tmp_path: Path
) -> None:
    """draw_run_figures takes a ResultsFile as well as a path, and draws the same figures."""
    paths = draw_run_figures(results, tmp_path)
    assert [path.name for path in paths] == list(RUN_FIGURE_NAMES)


def test_without_matplotlib_the_run_figures_name_the_plot_extra(
    results: ResultsFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib draw_run_figures raises one line naming the plot extra, makes nothing."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ModuleNotFoundError) as info:
        draw_run_figures(results, tmp_path / "figures")
    assert str(info.value) == (
        'lensing_ssc.plotting needs matplotlib: pip install "lensing-ssc[plot]"'
    )
    assert info.value.name == "matplotlib"
    assert not (tmp_path / "figures").exists()

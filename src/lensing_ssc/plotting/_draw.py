"""The three figures of a results file: a statistic per set, correlations, a comparison.

Each takes a :class:`lensing_ssc.pipelines.ResultsFile` (what ``read_results`` returns)
and picks its numbers through the file's typed views, so any set, source redshift and
(n_gal, σ_s) setting of the run can be drawn. Error bands are the patch-to-patch standard
deviation (``band="std"``) or the standard error of the mean (``band="sem"``); intervals
are those stored with each comparison (over maps: :mod:`lensing_ssc.analysis.comparison`).
Colours, labels and ticks come from :mod:`._style`; where each panel goes, from
:mod:`._layout`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lensing_ssc.analysis.comparison import interval_words
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines import (
    ResultsComparison,
    ResultsFile,
    StatisticSummary,
    parse_statistic_key,
)
from lensing_ssc.plotting._layout import (
    HEADING,
    fit_margins,
    headed,
    matrix_axes,
    new_figure,
    panel_axes,
)
from lensing_ssc.plotting._style import (
    LINESTYLES,
    colour,
    plain_log_ticks,
    plain_number,
    setting_label,
    statistic_label,
    x_label,
)

__all__ = ["plot_comparison", "plot_correlations", "plot_statistic"]


def _scaled(summary: StatisticSummary, values: np.ndarray) -> np.ndarray:
    """The plotted values: ℓ² C_ℓ / 2π and ℓ⁴ B keep the spectra on a readable scale."""
    x = summary.binning.centers
    if summary.name == "cl":
        return values * x**2 / (2 * np.pi)
    if summary.name.startswith("bispectrum"):
        return values * x**4
    return values


def _heading(key: str, z_source: float | None) -> str:
    name, n_gal, smoothing = parse_statistic_key(key)
    where = "" if z_source is None else f", z_s = {z_source:g}"
    return f"{statistic_label(name)[0]}\n{setting_label(n_gal, smoothing)}{where}"


def plot_statistic(
    results: ResultsFile,
    key: str,
    *,
    sets: Sequence[str] | None = None,
    z_source: float | None = None,
    ax: Any = None,
    band: Literal["std", "sem"] = "std",
) -> Any:
    """Draw one statistic's mean per bin with an error band, one line per set; return the axes.

    Args:
        results: What :func:`lensing_ssc.pipelines.read_results` returns.
        key: The statistic at one setting (``peaks/ngal=30/smoothing=2``, ``cl/ngal=0``).
        sets: Configured sets or results' set names; default every set.
        z_source: The source redshift, for sets with several.
        ax: Axes to draw on; default a new figure's.
        band: ``"std"``: ± the patch-to-patch standard deviation; ``"sem"``: ± the
            standard error of the mean.
    """
    fit = ax is None
    if ax is None:
        ax = panel_axes(new_figure(6.4, 4.4), 1, 1)[0]
    summaries = [results.summary(key, name, z_source) for name in (sets or results.sets)]
    for index, summary in enumerate(summaries):
        x = summary.binning.centers
        mean = _scaled(summary, summary.mean)
        spread = summary.std / (np.sqrt(summary.n_patches) if band == "sem" else 1.0)
        spread = np.abs(_scaled(summary, spread))
        tint = colour(index)
        ax.plot(
            x,
            mean,
            color=tint,
            ls=LINESTYLES[index % len(LINESTYLES)],
            marker="o",
            ms=3,
            label=f"{summary.set} ({summary.n_patches} patches)",
        )
        ax.fill_between(x, mean - spread, mean + spread, color=tint, alpha=0.25, lw=0)
    first = summaries[0]
    ylabel = statistic_label(first.name)[1]
    if first.binning.log:
        ax.set_xscale("log")
        plain_log_ticks(ax, "x")
    if first.name == "cl" and all(np.all(_scaled(s, s.mean) > 0) for s in summaries):
        ax.set_yscale("log")
        plain_log_ticks(ax, "y")
    if first.name.startswith("bispectrum"):
        ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel(x_label(first.binning.variable))
    ax.set_ylabel(ylabel)
    ax.set_title(_heading(key, z_source), fontsize="medium")
    what = "± 1σ over patches" if band == "std" else "± standard error"
    ax.legend(title=f"mean {what}", fontsize="small", title_fontsize="small")
    if fit:
        fit_margins([ax], 1)
    return ax


def _bin_ticks(ax: Any, centers: np.ndarray, variable: str) -> None:
    count = len(centers)
    step = max(1, count // 6)
    ticks = np.arange(0, count, step)
    labels = [plain_number(float(f"{c:.2g}")) for c in centers[ticks]]
    ax.set_xticks(ticks, labels, rotation=45)
    ax.set_yticks(ticks, labels)
    axis_label = f"{variable} (bin centre)" + (" [rad⁻¹]" if variable == "ℓ" else " [1]")
    ax.set_xlabel(axis_label)
    ax.set_ylabel(axis_label)


def plot_correlations(
    results: ResultsFile,
    key: str,
    comparison: str | ResultsComparison | None = None,
    *,
    z_source: float | None = None,
    figure: Any = None,
) -> Any:
    """Draw the correlation matrices of a compared pair side by side on one colour scale.

    Without any comparison in the file, the matrices of its first two sets (or its one).

    Args:
        results: What :func:`lensing_ssc.pipelines.read_results` returns.
        key: The statistic at one setting (``cl/ngal=30``).
        comparison: A comparison's path, pair name or object; default the first.
        z_source: The source redshift of the comparison or sets.
        figure: A figure or sub-figure to draw into; default a new one.

    Returns:
        The figure drawn into.
    """
    if results.comparisons or comparison is not None:
        chosen = results.comparison(comparison, z_source)
        names = [chosen.numerator, chosen.denominator]
    else:
        names = [results.group(name, z_source) for name in results.sets[:2]]
    panels = [results.summary(key, name) for name in names]
    if figure is None:
        figure = new_figure(4.2 * len(panels) + 1.2, 4.4)
    axes, bar = matrix_axes(figure, len(panels), head=HEADING, rotated=True)
    image = None
    for axis, summary in zip(axes, panels, strict=True):
        matrix = np.ma.masked_invalid(summary.correlation)
        image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r", origin="lower")
        _bin_ticks(axis, summary.binning.centers, summary.binning.variable)
        axis.set_title(f"{summary.set} ({summary.n_patches} patches)", fontsize="medium")
    figure.colorbar(image, cax=bar, label="correlation coefficient [1]")
    headed(figure, _heading(key, z_source).replace("\n", ": "))
    return figure


def _keys(
    results: ResultsFile,
    chosen: ResultsComparison,
    statistics: Sequence[str] | None,
    n_gal: float | None,
    smoothing: float | None,
) -> list[str]:
    at_setting = results.statistic_keys(n_gal=n_gal, smoothing=smoothing)
    if statistics is None:
        keys = list(at_setting)
    else:
        keys = []
        for entry in statistics:
            matches = (
                [entry] if "/" in entry else [k for k in at_setting if k.split("/")[0] == entry]
            )
            if not matches:
                raise AnalysisError(
                    f"no statistic {entry!r} at the chosen setting",
                    value=entry,
                    hint=f"choose from {', '.join(at_setting)}",
                )
            keys.extend(matches)
    return [k for k in keys if k in chosen.statistics] or keys


def plot_comparison(
    results: ResultsFile,
    comparison: str | ResultsComparison | None = None,
    statistics: Sequence[str] | None = None,
    *,
    z_source: float | None = None,
    n_gal: float | None = None,
    smoothing: float | None = None,
    figure: Any = None,
) -> Any:
    """Draw a comparison: per statistic, the variance ratio with its interval, and the SSC
    excess predicted from the patch means beside the measured one, each with its interval.

    Args:
        results: What :func:`lensing_ssc.pipelines.read_results` returns.
        comparison: A comparison's path, pair name or object; default the first.
        statistics: Statistic keys (``cl/ngal=30``) or names (``cl``, taken at ``n_gal``
            and ``smoothing``); default every statistic at that setting.
        z_source: The source redshift of the comparison.
        n_gal: The setting's galaxy density (arcmin⁻²); default the run's first.
        smoothing: The setting's σ_s (arcmin); default the run's first.
        figure: A figure or sub-figure to draw into; default a new one.

    Returns:
        The figure drawn into.
    """
    chosen = results.comparison(comparison, z_source)
    keys = _keys(results, chosen, statistics, n_gal, smoothing)
    pairs_per_row = 1 if len(keys) == 1 else 2
    rows = -(-len(keys) // pairs_per_row)
    if figure is None:
        figure = new_figure(4.6 * 2 * pairs_per_row, 3.4 * rows + 0.6)
    axes = panel_axes(figure, rows, 2 * pairs_per_row, head=HEADING, count=2 * len(keys))
    for index, key in enumerate(keys):
        compared = chosen.statistic(key)
        _ratio_panel(axes[2 * index], compared, key)
        _ssc_panel(axes[2 * index + 1], compared, key)
    fit_margins(axes, 2 * pairs_per_row)
    level = chosen.resampling.get("confidence")
    # Results written before the interval kind was recorded had percentile intervals.
    how = interval_words(chosen.resampling.get("interval", "percentile")).split(";")[0]
    intervals = "" if level is None else f"; bands: {level:.0%} intervals, {how}"
    where = "" if chosen.z_source is None else f", z_s = {chosen.z_source:g}"
    headed(figure, f"{chosen.label}{where}{intervals}")
    return figure


def _ratio_panel(axis: Any, compared: Any, key: str) -> None:
    x = compared.binning.centers
    low, high = compared.variance_ratio_interval
    axis.plot(x, compared.variance_ratio, color=colour(0), marker="o", ms=3, label="ratio")
    axis.fill_between(x, low, high, color=colour(0), alpha=0.25, lw=0, label="interval")
    axis.axhline(1.0, color="0.3", lw=0.8, ls="--")
    if compared.binning.log:
        axis.set_xscale("log")
        plain_log_ticks(axis, "x")
    if np.all(low > 0) and np.all(compared.variance_ratio > 0):
        axis.set_yscale("log")
        plain_log_ticks(axis, "y")
    axis.set_xlabel(x_label(compared.binning.variable))
    axis.set_ylabel("Var(num) / Var(den) [1]")
    axis.set_title(_heading(key, None), fontsize="medium")
    axis.legend(fontsize="small")


def _ssc_panel(axis: Any, compared: Any, key: str) -> None:
    x = compared.binning.centers
    if compared.binning.log:
        axis.set_xscale("log")
        plain_log_ticks(axis, "x")
    axis.set_xlabel(x_label(compared.binning.variable))
    axis.set_ylabel("SSC excess ΔVar / Var(den) [1]")
    axis.set_title(_heading(key, None), fontsize="medium")
    if not compared.has_ssc:
        axis.text(
            0.5,
            0.5,
            "no patch means:\nSSC not predicted",
            ha="center",
            va="center",
            transform=axis.transAxes,
        )
        return
    axis.axhline(0.0, color="0.3", lw=0.8, ls="--")
    for index, (label, value, interval) in enumerate(
        [
            ("predicted R² Var(κ̄)", compared.ssc_predicted, compared.ssc_predicted_interval),
            ("measured", compared.ssc_measured, compared.ssc_measured_interval),
        ]
    ):
        tint = colour(index + 1)
        axis.plot(x, value, color=tint, ls=LINESTYLES[index], marker="o", ms=3, label=label)
        axis.fill_between(x, interval[0], interval[1], color=tint, alpha=0.25, lw=0)
    axis.legend(fontsize="small")

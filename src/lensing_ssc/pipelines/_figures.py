"""PNG figures of a run (the ``plot`` extra, matplotlib), drawn by :mod:`lensing_ssc.plotting`.

* ``statistics.png`` — every statistic at the run's first (n_gal, σ_s) setting: the mean
  per bin of every set, with the patch-to-patch standard deviation as a band
  (:func:`~lensing_ssc.plotting.plot_statistic`);
* ``correlation.png`` — per statistic at that setting, the correlation matrices of the
  first comparison's two sets side by side on one colour scale (of the first sets without
  a comparison; :func:`~lensing_ssc.plotting.plot_correlations`);
* ``ssc_ratio.png`` — for the first comparison (sub-patches / periodic for the synthetic
  default), per statistic the variance ratio with its interval over maps, and the SSC
  excess predicted from the patch means beside the measured one
  (:func:`~lensing_ssc.plotting.plot_comparison`). Every comparison, redshift and setting
  is in the results file, and the same functions draw any of them.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never
through ``pyplot``, so no global backend or state is touched. Without matplotlib,
:func:`draw_figures` logs one line and returns no paths. The numbers come from
:func:`._results.results_view`: the results file as it reads back, without reading it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensing_ssc.core.io import atomic_write
from lensing_ssc.pipelines._results import MergedResults, results_view
from lensing_ssc.pipelines._results_file import ResultsFile

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:  # pragma: no cover - exercised only without the extra
    Figure = None  # type: ignore[misc,assignment]
    FigureCanvasAgg = None  # type: ignore[misc,assignment]

__all__ = ["FIGURE_NAMES", "draw_figures"]

FIGURE_NAMES = ("statistics.png", "correlation.png", "ssc_ratio.png")

_log = logging.getLogger("lensing_ssc.pipelines")

_COLUMNS = 4


def _save(figure: Any, path: Path) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())
    return path


def _statistics_figure(results: ResultsFile) -> Any:
    from lensing_ssc.plotting import plot_statistic

    keys = results.statistic_keys()
    columns = min(_COLUMNS, len(keys))
    rows = -(-len(keys) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.9 * rows), layout="constrained")
    for index, key in enumerate(keys):
        plot_statistic(results, key, ax=figure.add_subplot(rows, columns, index + 1))
    return figure


def _correlation_figure(results: ResultsFile) -> Any:
    from lensing_ssc.plotting import plot_correlations

    keys = results.statistic_keys()
    columns = min(2, len(keys))
    rows = -(-len(keys) // columns)
    figure = Figure(figsize=(7.0 * columns, 3.6 * rows), layout="constrained")
    panels = figure.subfigures(rows, columns, squeeze=False).ravel()
    for panel, key in zip(panels, keys, strict=False):
        plot_correlations(results, key, figure=panel)
    return figure


def _ssc_figure(results: ResultsFile) -> Any:
    from lensing_ssc.plotting import plot_comparison

    return plot_comparison(results)


def draw_figures(merged: MergedResults, directory: Path) -> list[Path]:
    """Draw the run's figures into ``directory``; return their paths (none without matplotlib)."""
    if Figure is None:
        _log.info('matplotlib is not installed: no figures (pip install "lensing-ssc[plot]")')
        return []
    directory.mkdir(parents=True, exist_ok=True)
    results = results_view(merged)
    drawers: list[tuple[str, Callable[[ResultsFile], Any]]] = [
        ("statistics.png", _statistics_figure),
        ("correlation.png", _correlation_figure),
    ]
    if results.comparisons:
        drawers.append(("ssc_ratio.png", _ssc_figure))
    return [_save(draw(results), directory / name) for name, draw in drawers]

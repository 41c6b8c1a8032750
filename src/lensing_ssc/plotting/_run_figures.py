"""The three PNG figures of a run, as ``lensing-ssc run`` draws them into ``figures/``.

* ``statistics.png`` — every statistic at the run's first (n_gal, σ_s) setting: the mean
  per bin of every set, with the patch-to-patch standard deviation as a band
  (:func:`~._draw.plot_statistic`);
* ``correlation.png`` — per statistic at that setting, the correlation matrices of the
  first comparison's two sets side by side on one colour scale (of the first sets without
  a comparison; :func:`~._draw.plot_correlations`);
* ``ssc_ratio.png`` — for the first comparison (sub-patches / periodic for the synthetic
  default), per statistic the variance ratio with its interval over maps, and the SSC
  excess predicted from the patch means beside the measured one
  (:func:`~._draw.plot_comparison`); not drawn for a run without comparisons. Every
  comparison, redshift and setting is in the results file, and the same functions draw any
  of them;
* ``tomography.png`` — for a run with tomography (HEALPix sets at two or more source
  redshifts), per set at the run's first n_gal: the auto and cross spectra, r_ij(ℓ) and
  the joint correlation matrix (:func:`~._tomography.plot_tomography`).

Each PNG is rendered into memory on the Agg canvas, never through ``pyplot``, and written
atomically (:func:`lensing_ssc.core.io.atomic_write`): a reader never sees half a file.
Panels sit at fixed places (:mod:`._layout`), so each save draws once; with
``parallel=True`` the figures are drawn at once in forked processes (:mod:`._forked`).
The pipeline draws no figures itself; the command draws these after the run, and whether
that fails (no matplotlib, a full disk) does not change the run's outcome.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensing_ssc.core.io import atomic_write
from lensing_ssc.pipelines import ResultsFile, read_results
from lensing_ssc.plotting._draw import plot_comparison, plot_correlations, plot_statistic
from lensing_ssc.plotting._forked import fork_is_safe, run_forked
from lensing_ssc.plotting._layout import fit_margins, new_figure, panel_axes
from lensing_ssc.plotting._style import matplotlib_module
from lensing_ssc.plotting._tomography import plot_tomography

__all__ = ["RUN_FIGURE_NAMES", "TOMOGRAPHY_FIGURE_NAME", "draw_run_figures"]

RUN_FIGURE_NAMES = ("statistics.png", "correlation.png", "ssc_ratio.png")
"""The file names of the run's figures, in the order they are drawn."""

TOMOGRAPHY_FIGURE_NAME = "tomography.png"
"""The figure drawn after those for a run with tomography."""

_COLUMNS = 4  # panels per row of statistics.png


def _first_redshift(results: ResultsFile) -> float | None:
    """The lowest source redshift of the run's sets, for runs whose sets have several."""
    redshifts = sorted({z for zs in results.redshifts.values() for z in zs})
    return redshifts[0] if redshifts else None


def _statistics_figure(results: ResultsFile) -> Any:
    keys = results.statistic_keys()
    z_source = _first_redshift(results)
    columns = min(_COLUMNS, len(keys))
    rows = -(-len(keys) // columns)
    figure = new_figure(4.6 * columns, 3.9 * rows)
    panels = panel_axes(figure, rows, columns, count=len(keys))
    for axes, key in zip(panels, keys, strict=True):
        plot_statistic(results, key, z_source=z_source, ax=axes)
    fit_margins(panels, columns)
    return figure


def _correlation_figure(results: ResultsFile) -> Any:
    keys = results.statistic_keys()
    columns = min(2, len(keys))
    rows = -(-len(keys) // columns)
    figure = new_figure(7.0 * columns, 3.6 * rows)
    panels = figure.subfigures(rows, columns, squeeze=False).ravel()
    z_source = _first_redshift(results)
    for panel, key in zip(panels, keys, strict=False):
        plot_correlations(results, key, z_source=z_source, figure=panel)
    return figure


def _tomography_figure(results: ResultsFile) -> Any:
    sets = results.tomography_sets
    figure = new_figure(15.0, 4.4 * len(sets))
    panels = figure.subfigures(len(sets), 1, squeeze=False).ravel()
    for panel, name in zip(panels, sets, strict=True):
        plot_tomography(results, name, figure=panel)
    return figure


def _draw(draw: Callable[[ResultsFile], Any], results: ResultsFile, path: Path) -> None:
    buffer = io.BytesIO()
    draw(results).savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())


def draw_run_figures(
    results: ResultsFile | str | os.PathLike[str],
    directory: str | os.PathLike[str],
    *,
    parallel: bool = False,
) -> list[Path]:
    """Draw a run's figures into ``directory`` (made if missing); return their paths.

    Args:
        results: What :func:`lensing_ssc.pipelines.read_results` returns, or the path of
            the results file to read.
        directory: Where the PNGs go; a run's is ``run_dir / "figures"``.
        parallel: Draw the figures at once, each in a forked process, where
            :func:`~._forked.fork_is_safe` allows it (POSIX but not macOS, two or more
            CPUs, no other thread); else, and by default, one after the other. The files
            are the same either way.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (one line naming the ``plot``
            extra); nothing is read or written then.
        OSError: A figure could not be written (drawn one after the other, the figures
            before it are complete; drawn at once, all the others are).

    Example:
        >>> run = run_patch_statistics(config)  # doctest: +SKIP
        >>> draw_run_figures(run.results_file, run.run_dir / "figures")  # doctest: +SKIP
        [PosixPath('runs/demo/figures/statistics.png'), ...]
    """
    matplotlib_module("figure")  # before anything is read or made
    if not isinstance(results, ResultsFile):
        results = read_results(Path(results))
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    statistics, correlation, ssc_ratio = RUN_FIGURE_NAMES
    drawers: list[tuple[str, Callable[[ResultsFile], Any]]] = [
        (statistics, _statistics_figure),
        (correlation, _correlation_figure),
    ]
    if results.comparisons:
        z_source = _first_redshift(results)
        drawers.append((ssc_ratio, lambda view: plot_comparison(view, z_source=z_source)))
    if results.tomography_sets:
        drawers.append((TOMOGRAPHY_FIGURE_NAME, _tomography_figure))
    jobs = [functools.partial(_draw, draw, results, target / name) for name, draw in drawers]
    if parallel and len(jobs) > 1 and fork_is_safe():
        run_forked(jobs)
    else:
        for job in jobs:
            job()
    return [target / name for name, _ in drawers]

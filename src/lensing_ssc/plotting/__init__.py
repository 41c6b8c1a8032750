"""Figures of a results file: statistics, correlation matrices, SSC comparisons.

:func:`plot_statistic` draws one statistic's mean with an error band per set;
:func:`plot_correlations` a compared pair's two correlation matrices side by side on one
colour scale; :func:`plot_comparison` the variance ratios with their intervals and the
predicted beside the measured SSC excess. Each takes what :func:`lensing_ssc.pipelines.read_results`
returns and any (z_s, n_gal, σ_s) of the run, labels every axis with its units, draws log
axes with plain tick labels and uses the Okabe–Ito colour-blind-safe palette
(:data:`OKABE_ITO`). :func:`plot_tomography` draws a set's auto and cross spectra between
its source redshifts, their correlation coefficient r_ij(ℓ) and the joint correlation
matrix. :func:`draw_run_figures` draws with them the PNGs of a run
(``figures/statistics.png``, ``correlation.png``, ``ssc_ratio.png``, and
``tomography.png`` for a run with tomography) that ``lensing-ssc run`` writes after the
run; the pipeline itself draws none.

matplotlib (the ``plot`` extra) is imported on the first call, never by importing this
package, and figures are :class:`matplotlib.figure.Figure` objects: ``pyplot``'s global
state is untouched. Modules: ``_style`` (palette, labels, tick formatting), ``_layout``
(where panels go, in inches), ``_draw`` and ``_tomography`` (what goes on them),
``_run_figures`` and ``_forked`` (a run's PNGs, drawn at once in forked processes where
that is safe).
The guide is ``docs/pipeline.md`` ("Figures").
"""

from lensing_ssc.plotting._draw import plot_comparison, plot_correlations, plot_statistic
from lensing_ssc.plotting._run_figures import (
    RUN_FIGURE_NAMES,
    TOMOGRAPHY_FIGURE_NAME,
    draw_run_figures,
)
from lensing_ssc.plotting._style import OKABE_ITO
from lensing_ssc.plotting._tomography import plot_tomography

__all__ = [
    "OKABE_ITO",
    "RUN_FIGURE_NAMES",
    "TOMOGRAPHY_FIGURE_NAME",
    "draw_run_figures",
    "plot_comparison",
    "plot_correlations",
    "plot_statistic",
    "plot_tomography",
]

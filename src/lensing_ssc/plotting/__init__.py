"""Figures of a results file: statistics, correlation matrices, SSC comparisons.

:func:`plot_statistic` draws one statistic's mean with an error band per set;
:func:`plot_correlations` a compared pair's two correlation matrices side by side on one
colour scale; :func:`plot_comparison` the variance ratios with their intervals and the
predicted beside the measured SSC excess. Each takes what :func:`lensing_ssc.pipelines.read_results`
returns and any (z_s, n_gal, σ_s) of the run, labels every axis with its units, draws log
axes with plain tick labels and uses the Okabe–Ito colour-blind-safe palette
(:data:`OKABE_ITO`). The pipeline's own figures (``figures/*.png``) are drawn with them.

matplotlib (the ``plot`` extra) is imported on the first call, never by importing this
package, and figures are :class:`matplotlib.figure.Figure` objects: ``pyplot``'s global
state is untouched. Modules: ``_style`` (palette, labels, tick formatting) and ``_draw``.
The guide is ``docs/pipeline.md`` ("Figures").
"""

from lensing_ssc.plotting._draw import plot_comparison, plot_correlations, plot_statistic
from lensing_ssc.plotting._style import OKABE_ITO

__all__ = ["OKABE_ITO", "plot_comparison", "plot_correlations", "plot_statistic"]

"""The tomography figure: spectra between source redshifts, r_ij(ℓ), and the joint correlation.

:func:`plot_tomography` draws, for one set of a results file at one n_gal, three panels:
ℓ² C_ij / 2π of every auto and cross spectrum with the patch-to-patch scatter as a band;
the cross-correlation coefficient r_ij(ℓ) = C_ij / √(C_ii C_jj) of the mean spectra; and
the correlation matrix of the joint data vector (every spectrum's ℓ bins, one block per
redshift pair), whose off-diagonal blocks show how much the redshifts' spectra covary —
what super-sample modes, shared by every redshift of a realisation, add. The numbers are
:meth:`lensing_ssc.pipelines.ResultsFile.tomography`'s; colours and labels come from
:mod:`._style`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines import ResultsFile, TomographicSpectra
from lensing_ssc.plotting._layout import (
    HEADING,
    fit_margins,
    headed,
    matrix_axes,
    matrix_width,
    new_figure,
    panel_axes,
    size_inches,
)
from lensing_ssc.plotting._style import (
    LINESTYLES,
    colour,
    plain_log_ticks,
    setting_label,
    statistic_label,
    x_label,
)

__all__ = ["plot_tomography"]


def _pair_label(spectra: TomographicSpectra, i: int, j: int) -> str:
    zs = spectra.z_sources
    kind = "auto" if i == j else "cross"
    return f"z_s {zs[i]:g} × {zs[j]:g} ({kind})"


def _spectra_panel(axis: Any, spectra: TomographicSpectra) -> None:
    x = spectra.binning.centers
    scale = x**2 / (2 * np.pi)
    for index, (i, j) in enumerate(spectra.pairs):
        mean = spectra.mean[index] * scale
        spread = spectra.std[index] * scale
        tint = colour(index)
        axis.plot(
            x,
            mean,
            color=tint,
            ls=LINESTYLES[index % len(LINESTYLES)],
            marker="o",
            ms=3,
            label=_pair_label(spectra, i, j),
        )
        axis.fill_between(x, mean - spread, mean + spread, color=tint, alpha=0.2, lw=0)
    axis.set_xscale("log")
    plain_log_ticks(axis, "x")
    if np.all(spectra.mean > 0):
        axis.set_yscale("log")
        plain_log_ticks(axis, "y")
    axis.set_xlabel(x_label("ℓ"))
    axis.set_ylabel(statistic_label("cl")[1])
    axis.set_title("auto and cross spectra, ± 1σ over patches", fontsize="medium")
    axis.legend(fontsize="small")


def _correlation_panel(axis: Any, spectra: TomographicSpectra) -> None:
    x = spectra.binning.centers
    crosses = [(i, j) for i, j in spectra.pairs if i != j]
    for index, (i, j) in enumerate(crosses):
        axis.plot(
            x,
            spectra.cross_correlation[i, j],
            color=colour(index + 1),
            ls=LINESTYLES[index % len(LINESTYLES)],
            marker="o",
            ms=3,
            label=f"z_s {spectra.z_sources[i]:g} × {spectra.z_sources[j]:g}",
        )
    axis.axhline(1.0, color="0.6", lw=0.8, ls="--")
    axis.axhline(0.0, color="0.6", lw=0.8)
    axis.set_xscale("log")
    plain_log_ticks(axis, "x")
    axis.set_xlabel(x_label("ℓ"))
    axis.set_ylabel("r_ij = C_ij / √(C_ii C_jj) [1]")
    axis.set_title("cross-correlation coefficient", fontsize="medium")
    axis.legend(fontsize="small")


def _joint_panel(figure: Any, axis: Any, bar: Any, spectra: TomographicSpectra) -> None:
    matrix = np.ma.masked_invalid(spectra.correlation)
    image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r", origin="lower")
    bins = spectra.binning.centers.size
    edges = np.arange(1, len(spectra.pairs)) * bins - 0.5
    for edge in edges:
        axis.axhline(edge, color="0.2", lw=0.8)
        axis.axvline(edge, color="0.2", lw=0.8)
    middles = np.arange(len(spectra.pairs)) * bins + (bins - 1) / 2
    names = [f"{spectra.z_sources[i]:g}×{spectra.z_sources[j]:g}" for i, j in spectra.pairs]
    axis.set_xticks(middles, names)
    axis.set_yticks(middles, names)
    axis.set_xlabel(f"z_s pair, {bins} ℓ bins each")
    axis.set_ylabel(f"z_s pair, {bins} ℓ bins each")
    axis.set_title("joint correlation matrix", fontsize="medium")
    figure.colorbar(image, cax=bar, label="correlation coefficient [1]")


def plot_tomography(
    results: ResultsFile,
    set: str | None = None,
    *,
    n_gal: float | None = None,
    figure: Any = None,
) -> Any:
    """Draw one set's spectra across source redshifts, r_ij(ℓ) and their joint correlation.

    Args:
        results: What :func:`lensing_ssc.pipelines.read_results` returns.
        set: A configured set with tomography (``bigbox``); default the first.
        n_gal: The galaxy density (arcmin⁻²); default the run's first.
        figure: A figure or sub-figure to draw into; default a new one.

    Returns:
        The figure drawn into.

    Raises:
        AnalysisError: the results hold no tomography, or not for ``set``.
        ModuleNotFoundError: matplotlib is not installed (the ``plot`` extra).
    """
    if set is None:
        if not results.tomography_sets:
            raise AnalysisError(
                "the results hold no tomography",
                value=None,
                hint="run a HEALPix study whose sets have maps at 2 or more source "
                "redshifts, with pipeline.tomography: true",
            )
        set = results.tomography_sets[0]
    spectra = results.tomography(set, n_gal)
    if figure is None:
        figure = new_figure(15.0, 4.4)
    curves = size_inches(figure)[0] - matrix_width(figure, 1, head=HEADING)
    spectra_axis, coefficient_axis = panel_axes(figure, 1, 2, head=HEADING, width=curves)
    (joint_axis,), bar = matrix_axes(figure, 1, head=HEADING, left=curves)
    _spectra_panel(spectra_axis, spectra)
    _correlation_panel(coefficient_axis, spectra)
    fit_margins([spectra_axis, coefficient_axis], 2)
    _joint_panel(figure, joint_axis, bar, spectra)
    patches = len(spectra.realisations)
    realisations = len(dict.fromkeys(spectra.realisations))
    headed(
        figure,
        f"{set}: {setting_label(spectra.n_gal, None)}; {realisations} realisations, "
        f"{patches} patches",
    )
    return figure

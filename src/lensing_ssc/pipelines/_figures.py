"""PNG figures of a run (needs the ``plot`` extra, matplotlib).

* ``statistics.png`` — every statistic of the first set (sub-patches for the synthetic
  default): mean over patches per bin with the patch-to-patch standard deviation as error
  bars, one line per (n_gal, smoothing) setting;
* ``correlation.png`` — the correlation matrix of each statistic at the run's first setting;
* ``ssc_ratio.png`` — for the run's first comparison (sub-patches / periodic for the
  synthetic default), the variance ratio per bin with its interval over maps (shaded), one
  line per setting; 1 means no super-sample contribution. Every comparison's ratios are in
  the results file.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never
through ``pyplot``, so no global backend or state is touched. Without matplotlib,
:func:`draw_figures` logs one line and returns no paths. The numbers come from
:class:`._results.MergedResults`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.core.io import atomic_write
from lensing_ssc.pipelines._results import MergedResults, SetSummary

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
_LABELS = {
    "cl": ("ℓ", "ℓ² C(ℓ) / 2π"),
    "bispectrum_equilateral": ("ℓ (equilateral)", "ℓ⁴ B"),
    "bispectrum_isosceles": ("ℓ (isosceles)", "ℓ⁴ B"),
    "bispectrum_squeezed": ("ℓ (squeezed)", "ℓ⁴ B"),
    "pdf": ("ν", "PDF"),
    "peaks": ("ν", "peaks per patch"),
    "minima": ("ν", "minima per patch"),
    "v0": ("ν", "V0"),
    "v1": ("ν", "V1 [arcmin⁻¹]"),
    "v2": ("ν", "V2 [arcmin⁻²]"),
}


def _centres(edges: np.ndarray, *, log: bool) -> np.ndarray:
    if log:
        return np.sqrt(edges[1:] * edges[:-1])
    return 0.5 * (edges[1:] + edges[:-1])


def _abscissa(merged: MergedResults, name: str) -> np.ndarray:
    s = merged.settings
    if name == "cl":
        return _centres(s.ell_edges, log=True)
    if name.startswith("bispectrum"):
        return _centres(s.bispectrum_edges, log=True)
    return s.nu_centers


def _keys_of(summary: SetSummary, name: str) -> list[str]:
    return [key for key in summary.summaries if key.split("/", 1)[0] == name]


def _setting(key: str) -> str:
    return key.split("/", 1)[1].replace("/", " ").replace("smoothing=", "σ=")


def _grid(count: int, *, width: float = 4.0, height: float = 3.2) -> tuple[Any, list[Any]]:
    columns = min(_COLUMNS, count)
    rows = -(-count // columns)
    figure = Figure(figsize=(width * columns, height * rows))
    # Fixed margins: a constrained layout would double the drawing time.
    figure.subplots_adjust(left=0.06, right=0.97, bottom=0.07, top=0.92, wspace=0.3, hspace=0.45)
    axes = [figure.add_subplot(rows, columns, i + 1) for i in range(count)]
    return figure, axes


def _save(figure: Any, path: Path) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())
    return path


def _statistics_figure(merged: MergedResults) -> Any:
    main = merged.main_set
    names = list(merged.settings.statistics)
    figure, axes = _grid(len(names))
    figure.suptitle(
        f"{main.name}: mean over {main.n_patches} patches, error bars = patch-to-patch scatter"
    )
    for axis, name in zip(axes, names, strict=True):
        x = _abscissa(merged, name)
        for key in _keys_of(main, name):
            ensemble = main.summaries[key]
            mean, std = ensemble.mean, ensemble.std
            if name == "cl":
                factor = x**2 / (2 * np.pi)
                mean, std = mean * factor, std * factor
            elif name.startswith("bispectrum"):
                mean, std = mean * x**4, std * x**4
            axis.errorbar(x, mean, yerr=std, capsize=2, marker=".", label=_setting(key))
        if name == "cl":
            axis.set_xscale("log")
            axis.set_yscale("log")
        elif name.startswith("bispectrum"):
            axis.set_xscale("log")
            axis.axhline(0.0, color="0.6", lw=0.8)
        xlabel, ylabel = _LABELS[name]
        axis.set(title=name, xlabel=xlabel, ylabel=ylabel)
        axis.legend(fontsize="x-small")
    return figure


def _correlation_figure(merged: MergedResults) -> Any:
    main = merged.main_set
    names = list(merged.settings.statistics)
    figure, axes = _grid(len(names), width=3.6, height=3.4)
    figure.suptitle(f"{main.name}: correlation matrices ({main.n_patches} patches)")
    image = None
    for axis, name in zip(axes, names, strict=True):
        key = _keys_of(main, name)[0]
        matrix = np.ma.masked_invalid(main.summaries[key].correlation)
        image = axis.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r", origin="lower")
        axis.set(title=key, xlabel="bin", ylabel="bin")
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.6, label="correlation", pad=0.02)
    return figure


def _ssc_figure(merged: MergedResults) -> Any:
    names = list(merged.settings.statistics)
    figure, axes = _grid(len(names))
    compared = merged.comparisons[0].comparison
    sub, per = merged.sets[compared.numerator], merged.sets[compared.denominator]
    title = (
        "sub-patches / variance of periodic patches"
        if (compared.numerator, compared.denominator) == ("subpatches", "periodic")
        else f"{compared.numerator} / variance of {compared.denominator}"
    )
    figure.suptitle(f"SSC: variance of {title} ({sub.n_patches} + {per.n_patches} patches)")
    for axis, name in zip(axes, names, strict=True):
        x = _abscissa(merged, name)
        for key in _keys_of(sub, name):
            (line,) = axis.plot(x, merged.ssc_ratio[key], marker="o", ms=3, label=_setting(key))
            low, high = merged.comparisons[0].compared.statistics[key].variance_ratio_interval
            axis.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
        if name == "cl" or name.startswith("bispectrum"):
            axis.set_xscale("log")
        axis.set_yscale("log")
        axis.axhline(1.0, color="k", lw=0.8, ls="--")
        axis.set(title=name, xlabel=_LABELS[name][0], ylabel="variance ratio")
        axis.legend(fontsize="x-small")
    return figure


def draw_figures(merged: MergedResults, directory: Path) -> list[Path]:
    """Draw the run's figures into ``directory``; return their paths (none without matplotlib)."""
    if Figure is None:
        _log.info('matplotlib is not installed: no figures (pip install "lensing-ssc[plot]")')
        return []
    directory.mkdir(parents=True, exist_ok=True)
    drawers: list[tuple[str, Callable[[MergedResults], Any]]] = [
        ("statistics.png", _statistics_figure),
        ("correlation.png", _correlation_figure),
    ]
    if merged.ssc_ratio:
        drawers.append(("ssc_ratio.png", _ssc_figure))
    return [_save(draw(merged), directory / name) for name, draw in drawers]

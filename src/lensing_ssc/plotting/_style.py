"""Colours, axis labels with units, and tick labels for the figures of :mod:`._draw`.

Labels spell the settings as the field writes them (``n_gal = 30 arcmin⁻²``,
``σ_s = 2′``) and each statistic with its units (``docs/analysis.md``, "Conventions and
units"). Log axes get plain tick labels (``0.95``, ``3000``, ``10⁻⁵``), never
matplotlib's ``9.5×10⁻¹``, and curve axes make ticks only where they draw them. Nothing
here imports matplotlib at import time.
"""

from __future__ import annotations

import functools
import importlib
import math
from typing import Any

import numpy as np

__all__ = [
    "OKABE_ITO",
    "colour",
    "in_view_ticks",
    "matplotlib_module",
    "plain_log_ticks",
    "setting_label",
    "statistic_label",
    "x_label",
]

OKABE_ITO = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#000000",  # black
)
"""Okabe & Ito (2008) colours, distinct under the common colour-vision deficiencies; their
yellow is left out, too pale on white."""

LINESTYLES = ("-", "--", "-.", ":")

_Y_LABELS = {
    "cl": "ℓ² C_ℓ / 2π",
    "bispectrum_equilateral": "ℓ⁴ B (equilateral)",
    "bispectrum_isosceles": "ℓ⁴ B (isosceles)",
    "bispectrum_squeezed": "ℓ⁴ B (squeezed)",
    "pdf": "PDF of ν [per unit ν]",
    "peaks": "peaks per patch per ν bin",
    "minima": "minima per patch per ν bin",
    "v0": "V₀ [1]",
    "v1": "V₁ [arcmin⁻¹]",
    "v2": "V₂ [arcmin⁻²]",
}

_TITLES = {
    "cl": "power spectrum C_ℓ",
    "bispectrum_equilateral": "bispectrum, equilateral",
    "bispectrum_isosceles": "bispectrum, isosceles",
    "bispectrum_squeezed": "bispectrum, squeezed",
    "pdf": "PDF",
    "peaks": "peak counts",
    "minima": "minimum counts",
    "v0": "Minkowski V₀",
    "v1": "Minkowski V₁",
    "v2": "Minkowski V₂",
}


def matplotlib_module(name: str) -> Any:
    """Import ``matplotlib.<name>``, or raise one line naming the extra to install."""
    try:
        return importlib.import_module(f"matplotlib.{name}")
    except ImportError as exc:
        raise ModuleNotFoundError(
            'lensing_ssc.plotting needs matplotlib: pip install "lensing-ssc[plot]"',
            name="matplotlib",
        ) from exc


def colour(index: int) -> str:
    """The ``index``-th colour of the palette, cycling."""
    return OKABE_ITO[index % len(OKABE_ITO)]


def setting_label(n_gal: float, smoothing: float | None) -> str:
    """``n_gal = 30 arcmin⁻², σ_s = 2′`` (``no shape noise`` for n_gal = 0).

    Example:
        >>> setting_label(30, 2.0), setting_label(0, None)
        ('n_gal = 30 arcmin⁻², σ_s = 2′', 'no shape noise')
    """
    noise = "no shape noise" if n_gal == 0 else f"n_gal = {n_gal:g} arcmin⁻²"
    return noise if smoothing is None else f"{noise}, σ_s = {smoothing:g}′"


def statistic_label(name: str) -> tuple[str, str]:
    """``(title, y label with units)`` of a statistic's mean."""
    return _TITLES.get(name, name), _Y_LABELS.get(name, name)


def x_label(variable: str) -> str:
    """The abscissa label of ℓ or ν bins, with units."""
    return "multipole ℓ [rad⁻¹]" if variable == "ℓ" else "ν = κ / σ_ref [1]"


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def plain_number(value: float) -> str:
    """A tick label without ``×10``: ``0.95``, ``3000``, ``10⁻⁵``, ``2e-05``.

    Example:
        >>> [plain_number(v) for v in (0.95, 3000.0, 1e-5, 2e-5, 0.0)]
        ['0.95', '3000', '10⁻⁵', '2e-05', '0']
    """
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e5:
        return f"{value:g}"
    exponent = round(math.log10(magnitude))
    if abs(magnitude / 10.0**exponent - 1) < 1e-9:
        sign = "-" if value < 0 else ""
        return f"{sign}10{str(exponent).translate(_SUPERSCRIPTS)}"
    return f"{value:.0e}" if abs(value / float(f"{value:.0e}") - 1) < 1e-9 else f"{value:.2g}"


@functools.cache
def _in_view(kind: str) -> Any:
    """matplotlib's ``kind`` locator (``"LogLocator"``, ``"AutoLocator"``), returning only
    the ticks inside the view.

    matplotlib makes a tick (five artists) for every location a locator returns, drawn or
    not; ``LogLocator`` returns a decade beyond each end of the view (for ℓ from 300 to
    3000, 45 ticks made to draw 9) and ``AutoLocator`` a step beyond. The ticks drawn are
    the same.
    """
    base: Any = getattr(matplotlib_module("ticker"), kind)

    class InView(base):
        def tick_values(self, vmin: float, vmax: float) -> Any:
            ticks = np.asarray(super().tick_values(vmin, vmax))
            low, high = sorted((vmin, vmax))
            slack = 1e-9 * (high - low)
            return ticks[(ticks >= low - slack) & (ticks <= high + slack)]

    InView.__name__ = InView.__qualname__ = f"InView{kind}"
    return InView


@functools.cache
def _plain_log_locator() -> Any:
    """The in-view ``LogLocator`` at 1, 2, 5 × 10ⁿ, keeping only the decades where those
    are more than the axis has room for (over four decades their labels would overlap), and
    giving way to evenly spaced values (1.2, 1.4, …) where the view spans so little that
    fewer than three of them fall in it (a variance ratio from 0.9 to 1.6 showed only 1)."""

    base: Any = _in_view("LogLocator")
    ticker = matplotlib_module("ticker")

    class PlainLogLocator(base):
        def tick_values(self, vmin: float, vmax: float) -> Any:
            ticks = super().tick_values(vmin, vmax)
            low, high = sorted((vmin, vmax))
            if len(ticks) < 3 and low > 0:
                even = ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
                even = even[(even >= low) & (even <= high)]
                if len(even) >= 3:
                    return even
            room = 9 if self.axis is None else self.axis.get_tick_space()
            decades = ticks[np.isclose(ticks, 10.0 ** np.round(np.log10(ticks)))]
            return decades if len(ticks) > room and len(decades) >= 2 else ticks

    return PlainLogLocator


def in_view_ticks(axes: Any) -> None:
    """Give ``axes``' linear x and y axes matplotlib's default ticks, made only in view.

    Example:
        >>> from matplotlib.figure import Figure
        >>> axes = Figure().add_subplot()
        >>> _ = axes.plot([1, 9], [0, 1])  # the view is 0.6 to 9.4
        >>> in_view_ticks(axes)
        >>> axes.xaxis.get_major_locator()().tolist()  # without 0 and 10
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    """
    axes.xaxis.set_major_locator(_in_view("AutoLocator")())
    axes.yaxis.set_major_locator(_in_view("AutoLocator")())


def plain_log_ticks(axis: Any, which: str) -> None:
    """Label a log ``which`` axis (``"x"``/``"y"``) at 1, 2, 5 × 10ⁿ with plain numbers.

    Over more decades than the axis has room for, only 10ⁿ are labelled; the other
    multiples are minor ticks. Over less than a factor of ~3, evenly spaced values are.

    Example:
        >>> from matplotlib.figure import Figure
        >>> axes = Figure(figsize=(4, 3)).add_subplot()
        >>> _ = axes.loglog([300, 3000], [0.005, 1000])
        >>> plain_log_ticks(axes, "x"), plain_log_ticks(axes, "y")
        (None, None)
        >>> [plain_number(v) for v in axes.xaxis.get_major_locator()()]
        ['500', '1000', '2000']
        >>> [plain_number(v) for v in axes.yaxis.get_major_locator()()]  # six decades
        ['0.01', '0.1', '1', '10', '100', '1000']
        >>> _ = axes.set_ylim(0.9, 1.6)  # 1, 2, 5 × 10ⁿ would label only 1
        >>> [plain_number(v) for v in axes.yaxis.get_major_locator()()]
        ['1', '1.2', '1.4', '1.6']
    """
    ticker = matplotlib_module("ticker")
    target = axis.xaxis if which == "x" else axis.yaxis
    target.set_major_locator(_plain_log_locator()(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: plain_number(v)))
    # Minor ticks where a major one is are not drawn (matplotlib removes overlapping ones).
    minor = _in_view("LogLocator")(base=10, subs=tuple(float(n) for n in range(2, 10)))
    target.set_minor_locator(minor)
    target.set_minor_formatter(ticker.NullFormatter())

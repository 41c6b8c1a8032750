"""Panel layouts in inches: where each panel of :mod:`._draw` and :mod:`._tomography` goes.

matplotlib's constrained layout lays a figure out by drawing it all once, every tick and
label, before the real draw; for a run's three figures that was 40 % of their ~5 s
(160 tight bounding boxes, 2680 tick updates). Here the figures have no layout engine and
a save draws once. Panels of curves sit on a grid of equal cells (:func:`panel_axes`) whose
titles and x labels get fixed room above and below; :func:`fit_margins` then gives each
column the room its y tick labels need on the left and its last x tick label on the right,
measured from the labels the axis will draw (its locator and formatter and the font's
widths, without drawing), and makes every panel as wide as the others, as constrained
layout did. Correlation matrices are squares of fixed margins with a colour bar after them
(:func:`matrix_axes`): their labels are bin centres, at most five digits. Every size below
was measured on a run's figures at 10 pt (a line is 0.17 in high, a digit 0.088 in wide).

What is *not* here: what goes on a panel (:mod:`._draw`, :mod:`._tomography`), and which
panels make a run's figures (:mod:`._run_figures`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lensing_ssc.plotting._style import in_view_ticks, matplotlib_module

__all__ = [
    "CURVE_MARGINS",
    "HEADING",
    "Margins",
    "fit_margins",
    "headed",
    "matrix_axes",
    "matrix_width",
    "new_figure",
    "panel_axes",
    "size_inches",
]


@dataclass(frozen=True)
class Margins:
    """Space in inches kept around a panel's axes for its labels.

    Example:
        >>> Margins(left=1.0, right=0.2, top=0.55, bottom=0.55).left
        1.0
    """

    left: float
    right: float
    top: float
    bottom: float


CURVE_MARGINS = Margins(left=1.0, right=0.25, top=0.45, bottom=0.5)
"""Around a panel of curves until :func:`fit_margins` sets its sides: left for y tick
labels of eight characters such as ``0.000175`` (with ticks and y label, 0.97 in); right
for half of a four-digit last x tick label; top for a two-line title with the ``1e-5``
offset beside it (0.38 in); bottom for the x tick labels and the x label (0.44 in)."""

HEADING = 0.35
"""The band in inches at the top of a figure for its one-line heading."""

# Left of a curve's y tick labels: ticks and their pad (7 pt), the y label's pad (4 pt) and
# line (12 pt), and a pad to spare; 0.000175 measured 0.66 in + 0.31 in.
_Y_LABEL_ROOM = 0.36
_PAD = 0.04  # between a panel's labels and its neighbour's: constrained layout's 3 pt
_NARROWEST = 1.0  # inches of panel that fit_margins leaves however long the labels

# Around each correlation matrix; measured on a run's figures in brackets.
_MATRIX_LEFT = 0.8  # bin-centre labels up to five digits, ticks and the y label (0.66 in)
_MATRIX_TOP = 0.3  # a one-line title (0.19 in)
_MATRIX_BOTTOM = {False: 0.55, True: 0.75}  # upright / 45°-rotated x tick labels (0.65 in)
_MATRIX_GAP = 0.15  # right of each matrix, before the next one's labels or the colour bar
_BAR_WIDTH = 0.15
_BAR_RIGHT = 0.75  # the colour bar's tick labels and label (0.64 in)
_BAR_SHRINK = 0.85  # the colour bar's height over the matrices'


def new_figure(width: float, height: float) -> Any:
    """A ``width`` × ``height`` inch Figure on the Agg canvas, with no layout engine.

    Example:
        >>> figure = new_figure(6.4, 4.4)
        >>> size_inches(figure), figure.get_layout_engine()
        ((6.4, 4.4), None)
    """
    figure = matplotlib_module("figure").Figure(figsize=(width, height))
    matplotlib_module("backends.backend_agg").FigureCanvasAgg(figure)
    return figure


def size_inches(figure: Any) -> tuple[float, float]:
    """The width and height in inches of a figure or sub-figure."""
    return float(figure.bbox.width / figure.dpi), float(figure.bbox.height / figure.dpi)


def _place(figure: Any, x: float, y: float, width: float, height: float) -> Any:
    """Axes at ``x``, ``y`` inches from the figure's lower left, ``width`` × ``height``."""
    total_w, total_h = size_inches(figure)
    return figure.add_axes((x / total_w, y / total_h, width / total_w, height / total_h))


def headed(figure: Any, text: str) -> Any:
    """Write ``text`` as the figure's heading, centred in the :data:`HEADING` band."""
    _, height = size_inches(figure)
    return figure.suptitle(text, fontsize="medium", y=1 - 0.08 / height, va="top")


def panel_axes(
    figure: Any,
    rows: int,
    columns: int,
    *,
    head: float = 0.0,
    width: float | None = None,
    count: int | None = None,
) -> list[Any]:
    """Axes for curves on a ``rows`` × ``columns`` grid of equal cells, row by row.

    Each keeps :data:`CURVE_MARGINS` inside its cell, and ticks only where it draws them
    (:func:`~._style.in_view_ticks`). Draw on them, then call :func:`fit_margins`.

    Args:
        figure: A figure or sub-figure.
        rows: Rows of cells, top row first.
        columns: Cells per row.
        head: Inches left free above the grid for a heading.
        width: Inches of the figure, from its left edge, that the grid fills; default all.
        count: How many cells get axes, from the first; default all.

    Example:
        >>> left, right = panel_axes(new_figure(9.2, 3.9), 1, 2)
        >>> [round(float(v) * 9.2, 2) for v in right.get_position().intervalx]
        [5.6, 8.95]
    """
    margins = CURVE_MARGINS
    total_w, total_h = size_inches(figure)
    cell_w = (total_w if width is None else width) / columns
    cell_h = (total_h - head) / rows
    cells = rows * columns if count is None else count
    axes = [
        _place(
            figure,
            (index % columns) * cell_w + margins.left,
            (rows - 1 - index // columns) * cell_h + margins.bottom,
            cell_w - margins.left - margins.right,
            cell_h - margins.top - margins.bottom,
        )
        for index in range(cells)
    ]
    for a in axes:
        in_view_ticks(a)
    return axes


def _label_widths(axis: Any, size_key: str) -> list[float]:
    """Inches of each tick label ``axis`` will draw, in order, measured without drawing."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * (high - low)
    locations = sorted(v for v in axis.get_major_locator()() if low - slack <= v <= high + slack)
    labels = axis.get_major_formatter().format_ticks(locations)
    size = importlib.import_module("matplotlib").rcParams[size_key]
    font = matplotlib_module("font_manager").FontProperties(size=size)
    measure = matplotlib_module("textpath").text_to_path.get_text_width_height_descent
    return [measure(text, font, ismath=False)[0] / 72 if text else 0.0 for text in labels]


def fit_margins(axes: Sequence[Any], columns: int) -> None:
    """Give each column of a grid the side margins its tick labels need, once drawn on.

    :func:`panel_axes` keeps room for y tick labels of eight characters and for half of a
    four-digit last x tick label; most are shorter (``0.4``, ``120``; ``3``). Each column's
    margins become what its labels need (longer ones, ``−0.000175``, included) and the
    columns share the grid's width so that every panel is as wide as the others.

    Args:
        axes: What :func:`panel_axes` returned (its first row full), everything drawn on.
        columns: The grid's cells per row.

    Example:
        >>> left, right = panel_axes(new_figure(9.2, 3.9), 1, 2)
        >>> _ = left.plot([0, 1], [0, 120]), right.plot([0, 1], [0, 0.4])
        >>> fit_margins([left, right], 2)
        >>> bool(left.get_position().width == right.get_position().width)
        True
    """
    margins = CURVE_MARGINS
    columns = min(columns, len(axes))
    lefts, rights = [], []
    for column in range(columns):
        placed = axes[column::columns]
        lefts.append(
            max(max(_label_widths(a.yaxis, "ytick.labelsize"), default=0.0) for a in placed)
            + _Y_LABEL_ROOM
        )
        last = [(_label_widths(a.xaxis, "xtick.labelsize") or [0.0])[-1] for a in placed]
        rights.append(max(last) / 2 + _PAD)
    total_w, _ = size_inches(axes[0].figure)
    grid_left = axes[0].get_position().x0 * total_w - margins.left
    grid_right = axes[columns - 1].get_position().x1 * total_w + margins.right
    width = max((grid_right - grid_left - sum(lefts) - sum(rights)) / columns, _NARROWEST)
    x = grid_left
    for column in range(columns):
        x += lefts[column]
        for a in axes[column::columns]:
            y0, height = a.get_position().y0, a.get_position().height
            a.set_position((x / total_w, y0, width / total_w, height))
        x += width + rights[column]


def _matrix_side(height: float, head: float, rotated: bool) -> float:
    return height - head - _MATRIX_TOP - _MATRIX_BOTTOM[rotated]


def matrix_width(figure: Any, count: int, *, head: float = 0.0, rotated: bool = False) -> float:
    """Inches that :func:`matrix_axes` needs for ``count`` squares as high as the figure allows.

    Example:
        >>> round(matrix_width(new_figure(15.0, 4.4), 1, head=HEADING), 2)
        5.05
    """
    _, total_h = size_inches(figure)
    return count * (_MATRIX_LEFT + _matrix_side(total_h, head, rotated) + _MATRIX_GAP) + (
        _BAR_WIDTH + _BAR_RIGHT
    )


def matrix_axes(
    figure: Any, count: int, *, head: float = 0.0, left: float = 0.0, rotated: bool = False
) -> tuple[list[Any], Any]:
    """``count`` square axes side by side, with a colour bar's axes after them.

    The squares are as large as the figure's part right of ``left`` allows, and centred in it.

    Args:
        figure: A figure or sub-figure.
        count: How many matrices.
        head: Inches left free at the top for a heading.
        left: Inches from the figure's left edge where the matrices' part begins.
        rotated: Whether the x tick labels are rotated 45° (they need more room below).

    Returns:
        The squares' axes, left to right, and the colour bar's axes.

    Example:
        >>> squares, bar = matrix_axes(new_figure(9.6, 4.4), 2, head=HEADING)
        >>> [round(float(a.get_position().width) * 9.6, 2) for a in squares]
        [3.2, 3.2]
    """
    total_w, total_h = size_inches(figure)
    extra = count * (_MATRIX_LEFT + _MATRIX_GAP) + _BAR_WIDTH + _BAR_RIGHT
    tallest = _matrix_side(total_h, head, rotated)
    side = max(0.1, min(tallest, (total_w - left - extra) / count))
    x = left + (total_w - left - extra - count * side) / 2
    y = _MATRIX_BOTTOM[rotated] + (tallest - side) / 2
    squares = []
    for _ in range(count):
        x += _MATRIX_LEFT
        squares.append(_place(figure, x, y, side, side))
        x += side + _MATRIX_GAP
    bar_height = _BAR_SHRINK * side
    bar = _place(figure, x, y + (side - bar_height) / 2, _BAR_WIDTH, bar_height)
    return squares, bar

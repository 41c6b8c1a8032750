"""Checks on user input shared by the analysis modules, each raising a precise ``AnalysisError``.

Covers flat patches (shape, dtype, NaNs), pixel sizes and positive scalars. HEALPix maps are
checked in :mod:`lensing_ssc.analysis.patches`; statistic settings in
:mod:`lensing_ssc.analysis.settings`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["MIN_PATCH_PIXELS", "check_patch", "check_pixel_size", "check_positive"]

MIN_PATCH_PIXELS = 8
"""Smallest patch side (pixels) the estimators accept: peaks need neighbours, bins need modes."""


def check_patch(patch: Any, *, name: str = "patch") -> np.ndarray:
    """Return ``patch`` as a float64 ``(n, n)`` array, or raise ``AnalysisError`` saying why not.

    Args:
        patch: Anything ``numpy.asarray`` accepts.
        name: How the error message refers to the input.
    """
    try:
        array = np.asarray(patch, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"{name} must be a 2-D array of numbers",
            value=type(patch).__name__,
            hint="pass a numpy array of shape (n, n)",
        ) from exc
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise AnalysisError(
            f"{name} must be a square 2-D array, got shape {array.shape}",
            value=array.shape,
            hint="pass one (n, n) patch at a time; cut rectangular maps into square patches",
        )
    if array.shape[0] < MIN_PATCH_PIXELS:
        raise AnalysisError(
            f"{name} is {array.shape[0]}×{array.shape[0]} pixels, fewer than "
            f"{MIN_PATCH_PIXELS}×{MIN_PATCH_PIXELS}",
            value=array.shape,
            hint="use patches with more pixels",
        )
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise AnalysisError(
            f"{name} contains {bad} NaN or infinite pixel(s)",
            value=bad,
            hint="fill or cut out masked pixels before computing statistics",
        )
    return array


def check_positive(value: Any, *, name: str, hint: str) -> float:
    """Return ``value`` as a finite float ``> 0``, or raise ``AnalysisError`` naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"{name} must be a number, got {value!r}", value=value, hint=hint
        ) from exc
    if not math.isfinite(number) or number <= 0.0:
        raise AnalysisError(f"{name} must be > 0, got {value!r}", value=value, hint=hint)
    return number


def check_pixel_size(pixel_size_arcmin: Any) -> float:
    """Return a validated pixel size in arcminutes."""
    return check_positive(
        pixel_size_arcmin,
        name="pixel_size_arcmin",
        hint="give the pixel side in arcminutes, e.g. 1.0",
    )

"""Checks on user input shared by the analysis modules, each raising a precise ``AnalysisError``.

Covers flat patches (shape, dtype, NaNs) one at a time (:func:`check_patch`, NumPy) or as a
stack of any array-API library (:func:`check_patch_stack`, NumPy, CuPy, ...), pixel sizes and
positive scalars. HEALPix maps are checked in :mod:`lensing_ssc.analysis.patches`; statistic
settings in :mod:`lensing_ssc.analysis.settings`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import is_array, namespace
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "MIN_PATCH_PIXELS",
    "check_patch",
    "check_patch_stack",
    "check_pixel_size",
    "check_positive",
]

MIN_PATCH_PIXELS = 8
"""Smallest patch side (pixels) the estimators accept: peaks need neighbours, bins need modes."""


def check_patch(patch: Any, *, name: str = "patch") -> np.ndarray:
    """Return ``patch`` as a float64 ``(n, n)`` NumPy array, or raise ``AnalysisError`` saying
    why not: :func:`check_patch_stack`'s checks, for exactly one patch.

    Args:
        patch: Anything ``numpy.asarray`` accepts.
        name: How the error message refers to the input.
    """
    stack, stacked = check_patch_stack(patch, name=name)
    if stacked:
        raise AnalysisError(
            f"{name} must be a square 2-D array, got shape {tuple(stack.shape)}",
            value=tuple(stack.shape),
            hint="pass one (n, n) patch at a time",
        )
    return np.asarray(stack[0])


def check_patch_stack(patch: Any, *, name: str = "patch") -> tuple[Any, bool]:
    """Return ``(stack, stacked)``: ``patch`` as a float64 ``(b, n, n)`` array of its library.

    ``patch`` is one ``(n, n)`` patch (``stacked`` is then ``False`` and ``b = 1``) or a stack
    ``(b, n, n)`` of patches, as a NumPy array (or anything ``numpy.asarray`` takes) or an
    array of any array-API library (CuPy, ...), which stays on its device. Raises
    ``AnalysisError`` saying what is wrong, as :func:`check_patch` does.
    """
    if type(patch) is not np.ndarray and is_array(patch):
        xp = namespace(patch)
        if not xp.isdtype(patch.dtype, ("real floating", "integral", "bool")):
            raise AnalysisError(
                f"{name} must be an array of real numbers, got dtype {patch.dtype}",
                value=str(patch.dtype),
                hint="pass float64 patches",
            )
        array = patch if patch.dtype == xp.float64 else xp.astype(patch, xp.float64)
    else:
        xp = None
        try:
            array = np.asarray(patch, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise AnalysisError(
                f"{name} must be an array of numbers",
                value=type(patch).__name__,
                hint="pass an (n, n) patch or an (n_patches, n, n) stack",
            ) from exc
    shape = tuple(int(size) for size in array.shape)
    if len(shape) not in (2, 3) or shape[-1] != shape[-2]:
        what = "a square 2-D array" if len(shape) == 2 else "an (n_patches, n, n) stack"
        raise AnalysisError(
            f"{name} must be {what}, got shape {shape}",
            value=shape,
            hint="pass an (n, n) patch or an (n_patches, n, n) stack; cut rectangular maps "
            "into square patches",
        )
    if shape[-1] < MIN_PATCH_PIXELS:
        raise AnalysisError(
            f"{name} is {shape[-1]}×{shape[-1]} pixels, fewer than "
            f"{MIN_PATCH_PIXELS}×{MIN_PATCH_PIXELS}",
            value=shape,
            hint="use patches with more pixels",
        )
    if shape[0] == 0:
        raise AnalysisError(
            f"{name} is a stack of no patches", value=shape, hint="pass at least one patch"
        )
    bad = _bad_pixels(array, xp)
    if bad:
        raise AnalysisError(
            f"{name} contains {bad} NaN or infinite pixel(s)",
            value=bad,
            hint="fill or cut out masked pixels before computing statistics",
        )
    if len(shape) == 3:
        return array, True
    return array[None, ...], False


def _bad_pixels(array: Any, xp: Any) -> int:
    """How many pixels of ``array`` are NaN or infinite (``xp`` ``None`` for NumPy)."""
    if xp is None:
        return 0 if np.isfinite(array).all() else int(np.count_nonzero(~np.isfinite(array)))
    if bool(xp.all(xp.isfinite(array))):
        return 0
    return int(xp.sum(xp.astype(~xp.isfinite(array), xp.int64)))


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

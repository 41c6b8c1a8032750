"""The two patch sets of a super-sample covariance (SSC) comparison.

* **Sub-patches**: large periodic fields cut into non-overlapping square tiles. Each tile
  carries Fourier modes longer than itself (its mean κ and gradients vary from tile to
  tile), and in a non-Gaussian field those long modes modulate the small-scale power.
* **Periodic patches**: independent fields of the tile's own size, pixel scale and power
  spectrum. They contain no mode longer than the patch.

The covariance of any statistic over the first set, divided by that over the second (see
:func:`lensing_ssc.analysis.covariance.covariance_ratio`), shows the super-sample
contribution: for lognormal fields the power-spectrum variance of sub-patches exceeds that
of periodic patches, increasingly so at high ℓ where the Gaussian variance is small
(Takada & Hu 2013; Li, Hu & Takada 2014). For Gaussian fields the ratio stays near 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lensing_ssc.analysis._validation import MIN_PATCH_PIXELS
from lensing_ssc.analysis.fields import gaussian_field, lognormal_field
from lensing_ssc.analysis.spectra import ConvergenceSpectrum
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["SSCPatchSets", "cut_subpatches", "ssc_patch_sets"]

FieldKind = Literal["gaussian", "lognormal"]


def cut_subpatches(field: np.ndarray, patch_pixels: int) -> np.ndarray:
    """Cut a square field into non-overlapping ``patch_pixels``-wide tiles, row by row.

    Args:
        field: ``(N, N)`` map, or a stack ``(k, N, N)`` cut field by field.
        patch_pixels: Side of each tile; must divide ``N``.

    Returns:
        ``(k · (N/patch_pixels)², patch_pixels, patch_pixels)`` tiles (copies).

    Example:
        >>> tiles = cut_subpatches(np.arange(256.0).reshape(16, 16), 8)
        >>> tiles.shape, tiles[1][0, :3].tolist()
        ((4, 8, 8), [8.0, 9.0, 10.0])
    """
    stack = np.asarray(field, dtype=float)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
        raise AnalysisError(
            f"field must be square, (N, N) or (k, N, N); got shape {stack.shape}",
            value=stack.shape,
            hint="pass square maps",
        )
    size = stack.shape[1]
    if patch_pixels < MIN_PATCH_PIXELS or size % patch_pixels:
        raise AnalysisError(
            f"patch_pixels={patch_pixels} must be ≥ {MIN_PATCH_PIXELS} and divide the field "
            f"side {size}",
            value=patch_pixels,
            hint="choose a divisor of the field side",
        )
    per_side = size // patch_pixels
    tiles = stack.reshape(stack.shape[0], per_side, patch_pixels, per_side, patch_pixels)
    return tiles.transpose(0, 1, 3, 2, 4).reshape(-1, patch_pixels, patch_pixels).copy()


@dataclass(frozen=True, eq=False)
class SSCPatchSets:
    """Matched patch sets of an SSC comparison (built by :func:`ssc_patch_sets`).

    Attributes:
        subpatches: ``(n, p, p)`` tiles cut from large fields (with super-sample modes).
        periodic: ``(n, p, p)`` independent periodic fields (without them).
        pixel_size_arcmin: Pixel side shared by both sets.
    """

    subpatches: np.ndarray
    periodic: np.ndarray
    pixel_size_arcmin: float


def ssc_patch_sets(
    *,
    kind: FieldKind,
    patch_pixels: int,
    pixel_size_arcmin: float,
    spectrum: ConvergenceSpectrum,
    patches_per_side: int,
    n_large_fields: int,
    rng: np.random.Generator,
    shift: float | None = None,
) -> SSCPatchSets:
    """Draw both patch sets with the same spectrum and pixel scale, equally many of each.

    Args:
        kind: ``"gaussian"`` or ``"lognormal"``.
        patch_pixels: Side of every patch.
        pixel_size_arcmin: Pixel side in arcmin.
        spectrum: C(ℓ) of the fields.
        patches_per_side: Each large field is ``patches_per_side × patch_pixels`` wide and
            yields ``patches_per_side²`` sub-patches.
        n_large_fields: How many large fields to draw.
        rng: The random generator.
        shift: Lognormal shift λ (required for ``kind="lognormal"``).

    Example:
        >>> from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
        >>> sets = ssc_patch_sets(kind="gaussian", patch_pixels=32, pixel_size_arcmin=2.0,
        ...                       spectrum=HalofitConvergenceSpectrum(), patches_per_side=2,
        ...                       n_large_fields=1, rng=np.random.default_rng(0))
        >>> sets.subpatches.shape == sets.periodic.shape == (4, 32, 32)
        True
    """
    if kind not in ("gaussian", "lognormal"):
        raise AnalysisError(
            f"unknown field kind {kind!r}", value=kind, hint="use 'gaussian' or 'lognormal'"
        )
    for name, value in (("patches_per_side", patches_per_side), ("n_large_fields", n_large_fields)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise AnalysisError(
                f"{name} must be a positive integer, got {value!r}",
                value=value,
                hint=f"use e.g. {name}=4",
            )
    lognormal_shift: float | None = None
    if kind == "lognormal":
        if shift is None:
            raise AnalysisError(
                "lognormal fields need a shift",
                value=None,
                hint="pass shift=-spectrum.minimum_convergence() or e.g. 0.05",
            )
        lognormal_shift = float(shift)

    def draw(size: int, count: int) -> np.ndarray:
        if lognormal_shift is not None:
            return lognormal_field(
                size, pixel_size_arcmin, spectrum, rng, shift=lognormal_shift, n_fields=count
            )
        return gaussian_field(size, pixel_size_arcmin, spectrum, rng, n_fields=count)

    large = draw(patch_pixels * int(patches_per_side), int(n_large_fields))
    subpatches = cut_subpatches(large, patch_pixels)
    periodic = draw(patch_pixels, subpatches.shape[0])
    return SSCPatchSets(
        subpatches=subpatches, periodic=periodic, pixel_size_arcmin=float(pixel_size_arcmin)
    )

"""The HEALPix recipe: one κ map (FITS) of a run, cut into non-overlapping gnomonic patches.

:class:`HealpixMap` is a small frozen value that pickles to workers, names its cache entry
and reads its map (and the run's mask) with healpy, imported only when a map is read. A map's
masked pixels (NaN, UNSEEN, zero in ``healpix.mask``) are handled by
:func:`lensing_ssc.analysis.cut_healpix_patches`: patches masked above
``healpix.max_masked_fraction`` are dropped, which :meth:`HealpixMap.cut` logs per map.

Not here: which files form which set and source redshift, and how many patches a run lost
to its mask, are planned and counted in :mod:`._inputs`; the synthetic and patch-file
recipes, and the :class:`~._map_recipes.MapTask` that places a map in its set, are in
:mod:`._map_recipes`; the geometry of the cut is :mod:`lensing_ssc.analysis`'s.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lensing_ssc.analysis import HealpixPatches, cut_healpix_patches, patch_centers
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._input_identity import Stamp, field_values

__all__ = ["HealpixMap"]

_FLOAT_BYTES = 8  # patches are float64, whatever the file holds

_log = logging.getLogger("lensing_ssc.pipelines")


@lru_cache(maxsize=16)
def _patch_count(patch_size_deg: float, n_points: int | None) -> int:
    return int(patch_centers(patch_size_deg, n_points)[0].size)


@dataclass(frozen=True)
class HealpixMap:
    """One HEALPix κ map (FITS), cut into non-overlapping gnomonic patches.

    ``mask`` (a FITS map, nonzero = observed; ``mask_stamp`` its
    :data:`~._input_identity.Stamp`) and the map's own NaN and UNSEEN pixels are masked;
    patches masked above ``max_masked_fraction`` are dropped (see
    :func:`lensing_ssc.analysis.cut_healpix_patches`).
    """

    path: str
    stamp: Stamp
    field: int
    patch_size_deg: float
    patch_pixels: int
    n_points: int | None
    interpolation: str
    mask: str | None = None
    mask_stamp: Stamp | None = None
    max_masked_fraction: float = 0.0

    def planned_patches(self) -> int:
        """Patches the map gives when none is dropped: the non-overlapping centres."""
        return _patch_count(self.patch_size_deg, self.n_points)

    @property
    def pixel_size_arcmin(self) -> float:
        """Flat-sky pixel side at the patch centres, 2 tan(s/2)/n."""
        return (
            2.0
            * math.tan(math.radians(self.patch_size_deg) / 2.0)
            / self.patch_pixels
            * (180.0 * 60.0 / math.pi)
        )

    def cache_key(self) -> tuple[Any, ...]:
        return ("healpix", *field_values(self))

    def estimated_bytes(self) -> int:
        """The map read as float64 (at most 4 × a float32 file) plus twice its patches."""
        return 4 * self.stamp[0] + 2 * self.output_bytes()

    def patch_bytes(self) -> int:
        """Bytes of one patch (float64)."""
        return self.patch_pixels**2 * _FLOAT_BYTES

    def output_bytes(self) -> int:
        """Bytes of all the map's patches: what the cache keeps of it."""
        return self.planned_patches() * self.patch_bytes()

    def load(self) -> np.ndarray:
        return self.cut().patches

    def cut(self) -> HealpixPatches:
        """The kept patches and where they were cut (``indices`` among the planned centres)."""
        sky = _read_healpix(self.path, self.field, "HEALPix map")
        mask = None if self.mask is None else _read_healpix(self.mask, 0, "HEALPix mask")
        centers = None
        if self.n_points is not None:
            centers = patch_centers(self.patch_size_deg, self.n_points)
        try:
            cut = cut_healpix_patches(
                sky,
                self.patch_size_deg,
                self.patch_pixels,
                centers=centers,
                interpolation="nearest" if self.interpolation == "nearest" else "bilinear",
                mask=mask,
                max_masked_fraction=self.max_masked_fraction,
            )
        except AnalysisError as exc:  # say which of the run's maps it was
            raise AnalysisError(
                f"HEALPix map {self.path!r}: {exc.message}", value=exc.value, hint=exc.hint
            ) from exc
        total = cut.n_dropped + len(cut.patches)
        if cut.n_dropped:
            _log.warning(
                "HEALPix map %s: %d of %d patches dropped, masked above max_masked_fraction=%g",
                self.path,
                cut.n_dropped,
                total,
                self.max_masked_fraction,
            )
        if not len(cut.patches):
            raise AnalysisError(
                f"HEALPix map {self.path!r}: all {total} patches are masked above "
                f"max_masked_fraction={self.max_masked_fraction:g}",
                value=self.path,
                hint="check the mask, or raise pipeline.healpix.max_masked_fraction",
            )
        return cut


def _read_healpix(path: str, field: int, what: str) -> np.ndarray:
    try:  # imported when needed: healpy costs ~0.8 s in every worker process otherwise
        import healpy
    except ImportError:
        raise ModuleNotFoundError(
            'reading HEALPix maps needs healpy: pip install "lensing-ssc[healpix]"'
        ) from None
    try:
        return np.asarray(healpy.read_map(path, field=field, dtype=np.float64))
    except (OSError, ValueError, IndexError, KeyError, TypeError) as exc:
        error = AnalysisError(
            f"cannot read {what} {path!r}: {exc}",
            value=path,
            hint="give a FITS file written by healpy.write_map (field = column number)",
        )
        error.retryable = isinstance(exc, OSError)  # a read may pass next time
        raise error from exc

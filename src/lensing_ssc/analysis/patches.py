"""Flat patches from HEALPix convergence maps, and flat patches read from ``.npy``/``.fits`` files.

HEALPix patches (needs the ``healpix`` extra: healpy, which brings astropy):

* centres on a spherical Fibonacci grid (González 2010): z_i = 1 − (2i+1)/N,
  φ_i = 2π i / Φ (Φ the golden ratio), evenly spread over the sphere;
* square patches of angular side s (deg, along the axes through the centre) on a grid that is
  uniform in the gnomonic (tangent-plane) projection, pixel size 2 tan(s/2)/n at the centre;
* only centres farther apart than twice the patch's circumradius atan(√2 tan(s/2)) are kept,
  so no two patches overlap whatever their orientation; by default N is chosen to maximise
  the number of patches kept;
* map values are read with bilinear interpolation (``healpy.get_interp_val``) or
  nearest-pixel lookup (``healpy.ang2pix``).

Masks (:func:`cut_healpix_patches`): NaN, ±inf and ``healpy.UNSEEN`` pixels are masked, and
so are the pixels where an optional mask map is zero (nonzero = observed). A patch pixel is
masked when any HEALPix pixel it is read from is (with bilinear interpolation: any of the
four neighbours with positive weight; nearest: its pixel). A patch whose masked fraction
exceeds ``max_masked_fraction`` (default 0: any masked pixel) is dropped and counted in
:attr:`HealpixPatches.n_dropped`; in a kept patch, masked pixels are set to the mean of the
patch's observed pixels, which leaves the patch mean unchanged but puts a flat plateau into
the map statistics (a spike in the PDF at the mean, no peaks inside it). A map with no
observed pixel raises ``AnalysisError``. Maps without masked pixels are cut as before.

Rows of a patch run south → north and columns west → east in the tangent plane (local
north up, east to the right). A gnomonic square needs s < 180°; larger requests raise
``AnalysisError``. Statistics of the patches are in :mod:`lensing_ssc.analysis.patch_statistics`.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._grid import ARCMIN
from lensing_ssc.analysis._validation import MIN_PATCH_PIXELS, check_patch
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "HealpixPatches",
    "cut_healpix_patches",
    "fibonacci_grid",
    "gnomonic_patch",
    "load_flat_patch",
    "patch_centers",
]

_EXTRA = 'pip install "lensing-ssc[healpix]"'
_GOLDEN = (1.0 + math.sqrt(5.0)) / 2.0


def _require(module: str, what: str) -> Any:
    """Import ``module`` ("healpy" or "astropy.io.fits") when first needed.

    Imported here rather than at the top: healpy pulls in astropy and matplotlib's
    projections (about 0.8 s), which every worker process of a run would otherwise pay at
    start-up although only HEALPix input needs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModuleNotFoundError(f"{what} needs healpy and astropy: {_EXTRA}") from None


def fibonacci_grid(n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (longitude, latitude) in degrees of ``n_points`` on a spherical Fibonacci grid."""
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise AnalysisError(
            f"n_points must be a positive integer, got {n_points!r}",
            value=n_points,
            hint="e.g. n_points=100",
        )
    i = np.arange(int(n_points))
    z = 1.0 - (2.0 * i + 1.0) / n_points
    lon = np.degrees((2.0 * math.pi * i / _GOLDEN) % (2.0 * math.pi))
    return lon, np.degrees(np.arcsin(z))


def _unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    return np.stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), axis=-1)


def _check_side(patch_size_deg: float) -> float:
    try:
        side = float(patch_size_deg)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"patch_size_deg must be a number, got {patch_size_deg!r}",
            value=patch_size_deg,
            hint="give the patch side in degrees",
        ) from exc
    if not (math.isfinite(side) and 0.0 < side < 180.0):
        raise AnalysisError(
            f"patch_size_deg={patch_size_deg!r} is larger than the sphere allows for a gnomonic "
            f"patch (or not positive)",
            value=patch_size_deg,
            hint="use 0 < patch_size_deg < 180; typical patches are 5–10 degrees",
        )
    return side


def _min_separation(side_deg: float) -> float:
    # Twice the angular circumradius of the gnomonic square, in radians.
    return 2.0 * math.atan(math.sqrt(2.0) * math.tan(math.radians(side_deg) / 2.0))


def _keep_separated(vectors: np.ndarray, separation: float) -> np.ndarray:
    # Fibonacci points are sorted by z, and |Δz| ≤ angular distance, so only points within
    # separation·N/2 positions of each other can conflict: scan those offsets, then drop greedily.
    n = vectors.shape[0]
    window = min(n - 1, math.ceil(separation * n / 2.0) + 1)
    cos_sep = math.cos(separation)
    neighbours: dict[int, list[int]] = {}
    for offset in range(1, window + 1):
        dots = np.einsum("ij,ij->i", vectors[:-offset], vectors[offset:])
        for i in np.flatnonzero(dots > cos_sep).tolist():
            neighbours.setdefault(i, []).append(i + offset)
    dropped = np.zeros(n, dtype=bool)
    for i in sorted(neighbours):
        if not dropped[i]:
            dropped[neighbours[i]] = True
    return np.flatnonzero(~dropped)


def patch_centers(
    patch_size_deg: float, n_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (lon, lat) in degrees of non-overlapping patch centres on a Fibonacci grid.

    Args:
        patch_size_deg: Angular side s of the square patches, 0 < s < 180.
        n_points: Size of the Fibonacci grid before removing overlapping centres; by default
            the size that keeps the most patches.

    Example:
        >>> lon, lat = patch_centers(10.0)
        >>> 150 <= lon.size <= 200
        True
    """
    side = _check_side(patch_size_deg)
    separation = _min_separation(side)
    if n_points is not None:
        lon, lat = fibonacci_grid(n_points)
        keep = _keep_separated(_unit_vectors(lon, lat), separation)
        return lon[keep], lat[keep]
    hexagonal = 4.0 * math.pi / (math.sqrt(3.0) / 2.0 * separation**2)
    best_lon, best_lat = np.empty(0), np.empty(0)
    for factor in np.linspace(0.55, 0.8, 16):
        lon, lat = fibonacci_grid(max(1, int(factor * hexagonal)))
        keep = _keep_separated(_unit_vectors(lon, lat), separation)
        if keep.size > best_lon.size:
            best_lon, best_lat = lon[keep], lat[keep]
    return best_lon, best_lat


def _healpix_array(healpix_map: Any) -> np.ndarray:
    hp = _require("healpy", "cutting HEALPix patches")
    array = np.asarray(healpix_map, dtype=np.float64)
    if array.ndim != 1 or not hp.isnpixok(array.size):
        raise AnalysisError(
            f"a HEALPix map must be 1-D with 12·nside² pixels, got shape {array.shape}",
            value=array.shape,
            hint="pass one map as read by healpy.read_map",
        )
    return array


def _observed(array: np.ndarray, mask: npt.ArrayLike | None) -> np.ndarray:
    """Boolean map of observed pixels: finite, not UNSEEN, and nonzero in ``mask``."""
    hp = _require("healpy", "cutting HEALPix patches")
    observed = np.isfinite(array) & (array != hp.UNSEEN)
    if mask is not None:
        weights = np.asarray(mask, dtype=np.float64)
        if weights.shape != array.shape:
            raise AnalysisError(
                f"the mask has shape {weights.shape}, the map {array.shape}",
                value=weights.shape,
                hint="give a mask of the map's nside and ordering (healpy.ud_grade changes nside)",
            )
        observed &= np.isfinite(weights) & (weights != 0) & (weights != hp.UNSEEN)
    return observed


def _check_healpix_map(healpix_map: Any) -> np.ndarray:
    hp = _require("healpy", "cutting HEALPix patches")
    array = _healpix_array(healpix_map)
    bad = ~np.isfinite(array) | (array == hp.UNSEEN)
    if bad.any():
        raise AnalysisError(
            f"the HEALPix map has {int(bad.sum())} NaN, infinite or UNSEEN pixels",
            value=int(bad.sum()),
            hint="fill masked pixels (e.g. with 0) before cutting, or cut with "
            "cut_healpix_patches, which masks them",
        )
    return array


def gnomonic_patch(
    healpix_map: np.ndarray,
    lon_deg: float,
    lat_deg: float,
    patch_size_deg: float,
    n_pixels: int,
    *,
    nest: bool = False,
    interpolation: Literal["bilinear", "nearest"] = "bilinear",
) -> np.ndarray:
    """Return the ``(n_pixels, n_pixels)`` gnomonic patch of ``healpix_map`` around one centre."""
    array = _check_healpix_map(healpix_map)
    return _project(
        array,
        lon_deg,
        lat_deg,
        _check_side(patch_size_deg),
        _check_pixels(n_pixels),
        nest,
        interpolation,
    )


def _check_pixels(n_pixels: int) -> int:
    if (
        isinstance(n_pixels, bool)
        or not isinstance(n_pixels, (int, np.integer))
        or n_pixels < MIN_PATCH_PIXELS
    ):
        raise AnalysisError(
            f"n_pixels must be an integer ≥ {MIN_PATCH_PIXELS}, got {n_pixels!r}",
            value=n_pixels,
            hint="e.g. n_pixels=256",
        )
    return int(n_pixels)


def _project(
    array: np.ndarray,
    lon_deg: float,
    lat_deg: float,
    side: float,
    n: int,
    nest: bool,
    interpolation: str,
) -> np.ndarray:
    hp = _require("healpy", "cutting HEALPix patches")
    half_width = math.tan(math.radians(side) / 2.0)
    coords = (np.arange(n) + 0.5) * (2.0 * half_width / n) - half_width
    lon0, lat0 = math.radians(lon_deg), math.radians(lat_deg)
    centre = _unit_vectors(np.array(lon_deg), np.array(lat_deg))
    east = np.array([-math.sin(lon0), math.cos(lon0), 0.0])
    north = np.array(
        [-math.sin(lat0) * math.cos(lon0), -math.sin(lat0) * math.sin(lon0), math.cos(lat0)]
    )
    vectors = (
        centre[None, None, :]
        + coords[None, :, None] * east[None, None, :]
        + coords[:, None, None] * north[None, None, :]
    )
    theta = np.arccos(vectors[..., 2] / np.linalg.norm(vectors, axis=-1))
    phi = np.arctan2(vectors[..., 1], vectors[..., 0]) % (2.0 * math.pi)
    nside = hp.npix2nside(array.size)
    if interpolation == "bilinear":
        values = hp.get_interp_val(array, theta.ravel(), phi.ravel(), nest=nest)
    elif interpolation == "nearest":
        values = array[hp.ang2pix(nside, theta.ravel(), phi.ravel(), nest=nest)]
    else:
        raise AnalysisError(
            f"unknown interpolation {interpolation!r}",
            value=interpolation,
            hint="use 'bilinear' or 'nearest'",
        )
    return np.asarray(values, dtype=np.float64).reshape(n, n)


@dataclass(frozen=True, eq=False)
class HealpixPatches:
    """Patches cut from one HEALPix map (built by :func:`cut_healpix_patches`).

    Attributes:
        patches: ``(n_patches, n, n)`` convergence patches.
        lon_deg: Longitudes of the centres.
        lat_deg: Latitudes of the centres.
        pixel_size_arcmin: Flat-sky pixel side at the patch centres, 2 tan(s/2)/n.
        masked_fraction: Fraction of masked (filled) pixels of each kept patch.
        n_dropped: Patches dropped for a masked fraction above ``max_masked_fraction``.
        indices: Each kept patch's index among the centres it was cut from: where it is,
            for matching the patches of two maps cut on the same centres.
    """

    patches: np.ndarray
    lon_deg: np.ndarray
    lat_deg: np.ndarray
    pixel_size_arcmin: float
    masked_fraction: np.ndarray
    n_dropped: int
    indices: np.ndarray


def cut_healpix_patches(
    healpix_map: np.ndarray,
    patch_size_deg: float,
    n_pixels: int,
    *,
    centers: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    nest: bool = False,
    interpolation: Literal["bilinear", "nearest"] = "bilinear",
    mask: npt.ArrayLike | None = None,
    max_masked_fraction: float = 0.0,
) -> HealpixPatches:
    """Cut non-overlapping gnomonic patches from a HEALPix κ map, dropping masked ones.

    Args:
        healpix_map: Sky map (RING order unless ``nest``); NaN, ±inf and UNSEEN pixels are
            masked.
        patch_size_deg: Angular side s of each square patch, 0 < s < 180.
        n_pixels: Pixels on a patch side.
        centers: (lon, lat) in degrees; default :func:`patch_centers` of ``patch_size_deg``.
        nest: Whether the map is in NESTED order.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        mask: Map of the same nside and ordering, nonzero where the sky is observed.
        max_masked_fraction: Drop a patch whose masked fraction is above this (0 ≤ f < 1);
            masked pixels of the patches kept are set to the mean of their observed pixels.

    Raises:
        AnalysisError: a bad map, mask, size or fraction, or a map with no observed pixel.

    Example:
        >>> import healpy as hp
        >>> sky = np.zeros(hp.nside2npix(16))
        >>> sky[: sky.size // 2] = hp.UNSEEN                   # the northern half is masked
        >>> cut = cut_healpix_patches(sky, 30.0, 16)
        >>> cut.n_dropped > 0, len(cut.patches) + cut.n_dropped == patch_centers(30.0)[0].size
        (True, True)
    """
    array = _healpix_array(healpix_map)
    side = _check_side(patch_size_deg)
    n = _check_pixels(n_pixels)
    limit = _check_fraction(max_masked_fraction)
    observed = _observed(array, mask)
    if not observed.any():
        raise AnalysisError(
            f"the HEALPix map is entirely masked ({array.size} pixels NaN, UNSEEN or outside "
            "the mask)",
            value=int(array.size),
            hint="check the map and its mask (nonzero = observed)",
        )
    lon, lat = (
        patch_centers(side)
        if centers is None
        else (np.asarray(centers[0], dtype=float), np.asarray(centers[1], dtype=float))
    )
    unobserved = None
    if not observed.all():
        array = np.where(observed, array, 0.0)
        unobserved = (~observed).astype(np.float64)
    kept: list[np.ndarray] = []
    keep = np.zeros(lon.size, dtype=bool)
    fractions: list[float] = []
    for i, (a, b) in enumerate(zip(lon, lat, strict=True)):
        values = _project(array, float(a), float(b), side, n, nest, interpolation)
        if unobserved is None:
            fraction = 0.0
        else:
            masked = _project(unobserved, float(a), float(b), side, n, nest, interpolation) > 0
            fraction = float(masked.mean())
            if fraction > limit:
                continue
            if fraction > 0:
                values[masked] = values[~masked].mean()
        keep[i] = True
        kept.append(values)
        fractions.append(fraction)
    patches = np.stack(kept) if kept else np.empty((0, n, n))
    pixel = 2.0 * math.tan(math.radians(side) / 2.0) / n / ARCMIN
    return HealpixPatches(
        patches=patches,
        lon_deg=lon[keep],
        lat_deg=lat[keep],
        pixel_size_arcmin=pixel,
        masked_fraction=np.array(fractions, dtype=np.float64),
        n_dropped=int(lon.size - keep.sum()),
        indices=np.flatnonzero(keep),
    )


def _check_fraction(value: float) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"max_masked_fraction must be a number, got {value!r}",
            value=value,
            hint="e.g. max_masked_fraction=0.1",
        ) from exc
    if not 0.0 <= fraction < 1.0:
        raise AnalysisError(
            f"max_masked_fraction must be in [0, 1), got {value!r}",
            value=value,
            hint="0 keeps only unmasked patches; a patch needs observed pixels to fill from",
        )
    return fraction


def load_flat_patch(path: str | Path) -> np.ndarray:
    """Read one square flat patch from a ``.npy`` or ``.fits`` file (first image HDU).

    FITS needs astropy, which the ``healpix`` extra installs. Raises ``AnalysisError`` for an
    unknown suffix, an unreadable file, a non-square image or NaNs.
    """
    file = Path(path)
    name = file.name.lower()
    if name.endswith(".npy"):
        data = _read(file, lambda: np.load(file, allow_pickle=False))
    elif name.endswith((".fits", ".fit", ".fts", ".fits.gz")):
        data = _read(file, lambda: _read_fits_image(file))
    else:
        raise AnalysisError(
            f"cannot read patches from {file.name!r}",
            value=str(file),
            hint="use a .npy or .fits file",
        )
    return check_patch(data, name=f"patch in {file.name}")


def _read(file: Path, reader: Any) -> Any:
    try:
        return reader()
    except (OSError, ValueError, TypeError) as exc:
        error = AnalysisError(
            f"cannot read {file}: {exc}",
            value=str(file),
            hint="check the path and that the file holds one numeric 2-D array",
        )
        error.retryable = isinstance(exc, OSError)  # a read may pass next time
        raise error from exc


def _read_fits_image(file: Path) -> np.ndarray:
    fits = _require("astropy.io.fits", "reading FITS patches")
    with fits.open(file) as hdus:
        for hdu in hdus:
            if hdu.data is not None and hdu.data.ndim >= 2:
                return np.array(hdu.data, dtype=np.float64)
    raise ValueError("the file holds no image HDU")

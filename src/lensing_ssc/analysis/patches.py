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


def _check_healpix_map(healpix_map: Any) -> np.ndarray:
    hp = _require("healpy", "cutting HEALPix patches")
    array = np.asarray(healpix_map, dtype=np.float64)
    if array.ndim != 1 or not hp.isnpixok(array.size):
        raise AnalysisError(
            f"a HEALPix map must be 1-D with 12·nside² pixels, got shape {array.shape}",
            value=array.shape,
            hint="pass one map as read by healpy.read_map",
        )
    bad = ~np.isfinite(array) | (array == hp.UNSEEN)
    if bad.any():
        raise AnalysisError(
            f"the HEALPix map has {int(bad.sum())} NaN, infinite or UNSEEN pixels",
            value=int(bad.sum()),
            hint="fill masked pixels (e.g. with 0) before cutting",
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
    """

    patches: np.ndarray
    lon_deg: np.ndarray
    lat_deg: np.ndarray
    pixel_size_arcmin: float


def cut_healpix_patches(
    healpix_map: np.ndarray,
    patch_size_deg: float,
    n_pixels: int,
    *,
    centers: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    nest: bool = False,
    interpolation: Literal["bilinear", "nearest"] = "bilinear",
) -> HealpixPatches:
    """Cut non-overlapping gnomonic patches from a HEALPix κ map.

    Args:
        healpix_map: Full-sky map (RING order unless ``nest``), finite everywhere.
        patch_size_deg: Angular side s of each square patch, 0 < s < 180.
        n_pixels: Pixels on a patch side.
        centers: (lon, lat) in degrees; default :func:`patch_centers` of ``patch_size_deg``.
        nest: Whether the map is in NESTED order.
        interpolation: ``"bilinear"`` or ``"nearest"``.
    """
    array = _check_healpix_map(healpix_map)
    side = _check_side(patch_size_deg)
    n = _check_pixels(n_pixels)
    lon, lat = (
        patch_centers(side)
        if centers is None
        else (np.asarray(centers[0], dtype=float), np.asarray(centers[1], dtype=float))
    )
    patches = np.stack(
        [
            _project(array, float(a), float(b), side, n, nest, interpolation)
            for a, b in zip(lon, lat, strict=True)
        ]
    )
    pixel = 2.0 * math.tan(math.radians(side) / 2.0) / n / ARCMIN
    return HealpixPatches(patches=patches, lon_deg=lon, lat_deg=lat, pixel_size_arcmin=pixel)


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

"""HEALPix maps as FITS files: read with their ordering and header, written with metadata.

The layout is the one healpy and the HEALPix libraries use: a binary table in the first
extension, ``PIXTYPE = 'HEALPIX'``, ``ORDERING`` (``RING`` or ``NESTED``), ``NSIDE``,
``INDXSCHM = 'IMPLICIT'``, the map in rows of 1024 pixels (one row when 12 nside² is not a
multiple of 1024). Files written here read back with ``healpy.read_map`` and the other way
round.

* :func:`read_healpix_map` returns the pixels as stored (no reordering, no float64 copy:
  one array in the file's dtype, made native-endian) with the nside, the ordering and the
  header's cards, so a caller can stream it into a map of another ordering or nside
  (:class:`lensing_ssc.analysis.born.ConvergenceAccumulator` does).
* :func:`read_healpix_header` reads only the header (shell ranges in ``Z_MIN``/``Z_MAX``).
* :func:`write_healpix_map` writes a map and extra header cards to a path or to an open
  binary file (``lensing_ssc.core.io.atomic_open`` makes the write atomic).

Needs the ``healpix`` extra (astropy). Partial-sky (``INDXSCHM = 'EXPLICIT'``) files are
refused.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["HealpixMap", "read_healpix_header", "read_healpix_map", "write_healpix_map"]

_ROW = 1024
HeaderCard = tuple[str, Any] | tuple[str, Any, str]


def _fits() -> Any:
    try:
        return importlib.import_module("astropy.io.fits")
    except ImportError:
        raise ModuleNotFoundError(
            'HEALPix FITS files need astropy: pip install "lensing-ssc[healpix]"'
        ) from None


@dataclass(frozen=True, eq=False)
class HealpixMap:
    """A HEALPix map as a file stores it.

    Attributes:
        values: The 12 nside² pixels, in the file's ordering and dtype (native-endian).
        nside: The resolution.
        nest: ``True`` for NESTED ordering, ``False`` for RING.
        header: The table header's cards (upper-case keys).
    """

    values: np.ndarray
    nside: int
    nest: bool
    header: dict[str, Any]


def _table_hdu(hdul: Any, path: Path) -> Any:
    if len(hdul) < 2:
        raise AnalysisError(
            f"{str(path)!r} has no binary table extension: not a HEALPix map file",
            value=str(path),
            hint="write maps with healpy.write_map or lensing_ssc.analysis.healpix_files",
        )
    return hdul[1]


@contextmanager
def _open_table(path: str | Path) -> Iterator[Any]:
    """The table HDU of a HEALPix map file, open (memory-mapped) inside the ``with``.

    An ``OSError`` from opening or from reading inside the ``with`` becomes an
    ``AnalysisError`` naming the file.
    """
    fits = _fits()
    target = Path(path)
    try:
        with fits.open(target, memmap=True) as hdul:
            hdu = _table_hdu(hdul, target)
            _check_complete(hdu, target)
            yield hdu
    except OSError as exc:
        raise AnalysisError(
            f"cannot read {str(target)!r} as FITS: {exc}",
            value=str(target),
            hint="check the path and that the file is a complete FITS file",
        ) from exc
    except UserWarning as exc:
        # astropy warns, rather than fails, when a file ends before its header says; with
        # warnings as errors (``-W error``) that warning is what reaches here.
        if "truncated" not in str(exc):
            raise
        raise _cut_short(target, str(exc)) from exc


def _check_complete(hdu: Any, path: Path) -> None:
    """Refuse a table whose data end past the end of the file (a copy cut short).

    astropy only warns, then fails on reading the data with ``TypeError: buffer is too
    small``, which says nothing of the file.
    """
    info = hdu.fileinfo()
    needed = int(info["datLoc"]) + int(info["datSpan"])
    size = path.stat().st_size
    if size < needed:
        raise _cut_short(path, f"{size} bytes, where its header needs {needed}")


def _cut_short(path: Path, detail: str) -> AnalysisError:
    return AnalysisError(
        f"{str(path)!r} is cut short: {detail}",
        value=str(path),
        hint="copy or write the file again (an interrupted transfer or a full disk)",
    )


def _geometry(header: Any, path: Path, npix_stored: int | None) -> tuple[int, bool]:
    ordering = str(header.get("ORDERING", "RING")).strip().upper()
    if ordering not in ("RING", "NESTED", "NEST"):
        raise AnalysisError(
            f"{str(path)!r}: ORDERING = {ordering!r} is neither RING nor NESTED",
            value=ordering,
            hint="fix the file's ORDERING card",
        )
    if str(header.get("INDXSCHM", "IMPLICIT")).strip().upper() != "IMPLICIT":
        raise AnalysisError(
            f"{str(path)!r} is a partial-sky (explicit index) map",
            value=str(path),
            hint="write the full-sky map, with zeros where the sky is empty",
        )
    nside = header.get("NSIDE")
    if nside is None and npix_stored is not None:
        nside = round(math.sqrt(npix_stored / 12))
    if nside is None or int(nside) < 1 or int(nside) & (int(nside) - 1):
        raise AnalysisError(
            f"{str(path)!r}: NSIDE = {nside!r} is not a power of 2",
            value=nside,
            hint="fix the file's NSIDE card",
        )
    return int(nside), ordering != "RING"


def read_healpix_header(path: str | Path) -> dict[str, Any]:
    """The header cards of a HEALPix map file's table (upper-case keys)."""
    with _open_table(path) as hdu:
        return dict(hdu.header)


def read_healpix_map(path: str | Path, *, field: int = 0) -> HealpixMap:
    """Read column ``field`` of a HEALPix map file, as stored (see the module).

    Raises:
        AnalysisError: not a FITS file, not a full-sky HEALPix map, or no such column.
    """
    target = Path(path)
    with _open_table(target) as hdu:
        columns = hdu.columns.names
        if not 0 <= field < len(columns):
            raise AnalysisError(
                f"{str(target)!r} has {len(columns)} column(s), no column {field}",
                value=field,
                hint=f"its columns: {', '.join(columns)}",
            )
        stored = hdu.data.field(field)
        values = np.ascontiguousarray(stored.ravel(), dtype=stored.dtype.newbyteorder("="))
        header = dict(hdu.header)
    nside, nest = _geometry(header, target, values.size)
    if values.size != 12 * nside * nside:
        raise AnalysisError(
            f"{str(target)!r} holds {values.size} pixels, not 12·{nside}² for its NSIDE",
            value=values.size,
            hint="the file is truncated or its NSIDE card is wrong",
        )
    return HealpixMap(values=values, nside=nside, nest=nest, header=header)


def write_healpix_map(
    target: str | Path | IO[bytes],
    values: npt.ArrayLike,
    *,
    nest: bool = False,
    header: Iterable[HeaderCard] = (),
    column: str = "SIGNAL",
    dtype: npt.DTypeLike = np.float32,
) -> None:
    """Write a full-sky HEALPix map (and extra header cards) as a FITS file.

    Args:
        target: A path (overwritten) or a binary file open for writing.
        values: The map, 12 nside² pixels.
        nest: Its ordering: NESTED if ``True``, RING otherwise.
        header: Extra ``(KEY, value)`` or ``(KEY, value, comment)`` cards.
        column: The table column's name.
        dtype: Stored dtype (``float32``, ``float64``, ``int32``, ...).

    Example:
        >>> cards = [("Z_MIN", 0.1)]
        >>> write_healpix_map("delta.fits", np.zeros(768), header=cards)  # doctest: +SKIP
    """
    fits = _fits()
    array = np.asarray(values, dtype=dtype)
    npix = array.size
    nside = round(math.sqrt(npix / 12))
    if array.ndim != 1 or 12 * nside * nside != npix or nside & (nside - 1):
        raise AnalysisError(
            f"a map of shape {array.shape} is not a HEALPix map",
            value=array.shape,
            hint="give a 1-D map of 12·nside² pixels",
        )
    width = _ROW if npix % _ROW == 0 else npix
    code = {"f4": "E", "f8": "D", "i4": "J", "i8": "K", "i2": "I"}.get(array.dtype.str[1:])
    if code is None:
        raise AnalysisError(
            f"dtype {array.dtype} cannot be written to a HEALPix FITS file",
            value=str(array.dtype),
            hint="use float32, float64, int16, int32 or int64",
        )
    col = fits.Column(name=column, format=f"{width}{code}", array=array.reshape(-1, width))
    hdu = fits.BinTableHDU.from_columns([col])
    cards = [
        ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
        ("ORDERING", "NESTED" if nest else "RING", "Pixel ordering scheme"),
        ("NSIDE", nside, "Resolution parameter of HEALPIX"),
        ("FIRSTPIX", 0, "First pixel # (0 based)"),
        ("LASTPIX", npix - 1, "Last pixel # (0 based)"),
        ("INDXSCHM", "IMPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
        ("OBJECT", "FULLSKY", "Sky coverage"),
    ]
    for card in [*cards, *header]:
        hdu.header[card[0]] = card[1:] if len(card) == 3 else card[1]
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(
        target if not isinstance(target, (str, Path)) else str(target), overwrite=True
    )

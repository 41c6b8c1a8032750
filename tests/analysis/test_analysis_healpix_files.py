"""Reading HEALPix FITS files: the header alone, the map, and the errors a bad file gives."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis.healpix_files import (
    read_healpix_header,
    read_healpix_map,
    write_healpix_map,
)
from lensing_ssc.core.base.exceptions import AnalysisError

fits = pytest.importorskip("astropy.io.fits")

READERS: list[Callable[[Path], Any]] = [read_healpix_map, read_healpix_header]


def test_the_header_alone_has_the_written_cards(tmp_path: Path) -> None:
    """read_healpix_header gives the extra cards and the geometry cards of a written map."""
    write_healpix_map(tmp_path / "m.fits", np.zeros(12 * 4**2), header=[("Z_MIN", 0.25)])
    header = read_healpix_header(tmp_path / "m.fits")
    assert header["Z_MIN"] == 0.25
    assert (header["NSIDE"], header["ORDERING"], header["PIXTYPE"]) == (4, "RING", "HEALPIX")


@pytest.mark.parametrize("read", READERS)
def test_a_file_that_is_not_fits_is_one_analysis_error_naming_it(
    tmp_path: Path, read: Callable[[Path], Any]
) -> None:
    """A text file read as a map or a header: AnalysisError with the path, from the OSError."""
    path = tmp_path / "notes.fits"
    path.write_text("not a FITS file\n")
    with pytest.raises(AnalysisError, match=r"cannot read '.*notes\.fits' as FITS") as info:
        read(path)
    assert info.value.value == str(path)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("read", READERS)
def test_a_missing_file_is_the_same_error(tmp_path: Path, read: Callable[[Path], Any]) -> None:
    """A path with no file: the same AnalysisError, its cause the FileNotFoundError."""
    with pytest.raises(AnalysisError, match="as FITS") as info:
        read(tmp_path / "nowhere.fits")
    assert info.value.value == str(tmp_path / "nowhere.fits")
    assert isinstance(info.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize("read", READERS)
def test_a_fits_file_without_a_table_is_not_a_healpix_map(
    tmp_path: Path, read: Callable[[Path], Any]
) -> None:
    """An image-only FITS file is refused as having no binary table, not as unreadable."""
    path = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(path)
    with pytest.raises(AnalysisError, match="has no binary table extension") as info:
        read(path)
    assert info.value.value == str(path)


def test_a_missing_column_names_the_columns_there_are(tmp_path: Path) -> None:
    """Column 3 of a one-column map: AnalysisError naming the field and listing the columns."""
    path = tmp_path / "m.fits"
    write_healpix_map(path, np.zeros(12 * 4**2), column="KAPPA")
    with pytest.raises(AnalysisError, match=r"has 1 column\(s\), no column 3") as info:
        read_healpix_map(path, field=3)
    assert info.value.value == 3
    assert "its columns: KAPPA" in str(info.value)


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("warnings_as", ["error", "ignore"])
def test_a_file_cut_short_is_one_analysis_error_saying_so(
    tmp_path: Path, read: Callable[[Path], Any], warnings_as: str
) -> None:
    """Half of a map file (an interrupted copy): AnalysisError saying it is cut short, with
    warnings as errors or ignored, instead of astropy's 'buffer is too small' TypeError."""
    whole, path = tmp_path / "whole.fits", tmp_path / "half.fits"
    write_healpix_map(whole, np.arange(12 * 32**2, dtype=np.float32))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter(warnings_as)
        with pytest.raises(AnalysisError, match=r"half\.fits' is cut short") as info:
            read(path)
    assert info.value.value == str(path)
    assert "copy or write the file again" in str(info.value)

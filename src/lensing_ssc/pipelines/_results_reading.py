"""Reading a results file from disk: :func:`read_results`, for HDF5 and NPZ files.

:func:`read_results` opens either format, checks it is a results file (its ``meta/...``
entries), decodes the JSON metadata and returns a :class:`._results_file.ResultsFile`; a
missing, damaged or foreign file is one :class:`~lensing_ssc.core.base.exceptions.AnalysisError`
naming the file and what was expected. What the paths mean is in :mod:`._results_file` and
:mod:`._results_views`; the writer and the layout are in :mod:`._results`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._results_file import ResultsFile
from lensing_ssc.processing.managers import RunDir

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

__all__ = ["read_results"]

_RESULTS_FILE = (
    "`lensing-ssc run` writes "
    + str(RunDir("<run_dir>").results / "patch_statistics.h5")
    + " or .npz"
)
_META_KEYS = ("config", "settings", "failures", "sets")
# Written since masks, ν normalisation, named comparisons and units were recorded; decoded
# when present.
_OPTIONAL_META_KEYS = (
    "dropped_patches",
    "nu_normalisation",
    "comparisons",
    "datasets",
    "tomography",
)


def _unreadable(file: Path, reason: str) -> AnalysisError:
    return AnalysisError(
        f"cannot read results file {str(file)!r}: {reason}",
        value=str(file),
        hint=f"expected a results file: {_RESULTS_FILE}",
    )


def _read_npz(file: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Opened here, not by np.load: it leaves its own handle open when the archive is damaged.
    with file.open("rb") as handle:
        data = np.load(handle, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise _unreadable(file, "it holds a single .npy array, not an NPZ archive")
        with data:
            for key in data.files:
                out[key] = data[key] if not key.startswith("meta/") else str(data[key])
    return out


def _read_hdf5(file: Path) -> dict[str, Any]:
    if h5py is None:
        raise ModuleNotFoundError('HDF5 results need h5py: pip install "lensing-ssc[hdf5]"')
    out: dict[str, Any] = {}
    datasets: dict[str, dict[str, str]] = {}

    def visit(name: str, node: Any) -> None:
        if isinstance(node, h5py.Dataset):
            out[name] = node[()]
            if "units" in node.attrs:
                datasets[name] = {
                    "units": _text(node.attrs["units"]),
                    "description": _text(node.attrs.get("description", "")),
                }

    with h5py.File(file, "r") as handle:
        handle.visititems(visit)
        meta = handle.get("meta")
        for key, text in meta.attrs.items() if meta is not None else ():
            out[f"meta/{key}"] = _text(text)
    if datasets:
        out["meta/datasets"] = json.dumps(datasets)
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else bytes(value).decode()


def read_results(path: str | Path) -> ResultsFile:
    """Read a results file (HDF5 or NPZ) into a :class:`ResultsFile`.

    It maps every dataset path to its array and ``meta/...`` to its value: ``meta/config``,
    ``meta/settings``, ``meta/failures``, ``meta/sets`` and (in files that have them)
    ``meta/dropped_patches``, ``meta/nu_normalisation``, ``meta/comparisons`` and
    ``meta/datasets`` (units and description per path) are decoded from JSON;
    ``meta/lensing_ssc_version`` is a string. A ``.npz`` suffix is read as NPZ, anything
    else as HDF5.

    Example:
        >>> results = read_results("runs/default/results/patch_statistics.h5")  # doctest: +SKIP
        >>> results["ssc/cl/ngal=0/variance_ratio"]  # doctest: +SKIP
        >>> results.summary("cl/ngal=30", "subpatches").binning.centers  # doctest: +SKIP

    Raises:
        AnalysisError: the file is missing, unreadable, not HDF5/NPZ, or not a results file
            (no ``meta/...`` entries); the underlying error is chained.
        ModuleNotFoundError: an HDF5 file without h5py installed.
    """
    file = Path(path)
    kind = "NPZ" if file.suffix == ".npz" else "HDF5"
    try:
        out = _read_npz(file) if kind == "NPZ" else _read_hdf5(file)
    except AnalysisError:
        raise
    except FileNotFoundError as exc:
        raise AnalysisError(
            f"results file {str(file)!r} does not exist",
            value=str(file),
            hint=f"check the path: {_RESULTS_FILE}",
        ) from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # OSError: unreadable, a directory, or not HDF5 ("file signature not found");
        # ValueError/BadZipFile/EOFError: not an NPZ archive, or a truncated one.
        raise _unreadable(file, f"not a readable {kind} file ({exc})") from exc
    missing = [key for key in _META_KEYS if f"meta/{key}" not in out]
    if missing:
        raise _unreadable(
            file, f"a {kind} file without the meta/{missing[0]} entry of a lensing-ssc results file"
        )
    for key in (*_META_KEYS, *(k for k in _OPTIONAL_META_KEYS if f"meta/{k}" in out)):
        try:
            out[f"meta/{key}"] = json.loads(out[f"meta/{key}"])
        except json.JSONDecodeError as exc:
            raise _unreadable(file, f"meta/{key} is not valid JSON ({exc})") from exc
    return ResultsFile(out, file)

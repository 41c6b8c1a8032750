"""A results file as an :class:`xarray.Dataset`: labelled dimensions, bin coordinates, units.

:func:`results_to_xarray` (``ResultsFile.to_xarray()``) lays every number of a results file
that shares a shape out on named dimensions:

========================  ==============================================================
dimension                 coordinate
========================  ==============================================================
``set``                   configured sets (``bigbox``, ``subpatches``)
``z_s``                   source redshifts (only when a set has one)
``n_gal``                 galaxy densities, arcmin⁻²
``smoothing``             smoothing scales σ_s, arcmin (map statistics only)
``ell``, ``ell_b``, ``nu``  bin centres of C_ℓ, the bispectra and the ν statistics, with
                          ``<dim>_low`` and ``<dim>_high`` (each bin's edges) beside them
``ell_2``, ...            the second axis of a covariance (same coordinates)
``pair``                  compared pairs of sets (``bigbox~tiled``)
``bound``                 ``low``, ``high`` of an interval
``role``                  ``numerator``, ``denominator`` of a per-set quantity
``z_s_2``                 the second redshift of a cross spectrum
========================  ==============================================================

Variables are named ``<statistic>_<quantity>``: ``cl_mean``, ``peaks_covariance``,
``v1_variance_ratio``, ``cl_ssc_predicted``, ...; the tomography's ``cl_cross_mean``,
``cl_cross_std`` and ``cl_cross_correlation`` are symmetric in (``z_s``, ``z_s_2``). Entries a
set or setting does not have are NaN; so are those of a set without a source redshift in a
file whose other sets have one. Each variable has ``units`` and ``description``
attributes (from the file), each coordinate its ``units``. Per-patch samples and the joint
covariance of the tomography keep their own shapes: read them from the
:class:`~._results_file.ResultsFile` itself.

xarray is the ``xarray`` extra; without it :func:`results_to_xarray` raises
``ModuleNotFoundError`` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lensing_ssc.pipelines._results_views import Binning, parse_statistic_key

if TYPE_CHECKING:
    from lensing_ssc.pipelines._results_file import ResultsFile

try:
    import xarray
except ImportError:  # pragma: no cover - exercised only without the extra
    xarray = None  # type: ignore[assignment, unused-ignore]

__all__ = ["results_to_xarray"]

_SUMMARY = ("mean", "std")
_COMPARED = ("variance_ratio", "ssc_response", "ssc_predicted", "ssc_measured")
_INTERVALS = ("variance_ratio_interval", "ssc_predicted_interval", "ssc_measured_interval")


def _bin_dim(name: str) -> str:
    if name == "cl":
        return "ell"
    return "ell_b" if name.startswith("bispectrum") else "nu"


class _Grid:
    """The coordinates of the dataset, and where a key's values go on them."""

    def __init__(self, results: ResultsFile) -> None:
        settings = results["meta/settings"]
        self.sets = list(results.sets)
        redshifts = sorted({z for zs in results.redshifts.values() for z in zs})
        self.z_s: list[float] | None = redshifts or None
        self.n_gal = [float(v) for v in settings.get("n_gal", [])]
        self.smoothing = [float(v) for v in settings.get("smoothing_arcmin", [])]
        self.pairs = [
            f"{c.numerator.split('/')[0]}~{c.denominator.split('/')[0]}"
            for c in results.comparisons
        ]
        self.pairs = list(dict.fromkeys(self.pairs))

    def dims(self, first: str, name: str, smoothing: bool) -> list[str]:
        dims = [first]
        if self.z_s is not None:
            dims.append("z_s")
        dims.append("n_gal")
        if smoothing:
            dims.append("smoothing")
        dims.append(_bin_dim(name))
        return dims

    def shape(self, first: list[str], name: str, smoothing: bool, bins: int) -> list[int]:
        shape = [len(first)]
        if self.z_s is not None:
            shape.append(len(self.z_s))
        shape.append(len(self.n_gal))
        if smoothing:
            shape.append(len(self.smoothing))
        return [*shape, bins]

    def index(
        self, first: int, z: float | None, n_gal: float, smoothing: float | None
    ) -> tuple[int, ...] | None:
        """Where a value goes; ``None`` for a set without z_s beside sets with one."""
        place = [first]
        if self.z_s is not None:
            if z is None:
                return None
            place.append(self.z_s.index(z))
        place.append(self.n_gal.index(n_gal))
        if smoothing is not None:
            place.append(self.smoothing.index(smoothing))
        return tuple(place)


def _variable(
    data: dict[str, Any], name: str, dims: list[str], shape: list[int], attrs: dict[str, str]
) -> np.ndarray:
    if name not in data:
        data[name] = (dims, np.full(shape, np.nan), dict(attrs))
    return np.asarray(data[name][1])


def _describe(results: ResultsFile, path: str) -> dict[str, str]:
    description = results.description(path)
    # The path's own setting (n_gal, σ_s) is a coordinate here, not part of the words.
    words = description.split("): ", 1)[-1] if "): " in description else description
    stem = description.split(" (", 1)[0]
    return {"units": results.units(path), "description": f"{stem}: {words}"}


def _copy(
    data: dict[str, Any],
    results: ResultsFile,
    path: str,
    name: str,
    dims: list[str],
    shape: list[int],
    place: tuple[int, ...],
) -> None:
    """Copy the file's array at ``path`` to ``place`` in variable ``name`` (made on first use)."""
    _variable(data, name, dims, shape, _describe(results, path))[place] = results[path]


def _summaries(results: ResultsFile, grid: _Grid, data: dict[str, Any]) -> dict[str, Binning]:
    binnings: dict[str, Binning] = {}
    for key in results.statistics:
        name, n_gal, smoothing = parse_statistic_key(key)
        binning = binnings.setdefault(_bin_dim(name), results.binning(key))
        bins = binning.centers.size
        dims = grid.dims("set", name, smoothing is not None)
        shape = grid.shape(grid.sets, name, smoothing is not None, bins)
        for s, set_name in enumerate(grid.sets):
            for z in results.redshifts.get(set_name) or (None,):
                group = results.group(set_name, z)
                base = f"sets/{group}/{key}/"
                if f"{base}mean" not in results:
                    continue
                place = grid.index(s, z, n_gal, smoothing)
                if place is None:
                    continue
                for quantity in _SUMMARY:
                    _copy(
                        data, results, f"{base}{quantity}", f"{name}_{quantity}", dims, shape, place
                    )
                bin_dim = _bin_dim(name)
                _copy(
                    data,
                    results,
                    f"{base}covariance",
                    f"{name}_covariance",
                    [*dims, f"{bin_dim}_2"],
                    [*shape, bins],
                    place,
                )
    return binnings


def _comparisons(results: ResultsFile, grid: _Grid, data: dict[str, Any]) -> None:
    for comparison in results.comparisons:
        pair = grid.pairs.index(
            f"{comparison.numerator.split('/')[0]}~{comparison.denominator.split('/')[0]}"
        )
        for key in comparison.statistics:
            name, n_gal, smoothing = parse_statistic_key(key)
            base = f"{comparison.prefix}{key}/"
            bins = np.asarray(results[f"{base}variance_ratio"]).size
            dims = grid.dims("pair", name, smoothing is not None)
            shape = grid.shape(grid.pairs, name, smoothing is not None, bins)
            place = grid.index(pair, comparison.z_source, n_gal, smoothing)
            if place is None:
                continue
            for quantity in _COMPARED:
                if f"{base}{quantity}" in results:
                    _copy(
                        data, results, f"{base}{quantity}", f"{name}_{quantity}", dims, shape, place
                    )
            for quantity in _INTERVALS:
                if f"{base}{quantity}" in results:
                    array = _variable(
                        data,
                        f"{name}_{quantity}",
                        [*dims, "bound"],
                        [*shape, 2],
                        _describe(results, f"{base}{quantity}"),
                    )
                    array[place] = np.asarray(results[f"{base}{quantity}"]).T
            _copy(
                data,
                results,
                f"{base}signal_to_noise",
                f"{name}_signal_to_noise",
                [*dims[:-1], "role"],
                [*shape[:-1], 2],
                place,
            )


def _tomography(results: ResultsFile, grid: _Grid, data: dict[str, Any]) -> None:
    if grid.z_s is None or not results.tomography_sets:
        return
    z_count = len(grid.z_s)
    for set_name in results.tomography_sets:
        s = grid.sets.index(set_name)
        for n_gal in grid.n_gal:
            spectra = results.tomography(set_name, n_gal)
            bins = spectra.binning.centers.size
            dims = ["set", "n_gal", "z_s", "z_s_2", "ell"]
            shape = [len(grid.sets), len(grid.n_gal), z_count, z_count, bins]
            base = f"tomography/{set_name}/{spectra.key}/"
            at = [grid.z_s.index(z) for z in spectra.z_sources]
            m = grid.n_gal.index(n_gal)
            for quantity in ("mean", "std"):
                array = _variable(
                    data,
                    f"cl_cross_{quantity}",
                    dims,
                    shape,
                    _describe(results, f"{base}{quantity}"),
                )
                values = getattr(spectra, quantity)
                for row, (i, j) in enumerate(spectra.pairs):
                    array[s, m, at[i], at[j]] = array[s, m, at[j], at[i]] = values[row]
            r = _variable(
                data,
                "cl_cross_correlation",
                dims,
                shape,
                _describe(results, f"{base}cross_correlation"),
            )
            r[s, m][np.ix_(at, at)] = spectra.cross_correlation


def _coordinates(grid: _Grid, binnings: dict[str, Binning]) -> dict[str, Any]:
    coords: dict[str, Any] = {
        "set": ("set", grid.sets),
        "n_gal": ("n_gal", grid.n_gal, {"units": "arcmin⁻²", "description": "galaxy density"}),
        "smoothing": (
            "smoothing",
            grid.smoothing,
            {"units": "arcmin", "description": "Gaussian smoothing scale σ_s"},
        ),
        "bound": ("bound", ["low", "high"]),
        "role": ("role", ["numerator", "denominator"]),
    }
    if grid.pairs:
        coords["pair"] = ("pair", grid.pairs)
    if grid.z_s is not None:
        for dim in ("z_s", "z_s_2"):
            coords[dim] = (dim, grid.z_s, {"units": "1", "description": "source redshift"})
    for dim, binning in binnings.items():
        words = f"{binning.variable} bin"
        for suffix in ("", "_2"):
            name = f"{dim}{suffix}"
            coords[name] = (
                name,
                binning.centers,
                {"units": binning.units, "description": f"{words} centre"},
            )
            coords[f"{name}_low"] = (
                name,
                binning.edges[:-1],
                {"units": binning.units, "description": f"{words} lower edge"},
            )
            coords[f"{name}_high"] = (
                name,
                binning.edges[1:],
                {"units": binning.units, "description": f"{words} upper edge"},
            )
    return coords


def results_to_xarray(results: ResultsFile) -> Any:
    """Return ``results`` as an :class:`xarray.Dataset` (dimensions and names above).

    Raises:
        ModuleNotFoundError: xarray is not installed (the ``xarray`` extra).

    Example:
        >>> from lensing_ssc.pipelines import read_results
        >>> results = read_results("runs/default/results/patch_statistics.h5")  # doctest: +SKIP
        >>> ds = results.to_xarray()  # doctest: +SKIP
        >>> ds["cl_mean"].sel(set="subpatches", n_gal=30)  # doctest: +SKIP
        >>> ds["peaks_variance_ratio"].sel(n_gal=30, smoothing=2)  # doctest: +SKIP
    """
    if xarray is None:
        raise ModuleNotFoundError(
            'ResultsFile.to_xarray() needs xarray: pip install "lensing-ssc[xarray]"',
            name="xarray",
        )
    grid = _Grid(results)
    data: dict[str, Any] = {}
    binnings = _summaries(results, grid, data)
    _comparisons(results, grid, data)
    _tomography(results, grid, data)
    used = {dim for dims, _, _ in data.values() for dim in dims}
    coords = {
        name: value for name, value in _coordinates(grid, binnings).items() if value[0] in used
    }
    attrs = {
        "lensing_ssc_version": str(results.get("meta/lensing_ssc_version", "")),
        "source": "" if results.path is None else str(results.path),
    }
    return xarray.Dataset(data, coords=coords, attrs=attrs)

"""Reading a results file back: :func:`read_results` and its typed view, :class:`ResultsFile`.

A :class:`ResultsFile` is a ``Mapping`` of dataset paths to arrays (and ``meta/...`` to
decoded JSON), as ``read_results`` returned before, plus typed views of what the paths
mean: :attr:`~ResultsFile.sets` and their :attr:`~ResultsFile.redshifts`, the
:attr:`~ResultsFile.statistics`, per set and statistic a :class:`StatisticSummary` (bin
centres and edges, units, mean, covariance, ...), and the :attr:`~ResultsFile.comparisons`
with a :class:`ComparedStatistic` per statistic (variance ratios and intervals, S/N, SSC
predicted and measured), per set at several source redshifts its
:meth:`~ResultsFile.tomography` (:class:`TomographicSpectra`: auto and cross spectra, their
joint covariance, r_ij(ℓ)) and their :attr:`~ResultsFile.tomography_comparisons`, and
:meth:`~ResultsFile.to_xarray` (:mod:`._xarray`). Files written before units and ℓ bin
centres were stored read the same: both are derived from the paths and edges. The layout
and the writer are in :mod:`._results`; units in :mod:`._units`; figures of a results file
in :mod:`lensing_ssc.plotting`.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.analysis.comparison import StatisticComparison
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._units import dataset_units
from lensing_ssc.processing.managers import RunDir

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

__all__ = [
    "Binning",
    "ComparedStatistic",
    "ResultsComparison",
    "ResultsFile",
    "StatisticSummary",
    "TomographicSpectra",
    "parse_statistic_key",
    "read_results",
]

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
_SUMMARY_FIELDS = ("mean", "std", "covariance", "correlation", "samples")


def parse_statistic_key(key: str) -> tuple[str, float, float | None]:
    """``(name, n_gal, smoothing in arcmin or None)`` of a statistic key.

    Example:
        >>> parse_statistic_key("peaks/ngal=30/smoothing=2"), parse_statistic_key("cl/ngal=0")
        (('peaks', 30.0, 2.0), ('cl', 0.0, None))
    """
    name, *rest = key.split("/")
    values = dict(part.split("=", 1) for part in rest if "=" in part)
    if "ngal" not in values:
        raise AnalysisError(
            f"{key!r} is not a statistic key",
            value=key,
            hint="statistic keys read name/ngal=N[/smoothing=S], e.g. 'peaks/ngal=30/smoothing=2'",
        )
    smoothing = values.get("smoothing")
    return name, float(values["ngal"]), None if smoothing is None else float(smoothing)


@dataclass(frozen=True, eq=False)
class Binning:
    """The bins of a statistic: ``variable`` is ``"ℓ"`` (log-spaced) or ``"ν"`` (equal width)."""

    variable: str
    centers: np.ndarray
    edges: np.ndarray
    units: str

    @property
    def log(self) -> bool:
        """Whether the bins are log-spaced (ℓ), so a log axis shows them evenly."""
        return self.variable == "ℓ"

    def to_dict(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "centers": self.centers.tolist(),
            "edges": self.edges.tolist(),
            "units": self.units,
        }


@dataclass(frozen=True, eq=False)
class StatisticSummary:
    """One statistic of one set (one source redshift): its bins, units and ensemble summary.

    ``set`` is the results' set name (``bigbox/zs=1``); ``units`` those of ``mean``
    (``covariance`` has their square).
    """

    set: str
    key: str
    name: str
    n_gal: float
    smoothing_arcmin: float | None
    units: str
    binning: Binning
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    samples: np.ndarray

    @property
    def n_patches(self) -> int:
        """Patches in the set (rows of ``samples``)."""
        return int(self.samples.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "key": self.key,
            "units": self.units,
            "binning": self.binning.to_dict(),
            "n_patches": self.n_patches,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }


@dataclass(frozen=True, eq=False, kw_only=True)
class ComparedStatistic(StatisticComparison):
    """One statistic of a compared pair as read back: the numbers of
    :class:`~lensing_ssc.analysis.comparison.StatisticComparison` (intervals are ``(2, F)``,
    low and high; the SSC fields are ``None`` in files without patch means), with the
    statistic's key, bins and units.
    """

    key: str
    binning: Binning
    units: str

    @property
    def has_ssc(self) -> bool:
        """Whether the predicted and measured SSC excess are there."""
        return self.ssc_predicted is not None and self.ssc_measured is not None


@dataclass(frozen=True, eq=False)
class ResultsComparison:
    """A compared pair of sets at one source redshift, read from a results file.

    ``path`` is where its numbers lie under ``ssc/`` (empty for the synthetic pair). A
    comparison of two sets' tomography (``bigbox~tiled/tomography``) has no single
    ``z_source`` but ``z_sources``, and each statistic's entries are its P spectra of F ℓ
    bins each, flattened (:attr:`TomographicSpectra.pairs` gives their order).
    """

    path: str
    numerator: str
    denominator: str
    z_source: float | None
    resampling: dict[str, Any]
    results: ResultsFile = field(repr=False)
    z_sources: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """``"bigbox/zs=1 / tiled/zs=1"``: what was divided by what."""
        return f"{self.numerator} / {self.denominator}"

    @property
    def prefix(self) -> str:
        return f"ssc/{self.path}/" if self.path else "ssc/"

    @property
    def statistics(self) -> tuple[str, ...]:
        """The statistic keys compared."""
        return tuple(
            k for k in self.results.statistics if f"{self.prefix}{k}/variance_ratio" in self.results
        )

    def statistic(self, key: str) -> ComparedStatistic:
        """The comparison of one statistic key (``cl/ngal=30``)."""
        base = f"{self.prefix}{key}/"
        if f"{base}variance_ratio" not in self.results:
            raise AnalysisError(
                f"comparison {self.label!r} has no statistic {key!r}",
                value=key,
                hint=f"choose from {', '.join(self.statistics)}",
            )
        values: dict[str, Any] = {
            name: self.results.get(f"{base}{name}")
            for name in StatisticComparison.__dataclass_fields__
        }
        return ComparedStatistic(
            key=key,
            binning=self.results.binning(key),
            units=self.results.units(f"{base}variance_ratio"),
            **values,
        )

    def joint(self) -> dict[str, dict[str, np.ndarray]]:
        """Per setting (``ngal=30/smoothing=2``): S/N of the joint data vector, its interval, h."""
        out: dict[str, dict[str, np.ndarray]] = {}
        start = f"{self.prefix}joint/"
        for path in self.results:
            if path.startswith(start) and path.endswith("/signal_to_noise"):
                setting = path[len(start) : -len("/signal_to_noise")]
                base = f"{start}{setting}/"
                out[setting] = {
                    q: self.results[f"{base}{q}"]
                    for q in ("signal_to_noise", "signal_to_noise_interval", "hartlap")
                }
        return out


class ResultsFile(Mapping[str, Any]):
    """A results file read back: ``{dataset path: array}`` and typed views of the paths.

    ``results["ssc/cl/ngal=0/variance_ratio"]`` works as it always did; the properties and
    methods below say what the paths mean. See ``docs/pipeline.md`` ("Reading results").
    """

    def __init__(self, entries: Mapping[str, Any], path: Path | None = None) -> None:
        self._entries = dict(entries)
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        where = "" if self.path is None else f"{str(self.path)!r}, "
        return f"ResultsFile({where}sets={list(self.groups)}, {len(self)} entries)"

    # Sets and source redshifts -----------------------------------------------------------

    @property
    def groups(self) -> tuple[str, ...]:
        """The results' set names, one per set and source redshift (``bigbox/zs=1``).

        Compared sets come first, numerator before denominator (``subpatches``,
        ``periodic``), then the others in the file's order.
        """
        recorded = self._entries["meta/sets"]
        compared = self._entries.get("meta/comparisons") or {
            "": {"numerator": "subpatches", "denominator": "periodic"}
        }
        first = [
            name
            for info in compared.values()
            for name in (info["numerator"], info["denominator"])
            if name in recorded
        ]
        return tuple(dict.fromkeys([*first, *recorded]))

    @property
    def sets(self) -> tuple[str, ...]:
        """The configured sets (``subpatches``, ``bigbox``), in the file's order."""
        return tuple(dict.fromkeys(self._configured(g)[0] for g in self.groups))

    @property
    def redshifts(self) -> dict[str, tuple[float, ...]]:
        """Per configured set, its source redshifts (empty for a set without one)."""
        out: dict[str, list[float]] = {name: [] for name in self.sets}
        for group in self.groups:
            name, z = self._configured(group)
            if z is not None:
                out[name].append(z)
        return {name: tuple(sorted(zs)) for name, zs in out.items()}

    def _configured(self, group: str) -> tuple[str, float | None]:
        info = self._entries["meta/sets"][group]
        z = info.get("z_source")
        return str(info.get("set", group)), None if z is None else float(z)

    def group(self, set: str, z_source: float | None = None) -> str:
        """The results' set name of ``set`` at ``z_source`` (``("bigbox", 1)`` → ``bigbox/zs=1``).

        A set with one source redshift needs none; a results' set name is taken as it is.
        """
        if set in self.groups and z_source is None:
            return set
        matches = [
            g
            for g in self.groups
            if self._configured(g)[0] == set
            and (z_source is None or self._configured(g)[1] == float(z_source))
        ]
        if len(matches) != 1:
            zs = self.redshifts.get(set, ())
            raise AnalysisError(
                f"no single set {set!r}"
                + ("" if z_source is None else f" at z_s = {z_source:g}")
                + " in the results",
                value=(set, z_source),
                hint=(
                    f"choose z_source from {', '.join(f'{z:g}' for z in zs)}"
                    if zs
                    else f"choose a set from {', '.join(self.sets)}"
                ),
            )
        return matches[0]

    # Statistics ---------------------------------------------------------------------------

    @property
    def statistics(self) -> tuple[str, ...]:
        """Every statistic key in the file (``cl/ngal=0``, ``peaks/ngal=30/smoothing=2``)."""
        keys: dict[str, None] = {}
        for group in self.groups:
            start = f"sets/{group}/"
            for path in self._entries:
                if path.startswith(start) and path.endswith("/mean"):
                    keys[path[len(start) : -len("/mean")]] = None
        # In the run's order: n_gal, then statistic, then smoothing, as the settings list them.
        settings = self._entries["meta/settings"]
        order = [
            {str(v): i for i, v in enumerate(settings.get(field_, []))}
            for field_ in ("n_gal", "statistics", "smoothing_arcmin")
        ]

        def rank(key: str) -> tuple[int, int, int]:
            name, n_gal, smoothing = parse_statistic_key(key)
            return (
                order[0].get(str(n_gal), len(order[0])),
                order[1].get(name, len(order[1])),
                -1 if smoothing is None else order[2].get(str(smoothing), len(order[2])),
            )

        return tuple(sorted(keys, key=rank))

    def statistic_keys(
        self, *, n_gal: float | None = None, smoothing: float | None = None
    ) -> tuple[str, ...]:
        """The statistic keys at one setting: ``n_gal`` and, for map statistics, ``smoothing``.

        ``None`` takes the run's first value of each (the spectra have no smoothing).
        """
        settings = self._entries["meta/settings"]
        n_gal = float(settings.get("n_gal", [0.0])[0]) if n_gal is None else float(n_gal)
        if smoothing is None:
            smoothing = float(settings.get("smoothing_arcmin", [0.0])[0])
        out = []
        for key in self.statistics:
            _, ngal, smooth = parse_statistic_key(key)
            if ngal == n_gal and smooth in (None, float(smoothing)):
                out.append(key)
        return tuple(out)

    def units(self, path: str) -> str:
        """The units of the dataset at ``path`` (``"1"``: dimensionless)."""
        stored = self._entries.get("meta/datasets", {}).get(path)
        return stored["units"] if stored else dataset_units(path)[0]

    def description(self, path: str) -> str:
        """What the dataset at ``path`` holds, in one line."""
        stored = self._entries.get("meta/datasets", {}).get(path)
        return stored["description"] if stored else dataset_units(path)[1]

    def binning(self, key: str) -> Binning:
        """The bins of a statistic key: ℓ for the spectra and bispectra, ν for the rest."""
        name = parse_statistic_key(key)[0]
        if name == "cl" or name.startswith("bispectrum"):
            stem = "ell" if name == "cl" else "bispectrum"
            edges = np.asarray(self._entries[f"binning/{stem}_edges"], dtype=float)
            centers = self._entries.get(f"binning/{stem}_centers")
            if centers is None:  # files written before the centres were stored
                centers = np.sqrt(edges[1:] * edges[:-1])
            return Binning("ℓ", np.asarray(centers), edges, "rad⁻¹")
        edges = np.asarray(self._entries["binning/nu_edges"], dtype=float)
        centers = self._entries.get("binning/nu_centers")
        if centers is None:
            centers = 0.5 * (edges[1:] + edges[:-1])
        return Binning("ν", np.asarray(centers), edges, "1")

    def summary(self, key: str, set: str, z_source: float | None = None) -> StatisticSummary:
        """One statistic of one set: bins, units, mean, std, covariance, correlation, samples."""
        group = self.group(set, z_source)
        base = f"sets/{group}/{key}/"
        if f"{base}mean" not in self._entries:
            raise AnalysisError(
                f"set {group!r} has no statistic {key!r}",
                value=key,
                hint=f"choose from {', '.join(self.statistics)}",
            )
        name, n_gal, smoothing = parse_statistic_key(key)
        values = {f: self._entries[f"{base}{f}"] for f in _SUMMARY_FIELDS}
        return StatisticSummary(
            set=group,
            key=key,
            name=name,
            n_gal=n_gal,
            smoothing_arcmin=smoothing,
            units=self.units(f"{base}mean"),
            binning=self.binning(key),
            **values,
        )

    # Comparisons --------------------------------------------------------------------------

    @property
    def comparisons(self) -> tuple[ResultsComparison, ...]:
        """Every compared pair, one per source redshift, in the file's order."""
        recorded = self._entries.get("meta/comparisons")
        if recorded is None:
            # Files written before comparisons were named hold the synthetic pair only.
            if not any(p.startswith("ssc/") for p in self._entries):
                return ()
            recorded = {"": {"numerator": "subpatches", "denominator": "periodic"}}
        return tuple(
            ResultsComparison(
                path=path,
                numerator=str(info["numerator"]),
                denominator=str(info["denominator"]),
                z_source=None if info.get("z_source") is None else float(info["z_source"]),
                resampling=dict(info.get("resampling", {})),
                results=self,
            )
            for path, info in recorded.items()
        )

    def comparison(
        self, name: str | ResultsComparison | None = None, z_source: float | None = None
    ) -> ResultsComparison:
        """A comparison by path (``bigbox~tiled/zs=1``), pair (``bigbox~tiled``) and z_s.

        ``None`` is the first comparison (at ``z_source`` when given).
        """
        if isinstance(name, ResultsComparison):
            return name
        found = [
            c
            for c in self.comparisons
            if (name is None or name in (c.path, c.path.split("/zs=")[0], c.label))
            and (z_source is None or c.z_source == float(z_source))
        ]
        if not found:
            known = [c.path or c.label for c in self.comparisons]
            raise AnalysisError(
                f"no comparison {name!r}"
                + ("" if z_source is None else f" at z_s = {z_source:g}")
                + " in the results",
                value=(name, z_source),
                hint=f"choose from {', '.join(known)}" if known else "the run compared no sets",
            )
        return found[0]

    # Tomography ---------------------------------------------------------------------------

    @property
    def tomography_sets(self) -> tuple[str, ...]:
        """The configured sets with auto and cross spectra across source redshifts."""
        recorded = (self._entries.get("meta/tomography") or {}).get("sets", {})
        return tuple(name for name, info in recorded.items() if info.get("n_patches"))

    def tomography(self, set: str, n_gal: float | None = None) -> TomographicSpectra:
        """One set's auto and cross power spectra across its source redshifts, at ``n_gal``.

        ``None`` takes the run's first n_gal.
        """
        if set not in self.tomography_sets:
            known = ", ".join(self.tomography_sets) or "none (no set has 2 source redshifts)"
            raise AnalysisError(
                f"set {set!r} has no tomography in the results",
                value=set,
                hint=f"sets with tomography: {known}",
            )
        settings = self._entries["meta/settings"]
        n_gal = float(settings.get("n_gal", [0.0])[0]) if n_gal is None else float(n_gal)
        key = f"cl/ngal={n_gal:g}"
        base = f"tomography/{set}/"
        if f"{base}{key}/mean" not in self._entries:
            raise AnalysisError(
                f"set {set!r} has no tomography at n_gal = {n_gal:g}",
                value=n_gal,
                hint=f"choose n_gal from {', '.join(f'{n:g}' for n in settings.get('n_gal', []))}",
            )
        labels = self._entries["meta/tomography"]["sets"][set]["realisations"]
        return TomographicSpectra(
            set=set,
            key=key,
            n_gal=n_gal,
            z_sources=tuple(float(z) for z in self._entries[f"{base}z_sources"]),
            pairs=tuple((int(i), int(j)) for i, j in self._entries[f"{base}pairs"]),
            binning=self.binning(key),
            units=self.units(f"{base}{key}/mean"),
            realisations=tuple(labels[int(i)] for i in self._entries[f"{base}patch_map"]),
            **{f: self._entries[f"{base}{key}/{f}"] for f in _TOMOGRAPHY_FIELDS},
        )

    @property
    def tomography_comparisons(self) -> tuple[ResultsComparison, ...]:
        """Every compared pair of sets' tomography (``bigbox~tiled/tomography``)."""
        recorded = (self._entries.get("meta/tomography") or {}).get("comparisons", {})
        return tuple(
            ResultsComparison(
                path=path,
                numerator=str(info["numerator"]),
                denominator=str(info["denominator"]),
                z_source=None,
                resampling=dict(info.get("resampling", {})),
                results=self,
                z_sources=tuple(float(z) for z in info.get("z_sources", ())),
            )
            for path, info in recorded.items()
        )

    def to_xarray(self) -> Any:
        """The results as an :class:`xarray.Dataset` (needs the ``xarray`` extra).

        See :func:`lensing_ssc.pipelines._xarray.results_to_xarray` for its variables and
        dimensions.
        """
        from lensing_ssc.pipelines._xarray import results_to_xarray

        return results_to_xarray(self)


_TOMOGRAPHY_FIELDS = ("mean", "std", "covariance", "correlation", "cross_correlation", "samples")


@dataclass(frozen=True, eq=False)
class TomographicSpectra:
    """One set's auto and cross power spectra between its source redshifts, at one n_gal.

    The data vector of a patch is P = Z(Z+1)/2 spectra of F ℓ bins: ``pairs[p]`` is the
    (i, j) of spectrum p, indices into ``z_sources`` (``(0, 0), (0, 1), (1, 1)`` for two).
    ``mean`` and ``std`` are ``(P, F)``; ``covariance`` and ``correlation`` are the joint
    ``(P·F, P·F)`` matrices of the flattened vector (spectrum-major); ``cross_correlation``
    is r_ij(ℓ) ``(Z, Z, F)``; ``samples`` ``(R, P, F)``, with ``realisations[r]`` the
    realisation of row r (``seed=3``). ``units`` are those of ``mean`` (``sr``).
    """

    set: str
    key: str
    n_gal: float
    z_sources: tuple[float, ...]
    pairs: tuple[tuple[int, int], ...]
    binning: Binning
    units: str
    realisations: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    cross_correlation: np.ndarray
    samples: np.ndarray

    def pair_index(self, z_i: float, z_j: float) -> int:
        """The row of ``mean`` holding C_ij for source redshifts ``z_i`` and ``z_j``."""
        try:
            i, j = sorted((self.z_sources.index(float(z_i)), self.z_sources.index(float(z_j))))
        except ValueError:
            raise AnalysisError(
                f"set {self.set!r} has no source redshift pair ({z_i:g}, {z_j:g})",
                value=(z_i, z_j),
                hint=f"choose from z_s = {', '.join(f'{z:g}' for z in self.z_sources)}",
            ) from None
        return self.pairs.index((i, j))

    def spectrum(self, z_i: float, z_j: float) -> np.ndarray:
        """The mean C_ij(ℓ) between source redshifts ``z_i`` and ``z_j`` (``(F,)``)."""
        return np.asarray(self.mean[self.pair_index(z_i, z_j)])


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

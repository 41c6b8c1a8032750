"""A results file read back: :class:`ResultsFile`, its paths and what they mean.

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
centres were stored read the same: both are derived from the paths and edges.

The view types are in :mod:`._results_views`; reading HDF5 and NPZ files
(:func:`read_results`) in :mod:`._results_reading`. The layout and the writer are in
:mod:`._results`; units in :mod:`._units`; figures of a results file in
:mod:`lensing_ssc.plotting`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._results_views import (
    Binning,
    ResultsComparison,
    StatisticSummary,
    TomographicSpectra,
    parse_statistic_key,
)
from lensing_ssc.pipelines._units import dataset_units

__all__ = ["ResultsFile"]

_SUMMARY_FIELDS = ("mean", "std", "covariance", "correlation", "samples")
_TOMOGRAPHY_FIELDS = ("mean", "std", "covariance", "correlation", "cross_correlation", "samples")


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

"""The run's results file: its format, its place, its layout, and writing it.

:func:`write_results` writes the :class:`._merged_results.MergedResults` of a run (made by
:func:`._merged_results.merge_patch_results`) to one file — HDF5 when h5py is installed,
else NPZ — holding every summary, the per-patch samples, the bin edges, the failures,
the configuration and the package version, at :func:`results_path` in the run's results directory;
:func:`read_results` (in :mod:`._results_reading`) reads either back into a
:class:`._results_file.ResultsFile`. Every HDF5 dataset carries ``units`` and
``description`` attributes (:mod:`._units`; ``meta/datasets`` in NPZ). The layout:

    sets/<set>/<statistic key>/{mean,std,covariance,correlation,samples}
    sets/<set>/{patch_mean,patch_map}              (each patch's mean κ and map index)
    ssc/<statistic key>/<quantity>                  (the synthetic pair)
    ssc/<a>~<b>/zs=<z>/<statistic key>/<quantity>   (HEALPix pairs)
    ssc/.../joint/<setting>/{signal_to_noise,signal_to_noise_interval,hartlap}
    tomography/<set>/{z_sources,pairs,patch_map}    (a set at ≥ 2 source redshifts)
    tomography/<set>/cl/ngal=<n>/{samples,mean,std,covariance,correlation,cross_correlation}
    ssc/<a>~<b>/tomography/cl/ngal=<n>/<quantity>   (the joint data vectors compared)

with the quantities of :class:`lensing_ssc.analysis.comparison.StatisticComparison`
(``variance_ratio``, ``variance_ratio_interval``, ``correlation``, ``signal_to_noise``, ...,
``ssc_predicted``, ``ssc_measured`` and their intervals).
    binning/{ell_edges,ell_centers,bispectrum_edges,bispectrum_centers,nu_edges,nu_centers}
    meta/{lensing_ssc_version,config,settings,failures,sets,
          dropped_patches,nu_normalisation,comparisons,tomography}   (JSON text)
    meta/datasets                                   (NPZ only: units and descriptions)

A HEALPix set with source redshifts is one set per redshift (``sets/bigbox/zs=1/...``);
``meta/sets`` gives each its configured set, ``z_source`` and every map's file and fields,
``meta/comparisons`` each comparison's path, numerator, denominator, ``z_source`` and
``resampling`` (method, interval kind, resamples, confidence level, seed, maps of each set).

A set's tomography (:mod:`._tomography`, merged in :mod:`._tomography_results`) stacks,
per patch of each realisation, its P = Z(Z+1)/2 auto and cross power spectra between its
Z source redshifts (``pairs``: the redshift indices of each, ``(0, 0), (0, 1), …``):
``samples`` is ``(R, P, F)``, ``mean`` and ``std`` ``(P, F)``, ``covariance`` and
``correlation`` those of the flattened ``P·F`` data vector, ``cross_correlation`` r_ij(ℓ)
``(Z, Z, F)``. ``meta/tomography`` lists per set its redshifts, realisations, those left
out with the reason and ``dropped_patches`` (per realisation, the patch places some of its
maps dropped for their mask, so left out), and the comparisons.

``meta/dropped_patches`` is ``{"total": N, "maps": {map id: count}}``: HEALPix patches
dropped for their mask (never measured, never in a set). ``meta/nu_normalisation`` says, per
set and map-statistic setting (``ngal=30/smoothing=2``), which σ ν was divided by and its
value when every patch shared it (see
:meth:`lensing_ssc.analysis.StatisticsSettings.nu_normalisation`).

Statistic keys are those of :func:`lensing_ssc.analysis.statistic_key`
(``peaks/ngal=30/smoothing=2``).

Not here: merging the patches' statistics into what the file holds
(:mod:`._merged_results`), reading the file (:mod:`._results_reading`), the text summary
(:mod:`._summary`); the figures are drawn from the file by
:func:`lensing_ssc.plotting.draw_run_figures`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc._version import __version__
from lensing_ssc.core.io import atomic_open
from lensing_ssc.pipelines._merged_results import MergedResults
from lensing_ssc.pipelines._results_reading import read_results
from lensing_ssc.pipelines._units import dataset_units

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

__all__ = [
    "read_results",
    "results_format",
    "results_path",
    "write_results",
]

_SUFFIXES = {"hdf5": ".h5", "npz": ".npz"}


def results_format(requested: str) -> str:
    """``"hdf5"`` or ``"npz"`` for a ``results_format`` setting (``"auto"`` picks by h5py)."""
    if requested == "hdf5" and h5py is None:
        raise ModuleNotFoundError('HDF5 results need h5py: pip install "lensing-ssc[hdf5]"')
    if requested == "auto":
        return "npz" if h5py is None else "hdf5"
    return requested


def results_path(directory: Path, fmt: str) -> Path:
    """The results file in ``directory`` for ``fmt`` (``"hdf5"`` or ``"npz"``).

    Example:
        >>> results_path(Path("runs/x/results"), "hdf5")
        PosixPath('runs/x/results/patch_statistics.h5')
    """
    return directory / f"patch_statistics{_SUFFIXES[fmt]}"


def _log_centers(edges: np.ndarray) -> np.ndarray:
    """Centres of log-spaced bins: the geometric mean of each bin's edges."""
    return np.sqrt(edges[1:] * edges[:-1])


def _dataset_attributes(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, str]]:
    """``{path: {"units": ..., "description": ...}}`` of every dataset (see :mod:`._units`)."""
    out = {}
    for path in arrays:
        units, description = dataset_units(path)
        out[path] = {"units": units, "description": description}
    return out


def _flatten(merged: MergedResults) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    settings = merged.settings
    arrays["binning/ell_edges"] = settings.ell_edges
    arrays["binning/ell_centers"] = _log_centers(settings.ell_edges)
    arrays["binning/bispectrum_edges"] = settings.bispectrum_edges
    arrays["binning/bispectrum_centers"] = _log_centers(settings.bispectrum_edges)
    arrays["binning/nu_edges"] = settings.nu_edges
    arrays["binning/nu_centers"] = settings.nu_centers
    for name, summary in merged.sets.items():
        for key, ensemble in summary.summaries.items():
            base = f"sets/{name}/{key}"
            arrays[f"{base}/mean"] = ensemble.mean
            arrays[f"{base}/std"] = ensemble.std
            arrays[f"{base}/covariance"] = ensemble.covariance
            arrays[f"{base}/correlation"] = ensemble.correlation
            arrays[f"{base}/samples"] = summary.samples[key]
        if summary.patch_mean is not None:
            arrays[f"sets/{name}/patch_mean"] = summary.patch_mean
        index = {label: i for i, label in enumerate(dict.fromkeys(summary.patch_maps))}
        arrays[f"sets/{name}/patch_map"] = np.array([index[m] for m in summary.patch_maps])
    for compared in merged.comparisons:
        prefix = f"ssc/{compared.comparison.path}/" if compared.comparison.path else "ssc/"
        for key, statistic in compared.compared.statistics.items():
            for quantity, value in statistic.arrays().items():
                arrays[f"{prefix}{key}/{quantity}"] = value
        for setting, joint in compared.compared.joint.items():
            for quantity in ("signal_to_noise", "signal_to_noise_interval", "hartlap"):
                arrays[f"{prefix}joint/{setting}/{quantity}"] = joint.arrays()[quantity]
    arrays.update(merged.tomography.arrays())
    return arrays


def _metadata(merged: MergedResults) -> dict[str, str]:
    sets = {
        name: {
            "description": s.description,
            "n_maps": s.n_maps,
            "n_patches": s.n_patches,
            "pixel_size_arcmin": s.pixel_size_arcmin,
            "patch_pixels": s.patch_pixels,
            **s.metadata,
        }
        for name, s in merged.sets.items()
    }
    return {
        "lensing_ssc_version": __version__,
        "config": json.dumps(merged.config, sort_keys=True),
        "settings": json.dumps(merged.settings.to_dict(), sort_keys=True),
        "failures": json.dumps([f.to_dict() for f in merged.failures]),
        "sets": json.dumps(sets, sort_keys=True),
        "dropped_patches": json.dumps(
            {"total": merged.n_dropped, "maps": merged.dropped_patches}, sort_keys=True
        ),
        "nu_normalisation": json.dumps(merged.nu_normalisation(), sort_keys=True),
        "comparisons": json.dumps(
            {
                c.comparison.path: {
                    **c.comparison.to_dict(),
                    "resampling": {**c.compared.to_dict(), "seed": c.seed},
                }
                for c in merged.comparisons
            },
            sort_keys=True,
        ),
        "tomography": json.dumps(merged.tomography.metadata(), sort_keys=True),
    }


def write_results(merged: MergedResults, path: Path, fmt: str) -> Path:
    """Write the results file atomically (a reader never sees half of it); return its path.

    The file is written straight into the temporary file that replaces ``path``
    (:func:`lensing_ssc.core.io.atomic_open`), dataset by dataset from the arrays the merge
    holds: writing adds no copy of the results to this process's memory, which is at its
    fullest at this moment of a large run.
    """
    arrays = _flatten(merged)
    meta = _metadata(merged)
    attributes = _dataset_attributes(arrays)
    if fmt == "hdf5" and h5py is None:  # pragma: no cover - results_format() refuses this first
        raise ModuleNotFoundError('HDF5 results need h5py: pip install "lensing-ssc[hdf5]"')
    path.parent.mkdir(parents=True, exist_ok=True)
    # h5py writes through the file object (not by path), so that HDF5 takes no file lock:
    # some cluster filesystems refuse one, and the temporary file has one writer anyway.
    with atomic_open(path, "w+b") as fh:
        if fmt == "hdf5":
            _write_hdf5(fh, arrays, meta, attributes)
        else:
            payload = dict(arrays)
            payload.update({f"meta/{key}": np.array(text) for key, text in meta.items()})
            payload["meta/datasets"] = np.array(json.dumps(attributes, sort_keys=True))
            # Each array goes into the archive in slices, compressed as it goes.
            np.savez_compressed(fh, **payload)  # type: ignore[arg-type]
    return path


def _write_hdf5(
    fh: Any,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, str],
    attributes: Mapping[str, Mapping[str, str]],
) -> None:
    """The HDF5 layout of the module docstring, written into the open file ``fh``."""
    with h5py.File(fh, "w", libver="earliest", track_order=True) as handle:
        groups: dict[str, Any] = {"": handle}

        def group_at(path: str) -> Any:
            # Creating "a/b/c/mean" from the file looks up every group on the path, for
            # each dataset: keeping each group at hand halves the write's time.
            group = groups.get(path)
            if group is None:
                parent, _, name = path.rpartition("/")
                group = groups[path] = group_at(parent).create_group(name)
            return group

        for key, value in arrays.items():
            parent, _, name = key.rpartition("/")
            dataset = group_at(parent).create_dataset(name, data=value, track_times=False)
            dataset.attrs.update(attributes[key])
        group = handle.create_group("meta", track_order=True)
        for key, text in meta.items():
            group.attrs[key] = text

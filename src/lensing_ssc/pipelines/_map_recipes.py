"""A run's maps: the recipe each is made from, and the :class:`MapTask` that places it in a set.

A *map* is the unit the pipeline loads, caches and can lose: a synthetic field cut into
sub-patches, a batch of independent periodic fields, a HEALPix map cut into gnomonic
patches, or one flat patch file. Each recipe (:class:`SyntheticMap`,
:class:`~._healpix_maps.HealpixMap`, :class:`PatchFile`) is a small frozen value that
pickles to workers, names its cache entry (``cache_key``) and loads its patches as one
``(k, n, n)`` array. Synthetic maps are seeded per map (:data:`SET_CODES` is part of every
seed), so any process draws the same field.

Not here: the HEALPix recipe is in :mod:`._healpix_maps`; what identifies an input file is
:mod:`._input_identity`'s; turning the ``pipeline`` config section into the run's list of
:class:`MapTask` is :func:`._inputs.plan_maps`; running tasks is in :mod:`._tasks`; the
science in :mod:`lensing_ssc.analysis`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.random import default_rng

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    TabulatedSpectrum,
    cut_subpatches,
    gaussian_field,
    load_flat_patch,
    lognormal_field,
)
from lensing_ssc.analysis.fields import FieldPlan, prepare_field
from lensing_ssc.analysis.spectra import ConvergenceSpectrum
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._healpix_maps import HealpixMap
from lensing_ssc.pipelines._input_identity import Stamp, field_values

__all__ = [
    "SET_CODES",
    "SET_DESCRIPTIONS",
    "MapSource",
    "MapTask",
    "PatchFile",
    "SyntheticMap",
]

SET_CODES = {"subpatches": 0, "periodic": 1, "healpix": 2, "patches": 3}
"""Stable number of each patch set, part of every seed (never reorder)."""

SET_DESCRIPTIONS = {
    "subpatches": "sub-patches cut from large periodic fields (super-sample modes present)",
    "periodic": "independent periodic fields of the patch size (no super-sample modes)",
    "healpix": "gnomonic patches of HEALPix maps",
    "patches": "flat patches read from files",
}

_FLOAT_BYTES = 8  # patches are float64


@lru_cache(maxsize=8)
def _spectrum(cosmology: tuple[tuple[str, Any], ...], table: str | None) -> ConvergenceSpectrum:
    if table is None:
        return HalofitConvergenceSpectrum(**dict(cosmology))
    try:
        data = np.loadtxt(table, ndmin=2)
    except (OSError, ValueError) as exc:
        raise AnalysisError(
            f"cannot read the spectrum table {table!r}: {exc}",
            value=table,
            hint="give a text file with two columns, ℓ and C(ℓ)",
        ) from exc
    if data.shape[1] < 2:
        raise AnalysisError(
            f"the spectrum table {table!r} has {data.shape[1]} column(s), not 2",
            value=table,
            hint="give a text file with two columns, ℓ and C(ℓ)",
        )
    return TabulatedSpectrum(data[:, 0], data[:, 1])


@dataclass(frozen=True)
class SyntheticMap:
    """A seeded synthetic map: one large field cut into tiles, or a batch of periodic fields.

    Attributes:
        kind: ``"lognormal"`` or ``"gaussian"``.
        patch_pixels: Side of each patch.
        per_side: The large field is ``per_side × patch_pixels`` wide (``per_side²`` tiles);
            periodic maps draw ``per_side²`` independent fields instead.
        periodic: Draw independent fields of the patch's size rather than cut a large one.
        pixel_size_arcmin: Pixel side.
        seed: Entropy of the field's generator.
        cosmology: Parameters of :class:`HalofitConvergenceSpectrum`, as sorted pairs.
        shift: Lognormal shift λ; ``None``: the model's empty-beam convergence.
        spectrum_table: Two-column text file replacing the analytic model.
        table_stamp: That file's :data:`~._input_identity.Stamp`.
    """

    kind: str
    patch_pixels: int
    per_side: int
    periodic: bool
    pixel_size_arcmin: float
    seed: tuple[int, ...]
    cosmology: tuple[tuple[str, Any], ...]
    shift: float | None
    spectrum_table: str | None
    table_stamp: Stamp | None

    def cache_key(self) -> tuple[Any, ...]:
        """A key made of plain values, equal exactly when the patches are equal."""
        return ("synthetic", *field_values(self))

    def estimated_bytes(self) -> int:
        """Peak bytes while drawing: the field, its transform and the patches."""
        side = self.patch_pixels * (1 if self.periodic else self.per_side)
        count = self.per_side**2 if self.periodic else 1
        return 5 * count * side * side * _FLOAT_BYTES

    def patch_bytes(self) -> int:
        """Bytes of one patch (float64)."""
        return self.patch_pixels**2 * _FLOAT_BYTES

    def output_bytes(self) -> int:
        """Bytes of all the map's patches: what the cache keeps of it."""
        return self.per_side**2 * self.patch_bytes()

    def _recipe(self) -> tuple[ConvergenceSpectrum, int, float | None]:
        """The spectrum, the side of each drawn field and the lognormal shift (``None``:
        Gaussian)."""
        spectrum = _spectrum(self.cosmology, self.spectrum_table)
        size = self.field_pixels
        if self.kind != "lognormal":
            return spectrum, size, None
        shift = self.shift
        if shift is None:
            shift = -HalofitConvergenceSpectrum(**dict(self.cosmology)).minimum_convergence()
        return spectrum, size, shift

    @property
    def field_pixels(self) -> int:
        """Side of each drawn field: the large field's, or a patch's for periodic maps."""
        return self.patch_pixels if self.periodic else self.patch_pixels * self.per_side

    def prepare(self, plan: FieldPlan | None = None) -> FieldPlan:
        """Compute what all maps of this recipe share (whatever their seed), in this process;
        or keep ``plan``, computed for this recipe in another process
        (:func:`lensing_ssc.analysis.fields.prepare_field`)."""
        spectrum, size, shift = self._recipe()
        return prepare_field(size, self.pixel_size_arcmin, spectrum, shift=shift, plan=plan)

    def load(self) -> np.ndarray:
        spectrum, size, shift = self._recipe()
        rng = default_rng(self.seed)
        count = self.per_side**2 if self.periodic else None
        if shift is not None:
            fields = lognormal_field(
                size, self.pixel_size_arcmin, spectrum, rng, shift=shift, n_fields=count
            )
        else:
            fields = gaussian_field(size, self.pixel_size_arcmin, spectrum, rng, n_fields=count)
        if self.periodic:
            return np.asarray(fields)
        return cut_subpatches(fields, self.patch_pixels)


@dataclass(frozen=True)
class PatchFile:
    """One flat square patch in a ``.npy`` or ``.fits`` file."""

    path: str
    stamp: Stamp
    pixel_size_arcmin: float

    def cache_key(self) -> tuple[Any, ...]:
        return ("file", *field_values(self))

    def estimated_bytes(self) -> int:
        return 3 * self.stamp[0]

    def patch_bytes(self) -> int:
        """At most twice the file: float64 from float32 or wider data, plus a header."""
        return 2 * self.stamp[0]

    def output_bytes(self) -> int:
        return self.patch_bytes()

    def load(self) -> np.ndarray:
        return load_flat_patch(self.path)[None]


MapSource = SyntheticMap | HealpixMap | PatchFile


@dataclass(frozen=True)
class MapTask:
    """One map of a run: which set it belongs to, its position there, and its recipe.

    ``map_id`` (``"subpatches/map-0003"``, ``"bigbox/zs=1/map-0000"``) names it in keys,
    logs and the results file. ``set_name`` is the set of the results: a configured set, or
    one source redshift of it (:func:`._sets.group_name`); ``suite`` the configured set,
    ``z_source`` the source redshift and ``metadata`` the fields read from the file name or
    given for the set (HEALPix sets only).
    """

    set_name: str
    index: int
    source: MapSource
    suite: str = ""
    z_source: float | None = None
    metadata: tuple[tuple[str, Any], ...] = ()

    @property
    def map_id(self) -> str:
        return f"{self.set_name}/map-{self.index:04d}"

    @property
    def label(self) -> str:
        """What a person recognises the map by: its file, or its id."""
        if isinstance(self.source, (HealpixMap, PatchFile)):
            return self.source.path
        return self.map_id

    def noise_seed(self, seed: int, patch_index: int) -> list[int]:
        """Entropy of the shape noise of one patch (distinct from every field's)."""
        return [seed, _set_code(self.set_name), self.index, 1, patch_index]


def _set_code(set_name: str) -> int:
    """The number of a set in every seed: fixed for the built-in sets, else from its name."""
    code = SET_CODES.get(set_name)
    if code is not None:
        return code
    # Above the built-in codes, and the same in every process and Python version.
    return 2**16 + int.from_bytes(hashlib.sha256(set_name.encode()).digest()[:4], "big")

"""Where the patches of a run come from: one recipe per map, and the list of maps of a run.

A *map* is the unit the pipeline loads, caches and can lose: a synthetic field cut into
sub-patches, a batch of independent periodic fields, a HEALPix map cut into gnomonic
patches, or one flat patch file. Each recipe (:class:`SyntheticMap`, :class:`HealpixMap`,
:class:`PatchFile`) is a small frozen value that pickles to workers, names its cache
entry (:meth:`cache_key`) and loads its patches as one ``(k, n, n)`` array. Synthetic maps
are seeded per map, so any process draws the same field. :func:`plan_maps` turns the
``pipeline`` config section into the run's :class:`MapTask` list. Running tasks is in
:mod:`._tasks`; the science in :mod:`lensing_ssc.analysis`.

A HEALPix map's masked pixels (NaN, UNSEEN, zero in ``healpix.mask``) are handled by
:func:`lensing_ssc.analysis.cut_healpix_patches`: patches masked above
``healpix.max_masked_fraction`` are dropped, which :class:`HealpixMap` logs per map and
:func:`dropped_patches` counts for the results (planned patches minus those the map gave).

HEALPix maps come in sets: ``healpix.maps`` is the set ``healpix``, ``healpix.sets`` names
more, each with a file-name pattern (``kappa_zs{zs}_s{seed}.fits``) or explicit fields giving
every map's metadata (:func:`._sets.parse_file_name`). A set's maps are grouped by source redshift
``zs``: each group (``bigbox/zs=1``) is a set of the results, and :func:`plan_comparisons`
pairs the groups of the compared sets at every ``zs`` both have.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from numpy.random import default_rng

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    HealpixPatches,
    TabulatedSpectrum,
    cut_healpix_patches,
    cut_subpatches,
    gaussian_field,
    load_flat_patch,
    lognormal_field,
    patch_centers,
)
from lensing_ssc.analysis.fields import FieldPlan, prepare_field
from lensing_ssc.analysis.spectra import ConvergenceSpectrum
from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError, ResourceError
from lensing_ssc.pipelines._config import HealpixSetSection, PipelineSection
from lensing_ssc.pipelines._sets import Comparison, group_name, parse_file_name

__all__ = [
    "SET_DESCRIPTIONS",
    "HealpixMap",
    "MapSource",
    "MapTask",
    "PatchFile",
    "SyntheticMap",
    "dropped_patches",
    "plan_comparisons",
    "plan_maps",
    "prepare_maps",
    "synthetic_recipes",
]

SET_CODES = {"subpatches": 0, "periodic": 1, "healpix": 2, "patches": 3}
"""Stable number of each patch set, part of every seed (never reorder)."""

SET_DESCRIPTIONS = {
    "subpatches": "sub-patches cut from large periodic fields (super-sample modes present)",
    "periodic": "independent periodic fields of the patch size (no super-sample modes)",
    "healpix": "gnomonic patches of HEALPix maps",
    "patches": "flat patches read from files",
}

_FLOAT_BYTES = 8

_log = logging.getLogger("lensing_ssc.pipelines")


Stamp = tuple[int, int | str]
"""What identifies an input file in cache keys and the run's record: its size, then a
digest of its content (``"blake2b:..."``) or, for a file too large to read for it, its
modification time in ns."""

_HASH_BLOCK = 1 << 20


def _stamp(path: str, hash_up_to: int) -> Stamp:
    """The :data:`Stamp` of an input file: a changed file gets a new cache key.

    Files of at most ``hash_up_to`` bytes are read for a digest of their content (BLAKE2b
    from the standard library, so that every node of a cluster computes the same one,
    whichever extras it has); larger ones are known by size and modification time.
    """
    try:
        info = Path(path).stat()
        if info.st_size > hash_up_to:
            return info.st_size, info.st_mtime_ns
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as file:
            while block := file.read(_HASH_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(
            f"cannot read input file {path!r}: {exc.strerror or exc}",
            value=path,
            hint="check the path in the pipeline section of the config",
        ) from exc
    return info.st_size, f"blake2b:{digest.hexdigest()}"


def _hash_up_to(section: PipelineSection) -> int:
    """Bytes up to which ``section``'s input files are known by their content."""
    return int(section.hash_inputs_mb * 2**20)


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
        table_stamp: That file's :data:`Stamp`.
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
        return ("synthetic", *_plain(self))

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


@lru_cache(maxsize=16)
def _patch_count(patch_size_deg: float, n_points: int | None) -> int:
    return int(patch_centers(patch_size_deg, n_points)[0].size)


@dataclass(frozen=True)
class HealpixMap:
    """One HEALPix κ map (FITS), cut into non-overlapping gnomonic patches.

    ``mask`` (a FITS map, nonzero = observed; ``mask_stamp`` its :data:`Stamp`)
    and the map's own NaN and UNSEEN pixels are masked; patches masked above
    ``max_masked_fraction`` are dropped (see :func:`lensing_ssc.analysis.cut_healpix_patches`).
    """

    path: str
    stamp: Stamp
    field: int
    patch_size_deg: float
    patch_pixels: int
    n_points: int | None
    interpolation: str
    mask: str | None = None
    mask_stamp: Stamp | None = None
    max_masked_fraction: float = 0.0

    def planned_patches(self) -> int:
        """Patches the map gives when none is dropped: the non-overlapping centres."""
        return _patch_count(self.patch_size_deg, self.n_points)

    @property
    def pixel_size_arcmin(self) -> float:
        """Flat-sky pixel side at the patch centres, 2 tan(s/2)/n."""
        return (
            2.0
            * math.tan(math.radians(self.patch_size_deg) / 2.0)
            / self.patch_pixels
            * (180.0 * 60.0 / math.pi)
        )

    def cache_key(self) -> tuple[Any, ...]:
        return ("healpix", *_plain(self))

    def estimated_bytes(self) -> int:
        """The map read as float64 (at most 4 × a float32 file) plus twice its patches."""
        return 4 * self.stamp[0] + 2 * self.output_bytes()

    def patch_bytes(self) -> int:
        """Bytes of one patch (float64)."""
        return self.patch_pixels**2 * _FLOAT_BYTES

    def output_bytes(self) -> int:
        """Bytes of all the map's patches: what the cache keeps of it."""
        return self.planned_patches() * self.patch_bytes()

    def load(self) -> np.ndarray:
        return self.cut().patches

    def cut(self) -> HealpixPatches:
        """The kept patches and where they were cut (``indices`` among the planned centres)."""
        sky = _read_healpix(self.path, self.field, "HEALPix map")
        mask = None if self.mask is None else _read_healpix(self.mask, 0, "HEALPix mask")
        centers = None
        if self.n_points is not None:
            centers = patch_centers(self.patch_size_deg, self.n_points)
        try:
            cut = cut_healpix_patches(
                sky,
                self.patch_size_deg,
                self.patch_pixels,
                centers=centers,
                interpolation="nearest" if self.interpolation == "nearest" else "bilinear",
                mask=mask,
                max_masked_fraction=self.max_masked_fraction,
            )
        except AnalysisError as exc:  # say which of the run's maps it was
            raise AnalysisError(
                f"HEALPix map {self.path!r}: {exc.message}", value=exc.value, hint=exc.hint
            ) from exc
        total = cut.n_dropped + len(cut.patches)
        if cut.n_dropped:
            _log.warning(
                "HEALPix map %s: %d of %d patches dropped, masked above max_masked_fraction=%g",
                self.path,
                cut.n_dropped,
                total,
                self.max_masked_fraction,
            )
        if not len(cut.patches):
            raise AnalysisError(
                f"HEALPix map {self.path!r}: all {total} patches are masked above "
                f"max_masked_fraction={self.max_masked_fraction:g}",
                value=self.path,
                hint="check the mask, or raise pipeline.healpix.max_masked_fraction",
            )
        return cut


def _read_healpix(path: str, field: int, what: str) -> np.ndarray:
    try:  # imported when needed: healpy costs ~0.8 s in every worker process otherwise
        import healpy
    except ImportError:
        raise ModuleNotFoundError(
            'reading HEALPix maps needs healpy: pip install "lensing-ssc[healpix]"'
        ) from None
    try:
        return np.asarray(healpy.read_map(path, field=field, dtype=np.float64))
    except (OSError, ValueError, IndexError, KeyError, TypeError) as exc:
        error = AnalysisError(
            f"cannot read {what} {path!r}: {exc}",
            value=path,
            hint="give a FITS file written by healpy.write_map (field = column number)",
        )
        error.retryable = isinstance(exc, OSError)  # a read may pass next time
        raise error from exc


@dataclass(frozen=True)
class PatchFile:
    """One flat square patch in a ``.npy`` or ``.fits`` file."""

    path: str
    stamp: Stamp
    pixel_size_arcmin: float

    def cache_key(self) -> tuple[Any, ...]:
        return ("file", *_plain(self))

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


def _plain(source: Any) -> tuple[Any, ...]:
    return tuple(getattr(source, name) for name in source.__dataclass_fields__)


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


def _expand(patterns: list[str], what: str) -> list[str]:
    paths: list[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise ConfigError(
                    f"no file matches {pattern!r}",
                    value=pattern,
                    hint=f"check the pattern in pipeline.{what}",
                    field=f"pipeline.{what}",
                )
            paths.extend(matches)
        else:
            paths.append(pattern)
    return paths


def _healpix_sets(section: PipelineSection) -> dict[str, HealpixSetSection]:
    hp = section.healpix
    sets = dict(hp.sets)
    if hp.maps:
        sets = {"healpix": HealpixSetSection(maps=hp.maps), **sets}
    return sets


def _plan_healpix(section: PipelineSection) -> list[MapTask]:
    """The HEALPix maps of a run: per set (in config order), per ``zs`` (ascending), by file."""
    hp = section.healpix
    up_to = _hash_up_to(section)
    mask_stamp = None if hp.mask is None else _stamp(str(hp.mask), up_to)
    tasks: list[MapTask] = []
    for suite, spec in _healpix_sets(section).items():
        where = "healpix" if suite == "healpix" and hp.maps else f"healpix.sets.{suite}"
        groups: dict[float | None, list[tuple[str, dict[str, Any]]]] = {}
        for path in _expand(spec.maps, f"{where}.maps"):
            fields = dict(spec.fields)
            if spec.zs is not None:
                fields["zs"] = float(spec.zs)
            if spec.pattern is not None:
                fields.update(parse_file_name(path, spec.pattern, where=f"pipeline.{where}"))
            z_source = fields.get("zs")
            groups.setdefault(None if z_source is None else float(z_source), []).append(
                (path, fields)
            )
        for z_source in sorted(groups, key=lambda z: -1.0 if z is None else z):
            name = group_name(suite, z_source)
            for i, (path, fields) in enumerate(groups[z_source]):
                source = HealpixMap(
                    path=path,
                    stamp=_stamp(path, up_to),
                    field=hp.field,
                    patch_size_deg=hp.patch_size_deg,
                    patch_pixels=hp.patch_pixels,
                    n_points=hp.n_points,
                    interpolation=hp.interpolation,
                    mask=None if hp.mask is None else str(hp.mask),
                    mask_stamp=mask_stamp,
                    max_masked_fraction=hp.max_masked_fraction,
                )
                metadata = tuple(sorted(fields.items()))
                tasks.append(MapTask(name, i, source, suite, z_source, metadata))
    return tasks


def plan_comparisons(section: PipelineSection, maps: Sequence[MapTask]) -> list[Comparison]:
    """The comparisons of a run: each compared pair of sets at every ``zs`` both have.

    The synthetic pair keeps its place at the top of ``ssc/``; HEALPix pairs go to
    ``ssc/<a>~<b>/zs=<z>`` (``ssc/<a>~<b>`` for sets without a source redshift).

    Raises:
        ConfigError: a compared pair has no source redshift in common.
    """
    if section.input != "healpix":
        return [Comparison("", a, b) for a, b in section.comparisons()]
    redshifts: dict[str, list[float | None]] = {}
    for task in maps:
        found = redshifts.setdefault(task.suite, [])
        if task.z_source not in found:
            found.append(task.z_source)
    comparisons = []
    for a, b in section.comparisons():
        shared = [z for z in redshifts.get(a, []) if z in redshifts.get(b, [])]
        if not shared:
            raise ConfigError(
                f"compare pairs {a!r} (zs {_redshifts(redshifts.get(a, []))}) with {b!r} "
                f"(zs {_redshifts(redshifts.get(b, []))}): no source redshift in common",
                value=[a, b],
                hint="give both sets maps at one zs (in the file names or as zs: …)",
                field="pipeline.compare",
            )
        for z_source in shared:
            path = group_name(f"{a}~{b}", z_source)
            comparisons.append(
                Comparison(path, group_name(a, z_source), group_name(b, z_source), z_source)
            )
    return comparisons


def _redshifts(values: Sequence[float | None]) -> str:
    return ", ".join("none" if z is None else f"{z:g}" for z in values) or "none"


_PLAN_BYTES_PER_MAP = 4096
"""Bytes this process keeps per map of a run before and besides its patches' statistics:
its task (400 B measured), its share of the run's record (400 B more, and as much again
as the record's JSON text), its summary, journal key and index entry."""
_PLAN_BYTES_PER_PATCH = 1024
"""Bytes per planned patch: its task, key and journal index entry (the statistics it
gives are the memory guard's to count, once the run knows their size)."""


def plan_maps(section: PipelineSection, *, memory_limit_mb: float | None = None) -> list[MapTask]:
    """Return the maps of a run, in a stable order (sub-patches first, then periodic).

    HEALPix maps come set by set, in the config's order, each set by source redshift.

    Args:
        section: The run's pipeline section.
        memory_limit_mb: The job's memory limit; default: the machine's memory. A
            synthetic plan whose tasks alone would not fit (``n_large_fields: 1e22`` is a
            valid whole number) is refused before a single task is built.

    Raises:
        ConfigError: an input file is missing, a glob matches nothing, or a file's name
            does not match its set's pattern.
        ResourceError: the synthetic plan's tasks would not fit in ``memory_limit_mb``.
    """
    if section.input == "synthetic":
        _check_plan_fits(section, memory_limit_mb)
    if section.input == "healpix":
        return _plan_healpix(section)
    if section.input == "patches":
        files = section.patches
        return [
            MapTask(
                "patches",
                i,
                PatchFile(path, _stamp(path, _hash_up_to(section)), files.pixel_size_arcmin),
            )
            for i, path in enumerate(_expand(files.files, "patches.files"))
        ]
    syn = section.synthetic
    table = None if syn.spectrum_table is None else str(syn.spectrum_table)
    table_stamp = None if table is None else _stamp(table, _hash_up_to(section))
    cosmology = tuple(sorted(syn.cosmology.model_dump().items()))
    sets = ["subpatches", "periodic"] if syn.periodic else ["subpatches"]
    return [
        MapTask(
            name,
            i,
            SyntheticMap(
                kind=syn.kind,
                patch_pixels=syn.patch_pixels,
                per_side=syn.patches_per_side,
                periodic=name == "periodic",
                pixel_size_arcmin=syn.pixel_size_arcmin,
                seed=(section.seed, SET_CODES[name], i, 0),
                cosmology=cosmology,
                shift=syn.shift,
                spectrum_table=table,
                table_stamp=table_stamp,
            ),
        )
        for name in sets
        for i in range(syn.n_large_fields)
    ]


def _check_plan_fits(section: PipelineSection, memory_limit_mb: float | None) -> None:
    """Refuse a synthetic plan whose tasks, records and results would not fit in memory.

    HEALPix and patch-file plans have a task per file that exists, which fits; a synthetic
    plan has as many as ``n_large_fields`` says, however many that is.
    """
    syn = section.synthetic
    maps = syn.n_large_fields * (2 if syn.periodic else 1)
    patches = maps * syn.patches_per_side**2
    need = maps * _PLAN_BYTES_PER_MAP + patches * _PLAN_BYTES_PER_PATCH
    source = "the job's memory limit"
    if memory_limit_mb is None:
        memory_limit_mb, source = psutil.virtual_memory().total / 2**20, "this machine's memory"
    if need <= memory_limit_mb * 2**20:
        return
    raise ResourceError(
        f"a run of {_rough(maps)} maps and {_rough(patches)} patches "
        f"(pipeline.synthetic.n_large_fields = {_rough(syn.n_large_fields)}) would need "
        f"about {_rough(need // 2**20)} MiB for its tasks and records alone, more than the "
        f"{memory_limit_mb:.0f} MiB of {source}",
        value=syn.n_large_fields,
        hint="lower pipeline.synthetic.n_large_fields (or patches_per_side), or split the "
        "run into several",
    )


def _rough(count: int) -> str:
    """``count`` as digits up to 10**15, else its order of magnitude (``10^22``): an integer
    of a config file may be too large for a float, or to print in full."""
    if count < 10**15:
        return str(count)
    return f"10^{int(count.bit_length() * math.log10(2))}"


def dropped_patches(maps: Sequence[MapTask], kept: Sequence[int | None]) -> dict[str, int]:
    """Patches dropped for their mask, per map id, from the patches each map gave.

    ``kept[i]`` is how many patches ``maps[i]`` gave (``None``: the map failed, and counts
    among the failures instead). Only HEALPix maps drop patches; maps that dropped none are
    left out.
    """
    counts: dict[str, int] = {}
    for task, given in zip(maps, kept, strict=True):
        if given is None or not isinstance(task.source, HealpixMap):
            continue
        dropped = task.source.planned_patches() - given
        if dropped > 0:
            counts[task.map_id] = dropped
    return counts


def prepare_maps(maps: Sequence[MapTask]) -> None:
    """Compute, in this process, what the maps of a run share, once per recipe.

    For synthetic maps that is the spectrum and the field's Fourier amplitudes (see
    :func:`lensing_ssc.analysis.fields.prepare_field`); other inputs share nothing. Worker
    processes forked afterwards inherit it, so a run whose worker pool starts after this
    costs the same as a run in this process, however many runs came before.

    A recipe that cannot be prepared (a spectrum table with bad values, say) is skipped:
    its map tasks meet the same error and record it per map, as without preparing.
    """
    for source in synthetic_recipes(maps):
        try:
            source.prepare()
        except (AnalysisError, ConfigError):
            continue


def synthetic_recipes(maps: Sequence[MapTask]) -> list[SyntheticMap]:
    """The recipes of the synthetic maps among ``maps``, each once, without their seeds:
    what maps differing only in their seed share (:meth:`SyntheticMap.prepare`)."""
    recipes = dict.fromkeys(
        replace(task.source, seed=()) for task in maps if isinstance(task.source, SyntheticMap)
    )
    return list(recipes)  # in the order of their first maps

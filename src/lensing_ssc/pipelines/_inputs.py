"""Which maps a run has: the ``pipeline`` config section turned into its ``MapTask`` list.

:func:`plan_maps` expands the config's file patterns, stamps every input file and builds one
:class:`~._map_recipes.MapTask` per map, in a stable order; a synthetic plan too large for
the job's memory is refused before a single task is built. :func:`prepare_maps` computes
what the synthetic maps share once, before workers fork; :func:`dropped_patches` counts the
patches each HEALPix map lost to its mask (planned patches minus those the map gave).

HEALPix maps come in sets: ``healpix.maps`` is the set ``healpix``, ``healpix.sets`` names
more, each with a file-name pattern (``kappa_zs{zs}_s{seed}.fits``) or explicit fields giving
every map's metadata (:func:`._sets.parse_file_name`). A set's maps are grouped by source redshift
``zs``: each group (``bigbox/zs=1``) is a set of the results, and :func:`plan_comparisons`
pairs the groups of the compared sets at every ``zs`` both have.

Not here: the recipes themselves (how a map is drawn, read or cut, and its cache key) are in
:mod:`._map_recipes` and :mod:`._healpix_maps`; what identifies an input file is
:mod:`._input_identity`'s; running the tasks is :mod:`._tasks`'s.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import psutil

from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError, ResourceError
from lensing_ssc.pipelines._config import HealpixSetSection, PipelineSection
from lensing_ssc.pipelines._healpix_maps import HealpixMap
from lensing_ssc.pipelines._input_identity import file_stamp, hash_up_to
from lensing_ssc.pipelines._map_recipes import SET_CODES, MapTask, PatchFile, SyntheticMap
from lensing_ssc.pipelines._sets import Comparison, group_name, parse_file_name

__all__ = [
    "dropped_patches",
    "plan_comparisons",
    "plan_maps",
    "prepare_maps",
    "synthetic_recipes",
]


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
    up_to = hash_up_to(section)
    mask_stamp = None if hp.mask is None else file_stamp(str(hp.mask), up_to)
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
                    stamp=file_stamp(path, up_to),
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
                PatchFile(path, file_stamp(path, hash_up_to(section)), files.pixel_size_arcmin),
            )
            for i, path in enumerate(_expand(files.files, "patches.files"))
        ]
    syn = section.synthetic
    table = None if syn.spectrum_table is None else str(syn.spectrum_table)
    table_stamp = None if table is None else file_stamp(table, hash_up_to(section))
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

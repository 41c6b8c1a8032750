"""The light-cone stages' plan: shell tables, files and tasks of each realisation.

Before any work starts, :func:`plan_lightcone` turns the ``lightcone`` section into

* the shell tasks (:class:`ShellChunkTask`: one per realisation and chunk of
  ``shells.per_task`` consecutive shells), for the ``particles`` and ``lognormal`` sources;
* each realisation's shells (:class:`ShellSet`: the table's edges and one file per shell),
  either the files the shell stage will write or, for the ``maps`` source, files found on
  disk with their ranges read from the file names, a table or the headers (a gap or an
  overlap between two files' ranges is refused, naming both files);
* the κ tasks (:class:`KappaTask`: one per realisation and source).

Everything here is a small frozen value that pickles to workers. Output names: shells
``shells/shell{index:03d}_s{seed}.fits``, κ maps ``kappa/kappa_zs{zs}_s{seed}.fits`` and
``kappa/kappa_nz{name}_s{seed}.fits`` under the run directory (:data:`KAPPA_PATTERN` is the
pattern a ``pipeline.healpix`` set reads them with). Running the tasks is
:mod:`._lightcone_tasks`; the orchestration :mod:`lensing_ssc.pipelines.lightcone`.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.analysis.born import SourceDistribution, source_label
from lensing_ssc.analysis.healpix_files import read_healpix_header
from lensing_ssc.analysis.shells import Background, ShellTable
from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError
from lensing_ssc.pipelines._lightcone_config import KappaSection, LightconeSection, NzSection
from lensing_ssc.pipelines._sets import parse_file_name

__all__ = [
    "KAPPA_PATTERN",
    "KappaTask",
    "LightconePlan",
    "ShellChunkTask",
    "ShellSet",
    "background_of",
    "kappa_name",
    "plan_lightcone",
    "shell_name",
]

KAPPA_PATTERN = "kappa_zs{zs}_s{seed}.fits"
"""How the κ maps of source planes are named: a ``pipeline.healpix`` set's ``pattern``."""

_WHERE = "lightcone.shells.maps"


def shell_name(index: int, seed: int) -> str:
    """``shell007_s3.fits``: the file of shell ``index`` of realisation ``seed``."""
    return f"shell{index:03d}_s{seed}.fits"


def kappa_name(source: float | SourceDistribution, seed: int) -> str:
    """``kappa_zs1_s3.fits`` for a source plane, ``kappa_nzdes_s3.fits`` for an n(z)."""
    if isinstance(source, SourceDistribution):
        return f"kappa_nz{source.name}_s{seed}.fits"
    return KAPPA_PATTERN.format(zs=f"{float(source):g}", seed=seed)


def background_of(section: LightconeSection) -> Background:
    """The distances of ``section.cosmology``, far enough for every shell and source."""
    reach = max([*section.kappa.z_sources, *(section.shells.z_edges or [0.0]), 10.0])
    return Background(section.cosmology.omega_m, section.cosmology.h, z_max=max(10.0, reach))


@dataclass(frozen=True)
class ShellChunkTask:
    """Make shells ``first … stop − 1`` of realisation ``seed``."""

    seed: int
    first: int
    stop: int

    @property
    def key(self) -> str:
        return f"s{self.seed}/shells{self.first:03d}-{self.stop - 1:03d}"


@dataclass(frozen=True)
class ShellSet:
    """One realisation's shells: distance edges (Mpc) and one file per shell, in order.

    ``kind`` is what the files hold (``delta``, ``counts``, ``mass``); ``field`` the column.
    """

    seed: int
    edges: tuple[float, ...]
    files: tuple[str, ...]
    kind: str
    field: int = 0

    def table(self, background: Background) -> ShellTable:
        return ShellTable.from_distance_edges(np.array(self.edges), background)


@dataclass(frozen=True)
class KappaTask:
    """The κ map of realisation ``seed`` for ``source`` (a redshift or an n(z))."""

    seed: int
    source: float | SourceDistribution

    @property
    def key(self) -> str:
        return f"s{self.seed}/{source_label(self.source)}"


@dataclass(frozen=True)
class LightconePlan:
    """What the stages will do: shell tasks (may be none), shells per seed, κ tasks."""

    shell_tasks: tuple[ShellChunkTask, ...]
    shell_sets: dict[int, ShellSet]
    kappa_tasks: tuple[KappaTask, ...]
    shell_dir: Path
    kappa_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "shell_tasks": [t.key for t in self.shell_tasks],
            "shells": {str(s): list(v.files) for s, v in self.shell_sets.items()},
            "kappa_tasks": [t.key for t in self.kappa_tasks],
        }


def _distributions(kappa: KappaSection) -> list[SourceDistribution]:
    out = []
    for name, nz in kappa.nz.items():
        out.append(SourceDistribution(name, *_nz_columns(name, nz)))
    return out


def _nz_columns(name: str, nz: NzSection) -> tuple[np.ndarray, np.ndarray]:
    if nz.file is None:
        return np.asarray(nz.z, dtype=float), np.asarray(nz.n, dtype=float)
    try:
        table = np.loadtxt(nz.file, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the n(z) table {str(nz.file)!r}: {exc}",
            value=str(nz.file),
            hint="a text file of two columns, z and n(z)",
            field=f"lightcone.kappa.nz.{name}.file",
        ) from exc
    if table.shape[1] < 2:
        raise ConfigError(
            f"the n(z) table {str(nz.file)!r} has {table.shape[1]} column(s), not 2",
            value=str(nz.file),
            hint="a text file of two columns, z and n(z)",
            field=f"lightcone.kappa.nz.{name}.file",
        )
    return table[:, 0], table[:, 1]


def _generated_sets(
    section: LightconeSection, table: ShellTable, shell_dir: Path
) -> dict[int, ShellSet]:
    kind = "counts" if section.shells.source == "particles" else "delta"
    edges = tuple(float(e) for e in table.distance_edges)
    return {
        seed: ShellSet(
            seed,
            edges,
            tuple(str(shell_dir / shell_name(i, seed)) for i in range(len(table))),
            kind,
        )
        for seed in section.seeds
    }


def _found_sets(section: LightconeSection, background: Background) -> dict[int, ShellSet]:
    maps = section.shells.maps
    if maps is None:  # the section's validator requires it for this source
        raise ConfigError("shells.maps is missing", value=None, hint="", field=_WHERE)
    paths: list[str] = []
    for entry in maps.files:
        found = sorted(glob.glob(entry)) if glob.has_magic(entry) else [entry]
        paths += [p for p in found if p not in paths]
    by_seed: dict[int, list[tuple[str, tuple[float, float], str]]] = {}
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(
                f"shell map {path!r} does not exist",
                value=path,
                hint=f"fix {_WHERE}.files",
                field=f"{_WHERE}.files",
            )
        fields = parse_file_name(path, maps.pattern, where=_WHERE)
        seed = int(fields["seed"])
        if seed not in section.seeds:
            continue
        low_high, unit = _range_of(path, fields, maps.table, maps.unit)
        by_seed.setdefault(seed, []).append((path, low_high, unit))
    sets = {}
    for seed in section.seeds:
        entries = by_seed.get(seed)
        if not entries:
            raise ConfigError(
                f"no shell map of realisation {seed} among {len(paths)} file(s) of {_WHERE}.files",
                value=seed,
                hint=f"fix {_WHERE}.files or pattern, or lightcone.seeds",
                field=f"{_WHERE}.files",
            )
        names = [Path(p).name for p, _, _ in entries]
        units = {u for _, _, u in entries}
        if units == {"z"}:
            ranges, unit = [r for _, r, _ in entries], "z"
        else:  # distances, or a mix: compare everything in Mpc
            ranges = [
                r if u == "mpc" else tuple(background.comoving_distance(np.array(r)))
                for _, r, u in entries
            ]
            unit = "mpc"
        table = ShellTable.from_ranges(ranges, background, unit=unit, names=names)  # type: ignore[arg-type]
        order = np.argsort([r[0] for r in ranges], kind="stable")
        edges = tuple(float(e) for e in table.distance_edges)
        sets[seed] = ShellSet(
            seed, edges, tuple(entries[i][0] for i in order), maps.kind, maps.field
        )
    return sets


def _range_of(
    path: str,
    fields: dict[str, Any],
    table: list[tuple[float, float]] | None,
    unit: str,
) -> tuple[tuple[float, float], str]:
    """A file's shell range and its unit (``z`` or ``mpc``): from its name, the table, or
    its header, in that order."""
    for low, high, kind in (("z_min", "z_max", "z"), ("chi_min", "chi_max", "mpc")):
        if low in fields and high in fields:
            return (float(fields[low]), float(fields[high])), kind
    if table is not None:
        index = int(fields["index"])
        if not 0 <= index < len(table):
            raise ConfigError(
                f"{path!r} is shell {index}, but the table has {len(table)} row(s)",
                value=index,
                hint=f"add its row to {_WHERE}.table",
                field=f"{_WHERE}.table",
            )
        return (float(table[index][0]), float(table[index][1])), unit
    header = read_healpix_header(path)
    for low, high, kind in (("Z_MIN", "Z_MAX", "z"), ("CHI_MIN", "CHI_MAX", "mpc")):
        if low in header and high in header:
            return (float(header[low]), float(header[high])), kind
    raise ConfigError(
        f"the range of shell map {path!r} is given nowhere: not in its name, no table, no "
        "Z_MIN/Z_MAX or CHI_MIN/CHI_MAX card in its header",
        value=path,
        hint=f"add {{z_min}}/{{z_max}} to {_WHERE}.pattern, or a table with {{index}}",
        field=f"{_WHERE}.pattern",
    )


def plan_lightcone(section: LightconeSection, run_dir: Path) -> LightconePlan:
    """The tasks and files of the light-cone stages of ``section`` under ``run_dir``.

    Raises:
        ConfigError: missing shell maps, unreadable names or n(z) tables.
        AnalysisError: shell ranges with gaps or overlaps, naming the shells.
    """
    background = background_of(section)
    shell_dir, kappa_dir = run_dir / "shells", run_dir / "kappa"
    shells = section.shells
    tasks: list[ShellChunkTask] = []
    if shells.source == "maps":
        sets = _found_sets(section, background)
    else:
        if shells.z_edges is not None:
            table = ShellTable.from_redshift_edges(shells.z_edges, background)
        else:
            table = ShellTable.from_distance_edges(np.asarray(shells.chi_edges), background)
        sets = _generated_sets(section, table, shell_dir)
        step = shells.per_task
        tasks = [
            ShellChunkTask(seed, first, min(first + step, len(table)))
            for seed in section.seeds
            for first in range(0, len(table), step)
        ]
    sources: list[float | SourceDistribution] = [
        *section.kappa.z_sources,
        *_distributions(section.kappa),
    ]
    _check_reach(sets, background, sources)
    kappa_tasks = tuple(KappaTask(seed, s) for seed in section.seeds for s in sources)
    return LightconePlan(tuple(tasks), sets, kappa_tasks, shell_dir, kappa_dir)


def _check_reach(
    sets: dict[int, ShellSet], background: Background, sources: Sequence[float | SourceDistribution]
) -> None:
    """Refuse sources farther than the shells reach: their κ would miss the matter behind."""
    for seed, shell_set in sets.items():
        far = float(background.redshift(np.array([shell_set.edges[-1]]))[0])
        for source in sources:
            z = float(np.max(source.z)) if isinstance(source, SourceDistribution) else float(source)
            if z > far * (1 + 1e-9):
                raise AnalysisError(
                    f"source {source_label(source)} lies beyond the shells of realisation "
                    f"{seed}, which end at z = {far:.4g}",
                    value=z,
                    hint="add shells out to the farthest source, or drop that source",
                )

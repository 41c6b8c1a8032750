"""The ``lightcone`` config section: mass shells and κ maps, before the patch statistics.

:class:`LightconeSection` is a field of :class:`~lensing_ssc.pipelines.PipelineConfig`, so one
file configures the whole study: ``lensing-ssc kappa CONFIG`` makes the shells and κ maps
(this section), ``lensing-ssc run CONFIG`` measures them (the ``pipeline`` section, whose
HEALPix set reads ``kappa_zs{zs}_s{seed}.fits``). Shells come from one of three sources:

* ``particles`` — a FastPM light cone (``usmesh``, bigfile) per realisation, binned into
  shells of ``shells.z_edges`` or ``shells.chi_edges`` (:class:`ParticlesSection`);
* ``lognormal`` — the built-in demo: lognormal δ shells of the package's halofit spectrum;
* ``maps`` — HEALPix shell maps already on disk, their ranges read from the file names,
  their headers or a table (:class:`ShellMapsSection`).

Every field is documented in ``docs/kappa.md``. This module only validates: planning the
tasks is :mod:`._lightcone_plan`, running them :mod:`lensing_ssc.pipelines.lightcone`.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from lensing_ssc.core.config import Integer, Real, Section

__all__ = [
    "KappaSection",
    "LightconeCosmologySection",
    "LightconeSection",
    "NzSection",
    "ParticlesSection",
    "ShellMapsSection",
    "ShellsSection",
]

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _as_list(value: object) -> object:
    if value is None or isinstance(value, (list, tuple)):
        return value
    return [value]


def _increasing(values: list[float] | None, what: str) -> list[float] | None:
    if values is None:
        return None
    if len(values) < 2:
        raise ValueError(f"{what} needs at least two edges (n + 1 edges for n shells)")
    if values[0] < 0 or any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{what} must be ≥ 0 and strictly increasing, got {values}")
    return values


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        raise ValueError(f"nside must be a power of 2, got {value}")
    return value


# The bounds stay on each field (``Field(ge=1, le=...)``) so that the JSON schema shows them as
# minimum/maximum and they are checked before the power of 2, as for any other number.
_Nside = Annotated[Integer, AfterValidator(_power_of_two)]
"""A HEALPix resolution: an integer power of 2 (shells and κ maps alike)."""


class LightconeCosmologySection(Section):
    """Flat ΛCDM: the distances of the shells and Born weights, and the demo's spectrum."""

    omega_m: Real = Field(default=0.3, ge=0.05, le=0.95)
    omega_b: Real = Field(default=0.05, ge=0, lt=1)
    h: Real = Field(default=0.7, ge=0.2, le=2.0)
    n_s: Real = Field(default=0.96, gt=0)
    sigma8: Real = Field(default=0.8, gt=0)
    nonlinear: bool = True


class ParticlesSection(Section):
    """A FastPM ``usmesh`` light cone per realisation.

    ``catalogue`` is its bigfile directory, with ``{seed}`` standing for the realisation
    (``sims/run{seed}/usmesh``); ``dataset`` the particle block (``1``, FastPM's CDM).
    ``radial``: a particle's shell is that of ``|x|`` (``position``) or of χ(Aemit)
    (``aemit``). ``chunk_size`` particles are read at once. ``mean``: the mean count δ is
    taken against, ``expected`` (the box's particle density × the shell's volume) or
    ``map`` (the shell's own mean).
    """

    catalogue: str
    dataset: str = "1"
    radial: Literal["position", "aemit"] = "position"
    chunk_size: Integer = Field(default=4_000_000, ge=1024)
    mean: Literal["expected", "map"] = "expected"

    @field_validator("catalogue")
    @classmethod
    def _names_the_seed(cls, value: str) -> str:
        if "{seed}" not in value:
            raise ValueError(
                f"catalogue {value!r} must contain {{seed}} for the realisation, "
                "e.g. sims/run{seed}/usmesh"
            )
        return value


class ShellMapsSection(Section):
    """HEALPix shell maps on disk: which files, what they hold, which range each covers.

    ``files`` are paths or glob patterns; ``pattern`` reads each file's name
    (``delta_s{seed}_{index}.fits``): ``{seed}`` is the realisation, and the shell's range
    comes from ``{z_min}``/``{z_max}`` or ``{chi_min}``/``{chi_max}`` (Mpc) in the name, else
    from ``table[{index}]`` (``unit``: ``z`` or ``mpc``), else from the file's header cards
    ``Z_MIN``/``Z_MAX`` or ``CHI_MIN``/``CHI_MAX``. ``kind``: ``delta``, ``counts`` or
    ``mass`` per pixel (counts and mass become δ against the header's ``NBAR`` card, else
    the map's mean). ``field`` is the FITS column read.
    """

    files: Annotated[list[str], BeforeValidator(_as_list)]
    pattern: str
    kind: Literal["delta", "counts", "mass"] = "delta"
    table: list[tuple[float, float]] | None = None
    unit: Literal["z", "mpc"] = "z"
    field: Integer = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _seed_in_pattern(self) -> ShellMapsSection:
        if not self.files:
            raise ValueError("shells.maps.files lists no file")
        if "{seed}" not in self.pattern:
            raise ValueError(
                f"pattern {self.pattern!r} must read the realisation as {{seed}}, "
                "e.g. delta_s{seed}_{index}.fits"
            )
        if self.table is not None and "{index}" not in self.pattern:
            raise ValueError("a shell table needs {index} in the pattern to find each file's row")
        return self


_DEMO_Z_EDGES = (0.0, 0.5, 1.0)
"""The lognormal shells' redshift edges when none are given: two shells out to z = 1."""


class ShellsSection(Section):
    """Where the matter shells come from, and the shells the stage writes.

    ``source``: ``lognormal`` (the demo), ``particles`` or ``maps``. For the first two,
    ``z_edges`` or ``chi_edges`` (Mpc) give the n + 1 edges of n shells, ``nside`` their
    resolution, and ``per_task`` how many consecutive shells one task makes (one task per
    realisation and chunk of shells). Lognormal shells given neither take the edges
    ``[0, 0.5, 1]`` in redshift; particles must say which shells to bin.
    """

    source: Literal["lognormal", "particles", "maps"] = "lognormal"
    nside: _Nside = Field(default=128, ge=1, le=1 << 20)
    z_edges: Annotated[list[Real], BeforeValidator(_as_list)] | None = None
    chi_edges: Annotated[list[Real], BeforeValidator(_as_list)] | None = None
    per_task: Integer = Field(default=4, ge=1)
    particles: ParticlesSection | None = None
    maps: ShellMapsSection | None = None

    @field_validator("z_edges")
    @classmethod
    def _z_edges(cls, value: list[float] | None) -> list[float] | None:
        return _increasing(value, "z_edges")

    @field_validator("chi_edges")
    @classmethod
    def _chi_edges(cls, value: list[float] | None) -> list[float] | None:
        return _increasing(value, "chi_edges")

    @model_validator(mode="after")
    def _source_given(self) -> ShellsSection:
        if self.source == "maps":
            if self.maps is None:
                raise ValueError("source is 'maps' but shells.maps is not given")
            return self
        if self.source == "lognormal" and self.z_edges is None and self.chi_edges is None:
            object.__setattr__(self, "z_edges", list(_DEMO_Z_EDGES))  # no re-validation loop
        if (self.z_edges is None) == (self.chi_edges is None):
            raise ValueError(f"source {self.source!r} needs exactly one of z_edges and chi_edges")
        if self.source == "particles" and self.particles is None:
            raise ValueError("source is 'particles' but shells.particles is not given")
        return self


class NzSection(Section):
    """A source redshift distribution: ``z`` and ``n`` lists, or a two-column text ``file``."""

    z: Annotated[list[Real], BeforeValidator(_as_list)] | None = None
    n: Annotated[list[Real], BeforeValidator(_as_list)] | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_form(self) -> NzSection:
        if (self.file is None) == (self.z is None or self.n is None):
            raise ValueError("give either z and n, or file (two columns: z, n)")
        return self


class KappaSection(Section):
    """The κ maps: resolution, sources, and the stored precision.

    One map per realisation and source: ``kappa_zs{zs}_s{seed}.fits`` for each of
    ``z_sources``, ``kappa_nz{name}_s{seed}.fits`` for each distribution of ``nz``. Maps
    are accumulated in float64 and stored as ``dtype``.
    """

    nside: _Nside = Field(default=128, ge=1, le=1 << 20)
    z_sources: Annotated[list[Real], BeforeValidator(_as_list)] = Field(
        default_factory=lambda: [1.0]
    )
    nz: dict[str, NzSection] = Field(default_factory=dict)
    dtype: Literal["float32", "float64"] = "float32"

    @field_validator("z_sources")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        bad = [z for z in value if not (math.isfinite(z) and z > 0)]
        if bad or len(set(value)) != len(value):
            raise ValueError(f"z_sources must be distinct redshifts > 0, got {value}")
        return value

    @field_validator("nz")
    @classmethod
    def _names(cls, value: dict[str, NzSection]) -> dict[str, NzSection]:
        for name in value:
            if not _NAME.fullmatch(name):
                raise ValueError(f"n(z) name {name!r}: use letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _some_source(self) -> KappaSection:
        if not self.z_sources and not self.nz:
            raise ValueError("give z_sources or nz: κ maps need sources")
        return self


class LightconeSection(Section):
    """Shells and κ maps of each realisation ``seeds``, and whether statistics follow.

    ``statistics``: after the κ maps, ``lensing-ssc kappa`` runs the ``pipeline`` section
    (the same as ``lensing-ssc run``). The executor, workers and retries are the
    ``pipeline`` section's.
    """

    cosmology: LightconeCosmologySection = Field(default_factory=LightconeCosmologySection)
    seeds: Annotated[list[Integer], BeforeValidator(_as_list)] = Field(default_factory=lambda: [0])
    shells: ShellsSection = Field(default_factory=ShellsSection)
    kappa: KappaSection = Field(default_factory=KappaSection)
    statistics: bool = False

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if not value or any(s < 0 for s in value) or len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct integers ≥ 0, got {value}")
        return value

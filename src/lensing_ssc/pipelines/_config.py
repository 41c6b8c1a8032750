"""The pipeline's configuration: :class:`PipelineConfig`, a run's settings plus its ``pipeline``.

:class:`PipelineConfig` is :class:`~lensing_ssc.core.config.ProcessingConfig` (the run
directory and the manager sections) with one more section, :class:`PipelineSection`. It
lives here, not in :mod:`lensing_ssc.core.config`, because it knows the science, and core
knows nothing of :mod:`lensing_ssc.analysis`.

The ``pipeline`` section holds what ``lensing-ssc run`` computes: the input (built-in
synthetic fields, HEALPix maps or flat patch files), the statistics and their settings, the
seed, the executor and the outputs. Statistic settings are checked by
:class:`lensing_ssc.analysis.StatisticsSettings` itself, so the config and the library
accept exactly the same values; an invalid one becomes a ``ConfigError`` naming the field
(``pipeline.statistics.n_gal.0``) and the value. ``docs/pipeline.md`` documents every field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from lensing_ssc.analysis import StatisticsSettings
from lensing_ssc.analysis.noise import check_n_gal
from lensing_ssc.analysis.smoothing import check_smoothing
from lensing_ssc.core.config import (
    Integer,
    IntegerOrNone,
    ProcessingConfig,
    Real,
    RealOrNone,
    Section,
)
from lensing_ssc.pipelines._lightcone_config import LightconeSection
from lensing_ssc.processing.runner import ExecutorName

__all__ = [
    "CosmologySection",
    "HealpixInputSection",
    "HealpixSetSection",
    "PatchFilesSection",
    "PipelineConfig",
    "PipelineSection",
    "StatisticsSection",
    "SyntheticSection",
]

MAX_FIELD_PIXELS = 16384
"""Largest side, in pixels, of a synthetic field (a 16384² float64 map is 2 GiB)."""


def _as_list(value: Any) -> Any:
    """Let a single value stand for a one-element list (``n_gal: 30``); ``None`` stays unset."""
    if value is None or isinstance(value, (list, tuple)):
        return value
    return [value]


def _statistic_name(name: str) -> str:
    StatisticsSettings.quick(statistics=(name,))  # raises AnalysisError with "did you mean"
    return name


StatisticName = Annotated[str, AfterValidator(_statistic_name)]
GalaxyDensity = Annotated[Real, AfterValidator(check_n_gal)]
SmoothingScale = Annotated[Real, AfterValidator(check_smoothing)]


class StatisticsSection(Section):
    """Which statistics to compute, at which noise levels and smoothing scales.

    Unset fields (``None``) take the value of ``preset``: ``"quick"`` is
    :meth:`StatisticsSettings.quick` (n_gal ∈ {0, 30}, σ_s ∈ {2′, 5′}), ``"full"`` the
    LSST-like defaults of :class:`StatisticsSettings` (n_gal ∈ {0, 7, 15, 30, 50},
    σ_s ∈ {2′, 5′, 8′, 10′}); ``"auto"`` is quick for synthetic input, full otherwise.
    ``names`` lists the statistics (default: all of them).
    """

    preset: Literal["auto", "quick", "full"] = "auto"
    names: Annotated[list[StatisticName] | None, BeforeValidator(_as_list)] = None
    n_gal: Annotated[list[GalaxyDensity] | None, BeforeValidator(_as_list)] = None
    smoothing_arcmin: Annotated[list[SmoothingScale] | None, BeforeValidator(_as_list)] = None
    epsilon: RealOrNone = Field(default=None, gt=0)
    ell_min: RealOrNone = Field(default=None, gt=0)
    ell_max: RealOrNone = Field(default=None, gt=0)
    n_ell_bins: IntegerOrNone = Field(default=None, ge=1)
    n_bispectrum_bins: IntegerOrNone = Field(default=None, ge=1)
    isosceles_ratio: RealOrNone = Field(default=None, gt=0, lt=2)
    nu_min: RealOrNone = None
    nu_max: RealOrNone = None
    n_nu_bins: IntegerOrNone = Field(default=None, ge=1)
    nu_reference: Literal["noise", "map", "global"] | None = None
    nu_sigma: Annotated[list[Real] | None, BeforeValidator(_as_list)] = None
    subtract_patch_mean: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StatisticsSection:
        # Cross-field rules (ell_min < ell_max, duplicates, ...); "auto" is checked by the
        # pipeline section, which knows the input.
        if self.preset != "auto":
            self.settings(preset=self.preset)
        return self

    def overrides(self) -> dict[str, Any]:
        """The fields set here, named as :class:`StatisticsSettings` names them."""
        values = self.model_dump(exclude={"preset", "names"}, exclude_none=True)
        if self.names is not None:
            values["statistics"] = tuple(self.names)
        return values

    def settings(self, *, preset: Literal["quick", "full"]) -> StatisticsSettings:
        """Build the :class:`StatisticsSettings`, with ``preset`` filling unset fields."""
        if preset == "quick":
            return StatisticsSettings.quick(**self.overrides())
        return StatisticsSettings.from_mapping(self.overrides())


class CosmologySection(Section):
    """Parameters of the analytic convergence power spectrum (flat ΛCDM, halofit)."""

    omega_m: Real = Field(default=0.3, gt=0, lt=1)
    omega_b: Real = Field(default=0.05, gt=0, lt=1)
    h: Real = Field(default=0.7, gt=0)
    n_s: Real = Field(default=0.96, gt=0)
    sigma8: Real = Field(default=0.8, gt=0)
    z_source: Real = Field(default=1.0, ge=0.01, le=10)
    nonlinear: bool = True


class SyntheticSection(Section):
    """The built-in synthetic input: the two patch sets of a super-sample covariance study.

    ``n_large_fields`` periodic fields of ``patches_per_side × patch_pixels`` pixels are each
    cut into ``patches_per_side²`` sub-patches; with ``periodic`` as many independent
    periodic fields of the patch's own size are drawn for comparison. ``spectrum_table``
    (two columns, ℓ and C(ℓ), e.g. from CAMB) replaces the analytic ``cosmology`` model;
    ``shift`` is the lognormal shift λ (default: the model's empty-beam convergence).
    """

    kind: Literal["lognormal", "gaussian"] = "lognormal"
    patch_pixels: Integer = Field(default=128, ge=8)
    pixel_size_arcmin: Real = Field(default=2.0, gt=0)
    patches_per_side: Integer = Field(default=4, ge=1)
    n_large_fields: Integer = Field(default=32, ge=1)
    periodic: bool = True
    shift: RealOrNone = Field(default=None, gt=0)
    spectrum_table: Path | None = None
    cosmology: CosmologySection = Field(default_factory=CosmologySection)

    @model_validator(mode="after")
    def _field_fits(self) -> SyntheticSection:
        side = self.patch_pixels * self.patches_per_side
        if side > MAX_FIELD_PIXELS:
            raise ValueError(
                f"the large fields would be {side}² pixels ({side**2 * 8 / 2**30:.1f} GiB "
                f"each), above {MAX_FIELD_PIXELS}²: lower patch_pixels or patches_per_side"
            )
        return self


_SET_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PATTERN_FIELD = re.compile(r"\{([^{}]*)\}")
RESERVED_SET_NAMES = ("subpatches", "periodic", "patches")
"""Names of the synthetic and patch-file sets, which a HEALPix set may not take."""


def check_set_name(name: str) -> str:
    """Return ``name`` if it can name a set (letters, digits, ``_ . -``), else raise."""
    if not _SET_NAME.fullmatch(name) or name in RESERVED_SET_NAMES:
        raise ValueError(
            f"set name {name!r} is not allowed: use letters, digits, '_', '.' or '-', and "
            f"none of {', '.join(RESERVED_SET_NAMES)}"
        )
    return name


def pattern_fields(pattern: str) -> list[str]:
    """The field names of a file-name pattern (``kappa_zs{zs}_s{seed}.fits``), in order.

    Raises:
        ValueError: a field is not a Python identifier, or appears twice.
    """
    names = _PATTERN_FIELD.findall(pattern)
    for name in names:
        if not name.isidentifier():
            raise ValueError(
                f"pattern {pattern!r} has the field {{{name}}}, not a name: use e.g. "
                "kappa_zs{zs}_s{seed}.fits"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"pattern {pattern!r} names the field {{{repeated[0]}}} twice")
    return names


MetadataValue = int | float | str


class HealpixSetSection(Section):
    """One named set of HEALPix maps: its files, and each map's metadata.

    ``maps`` are file paths or glob patterns (one string or a list). ``pattern`` is matched
    against each file's name (its path when the pattern holds a ``/``): literal text, with
    fields in braces, ``kappa_zs{zs}_s{seed}.fits``. ``zs`` is the source redshift, by which
    the set's maps are grouped; ``seed`` names the realisation; any other name is kept as
    metadata. A field may instead be given for the whole set: ``zs: 1.0`` or
    ``fields: {box: 1000}``. ``description`` is the set's line in the summary.
    """

    maps: Annotated[list[str], BeforeValidator(_as_list)] = Field(default_factory=list)
    pattern: str | None = None
    zs: RealOrNone = Field(default=None, gt=0)
    fields: dict[str, MetadataValue] = Field(default_factory=dict)
    description: str | None = None

    @model_validator(mode="after")
    def _fields_given_once(self) -> HealpixSetSection:
        if not self.maps:
            raise ValueError("the set lists no file in maps")
        parsed = pattern_fields(self.pattern) if self.pattern is not None else []
        given = [*self.fields, *(["zs"] if self.zs is not None else [])]
        for name in given:
            if name in parsed:
                raise ValueError(
                    f"field {name!r} is given for the set and also read by pattern "
                    f"{self.pattern!r}: keep one of them"
                )
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} is not a name: use e.g. box_size")
        if "zs" in self.fields:
            raise ValueError("give the source redshift as zs: …, not inside fields")
        return self


class HealpixInputSection(Section):
    """HEALPix κ maps (FITS) cut into non-overlapping gnomonic patches on a Fibonacci grid.

    ``maps`` are file paths or glob patterns (read in RING order whatever their ordering);
    ``n_points`` sizes the Fibonacci grid (default: the size keeping the most patches);
    ``field`` is the FITS column read. NaN and UNSEEN pixels, and those where the ``mask``
    map (FITS, same nside and ordering) is zero, are masked; a patch masked above
    ``max_masked_fraction`` is dropped and counted, masked pixels of kept patches are set to
    the mean of their observed pixels.

    ``maps`` form one set named ``healpix``; ``sets`` names any number of sets
    (:class:`HealpixSetSection`), each with its files and their metadata, grouped by source
    redshift. The patch settings here hold for every set.
    """

    maps: list[str] = Field(default_factory=list)
    sets: dict[Annotated[str, AfterValidator(check_set_name)], HealpixSetSection] = Field(
        default_factory=dict
    )
    patch_size_deg: Real = 10.0
    patch_pixels: Integer = Field(default=256, ge=8)
    n_points: IntegerOrNone = Field(default=None, ge=1)
    interpolation: Literal["bilinear", "nearest"] = "bilinear"
    field: Integer = Field(default=0, ge=0)
    mask: str | None = None
    max_masked_fraction: Real = Field(default=0.0, ge=0, lt=1)

    @field_validator("patch_size_deg")
    @classmethod
    def _fits_on_the_sphere(cls, value: float) -> float:
        if not (math.isfinite(value) and 0.0 < value < 180.0):
            raise ValueError(
                f"patch_size_deg={value:g} is larger than the sphere allows for a gnomonic "
                "patch (or not positive): use 0 < patch_size_deg < 180, typically 5 to 10"
            )
        return value

    @model_validator(mode="after")
    def _one_set_per_name(self) -> HealpixInputSection:
        if self.maps and "healpix" in self.sets:
            raise ValueError(
                "healpix.maps is the set named 'healpix', and healpix.sets names another "
                "'healpix': rename that set"
            )
        return self

    def set_names(self) -> list[str]:
        """The sets of this input: ``healpix`` (from ``maps``) first, then ``sets`` in order."""
        return (["healpix"] if self.maps else []) + list(self.sets)


class PatchFilesSection(Section):
    """Flat square patches given as ``.npy`` or ``.fits`` files (paths or glob patterns)."""

    files: list[str] = Field(default_factory=list)
    pixel_size_arcmin: Real = Field(default=1.0, gt=0)


class PipelineSection(Section):
    """What ``lensing-ssc run`` computes, from which input, on which executor.

    Args:
        input: ``"synthetic"`` (built-in, the default), ``"healpix"`` or ``"patches"``.
        seed: Seeds every synthetic field and every noise map (per map and patch), so a run
            gives the same numbers on any executor, interrupted or not.
        statistics: What to compute (:class:`StatisticsSection`).
        synthetic, healpix, patches: Settings of each input.
        executor: Where tasks run; ``workers`` how many at once (default: usable CPUs).
        device: Where the patch statistics run: ``"cpu"`` (NumPy, on the executor's
            workers), ``"gpu"`` (CuPy on a CUDA GPU, in batches sized to its free memory;
            the extras ``gpu-cuda12`` or ``gpu-cuda13``), or ``"auto"`` (the GPU when CuPy
            and a device are there, else the CPU). The results are the same on either, to
            ~1e-15 relative.
        scheduler: A running Dask cluster to join: its address (``tcp://host:8786``) or the
            file ``dask scheduler --scheduler-file`` writes. Implies ``executor: dask``;
            another executor named with it is an error.
        retries: Extra attempts for a failing map or patch before it is recorded as failed.
        no_workers_timeout: Seconds a Dask cluster may have no workers before the run stops
            as on SIGTERM (exit 3; rerun to continue once workers are back).
        results_format: ``"auto"`` (HDF5 when h5py is installed, else NPZ), ``"hdf5"``, ``"npz"``.
        figures: Whether ``lensing-ssc run`` draws the run's PNG figures after it (needs
            matplotlib); :func:`~lensing_ssc.pipelines.run_patch_statistics` draws none.
        compare: Pairs of sets whose covariances are divided, ``[[bigbox, tiled]]``: the
            first over the second, at every source redshift both have. Default: the
            synthetic pair (``subpatches`` over ``periodic``) for synthetic input, none
            otherwise.
        compare_resamples: Bootstrap resamples (over maps) behind every comparison's S/N
            intervals; the resampling is seeded by ``seed``. The variance ratios' and SSC
            terms' intervals are jackknife-t over maps (:mod:`lensing_ssc.analysis.comparison`).
        compare_confidence: Confidence level of every comparison interval.
        tomography: For every HEALPix set with maps at two or more source redshifts, the
            cross power spectra between the redshifts of each realisation (its maps'
            fields other than ``zs``, e.g. ``seed``) and the joint covariance of all its
            spectra, compared between the sets of ``compare`` (needs ``cl`` among the
            statistics; other inputs have one redshift and ignore it).
        hash_inputs_mb: Input files (maps, masks, patch files, spectrum tables) of at most
            this many MiB are known by a digest of their content, larger ones by their
            size and modification time (reading a map of gigabytes on every run would
            cost more than its size and time are worth); 0 knows every file by size and
            time. A file known by its content is another input when its numbers change,
            even with its size and time kept (``cp -p`` of another version), and the same
            input when only its time does (``touch``).

    Example:
        >>> section = PipelineSection(statistics={"n_gal": [0, 30], "names": ["cl", "peaks"]})
        >>> section.statistics_settings().statistics
        ('cl', 'peaks')
    """

    input: Literal["synthetic", "healpix", "patches"] = "synthetic"
    seed: Integer = Field(default=42, ge=0)
    statistics: StatisticsSection = Field(default_factory=StatisticsSection)
    synthetic: SyntheticSection = Field(default_factory=SyntheticSection)
    healpix: HealpixInputSection = Field(default_factory=HealpixInputSection)
    patches: PatchFilesSection = Field(default_factory=PatchFilesSection)
    executor: ExecutorName = "processes"
    device: Literal["cpu", "gpu", "auto"] = "cpu"
    scheduler: str | None = None
    workers: IntegerOrNone = Field(default=None, ge=1)
    retries: Integer = Field(default=1, ge=0)
    no_workers_timeout: Real = Field(default=60.0, gt=0, allow_inf_nan=False)
    results_format: Literal["auto", "hdf5", "npz"] = "auto"
    figures: bool = True
    compare: list[tuple[str, str]] | None = None
    compare_resamples: Integer = Field(default=200, ge=2)
    compare_confidence: Real = Field(default=0.68, gt=0, lt=1)
    tomography: bool = True
    hash_inputs_mb: Real = Field(default=64.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _scheduler_means_dask(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("scheduler") is None:
            return data
        named = data.get("executor")
        if named is None:
            return {**data, "executor": "dask"}
        if named != "dask":
            raise ValueError(
                f"pipeline.scheduler ({data['scheduler']!r}) joins a Dask cluster, but "
                f"pipeline.executor is {named!r}: set executor to 'dask' or drop one of them"
            )
        return data

    @model_validator(mode="after")
    def _input_given(self) -> PipelineSection:
        if self.input == "healpix" and not self.healpix.set_names():
            raise ValueError(
                "input is 'healpix' but healpix.maps lists no file (and healpix.sets no set)"
            )
        if self.input == "patches" and not self.patches.files:
            raise ValueError("input is 'patches' but patches.files lists no file")
        known = self.set_names()
        for pair in self.compare or ():
            for name in pair:
                if name not in known:
                    raise ValueError(
                        f"compare names the set {name!r}, which this {self.input} input does "
                        f"not have; its sets are: {', '.join(known)}"
                    )
            if pair[0] == pair[1]:
                raise ValueError(f"compare pairs the set {pair[0]!r} with itself")
        self.statistics_settings()
        return self

    def set_names(self) -> list[str]:
        """The names of the sets this input makes, in plan order."""
        if self.input == "healpix":
            return self.healpix.set_names()
        if self.input == "patches":
            return ["patches"]
        return ["subpatches", "periodic"] if self.synthetic.periodic else ["subpatches"]

    def comparisons(self) -> list[tuple[str, str]]:
        """The pairs of sets compared (``compare``, or the default of the input)."""
        if self.compare is not None:
            return [(a, b) for a, b in self.compare]
        if self.input == "synthetic" and self.synthetic.periodic:
            return [("subpatches", "periodic")]
        return []

    def statistics_settings(self) -> StatisticsSettings:
        """The :class:`StatisticsSettings` of this run (``preset: auto`` resolved by input)."""
        preset = self.statistics.preset
        if preset == "auto":
            preset = "quick" if self.input == "synthetic" else "full"
        return self.statistics.settings(preset=preset)


class PipelineConfig(ProcessingConfig):
    """A run's settings with the ``pipeline`` section: what ``lensing-ssc run`` reads.

    Loads like :class:`~lensing_ssc.core.config.ProcessingConfig` (``from_file``,
    ``from_dict``, ``LENSING_SSC_PIPELINE__...`` variables) and validates the ``pipeline``
    section with the same errors, naming the field and where it came from. The
    ``lightcone`` section (:class:`._lightcone_config.LightconeSection`) is what
    ``lensing-ssc kappa`` makes before: mass shells and κ maps.

    Example:
        >>> config = PipelineConfig(pipeline={"seed": 7, "executor": "serial"})
        >>> (config.pipeline.seed, config.pipeline.executor, config.cache.eviction_policy)
        (7, 'serial', 'lru')
    """

    pipeline: PipelineSection = Field(default_factory=PipelineSection)
    lightcone: LightconeSection = Field(default_factory=LightconeSection)

    @classmethod
    def from_config(cls, config: ProcessingConfig) -> PipelineConfig:
        """``config`` as a :class:`PipelineConfig` (itself when it is one already)."""
        if isinstance(config, PipelineConfig):
            return config
        return cls(**{name: getattr(config, name) for name in type(config).model_fields})

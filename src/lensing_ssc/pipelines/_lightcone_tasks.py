"""The light-cone stages' runner tasks: make a chunk of shells, make one κ map.

* :class:`ShellWorker` makes shells ``first … stop − 1`` of one realisation: particle counts
  from its FastPM light cone (one pass over the rows of those shells' scale factors), or
  lognormal δ maps of the package's spectrum (seeded by realisation and shell, so any
  process draws the same map). Each shell is written atomically as
  ``shells/shell{index:03d}_s{seed}.fits`` with its range, realisation and cosmology in the
  header (``NBAR``, the expected count per pixel, for counts).
* :class:`KappaWorker` makes the κ map of one realisation and source: it reads the shells
  the source sees one at a time (:class:`~lensing_ssc.analysis.born.ConvergenceAccumulator`)
  and writes ``kappa/kappa_zs{zs}_s{seed}.fits`` atomically, with the source, the shells,
  the cosmology and the digest of the κ settings (``KAPPAFP``, as ``lightcone.json``
  records it: :mod:`._lightcone_record`) in the header.

A task's files appear whole or not at all, and the runner's journal records the task only
after they are written: a stage killed at any moment redoes only unfinished tasks. Memory
per task is :func:`shell_task_bytes` and :func:`kappa_task_bytes` (measured on these
workers); the plan is checked against the limit in :mod:`lensing_ssc.pipelines.lightcone`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.analysis.born import ConvergenceAccumulator, SourceDistribution
from lensing_ssc.analysis.healpix_files import read_healpix_map, write_healpix_map
from lensing_ssc.analysis.lightcone import UsmeshCatalogue, bin_catalogue
from lensing_ssc.analysis.shell_spectra import ShellDensitySpectrum, lognormal_shell
from lensing_ssc.analysis.shells import expected_count
from lensing_ssc.core.io import atomic_open
from lensing_ssc.pipelines._lightcone_config import LightconeSection
from lensing_ssc.pipelines._lightcone_plan import (
    KappaTask,
    ShellChunkTask,
    ShellSet,
    background_of,
    kappa_name,
    shell_name,
)

__all__ = [
    "KappaSummary",
    "KappaWorker",
    "ShellSummary",
    "ShellWorker",
    "kappa_task_bytes",
    "shell_task_bytes",
]

_log = logging.getLogger("lensing_ssc.pipelines")

# Bytes per pixel a lognormal shell of nside n needs at its peak, as a multiple of n²:
# harmonic coefficients (lmax = 2n: 32 n²), three float64 maps (288 n²), the Legendre
# table of the lognormal transform (64 n²) and the float32 map written (48 n²). Measured
# peak: 380-420 n² for n = 64 … 512.
_LOGNORMAL_BYTES_PER_NSIDE2 = 512
# A chunk of particles: float32 positions (12 B), and with Aemit its float32 column and the
# float64 redshift and distance (20 B); numba's loop adds nothing per particle.
_PARTICLE_BYTES = 32


def cosmology_cards(section: LightconeSection) -> list[tuple[str, Any, str]]:
    """The cosmology as FITS cards (the keys ``write_example_suites`` uses)."""
    c = section.cosmology
    return [
        ("OMEGA_M", c.omega_m, "matter density today"),
        ("OMEGA_B", c.omega_b, "baryon density today"),
        ("H", c.h, "H0 / (100 km/s/Mpc)"),
        ("N_S", c.n_s, "primordial spectral index"),
        ("SIGMA8", c.sigma8, "rms linear density in 8 Mpc/h spheres"),
        ("NONLIN", c.nonlinear, "halofit spectrum (lognormal shells)"),
    ]


def shell_task_bytes(section: LightconeSection) -> float:
    """Peak bytes of one shell task of ``section``."""
    shells = section.shells
    npix = 12 * shells.nside**2
    if shells.source == "particles" and shells.particles is not None:
        # int32 counts of every shell of the task, one map being written, and a chunk.
        return 4.0 * npix * (shells.per_task + 2) + _PARTICLE_BYTES * shells.particles.chunk_size
    return float(_LOGNORMAL_BYTES_PER_NSIDE2 * shells.nside**2)


def kappa_task_bytes(section: LightconeSection, nside_in: int) -> float:
    """Peak bytes of one κ task: the float64 map, a shell as read, blocks, the written map."""
    npix_out = 12 * section.kappa.nside**2
    npix_in = 12 * nside_in**2
    stored = 8 if section.kappa.dtype == "float64" else 4
    # The κ map, the shell in its file dtype (≤ 8 B) plus its memory-mapped pages, the
    # stored copy of the κ map (and astropy's big-endian copy of it), index blocks.
    return 8.0 * npix_out + 16.0 * npix_in + 2.0 * stored * npix_out + 64 * 2**20


@dataclass(frozen=True)
class ShellSummary:
    """What a shell task wrote: the files, and particles binned per shell (counts only)."""

    files: tuple[str, ...]
    particles: tuple[int, ...]
    seconds: float


@dataclass(frozen=True)
class KappaSummary:
    """What a κ task wrote: the file, the shells it read, the map's mean and rms."""

    file: str
    shells_read: int
    mean: float
    rms: float
    seconds: float


def _write(path: Path, values: np.ndarray, cards: list[Any], dtype: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        write_healpix_map(handle, values, header=cards, dtype=dtype)


@dataclass(frozen=True)
class ShellWorker:
    """Makes a chunk of shells (picklable: the section and where shells go)."""

    section: LightconeSection
    shell_sets: dict[int, ShellSet]
    shell_dir: Path

    def __call__(self, task: ShellChunkTask) -> ShellSummary:
        started = time.perf_counter()
        background = background_of(self.section)
        table = self.shell_sets[task.seed].table(background)
        shells = self.section.shells
        indices = range(task.first, task.stop)
        files, particles = [], []
        if shells.source == "particles":
            maps, nbars, binned = self._counts(task, table, indices)
        else:
            maps, nbars, binned = None, None, None
        for j, index in enumerate(indices):
            shell = table[index]
            cards: list[Any] = [
                ("SHELL", index, "shell index, 0 nearest"),
                ("Z_MIN", shell.z_min, "redshift of the near edge"),
                ("Z_MAX", shell.z_max, "redshift of the far edge"),
                ("CHI_MIN", shell.chi_min, "comoving distance of the near edge, Mpc"),
                ("CHI_MAX", shell.chi_max, "comoving distance of the far edge, Mpc"),
                ("SEED", task.seed, "realisation"),
                *cosmology_cards(self.section),
            ]
            path = self.shell_dir / shell_name(index, task.seed)
            if maps is not None and nbars is not None and binned is not None:
                cards += [
                    ("KIND", "counts", "particles per pixel"),
                    ("NBAR", nbars[j], "expected particles per pixel"),
                    ("NPART", binned[j], "particles in the shell"),
                ]
                _write(path, maps[j], cards, np.int32)
                particles.append(binned[j])
            else:
                spectrum = ShellDensitySpectrum.of(
                    shell,
                    omega_b=self.section.cosmology.omega_b,
                    n_s=self.section.cosmology.n_s,
                    sigma8=self.section.cosmology.sigma8,
                    nonlinear=self.section.cosmology.nonlinear,
                    background=background,
                )
                seed = int(np.random.SeedSequence([task.seed, index]).generate_state(1)[0])
                delta = lognormal_shell(shells.nside, spectrum, seed)
                cards.append(("KIND", "delta", "lognormal density contrast"))
                _write(path, delta, cards, np.float32)
                del delta
            files.append(str(path))
        return ShellSummary(tuple(files), tuple(particles), time.perf_counter() - started)

    def _counts(
        self, task: ShellChunkTask, table: Any, indices: range
    ) -> tuple[np.ndarray, list[float | None], list[int]]:
        particles = self.section.shells.particles
        if particles is None:  # the section's validator requires it for this source
            raise ValueError("shells.particles is missing")
        path = particles.catalogue.format(seed=task.seed)
        with UsmeshCatalogue(path, particles.dataset) as catalogue:
            counter = bin_catalogue(
                catalogue,
                table,
                indices,
                self.section.shells.nside,
                radial=particles.radial,
                chunk=particles.chunk_size,
            )
            density = (
                catalogue.number_density(table.background.h)
                if particles.mean == "expected"
                else None
            )
        nbars: list[float | None] = [
            None if density is None else expected_count(table[i], density, counter.nside)
            for i in indices
        ]
        binned = [int(row.sum(dtype=np.int64)) for row in counter.counts]
        return counter.counts, nbars, binned


@dataclass(frozen=True)
class KappaWorker:
    """Makes the κ map of one realisation and source (picklable).

    ``fingerprint`` is the digest of the κ settings, written to each map's ``KAPPAFP``.
    """

    section: LightconeSection
    shell_sets: dict[int, ShellSet]
    kappa_dir: Path
    fingerprint: str

    def __call__(self, task: KappaTask) -> KappaSummary:
        started = time.perf_counter()
        background = background_of(self.section)
        shell_set = self.shell_sets[task.seed]
        table = shell_set.table(background)
        accumulator = ConvergenceAccumulator(table, [task.source], self.section.kappa.nside)
        for index in accumulator.needed:
            stored = read_healpix_map(shell_set.files[index], field=shell_set.field)
            nbar = stored.header.get("NBAR")
            kind = str(stored.header.get("KIND", shell_set.kind)).lower()
            accumulator.add(
                index,
                stored.values,
                kind=kind if kind in ("delta", "counts", "mass") else shell_set.kind,  # type: ignore[arg-type]
                mean=None if nbar is None else float(nbar),
                nest=stored.nest,
            )
            del stored
        kappa = accumulator.result()[0]
        source = task.source
        cards: list[Any] = []
        if isinstance(source, SourceDistribution):
            cards += [
                ("NZ", source.name, "source redshift distribution"),
                ("NZMEAN", source.mean_redshift, "its mean redshift"),
            ]
        else:
            cards.append(("ZS", float(source), "source redshift"))
        used = accumulator.needed
        cards += [
            ("SEED", task.seed, "realisation"),
            ("KIND", "kappa", "Born convergence from matter shells"),
            ("NSHELLS", len(used), "shells that lens the source"),
            ("SHELLZ0", table[used[0]].z_min if used else 0.0, "near edge of the first shell"),
            ("SHELLZ1", table[used[-1]].z_max if used else 0.0, "far edge of the last shell"),
            *cosmology_cards(self.section),
            ("KAPPAFP", self.fingerprint, "digest of the kappa settings"),
        ]
        path = self.kappa_dir / kappa_name(source, task.seed)
        _write(path, kappa, cards, np.dtype(self.section.kappa.dtype))
        return KappaSummary(
            str(path),
            len(used),
            float(np.mean(kappa)),
            float(np.std(kappa)),
            time.perf_counter() - started,
        )

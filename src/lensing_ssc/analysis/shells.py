"""Matter shells of a light cone: their comoving-distance ranges, and their density contrast.

* :class:`Background` — the flat ΛCDM background the shells live in: comoving distance
  χ(z) = (c/H0) ∫ dz/E(z) with the package's E(z) (:mod:`._cosmology`, whose distances agree
  with CCL to 10⁻⁴), its inverse z(χ) and E(z) = H(z)/H0. Distances are in Mpc, not Mpc/h.
  χ is tabulated once per background (4-point Gauss–Legendre per step of a fine z grid) and
  interpolated with cubic Hermite polynomials using the exact dχ/dz = (c/H0)/E(z); z(χ)
  adds one Newton step. Both are exact to ~10⁻¹² relative and the same for every caller, so
  a source at a shell's edge sees exactly that edge.
* :class:`Shell`, :class:`ShellTable` — consecutive shells [χ_min, χ_max), each with its
  redshift range. A table is refused when two shells leave a gap or overlap, naming both.
  Build it from distance edges (:meth:`ShellTable.from_distance_edges`), redshift edges
  (:meth:`~ShellTable.from_redshift_edges`) or one range per shell, as files give them
  (:meth:`~ShellTable.from_ranges`).
* :func:`density_contrast` — δ = ρ/ρ̄ − 1 of a shell map given as δ already, as particle
  counts or as mass per pixel. The mean ρ̄ is the expected one when it is known (particles
  of a simulation box: n̄ V_shell / N_pix, see :func:`expected_count`), else the map's own
  mean over the sphere.

Conventions: a shell covers χ_min ≤ χ < χ_max; δ is the contrast of the matter in the
shell's volume behind each pixel. The Born weights of the shells are
:mod:`lensing_ssc.analysis.born`; particles binned into shells are
:mod:`lensing_ssc.analysis.lightcone`; HEALPix files are :mod:`lensing_ssc.analysis.healpix_files`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._cosmology import HUBBLE_DISTANCE_H, _e_of_z
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "Background",
    "MapKind",
    "Shell",
    "ShellTable",
    "density_contrast",
    "expected_count",
    "mean_per_pixel",
]

MapKind = Literal["delta", "counts", "mass"]
"""What a shell map holds: the density contrast δ, particle counts, or mass per pixel."""

_Z_STEPS = 4096  # table steps: Hermite interpolation error ~ (Δz)⁴ ≈ 1e-13 relative at z_max 10
_RELATIVE_GAP = 1e-6  # edges closer than this (relative) are the same edge


@dataclass(frozen=True)
class Background:
    """Flat ΛCDM background: distances in Mpc for a matter density ``omega_m`` and ``h``.

    Args:
        omega_m: Matter density today Ω_m (0.05 … 0.95).
        h: H0 / (100 km/s/Mpc).
        z_max: Largest redshift :meth:`redshift` inverts to.

    Example:
        >>> bg = Background(omega_m=0.3, h=0.7)
        >>> chi = bg.comoving_distance(np.array([1.0]))
        >>> round(float(chi[0])), round(float(bg.redshift(chi)[0]), 6)
        (3304, 1.0)
    """

    omega_m: float = 0.3
    h: float = 0.7
    z_max: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.omega_m) and 0.05 <= self.omega_m <= 0.95):
            raise AnalysisError(
                f"omega_m={self.omega_m!r} is out of range",
                value=self.omega_m,
                hint="use 0.05 ≤ omega_m ≤ 0.95, e.g. 0.3",
            )
        if not (math.isfinite(self.h) and 0.2 <= self.h <= 2.0):
            raise AnalysisError(
                f"h={self.h!r} is out of range",
                value=self.h,
                hint="use the dimensionless Hubble constant, e.g. 0.7",
            )
        if not (math.isfinite(self.z_max) and 0.0 < self.z_max <= 100.0):
            raise AnalysisError(
                f"z_max={self.z_max!r} is out of range", value=self.z_max, hint="e.g. 10"
            )

    @property
    def hubble_distance(self) -> float:
        """c/H0 in Mpc."""
        return HUBBLE_DISTANCE_H / self.h

    def comoving_distance(self, z: npt.ArrayLike) -> np.ndarray:
        """Return χ(z) in Mpc, for 0 ≤ z ≤ ``z_max``."""
        values = np.asarray(z, dtype=float)
        if np.any(values < 0) or np.any(values > self.z_max):
            raise AnalysisError(
                f"redshifts must lie in 0 … {self.z_max:g}",
                value=float(np.max(values)) if values.size else None,
                hint="raise Background.z_max",
            )
        return self._hermite(values)

    def _hermite(self, z: np.ndarray) -> np.ndarray:
        grid, chi = _distance_table(self.omega_m, self.h, self.z_max)
        step = grid[1]
        k = np.minimum((z / step).astype(np.intp), grid.size - 2)
        t = z / step - k
        slope = self.hubble_distance / _e_of_z(grid, self.omega_m) * step
        t2, t3 = t * t, t * t * t
        return (
            (2 * t3 - 3 * t2 + 1) * chi[k]
            + (t3 - 2 * t2 + t) * slope[k]
            + (-2 * t3 + 3 * t2) * chi[k + 1]
            + (t3 - t2) * slope[k + 1]
        )

    def redshift(self, chi: npt.ArrayLike) -> np.ndarray:
        """Return z(χ) for comoving distances in Mpc."""
        grid, table = _distance_table(self.omega_m, self.h, self.z_max)
        values = np.asarray(chi, dtype=float)
        if np.any(values > table[-1] * (1 + 1e-12)) or np.any(values < 0):
            raise AnalysisError(
                f"comoving distances must lie in 0 … {table[-1]:.1f} Mpc (z ≤ {self.z_max:g})",
                value=float(np.max(values)) if values.size else None,
                hint="raise Background.z_max, or check the units (Mpc, not Mpc/h)",
            )
        z = np.interp(values, table, grid)
        z -= (self._hermite(z) - values) * self.efunc(z) / self.hubble_distance
        return np.clip(z, 0.0, self.z_max)

    def efunc(self, z: npt.ArrayLike) -> np.ndarray:
        """Return E(z) = H(z)/H0 = √(Ω_m (1+z)³ + 1 − Ω_m)."""
        return np.asarray(_e_of_z(np.asarray(z, dtype=float), self.omega_m))

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready view."""
        return {"omega_m": self.omega_m, "h": self.h, "z_max": self.z_max}


@lru_cache(maxsize=8)
def _distance_table(omega_m: float, h: float, z_max: float) -> tuple[np.ndarray, np.ndarray]:
    """χ on ``_Z_STEPS`` equal steps of z, each step integrated by 4-point Gauss–Legendre."""
    z = np.linspace(0.0, z_max, _Z_STEPS + 1)
    nodes, weights = np.polynomial.legendre.leggauss(4)
    half = 0.5 * (z[1] - z[0])
    points = (z[:-1] + half)[:, None] + half * nodes[None, :]
    steps = half * (weights[None, :] / _e_of_z(points, omega_m)).sum(axis=1)
    chi = HUBBLE_DISTANCE_H / h * np.concatenate(([0.0], np.cumsum(steps)))
    z.setflags(write=False)
    chi.setflags(write=False)
    return z, chi


@dataclass(frozen=True)
class Shell:
    """One shell: ``chi_min ≤ χ < chi_max`` (Mpc), redshifts ``z_min`` … ``z_max``.

    Attributes:
        index: Its position in its table, from 0 nearest the observer.
    """

    index: int
    chi_min: float
    chi_max: float
    z_min: float
    z_max: float

    @property
    def volume(self) -> float:
        """The full-sky comoving volume of the shell, (4π/3)(χ_max³ − χ_min³), in Mpc³."""
        return 4.0 * math.pi / 3.0 * (self.chi_max**3 - self.chi_min**3)

    def describe(self) -> str:
        """``shell 3 (z 0.300–0.400, χ 1234.5–1567.8 Mpc)``."""
        return (
            f"shell {self.index} (z {self.z_min:.3f}–{self.z_max:.3f}, "
            f"χ {self.chi_min:.1f}–{self.chi_max:.1f} Mpc)"
        )

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-ready view."""
        return {
            "index": self.index,
            "chi_min": self.chi_min,
            "chi_max": self.chi_max,
            "z_min": self.z_min,
            "z_max": self.z_max,
        }


class ShellTable(Sequence[Shell]):
    """Consecutive shells of one light cone, checked to leave no gap and no overlap.

    Build it with :meth:`from_distance_edges`, :meth:`from_redshift_edges` or
    :meth:`from_ranges`; index it like a tuple of :class:`Shell`.

    Example:
        >>> table = ShellTable.from_redshift_edges([0.0, 0.5, 1.0], Background())
        >>> len(table), table[1].describe()
        (2, 'shell 1 (z 0.500–1.000, χ 1888.6–3303.8 Mpc)')
    """

    def __init__(self, shells: Sequence[Shell], background: Background) -> None:
        self._shells = tuple(shells)
        self.background = background
        if not self._shells:
            raise AnalysisError(
                "a shell table needs at least one shell", value=0, hint="give shell edges"
            )
        for i, shell in enumerate(self._shells):
            if shell.index != i:
                raise AnalysisError(
                    f"shells must be numbered 0, 1, … in order; position {i} holds "
                    f"{shell.describe()}",
                    value=shell.index,
                    hint="build tables with ShellTable.from_ranges, which sorts and numbers them",
                )
            if not (0.0 <= shell.chi_min < shell.chi_max):
                raise AnalysisError(
                    f"{shell.describe()} is empty or reversed",
                    value=(shell.chi_min, shell.chi_max),
                    hint="each shell needs χ_min < χ_max",
                )
        for near, far in itertools.pairwise(self._shells):
            _check_contiguous(near, far)

    @classmethod
    def from_distance_edges(cls, edges: npt.ArrayLike, background: Background) -> ShellTable:
        """Shells between consecutive comoving distances ``edges`` (Mpc, increasing)."""
        chi = _check_edges(edges, "distance")
        z = background.redshift(chi)
        return cls(_shells_from(chi, z), background)

    @classmethod
    def from_redshift_edges(cls, edges: npt.ArrayLike, background: Background) -> ShellTable:
        """Shells between consecutive redshifts ``edges`` (increasing)."""
        z = _check_edges(edges, "redshift")
        chi = background.comoving_distance(z)
        return cls(_shells_from(chi, z), background)

    @classmethod
    def from_ranges(
        cls,
        ranges: Sequence[tuple[float, float]],
        background: Background,
        *,
        unit: Literal["z", "mpc"] = "z",
        names: Sequence[str] | None = None,
    ) -> ShellTable:
        """Shells from one ``(low, high)`` range each, in any order (as files list them).

        The ranges are sorted by their low end and must touch end to end: a gap or an
        overlap between two shells raises :class:`AnalysisError` naming both (by
        ``names``, e.g. their files, when given).

        Args:
            ranges: ``(z_min, z_max)`` or ``(χ_min, χ_max)`` pairs.
            unit: ``"z"`` for redshifts, ``"mpc"`` for comoving distances in Mpc.
            names: How errors name each range (default: its position in ``ranges``).
        """
        pairs = np.asarray(ranges, dtype=float)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0:
            raise AnalysisError(
                f"shell ranges must be (low, high) pairs, got shape {pairs.shape}",
                value=pairs.shape,
                hint="e.g. [[0.0, 0.1], [0.1, 0.2]]",
            )
        labels = list(names) if names is not None else [f"range {i}" for i in range(len(pairs))]
        order = np.argsort(pairs[:, 0], kind="stable")
        for i in order:
            low, high = pairs[i]
            if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low < high):
                raise AnalysisError(
                    f"{labels[i]}: the shell {low:g}–{high:g} is empty, reversed or negative",
                    value=(float(low), float(high)),
                    hint="each shell needs 0 ≤ low < high",
                )
        for a, b in itertools.pairwise(order):
            _check_touching(pairs[a], pairs[b], labels[a], labels[b], unit)
        lows, highs = pairs[order, 0], pairs[order, 1]
        if unit == "z":
            z_lo, z_hi = lows, highs
            chi_lo, chi_hi = background.comoving_distance(lows), background.comoving_distance(highs)
        else:
            chi_lo, chi_hi = lows, highs
            z_lo, z_hi = background.redshift(lows), background.redshift(highs)
        # Touching ends are one edge: the far shell starts exactly where the near one ends.
        chi_lo[1:], z_lo[1:] = chi_hi[:-1], z_hi[:-1]
        shells = [
            Shell(i, float(chi_lo[i]), float(chi_hi[i]), float(z_lo[i]), float(z_hi[i]))
            for i in range(len(order))
        ]
        return cls(shells, background)

    def __len__(self) -> int:
        return len(self._shells)

    def __iter__(self) -> Iterator[Shell]:
        return iter(self._shells)

    def __getitem__(self, index: Any) -> Any:
        return self._shells[index]

    @property
    def distance_edges(self) -> np.ndarray:
        """The n + 1 comoving-distance edges of the n shells, in Mpc."""
        return np.array([self._shells[0].chi_min, *(s.chi_max for s in self._shells)])

    @property
    def redshift_edges(self) -> np.ndarray:
        """The n + 1 redshift edges of the n shells."""
        return np.array([self._shells[0].z_min, *(s.z_max for s in self._shells)])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: the background and every shell."""
        return {
            "background": self.background.to_dict(),
            "shells": [s.to_dict() for s in self._shells],
        }

    def __repr__(self) -> str:
        return (
            f"ShellTable({len(self)} shells, z {self._shells[0].z_min:g}–"
            f"{self._shells[-1].z_max:g})"
        )


def _check_edges(edges: npt.ArrayLike, what: str) -> np.ndarray:
    values = np.asarray(edges, dtype=float)
    if values.ndim != 1 or values.size < 2:
        raise AnalysisError(
            f"{what} edges must be a 1-D list of at least two values, got shape {values.shape}",
            value=values.shape,
            hint="e.g. [0.0, 0.1, 0.2] (n + 1 edges for n shells)",
        )
    if not np.all(np.isfinite(values)) or values[0] < 0 or np.any(np.diff(values) <= 0):
        raise AnalysisError(
            f"{what} edges must be finite, ≥ 0 and strictly increasing",
            value=values.tolist()[:8],
            hint="sort the edges and drop repeated ones",
        )
    return values


def _shells_from(chi: np.ndarray, z: np.ndarray) -> list[Shell]:
    return [
        Shell(i, float(chi[i]), float(chi[i + 1]), float(z[i]), float(z[i + 1]))
        for i in range(chi.size - 1)
    ]


def _check_touching(
    near: np.ndarray, far: np.ndarray, near_name: str, far_name: str, unit: str
) -> None:
    gap = float(far[0] - near[1])
    scale = max(abs(float(near[1])), abs(float(far[0])), 1e-12)
    if abs(gap) <= _RELATIVE_GAP * scale:
        return
    what = "gap" if gap > 0 else "overlap"
    symbol = "z" if unit == "z" else "χ"
    raise AnalysisError(
        f"shells {near_name} ({symbol} {near[0]:g}–{near[1]:g}) and {far_name} "
        f"({symbol} {far[0]:g}–{far[1]:g}) leave a {what} of {abs(gap):g}"
        + (" Mpc" if unit == "mpc" else ""),
        value=(near_name, far_name),
        hint="shells must cover the light cone end to end: fix their ranges, or add the "
        "missing shell",
    )


def _check_contiguous(near: Shell, far: Shell) -> None:
    gap = far.chi_min - near.chi_max
    if abs(gap) > _RELATIVE_GAP * max(near.chi_max, 1e-12):
        what = "gap" if gap > 0 else "overlap"
        raise AnalysisError(
            f"{near.describe()} and {far.describe()} leave a {what} of {abs(gap):.4g} Mpc",
            value=(near.index, far.index),
            hint="shells must cover the light cone end to end",
        )


def expected_count(shell: Shell, number_density: float, nside: int) -> float:
    """Return n̄ V_shell / N_pix: the mean number of particles a pixel of ``shell`` holds.

    Args:
        shell: The shell.
        number_density: Particles per Mpc³ (a box of N particles and side L: N / L³).
        nside: The map's HEALPix resolution.

    Example:
        >>> shell = ShellTable.from_distance_edges([1000.0, 1100.0], Background())[0]
        >>> round(expected_count(shell, 1e-3, 64), 3)
        28.208
    """
    if not (math.isfinite(number_density) and number_density > 0):
        raise AnalysisError(
            f"number_density={number_density!r} must be > 0",
            value=number_density,
            hint="particles per Mpc³: N / L³ of the simulation box",
        )
    return number_density * shell.volume / (12 * nside * nside)


def density_contrast(
    values: npt.ArrayLike, kind: MapKind = "delta", *, mean: float | None = None
) -> np.ndarray:
    """Return δ = ρ/ρ̄ − 1 of a shell map (float64), from δ, particle counts or mass.

    Args:
        values: The map (any HEALPix ordering: pixels are not moved).
        kind: ``"delta"`` (returned as float64), ``"counts"`` or ``"mass"`` per pixel.
        mean: The expected count or mass per pixel (:func:`expected_count`); default the
            map's own mean, right for a full-sky shell whose mean density is the cosmic one.

    Example:
        >>> density_contrast(np.array([1.0, 3.0]), "counts").tolist()
        [-0.5, 0.5]
    """
    array = np.asarray(values)
    if kind == "delta":
        return np.asarray(array, dtype=np.float64)
    return np.asarray(array, dtype=np.float64) / mean_per_pixel(array, kind, mean) - 1.0


def mean_per_pixel(
    array: np.ndarray, kind: str, mean: float | None = None, name: str | None = None
) -> float:
    """The count or mass per pixel that δ is taken against: ``mean``, else the map's mean.

    Raises:
        AnalysisError: ``kind`` is neither ``"counts"`` nor ``"mass"``, or the reference is
            not a positive number (an empty shell); ``name`` (a shell) leads the message.
    """
    if kind not in ("counts", "mass"):
        raise AnalysisError(
            f"shell map kind {kind!r} is not one of delta, counts, mass",
            value=kind,
            hint="use 'delta', 'counts' or 'mass'",
        )
    reference = float(np.mean(array, dtype=np.float64)) if mean is None else float(mean)
    if not (math.isfinite(reference) and reference > 0):
        where = f"{name}: " if name else ""
        raise AnalysisError(
            f"{where}the mean {kind} per pixel is {reference!r}, so δ is undefined",
            value=reference,
            hint="an empty shell has no density contrast: check the shell's range and input",
        )
    return reference

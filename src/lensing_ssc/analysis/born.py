"""Convergence from matter shells in the Born approximation, shell by shell.

For a source at comoving distance χ_s (flat universe, distances in Mpc),

    κ(n) = (3/2) Ω_m (H0/c)² ∫₀^χs dχ (1+z) χ (1 − χ/χs) δ(χn, χ).

With δ constant across each shell i = [χ_a, χ_b) this is κ(n) = Σ_i W_i δ_i(n), with

    W_i(χs) = (3/2) Ω_m (H0/c)² ∫_{χ_a}^{min(χ_b, χs)} dχ (1+z(χ)) χ (1 − χ/χs)

(:func:`born_weights`): the kernel is integrated across the shell by 16-point
Gauss–Legendre quadrature, not sampled at its middle; a shell the source lies in counts up
to the source; a shell beyond it counts zero. For sources spread as n(z)
(:class:`SourceDistribution`), W_i = ∫ dz_s n(z_s) W_i(χ(z_s)) / ∫ n (:func:`born_weights_nz`).

Because the kernel is A_i − B_i/χs with A_i = ∫(1+z)χ dχ and B_i = ∫(1+z)χ² dχ over the
shell, every shell acts on every source exactly as one thin lens plane at χ_i = B_i/A_i
with (1+z)χΔχ = A_i (:func:`thin_lens_planes`): the multi-plane recursion of GLASS
(Tessore et al. 2023) fed with those planes gives the same κ (``benchmarks/bench_shells.py``
shows it to round-off).

:class:`ConvergenceAccumulator` adds shells one at a time into κ maps of any number of
sources, in RING order at its own nside, whatever the nside and ordering of each shell
(:mod:`._healpix_blocks`): it never holds more than the outputs and the shell being added.
Shells are δ maps, or particle counts or mass turned into δ
(:func:`lensing_ssc.analysis.shells.density_contrast`). κ is dimensionless.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._healpix_blocks import DEFAULT_BLOCK, add_affine
from lensing_ssc.analysis.shells import Background, MapKind, ShellTable, mean_per_pixel
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "ConvergenceAccumulator",
    "SourceDistribution",
    "born_convergence",
    "born_weights",
    "born_weights_nz",
    "lensing_prefactor",
    "source_label",
    "thin_lens_planes",
]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
_NZ_NODES, _NZ_WEIGHTS = np.polynomial.legendre.leggauss(8)


def lensing_prefactor(background: Background) -> float:
    """(3/2) Ω_m (H0/c)², in Mpc⁻²."""
    return 1.5 * background.omega_m / background.hubble_distance**2


@dataclass(frozen=True, eq=False)
class SourceDistribution:
    """A redshift distribution of sources, n(z), tabulated and linearly interpolated.

    Args:
        name: Names its κ maps (``kappa_nz{name}_s{seed}.fits``): letters, digits, ``_ . -``.
        z: Increasing redshifts ≥ 0.
        n: n(z) ≥ 0 at those redshifts, not all zero (any normalisation).

    Example:
        >>> nz = SourceDistribution("flat", [0.5, 1.5], [1.0, 1.0])
        >>> round(nz.mean_redshift, 3)
        1.0
    """

    name: str
    z: npt.ArrayLike = field()
    n: npt.ArrayLike = field()

    def __post_init__(self) -> None:
        z = np.asarray(self.z, dtype=float)
        n = np.asarray(self.n, dtype=float)
        if not self.name or not all(c.isalnum() or c in "_.-" for c in self.name):
            raise AnalysisError(
                f"n(z) name {self.name!r} must be letters, digits, '_', '.' or '-'",
                value=self.name,
                hint="e.g. 'euclid' or 'bin1'",
            )
        if z.ndim != 1 or z.shape != n.shape or z.size < 2:
            raise AnalysisError(
                f"n(z) {self.name!r} needs z and n of equal length ≥ 2, got {z.shape}, {n.shape}",
                value=(z.shape, n.shape),
                hint="give n at each redshift of z",
            )
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(n))) or z[0] < 0:
            raise AnalysisError(
                f"n(z) {self.name!r} has negative redshifts or non-finite values",
                value=None,
                hint="use finite n ≥ 0 at redshifts ≥ 0",
            )
        if np.any(np.diff(z) <= 0) or np.any(n < 0) or not np.any(n > 0):
            raise AnalysisError(
                f"n(z) {self.name!r} needs increasing z and n ≥ 0, not all zero",
                value=None,
                hint="sort the table; n(z) is a distribution of sources",
            )
        z.setflags(write=False)
        n.setflags(write=False)
        object.__setattr__(self, "z", z)
        object.__setattr__(self, "n", n)

    @property
    def mean_redshift(self) -> float:
        """∫ z n dz / ∫ n dz."""
        z, n = np.asarray(self.z), np.asarray(self.n)
        return float(np.trapezoid(z * n, z) / np.trapezoid(n, z))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "z": np.asarray(self.z).tolist(),
            "n": np.asarray(self.n).tolist(),
        }


Source = float | SourceDistribution
"""A source redshift, or a distribution of them."""


def source_label(source: Source) -> str:
    """``zs=1`` for a source plane, ``nz=euclid`` for a distribution."""
    if isinstance(source, SourceDistribution):
        return f"nz={source.name}"
    return f"zs={float(source):g}"


def _shell_moments(
    table: ShellTable, upper: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A = ∫(1+z)χ dχ and B = ∫(1+z)χ² dχ over shells ``index`` from χ_a to ``upper``."""
    lower = np.array([s.chi_min for s in table])[index]
    half = 0.5 * (upper - lower)
    chi = (lower + half)[:, None] + half[:, None] * _GL_NODES[None, :]
    one_plus_z = 1.0 + table.background.redshift(chi)
    weights = half[:, None] * _GL_WEIGHTS[None, :]
    a = np.sum(weights * one_plus_z * chi, axis=1)
    b = np.sum(weights * one_plus_z * chi * chi, axis=1)
    return a, b


def thin_lens_planes(table: ShellTable) -> tuple[np.ndarray, np.ndarray]:
    """Each shell as one lens plane: its distance χ_i = B_i/A_i (Mpc) and weight A_i (Mpc²).

    For every source behind shell i, W_i(χs) = (3/2)Ω_m(H0/c)² · A_i · (1 − χ_i/χs): the
    lensing weight of a plane at χ_i with (1+z)χΔχ = A_i, what multi-plane codes take.

    Example:
        >>> table = ShellTable.from_redshift_edges([0.0, 0.5, 1.0], Background())
        >>> chi, weight = thin_lens_planes(table)
        >>> bool(table[1].chi_min < chi[1] < table[1].chi_max)
        True
    """
    a, b = _shell_moments(table, np.array([s.chi_max for s in table]), np.arange(len(table)))
    return b / a, a


def _weights_at(table: ShellTable, chi_sources: np.ndarray) -> np.ndarray:
    """W_i(χs) for every source distance (rows) and shell (columns)."""
    chi_min = np.array([s.chi_min for s in table])
    chi_max = np.array([s.chi_max for s in table])
    everything = np.arange(len(table))
    a_full, b_full = _shell_moments(table, chi_max, everything)
    chi_s = chi_sources[:, None]
    weights = np.where(chi_max[None, :] <= chi_s, a_full - b_full / chi_s, 0.0)
    # The shell a source lies in counts from its near edge up to the source.
    rows, cols = np.nonzero((chi_min[None, :] < chi_s) & (chi_s < chi_max[None, :]))
    if rows.size:
        a_part, b_part = _shell_moments(table, chi_sources[rows], cols)
        weights[rows, cols] = a_part - b_part / chi_sources[rows]
    return lensing_prefactor(table.background) * weights


def _check_source_redshift(z_source: float) -> float:
    value = float(z_source)
    if not (math.isfinite(value) and value > 0):
        raise AnalysisError(
            f"source redshift {z_source!r} must be > 0", value=z_source, hint="e.g. 1.0"
        )
    return value


def born_weights(table: ShellTable, z_source: float) -> np.ndarray:
    """Return W_i, the Born lensing weight of each shell for a source plane at ``z_source``.

    κ = Σ_i W_i δ_i; a shell of δ = 1 everywhere gives κ = W_i.

    Example:
        >>> table = ShellTable.from_redshift_edges([0.0, 0.5, 1.0, 1.5], Background())
        >>> w = born_weights(table, 1.0)
        >>> bool(w[0] > 0 and w[1] > 0 and w[2] == 0)
        True
    """
    chi_s = table.background.comoving_distance(np.array([_check_source_redshift(z_source)]))
    return _weights_at(table, chi_s)[0]


def born_weights_nz(table: ShellTable, distribution: SourceDistribution) -> np.ndarray:
    """Return W_i for sources spread as ``distribution``: ∫ dz_s n(z_s) W_i(z_s) / ∫ n.

    n(z) is linear between its table's points. The integral over z_s is split at those points
    and at the shells' edges, where W_i(z_s) has kinks, and each piece is integrated by
    8-point Gauss–Legendre quadrature: exact to ~10⁻¹⁰ for a smooth W_i. Sources at z = 0
    see no lensing.
    """
    z_table, n_table = np.asarray(distribution.z), np.asarray(distribution.n)
    edges = table.redshift_edges
    inside = edges[(edges > z_table[0]) & (edges < z_table[-1])]
    breaks = np.unique(np.concatenate((z_table, inside)))
    half = 0.5 * np.diff(breaks)
    z = ((breaks[:-1] + half)[:, None] + half[:, None] * _NZ_NODES[None, :]).ravel()
    quadrature = (half[:, None] * _NZ_WEIGHTS[None, :]).ravel() * np.interp(z, z_table, n_table)
    chi_s = table.background.comoving_distance(z)
    per_source = np.where(chi_s[:, None] > 0, _weights_at(table, np.maximum(chi_s, 1e-9)), 0.0)
    return quadrature @ per_source / np.sum(quadrature)


def _weights_for(table: ShellTable, source: Source) -> np.ndarray:
    if isinstance(source, SourceDistribution):
        return born_weights_nz(table, source)
    return born_weights(table, source)


class ConvergenceAccumulator:
    """κ maps of several sources, built by adding matter shells one at a time.

    Args:
        table: The shells.
        sources: Source redshifts and/or :class:`SourceDistribution` objects.
        nside: The κ maps' resolution (RING order); shells of other nsides are regraded.
        dtype: The maps' dtype (float64 default; float32 halves their memory).
        block: Pixels handled at once (see :mod:`._healpix_blocks`).

    Attributes:
        weights: ``(n_sources, n_shells)`` Born weights.
        kappa: ``(n_sources, 12 nside²)`` the maps so far.

    Example:
        >>> table = ShellTable.from_redshift_edges([0.0, 0.5, 1.0], Background())
        >>> acc = ConvergenceAccumulator(table, [1.0], nside=8)
        >>> for shell in table:
        ...     acc.add(shell.index, np.ones(12 * 8 * 8))
        >>> bool(np.allclose(acc.result()[0], acc.weights[0].sum()))
        True
    """

    def __init__(
        self,
        table: ShellTable,
        sources: Sequence[Source],
        nside: int,
        *,
        dtype: npt.DTypeLike = np.float64,
        block: int = DEFAULT_BLOCK,
    ) -> None:
        if not sources:
            raise AnalysisError("no source redshift given", value=[], hint="e.g. sources=[1.0]")
        self.table = table
        self.sources = tuple(sources)
        self.nside = _check_nside(nside)
        self.block = int(block)
        self.weights = np.array([_weights_for(table, s) for s in self.sources])
        self.weights.setflags(write=False)
        self.kappa = np.zeros((len(self.sources), 12 * self.nside**2), dtype=dtype)
        self._added: set[int] = set()

    @property
    def needed(self) -> tuple[int, ...]:
        """Shells that lens at least one source (the others need not be read)."""
        return tuple(int(i) for i in np.flatnonzero(np.any(self.weights != 0, axis=0)))

    @property
    def added(self) -> frozenset[int]:
        """Shells added so far."""
        return frozenset(self._added)

    @property
    def missing(self) -> tuple[int, ...]:
        """Needed shells not added yet."""
        return tuple(i for i in self.needed if i not in self._added)

    def add(
        self,
        index: int,
        values: npt.ArrayLike,
        *,
        kind: MapKind = "delta",
        mean: float | None = None,
        nest: bool = False,
    ) -> None:
        """Add shell ``index`` given as a HEALPix map of δ, counts or mass.

        Args:
            index: The shell's index in the table.
            values: The map, any nside (a power of 2), RING or NESTED.
            kind: ``"delta"``, ``"counts"`` or ``"mass"``; counts and mass become
                δ = m / mean − 1 on the way (no full-size δ map is made).
            mean: Expected count or mass per pixel; default the map's mean.
            nest: Whether ``values`` is NESTED.

        Raises:
            AnalysisError: an unknown or already added shell, or a map that is not HEALPix.
        """
        if not 0 <= index < len(self.table):
            raise AnalysisError(
                f"shell index {index} is not in the table of {len(self.table)} shells",
                value=index,
                hint="use the index of a shell of this table",
            )
        if index in self._added:
            raise AnalysisError(
                f"{self.table[index].describe()} was already added",
                value=index,
                hint="add each shell once",
            )
        array = np.asarray(values)
        nside_in = _nside_of(array, self.table[index].describe())
        column = self.weights[:, index]
        if kind == "delta":
            scales, offsets = column, np.zeros_like(column)
        else:
            reference = mean_per_pixel(array, kind, mean, self.table[index].describe())
            scales, offsets = column / reference, -column
        if np.any(column != 0):
            add_affine(
                self.kappa, array, scales, offsets, nside_in=nside_in, nest=nest, block=self.block
            )
        self._added.add(index)

    def result(self, *, allow_missing: bool = False) -> np.ndarray:
        """The κ maps, ``(n_sources, 12 nside²)``.

        Raises:
            AnalysisError: a shell that lenses a source was not added (unless
                ``allow_missing``).
        """
        if self.missing and not allow_missing:
            names = ", ".join(self.table[i].describe() for i in self.missing[:3])
            raise AnalysisError(
                f"{len(self.missing)} shell(s) in front of the sources were not added: {names}",
                value=list(self.missing),
                hint="add every shell the sources see (ConvergenceAccumulator.needed)",
            )
        return self.kappa

    def get_status(self) -> dict[str, Any]:
        """JSON-ready snapshot: sources, shells added and missing, the maps' memory."""
        return {
            "sources": [source_label(s) for s in self.sources],
            "nside": self.nside,
            "added": sorted(self._added),
            "missing": list(self.missing),
            "bytes": int(self.kappa.nbytes),
        }


def _check_nside(nside: Any) -> int:
    if isinstance(nside, bool) or not isinstance(nside, (int, np.integer)):
        raise AnalysisError(
            f"nside must be an integer, got {nside!r}", value=nside, hint="e.g. 256"
        )
    if nside < 1 or nside & (nside - 1) or nside > 1 << 29:
        raise AnalysisError(
            f"nside must be a power of 2, got {nside}", value=nside, hint="e.g. 256"
        )
    return int(nside)


def _nside_of(array: np.ndarray, name: str) -> int:
    npix = array.size
    nside = round(math.sqrt(npix / 12)) if array.ndim == 1 else 0
    if array.ndim != 1 or nside < 1 or 12 * nside * nside != npix or nside & (nside - 1):
        raise AnalysisError(
            f"{name}: a map of shape {array.shape} is not a HEALPix map",
            value=array.shape,
            hint="give a 1-D map of 12·nside² pixels, nside a power of 2",
        )
    return nside


def born_convergence(
    shells: Iterable[tuple[int, npt.ArrayLike]],
    table: ShellTable,
    sources: Sequence[Source],
    nside: int,
    *,
    kind: MapKind = "delta",
    nest: bool = False,
    allow_missing: bool = False,
) -> np.ndarray:
    """κ maps of ``sources`` from ``(index, map)`` pairs, consumed one at a time.

    ``shells`` may be a generator that reads each map from disk: only one is held at once.
    A shell the sources see but ``shells`` lacks is an error, unless ``allow_missing``
    (then it counts as δ = 0).

    Example:
        >>> table = ShellTable.from_redshift_edges([0.0, 1.0], Background())
        >>> kappa = born_convergence([(0, np.zeros(768))], table, [1.0], nside=8)
        >>> kappa.shape
        (1, 768)
    """
    accumulator = ConvergenceAccumulator(table, sources, nside)
    for index, values in shells:
        accumulator.add(index, values, kind=kind, nest=nest)
    return accumulator.result(allow_missing=allow_missing)

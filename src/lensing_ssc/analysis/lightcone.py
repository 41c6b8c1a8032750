"""Light-cone particles into HEALPix mass shells: FastPM's ``usmesh`` catalogues, in chunks.

* :class:`UsmeshCatalogue` reads a FastPM light cone written by its ``lc_write_usmesh``
  option, a ``bigfile`` directory laid out as FastPM writes it:

  - ``Header`` (attributes): ``BoxSize`` (Mpc/h), ``NC`` (particles per side),
    ``OmegaM``, ``HubbleParam``, ``MassTable``, ...;
  - ``1/Position`` (f4, 3 per row, Mpc/h, the observer at the origin), ``1/Aemit`` (f4, the
    scale factor at which the particle crossed the light cone), ``1/ID``, ...: one row per
    particle, sorted by ``Aemit``;
  - ``1/.`` (attributes): ``aemitIndex.edges`` (n edges of a), ``aemitIndex.offset``
    (n + 2 row offsets): rows ``offset[b] : offset[b+1]`` hold the particles of a-bin ``b``,
    bin 0 below ``edges[0]`` and bin n above ``edges[-1]``.

  With that index, :meth:`~UsmeshCatalogue.rows_between` finds the rows of a range of
  scale factors, so a task reads only the particles of its own shells (one index bin of
  margin on each side); without it, every row is read.
* :class:`ShellCounter` counts particles per pixel of consecutive shells, chunk after chunk:
  the radial bin is the comoving distance ``|x|`` (converted to Mpc with h) or χ(Aemit),
  the pixel the direction of ``x`` (RING order, exactly ``healpy.vec2pix``). The counts are
  int32, one ``(n_shells, 12 nside²)`` array: a catalogue larger than memory streams through.
* :func:`bin_catalogue` does both for a range of shells of a :class:`ShellTable`.

Counts become δ with :func:`lensing_ssc.analysis.shells.density_contrast`, using the mean
count :func:`~lensing_ssc.analysis.shells.expected_count` of the box's particle density
(:meth:`UsmeshCatalogue.number_density`): the light cone must cover the whole sky (all 8
octants). Needs the ``shells`` extra (bigfile; numba for speed, see :mod:`._pixel_kernels`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._pixel_kernels import count_particles
from lensing_ssc.analysis.shells import ShellTable
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "DEFAULT_CHUNK",
    "RadialCoordinate",
    "ShellCounter",
    "UsmeshCatalogue",
    "UsmeshHeader",
    "bin_catalogue",
]

DEFAULT_CHUNK = 4_000_000
"""Particles read at once: 48 MB of float32 positions, and ~20 ms of I/O per chunk."""

RadialCoordinate = Literal["position", "aemit"]
"""How a particle's comoving distance is found: ``|x|``, or χ(z) at z = 1/Aemit − 1."""

_EXTRA = 'pip install "lensing-ssc[shells]"'


def _bigfile() -> Any:
    try:
        return importlib.import_module("bigfile")
    except ImportError:
        raise ModuleNotFoundError(f"FastPM light cones are read with bigfile: {_EXTRA}") from None


@dataclass(frozen=True)
class UsmeshHeader:
    """What a usmesh catalogue says about its simulation (``None`` where it says nothing).

    Attributes:
        box_size: The box side in Mpc/h.
        particles_per_side: NC, so the box holds NC³ particles.
        omega_m, hubble: Ω_m and h the simulation ran with.
    """

    box_size: float | None
    particles_per_side: int | None
    omega_m: float | None
    hubble: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "box_size": self.box_size,
            "particles_per_side": self.particles_per_side,
            "omega_m": self.omega_m,
            "hubble": self.hubble,
        }


def _scalar(attrs: Any, key: str) -> float | None:
    try:
        value = attrs[key]
    except KeyError:
        return None
    return float(np.ravel(value)[0])


class UsmeshCatalogue:
    """A FastPM ``usmesh`` light cone, opened for reading (see the module for its layout).

    Args:
        path: The bigfile directory (FastPM's ``lc_write_usmesh`` path).
        dataset: The particle dataset, ``"1"`` for FastPM's CDM.

    Raises:
        AnalysisError: the path is not a bigfile catalogue, or lacks ``Position``.

    Example:
        >>> with UsmeshCatalogue("sim/usmesh") as cat:  # doctest: +SKIP
        ...     start, stop = cat.rows_between(0.5, 0.6)
        ...     positions = cat.read("Position", start, stop)
    """

    def __init__(self, path: str | Path, dataset: str = "1") -> None:
        bigfile = _bigfile()
        self.path = Path(path)
        self.dataset = dataset.strip("/")
        try:
            self._file = bigfile.File(str(self.path))
            blocks = set(self._file.list_blocks())
        except (bigfile.Error, OSError) as exc:
            raise AnalysisError(
                f"cannot open {str(self.path)!r} as a bigfile catalogue: {exc}",
                value=str(self.path),
                hint="give the directory FastPM wrote with lc_write_usmesh",
            ) from exc
        self.columns = tuple(
            sorted(b.split("/", 1)[1] for b in blocks if b.startswith(self.dataset + "/"))
        )
        if "Position" not in self.columns:
            self.close()
            raise AnalysisError(
                f"{str(self.path)!r} has no {self.dataset}/Position block "
                f"(it has {', '.join(sorted(blocks)) or 'none'})",
                value=str(self.path),
                hint="name the particle dataset (FastPM's CDM is '1')",
            )
        self.size = int(self._file[f"{self.dataset}/Position"].size)
        header = self._file["Header"].attrs if "Header" in blocks else {}
        nc = _scalar(header, "NC")
        self.header = UsmeshHeader(
            box_size=_scalar(header, "BoxSize"),
            particles_per_side=None if nc is None else int(nc),
            omega_m=_scalar(header, "OmegaM"),
            hubble=_scalar(header, "HubbleParam"),
        )
        index = self._file[f"{self.dataset}/."].attrs
        try:
            self.aemit_edges: np.ndarray | None = np.asarray(index["aemitIndex.edges"], float)
            self.aemit_offsets: np.ndarray | None = np.asarray(index["aemitIndex.offset"], int)
        except KeyError:
            self.aemit_edges = self.aemit_offsets = None

    def number_density(self, h: float) -> float:
        """Particles per Mpc³ of the box: NC³ / (BoxSize/h)³.

        Raises:
            AnalysisError: the header gives no ``BoxSize`` or ``NC``.
        """
        size, nc = self.header.box_size, self.header.particles_per_side
        if size is None or nc is None:
            raise AnalysisError(
                f"{str(self.path)!r} has no Header BoxSize and NC, so its mean density is unknown",
                value=str(self.path),
                hint="normalise the shells by their own mean instead (mean: map)",
            )
        return float(nc) ** 3 / (size / h) ** 3

    def rows_between(self, a_min: float, a_max: float) -> tuple[int, int]:
        """The rows holding every particle with ``a_min ≤ Aemit ≤ a_max`` (a superset).

        Uses ``aemitIndex`` with one index bin of margin each side; all rows without it.
        """
        if self.aemit_edges is None or self.aemit_offsets is None:
            return 0, self.size
        edges, offsets = self.aemit_edges, self.aemit_offsets
        low = max(int(np.searchsorted(edges, a_min, side="right")) - 1, 0)
        high = min(int(np.searchsorted(edges, a_max, side="right")) + 1, edges.size)
        return int(offsets[low]), int(min(offsets[high + 1], self.size))

    def read(self, column: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of a column (``Position``, ``Aemit``, ...)."""
        if column not in self.columns:
            raise AnalysisError(
                f"{str(self.path)!r} has no column {column!r} in dataset {self.dataset!r}",
                value=column,
                hint=f"its columns: {', '.join(self.columns)}",
            )
        return np.asarray(self._file[f"{self.dataset}/{column}"][start:stop])

    def chunks(
        self,
        start: int,
        stop: int,
        chunk: int = DEFAULT_CHUNK,
        columns: Sequence[str] = ("Position",),
    ) -> Iterator[dict[str, np.ndarray]]:
        """Rows ``start:stop`` of ``columns``, ``chunk`` rows at a time."""
        for begin in range(start, stop, chunk):
            end = min(begin + chunk, stop)
            yield {name: self.read(name, begin, end) for name in columns}

    def close(self) -> None:
        """Close the file; idempotent."""
        handle = getattr(self, "_file", None)
        if handle is not None:
            handle.close()
            self._file = None

    def __enter__(self) -> UsmeshCatalogue:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ShellCounter:
    """Particle counts per HEALPix pixel of consecutive shells, added chunk by chunk.

    Args:
        table: The shells.
        shells: The consecutive indices counted here (a task's chunk of the table).
        nside: The maps' resolution.
        length_unit: Mpc per position unit: ``1/h`` for FastPM's Mpc/h (default 1, Mpc).

    Attributes:
        counts: ``(len(shells), 12 nside²)`` int32 counts, RING order.
        binned: Particles counted so far (those outside the shells are not).

    Example:
        >>> from lensing_ssc.analysis.shells import Background
        >>> table = ShellTable.from_distance_edges([100.0, 200.0, 300.0], Background())
        >>> counter = ShellCounter(table, range(2), nside=8)
        >>> counter.add(np.array([[150.0, 0.0, 0.0], [0.0, 250.0, 0.0], [1e4, 0, 0]]))
        2
        >>> counter.counts.sum(axis=1).tolist()
        [1, 1]
    """

    def __init__(
        self, table: ShellTable, shells: Sequence[int], nside: int, *, length_unit: float = 1.0
    ) -> None:
        indices = list(shells)
        if not indices or indices != list(range(indices[0], indices[0] + len(indices))):
            raise AnalysisError(
                f"a counter takes consecutive shells, got {indices[:6]}",
                value=indices[:6],
                hint="e.g. range(4, 8)",
            )
        if indices[0] < 0 or indices[-1] >= len(table):
            raise AnalysisError(
                f"shells {indices[0]}–{indices[-1]} are not all in the table of {len(table)}",
                value=(indices[0], indices[-1]),
                hint="count shells of this table",
            )
        if isinstance(nside, bool) or nside < 1 or nside & (nside - 1):
            raise AnalysisError(
                f"nside must be a power of 2, got {nside!r}", value=nside, hint="e.g. 256"
            )
        self.table = table
        self.shells = tuple(indices)
        self.nside = int(nside)
        self.length_unit = float(length_unit)
        self.edges = table.distance_edges[indices[0] : indices[-1] + 2]
        self.counts = np.zeros((len(indices), 12 * self.nside**2), dtype=np.int32)
        self.binned = 0

    @property
    def scale_factor_range(self) -> tuple[float, float]:
        """(a_min, a_max) of the counted shells: the particles worth reading."""
        first, last = self.table[self.shells[0]], self.table[self.shells[-1]]
        return 1.0 / (1.0 + last.z_max), 1.0 / (1.0 + first.z_min)

    def add(self, positions: npt.ArrayLike, *, aemit: npt.ArrayLike | None = None) -> int:
        """Count a chunk of particles; return how many fell in the shells.

        Args:
            positions: ``(N, 3)`` positions in ``length_unit``, the observer at the origin.
            aemit: Each particle's emission scale factor: when given, its shell is that of
                χ(1/aemit − 1) instead of ``|x|``.
        """
        array = np.asarray(positions)
        if array.ndim != 2 or array.shape[1] != 3:
            raise AnalysisError(
                f"positions must be an (N, 3) array, got shape {array.shape}",
                value=array.shape,
                hint="one row of x, y, z per particle",
            )
        radii = None
        if aemit is not None:
            a = np.asarray(aemit, dtype=np.float64)
            if a.shape != (array.shape[0],):
                raise AnalysisError(
                    f"aemit has shape {a.shape}, positions {array.shape}",
                    value=a.shape,
                    hint="one scale factor per particle",
                )
            z = np.clip(1.0 / np.maximum(a, 1e-12) - 1.0, 0.0, self.table.background.z_max)
            radii = self.table.background.comoving_distance(z)
        added = count_particles(
            self.counts, array, self.edges, nside=self.nside, scale=self.length_unit, radii=radii
        )
        self.binned += added
        return added


def bin_catalogue(
    catalogue: UsmeshCatalogue,
    table: ShellTable,
    shells: Sequence[int],
    nside: int,
    *,
    radial: RadialCoordinate = "position",
    chunk: int = DEFAULT_CHUNK,
) -> ShellCounter:
    """Count the particles of ``catalogue`` in ``shells`` of ``table``, streaming in chunks.

    Positions are in Mpc/h: they are converted with the table's h, which must be the
    catalogue's own (``HubbleParam``; Ω_m must match too).

    Raises:
        AnalysisError: the catalogue's cosmology differs from the table's.
    """
    background = table.background
    for name, ours, theirs in (
        ("h", background.h, catalogue.header.hubble),
        ("omega_m", background.omega_m, catalogue.header.omega_m),
    ):
        if theirs is not None and not math.isclose(ours, theirs, rel_tol=1e-4):
            raise AnalysisError(
                f"{str(catalogue.path)!r} was simulated with {name} = {theirs:g}, but the "
                f"shells use {name} = {ours:g}",
                value=theirs,
                hint=f"set the cosmology's {name} to {theirs:g}",
            )
    counter = ShellCounter(table, shells, nside, length_unit=1.0 / background.h)
    start, stop = catalogue.rows_between(*counter.scale_factor_range)
    columns = ("Position", "Aemit") if radial == "aemit" else ("Position",)
    for part in catalogue.chunks(start, stop, chunk, columns):
        counter.add(part["Position"], aemit=part.get("Aemit"))
    return counter

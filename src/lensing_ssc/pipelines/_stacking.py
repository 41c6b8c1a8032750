"""A set's patch statistics stacked as they arrive: one ``(R, F)`` array per statistic.

The patch stage's results come back from the run's journal one at a time (a resumed run's
:class:`~lensing_ssc.processing.runner.ResultSequence` reads each from the file when it is
reached). :class:`RowStack` copies each patch's row into its set's arrays as it comes, so a
merge of R patches holds the stacked samples once: not a list of the R rows beside them,
nor a second copy of the matrix. Rows gather in a block of :data:`BLOCK_ROWS` and go into
each statistic's array a block at a time: one copy per row, and one per statistic per block
(copying each row into some 30 arrays would cost ~30 small copies a row instead).

Rows that are not all packed alike (``{key: array}`` rows, or packed rows whose statistics
differ) are kept as they are and stacked by
:func:`lensing_ssc.analysis.covariance.stack_patch_statistics`, which names the disagreement.

Summaries and comparisons are in :mod:`._merged_results`, the results file in :mod:`._results`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np

from lensing_ssc.analysis.covariance import stack_patch_statistics
from lensing_ssc.pipelines._tasks import PackedStatistics

__all__ = ["BLOCK_ROWS", "PatchRow", "RowStack"]

PatchRow: TypeAlias = PackedStatistics | Mapping[str, np.ndarray]

BLOCK_ROWS = 1024
"""Rows gathered before they go into the statistics' arrays (8 MiB of rows of 1000 values)."""


class RowStack:
    """One set's patch rows, stacked into an array per statistic as they are added.

    Args:
        capacity: The rows the set is planned to get (its patches): each statistic's array
            is allocated once, at the first row, for that many (and grows past it if need be).

    Example:
        >>> stack = RowStack(2)
        >>> for value in (1.0, 3.0):
        ...     stack.add(PackedStatistics.pack({"a": np.array([value, -value])}))
        >>> len(stack), stack.arrays()["a"].tolist()
        (2, [[1.0, -1.0], [3.0, -3.0]])
    """

    __slots__ = ("_arrays", "_block", "_capacity", "_first", "_kept", "_places", "_rows", "_stored")

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self._first: PackedStatistics | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self._places: dict[str, slice] = {}  # each statistic's columns in a packed row
        self._block = np.empty((0, 0))
        self._rows = 0  # rows added
        self._stored = 0  # rows already copied from the block into the arrays
        self._kept: list[Mapping[str, np.ndarray]] | None = None  # rows not all packed alike

    @classmethod
    def of(cls, rows: Sequence[PatchRow]) -> RowStack:
        """A stack of ``rows``, added in order."""
        stack = cls(len(rows))
        for row in rows:
            stack.add(row)
        return stack

    def __len__(self) -> int:
        return self._rows

    def add(self, row: PatchRow) -> None:
        """Stack one patch's statistics after those added before."""
        if self._kept is None and isinstance(row, PackedStatistics):
            if self._first is None:
                self._start(row)
            if self._alike(row):
                at = self._rows - self._stored
                self._block[at] = row.values
                self._rows += 1
                if at + 1 == len(self._block):
                    self._store()
                return
        kept = self._kept if self._kept is not None else self._keep_rows()
        kept.append(row.unpack() if isinstance(row, PackedStatistics) else row)
        self._rows += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """``{key: (R, F) array}`` of the rows added (``{}`` for none).

        Raises:
            AnalysisError: The rows disagree on their statistics or their lengths.
        """
        if self._kept is not None:
            return stack_patch_statistics(self._kept)
        self._store()
        return {name: array[: self._rows] for name, array in self._arrays.items()}

    def _alike(self, row: PackedStatistics) -> bool:
        first = self._first
        return (
            first is not None
            and row.names == first.names
            and row.shapes == first.shapes
            and row.values.shape == first.values.shape
        )

    def _start(self, first: PackedStatistics) -> None:
        self._first = first
        dtype = first.values.dtype
        for name, _, place in first.columns():
            self._places[name] = place
            self._arrays[name] = np.empty((self._capacity, place.stop - place.start), dtype)
        rows = min(BLOCK_ROWS, self._capacity)
        self._block = np.empty((rows, first.values.shape[0]), dtype=dtype)

    def _store(self) -> None:
        """Copy the rows gathered in the block into each statistic's array."""
        start, stop = self._stored, self._rows
        if stop <= start:
            return
        if stop > self._capacity:  # more rows than planned: grow, as a list does
            self._capacity = max(stop, 2 * self._capacity)
            for name, array in self._arrays.items():
                grown = np.empty((self._capacity, array.shape[1]), dtype=array.dtype)
                grown[:start] = array[:start]
                self._arrays[name] = grown
        block = self._block[: stop - start]
        for name, place in self._places.items():
            self._arrays[name][start:stop] = block[:, place]
        self._stored = stop

    def _keep_rows(self) -> list[Mapping[str, np.ndarray]]:
        """From now on keep rows as they are: the rows so far become ``{key: array}`` again."""
        self._store()
        first = self._first
        shapes = {} if first is None else dict(zip(first.names, first.shapes, strict=True))
        self._kept = [
            {name: array[index].reshape(shapes[name]) for name, array in self._arrays.items()}
            for index in range(self._stored)
        ]
        self._arrays, self._places, self._block = {}, {}, np.empty((0, 0))
        return self._kept

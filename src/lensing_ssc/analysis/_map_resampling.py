"""Resampling a set over its maps: bootstrap draws and leave-one-map-out values.

The independent units of a patch set are its maps (patches of one map are correlated), so
every resample here draws or leaves out whole maps with all their patches:
:func:`map_bootstrap` gives the rows of each bootstrap draw, :func:`map_weights` the same
draws as how many times each map is taken (the weights :class:`._map_sums.MapSums` turns
into moments), and :func:`leave_one_map_out` each compared quantity with one map of one set
left out, for the jackknife-t and BCa intervals (:mod:`._intervals`). Why over maps, and
which interval is used for what: :mod:`lensing_ssc.analysis.comparison`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lensing_ssc.analysis._estimators import predicted_excess, ratio_or_nan
from lensing_ssc.analysis._map_sums import MapSums, Moments, map_members

__all__ = ["leave_one_map_out", "map_bootstrap", "map_weights"]


def map_bootstrap(
    groups: Sequence[Any], n_resamples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Return ``n_resamples`` row-index arrays, each drawing whole maps with replacement.

    Args:
        groups: The map of each row (any hashable label); rows of one map stay together.
        n_resamples: How many resamples.
        rng: The generator (seed it from the run's seed for reproducible intervals).

    Example:
        >>> draws = map_bootstrap(["a", "a", "b"], 2, np.random.default_rng(0))
        >>> [sorted(d.tolist()) for d in draws]  # map "b" twice; then "a" (rows 0, 1) and "b"
        [[2, 2], [0, 1, 2]]
    """
    members = map_members(list(groups))
    draws = []
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(members), size=len(members))
        draws.append(np.concatenate([members[j] for j in chosen]))
    return draws


def map_weights(n_maps: int, n_resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per resample, how many times each map is drawn: the draws of :func:`map_bootstrap`."""
    return [
        np.bincount(rng.integers(0, n_maps, size=n_maps), minlength=n_maps)
        for _ in range(n_resamples)
    ]


def leave_one_map_out(
    top: MapSums, bottom: MapSums, point_top: Moments, point_bottom: Moments, ssc: bool
) -> dict[str, list[np.ndarray]]:
    """Each compared quantity with one map of one set left out (jackknife-t and BCa).

    Per quantity (``ratio``, and with patch means ``predicted`` and ``difference``, the
    measured excess less the predicted) a list of two ``(G, F)`` arrays: numerator maps
    left out, then denominator maps; the sets are independent samples. A set of one map
    has no leave-one-out value (NaN).
    """

    def without(sums: MapSums) -> list[Moments | None]:
        out: list[Moments | None] = []
        for g in range(sums.n_maps):
            weights = np.ones(sums.n_maps)
            weights[g] = 0.0
            out.append(sums.moments(weights) if weights @ sums.counts >= 2 else None)
        return out

    def stack(pairs: list[tuple[Moments | None, Moments]], what: str) -> np.ndarray:
        width = point_top.variance.size
        rows = []
        for a, b in pairs:
            if a is None:
                rows.append(np.full(width, np.nan))
                continue
            ratio = ratio_or_nan(a.variance, b.variance)
            predicted = predicted_excess(a, b) if ssc else None
            if what == "ratio":
                rows.append(ratio)
            else:
                values = np.full(width, np.nan) if predicted is None else predicted
                rows.append(values if what == "predicted" else ratio - 1.0 - values)
        return np.array(rows)

    top_out = [(m, point_bottom) for m in without(top)]
    bottom_out: list[tuple[Moments | None, Moments]] = []
    for m in without(bottom):
        # Leaving out a denominator map changes only the denominator's moments.
        bottom_out.append((None, point_bottom) if m is None else (point_top, m))
    names = ["ratio", "predicted", "difference"] if ssc else ["ratio"]
    return {name: [stack(top_out, name), stack(bottom_out, name)] for name in names}

"""Which entries make one setting's joint data vector, for its joint S/N.

:func:`setting_groups` gathers the statistics measured at one setting (``ngal=N`` and,
for map statistics, ``smoothing=S``); :func:`distinct_entries` keeps each number of the
stacked vector once. Both are offered by :mod:`lensing_ssc.analysis.comparison`, whose
:func:`~lensing_ssc.analysis.comparison.compare_sets` uses them; the S/N itself is
:mod:`._estimators`' and :mod:`._map_sums`'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["distinct_entries", "setting_groups"]


def setting_groups(keys: Sequence[str]) -> dict[str, list[str]]:
    """Group statistic keys into the data vectors of one setting, for a joint S/N.

    A setting is ``ngal=N/smoothing=S``: the map statistics at that setting and the Fourier
    statistics (measured before smoothing) at the same ``ngal``. Without map statistics
    the setting is ``ngal=N``.

    Example:
        >>> setting_groups(["cl/ngal=0", "peaks/ngal=0/smoothing=2", "pdf/ngal=0/smoothing=2"])
        {'ngal=0/smoothing=2': ['cl/ngal=0', 'peaks/ngal=0/smoothing=2', 'pdf/ngal=0/smoothing=2']}
    """
    fourier: dict[str, list[str]] = {}
    maps: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) == 2:
            fourier.setdefault(parts[1], []).append(key)
        else:
            maps.setdefault("/".join(parts[1:]), []).append(key)
    groups: dict[str, list[str]] = {}
    for setting, members in maps.items():
        groups[setting] = [*fourier.get(setting.split("/")[0], []), *members]
    for ngal, members in fourier.items():
        if not any(setting.split("/")[0] == ngal for setting in maps):
            groups[ngal] = list(members)
    return groups


def distinct_entries(top: np.ndarray, bottom: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """``entries`` less those that repeat an earlier one exactly, row by row, in both sets.

    A joint data vector can hold one number twice: the squeezed bispectrum's first bin has
    all three sides in the first band, so it is the equilateral first bin. Counted twice, it
    makes the joint covariance singular and the joint S/N NaN; counted once, it adds
    nothing it does not already add.

    Example:
        >>> rows = np.array([[1.0, 2.0, 1.0], [3.0, 5.0, 3.0], [4.0, 4.0, 4.0]])
        >>> distinct_entries(rows, rows, np.array([0, 1, 2])).tolist()
        [0, 1]
    """
    columns = np.concatenate([top[:, entries], bottom[:, entries]]).T
    _, first = np.unique(columns, axis=0, return_index=True)
    return np.asarray(entries[np.sort(first)])

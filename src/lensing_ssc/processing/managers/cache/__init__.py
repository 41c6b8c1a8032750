"""The CacheManager: a memory tier over an optional disk tier that outlives the process.

Private parts: :mod:`._memory` (the memory tier and its eviction policies, :mod:`._policies`),
:mod:`._disk` (the disk tier, over its read side :mod:`._disk_reads`: an SQLite index in
:mod:`._database`, :mod:`._index`, :mod:`._connection` and :mod:`._read_batch`, value files
in :mod:`._values`), :mod:`._reserve` and :mod:`._reclaim` (the free-space reserve and what
gives space back), :mod:`._keys` and :mod:`._memoize` (keys of calls, the decorator),
:mod:`._settings` and :mod:`._stats`, :mod:`._damage` (replacing a damaged index) and
:mod:`._fork` (locks made new in a forked child). The manager itself is in
:mod:`._manager`, over its read path (:mod:`._reading`), its write path (:mod:`._writing`)
and the tiers both share (:mod:`._tiers`); :class:`CacheDirectory` (:mod:`._directory`)
opens a cache directory to count or empty it.
"""

from ._directory import CacheDirectory
from ._manager import (
    CacheManager,
    CacheStats,
    SharedStats,
    TierStats,
)

__all__ = [
    "CacheDirectory",
    "CacheManager",
    "CacheStats",
    "SharedStats",
    "TierStats",
]

"""``CacheDirectory``: a cache directory opened to count, empty or invalidate it, never to store.

What ``lensing-ssc cache stats|clear|invalidate`` do to a run's disk cache, from any process,
while the run goes on or after it ended: the directory's index is shared safely by every
process. The cache that stores (a memory tier over this disk tier) is
:class:`~._manager.CacheManager`; the disk tier itself is :mod:`._disk`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CacheError

from ._disk import INDEX_NAME, DiskTier

__all__ = ["CacheDirectory"]

_UNBOUNDED = 1 << 62  # nothing is stored through it, so the byte limit never applies


class CacheDirectory:
    """The disk tier of an existing cache directory, for its totals, clearing and invalidation.

    Args:
        directory: A cache directory (``cache/`` of a run, or ``cache.dir``).

    Raises:
        CacheError: ``directory`` holds no cache (nothing is created there).

    Example:
        >>> from lensing_ssc.processing.managers import CacheManager
        >>> with CacheManager(cache_dir="cache") as cache:
        ...     cache.put("answer", 42, tags=["demo"])
        >>> with CacheDirectory(Path("cache")) as directory:
        ...     directory.totals()["entries"], directory.invalidate(["demo"])
        (1, 1)
    """

    def __init__(self, directory: Path) -> None:
        if not self.holds_cache(directory):
            raise CacheError(
                f"no cache in {str(directory)!r}",
                value=str(directory),
                hint="give the cache directory of a run that used a disk cache",
            )
        self.directory = directory
        self._disk = DiskTier(
            directory, max_bytes=_UNBOUNDED, policy="lru", codec="none", memory_map=False
        )

    @staticmethod
    def holds_cache(directory: Path) -> bool:
        """Whether ``directory`` holds a cache's index."""
        return (directory / INDEX_NAME).is_file()

    def totals(self) -> dict[str, Any]:
        """Counters of every process so far, bytes, entries, and entries per tag."""
        return self._disk.totals()

    def clear(self) -> int:
        """Remove every entry; the number removed."""
        return self._disk.clear()

    def invalidate(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of ``tags``; the number removed."""
        return len(self._disk.invalidate(list(tags)))

    def close(self) -> None:
        """Write what the reads counted and close the index."""
        self._disk.close()

    def __enter__(self) -> CacheDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CacheDirectory {str(self.directory)!r}>"

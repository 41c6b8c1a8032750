"""``CacheDirectory``: a cache directory opened to count, empty or invalidate it, never to store.

What ``lensing-ssc cache stats|clean|invalidate`` do to a run's disk cache, from any process,
while the run goes on or after it ended: the directory's index is shared safely by every
process. Counting needs no write access (``read_only=True``: ``cache stats`` on someone
else's run, or a read-only copy). A damaged index is never replaced behind the user's back
here, unlike in a running cache (:mod:`._damage`): opening or using it raises ``CacheError``
(:meth:`CacheDirectory.is_damaged` tells), and :meth:`CacheDirectory.rebuild` replaces it
when asked. The cache that stores (a memory tier over this disk tier) is
:class:`~._manager.CacheManager`; the disk tier itself is :mod:`._disk`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lensing_ssc.core.base.exceptions import CacheError

from ._connection import VALUES_DIR
from ._damage import is_index_damaged, replace_index
from ._disk import INDEX_NAME, DiskTier
from ._index import read_tag_counts, read_totals

__all__ = ["CacheDirectory"]

_UNBOUNDED = 1 << 62  # nothing is stored through it, so the byte limit never applies


class CacheDirectory:
    """The disk tier of an existing cache directory, for its totals, clearing and invalidation.

    Args:
        directory: A cache directory (``cache/`` of a run, or ``cache.dir``).
        read_only: Only read its totals: nothing is opened for writing, nothing written
            (``clear`` and ``invalidate`` then refuse).

    Raises:
        CacheError: ``directory`` holds no cache (nothing is created there), or its index
            is damaged (:meth:`is_damaged`; opening never replaces it).

    Example:
        >>> from lensing_ssc.processing.managers import CacheManager
        >>> with CacheManager(cache_dir="cache") as cache:
        ...     cache.put("answer", 42, tags=["demo"])
        >>> with CacheDirectory(Path("cache")) as directory:
        ...     directory.totals()["entries"], directory.invalidate(["demo"])
        (1, 1)
    """

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        if not self.holds_cache(directory):
            raise CacheError(
                f"no cache in {str(directory)!r}",
                value=str(directory),
                hint="give the cache directory of a run that used a disk cache",
            )
        self.directory = directory
        self.read_only = read_only
        self._disk = None if read_only else _open_disk(directory)

    @staticmethod
    def holds_cache(directory: Path) -> bool:
        """Whether ``directory`` holds a cache's index."""
        return (directory / INDEX_NAME).is_file()

    @staticmethod
    def is_damaged(exc: BaseException) -> bool:
        """Whether ``exc``, raised by opening or using a cache directory, says its index is
        damaged (then :meth:`rebuild` makes the directory usable again)."""
        return is_index_damaged(exc)

    @staticmethod
    def rebuild(directory: Path) -> tuple[int, int]:
        """Replace the index of ``directory`` by an empty one and remove every value file.

        For a damaged index, which cannot be cleared entry by entry. Processes using the
        cache meanwhile go on: what they read from then on is a miss.

        Returns:
            The value files removed and their bytes.

        Raises:
            CacheError: A file cannot be removed, or the new index cannot be made.
        """
        try:
            removed = replace_index(directory / INDEX_NAME, directory / VALUES_DIR, None)
        except OSError as exc:
            raise CacheError(
                f"cannot replace the cache index in {str(directory)!r}: {exc}",
                value=str(directory),
                hint="remove the cache directory instead: it holds nothing that cannot be "
                "computed again",
            ) from exc
        _open_disk(directory).close()  # the new, empty index
        return removed

    def totals(self) -> dict[str, Any]:
        """Counters of every process so far, bytes, entries, and entries per tag."""
        if self._disk is not None:
            return self._disk.totals()
        return _read_totals(self.directory)

    def clear(self) -> int:
        """Remove every entry; the number removed."""
        return self._writable().clear()

    def invalidate(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of ``tags``; the number removed."""
        return len(self._writable().invalidate(list(tags)))

    def _writable(self) -> DiskTier:
        if self._disk is None:
            raise CacheError(
                f"the cache in {str(self.directory)!r} was opened read-only",
                value=str(self.directory),
                hint="open it with CacheDirectory(directory) to change it",
            )
        return self._disk

    def close(self) -> None:
        """Write what the reads counted and close the index."""
        if self._disk is not None:
            try:
                self._disk.close()
            except CacheError as exc:
                if not is_index_damaged(exc):  # damaged: nothing to write to, nothing lost
                    raise

    def __enter__(self) -> CacheDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CacheDirectory {str(self.directory)!r}>"


def _open_disk(directory: Path) -> DiskTier:
    """The disk tier of ``directory``, for counting and removing (a damaged index raises)."""
    return DiskTier(
        directory, max_bytes=_UNBOUNDED, policy="lru", codec="none", memory_map=False, repair=False
    )


def _read_totals(directory: Path) -> dict[str, Any]:
    """The totals of the index in ``directory``, read without writing anything.

    Read-only (``mode=ro``) sees what live processes committed, as long as SQLite can
    share their write-ahead log's index; where it cannot (a directory this user may not
    write, after the last process closed the cache), the file alone is read
    (``immutable=1``): everything committed is in it once no process has the cache open.
    """
    uri = "file:" + quote(str(directory / INDEX_NAME))
    failure: sqlite3.Error | None = None
    for mode in ("mode=ro", "immutable=1"):
        try:
            with contextlib.closing(sqlite3.connect(f"{uri}?{mode}", uri=True)) as conn:
                totals: dict[str, Any] = read_totals(conn)
                totals["tags"] = read_tag_counts(conn)
                return totals
        except sqlite3.OperationalError as exc:  # cannot open (or share the log) this way
            failure = exc
        except sqlite3.DatabaseError as exc:
            if not is_index_damaged(exc):
                raise CacheError(
                    f"the cache index in {str(directory)!r} cannot be read: {exc}",
                    value=str(directory),
                ) from exc
            raise CacheError(
                f"the cache index in {str(directory)!r} is damaged ({exc})",
                value=str(directory),
                hint="replace it by an empty one with `lensing-ssc cache clean RUN_DIR` (or "
                "remove the cache directory): a cache holds nothing that cannot be computed "
                "again",
            ) from exc
    raise CacheError(
        f"the cache index in {str(directory)!r} cannot be read: {failure}",
        value=str(directory),
        hint="check that this user may read the directory and its index.sqlite",
    ) from failure

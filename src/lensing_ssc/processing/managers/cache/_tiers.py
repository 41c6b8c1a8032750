"""The two tiers a ``CacheManager`` holds, and how it goes on when the disk one is damaged.

:class:`TieredCache` is the base of :class:`~._manager.CacheManager` and of its two halves,
the read path (:mod:`._reading`) and the write path (:mod:`._writing`): it declares the
state they share (the memory tier, the disk tier, the lock guarding what rarely changes),
opens the disk tier, and settles what a damaged disk index costs. Every disk call runs
``with self._unless_damaged:``. When the index turns out damaged it has been replaced by an
empty one (:mod:`._damage`): the call is a miss, or its value is not stored on disk. When it
could not be replaced, or is damaged again, this process goes on with its memory tier only,
logged once; ``get_status()["disk_bypassed"]`` says why. The next process that opens the
cache uses its disk again.

The tiers themselves are in :mod:`._memory` and :mod:`._disk`; the settings, memoize,
statistics and the manager's lifetime in :mod:`._manager`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.config import CacheSection

from ._damage import is_index_damaged
from ._disk import DiskTier
from ._memoize import ComputeOnce
from ._memory import MemoryTier
from ._settings import byte_limit

__all__ = ["TieredCache"]

_log = logging.getLogger("lensing_ssc.processing.managers.cache")

_WITHOUT_DISK = (
    "the cache in %r goes on in memory only in this process: %s. Values are still "
    "computed and returned; the next process that opens the cache uses its disk again"
)


class TieredCache:
    """A memory tier over an optional disk tier whose damage the cache outlives.

    ``CacheManager.__init__`` sets every attribute declared here (the disk tier's through
    :meth:`_open_disk`).
    """

    _settings: CacheSection  # resolved from the arguments, the config and the defaults
    cache_dir: Path | None
    _memory: MemoryTier
    _disk: DiskTier | None
    _without_disk: tuple[DiskTier | None, str] | None  # the tier bypassed, and why
    _unless_damaged: _UnlessDamaged
    _compute: ComputeOnce
    _warn_lock: threading.Lock  # guards what a warning logged once needs, and _disk
    _closed: bool

    def _open_disk(self, settings: CacheSection, codec: str) -> None:
        """Open the disk tier of ``settings.dir``; memory only when none, or it is damaged.

        Raises:
            CacheError: The directory cannot be created or written (anything but damage).
        """
        self._unless_damaged = _UnlessDamaged(self._outlive_damage)
        self._disk = None
        self._without_disk = None
        if settings.dir is not None:
            try:
                self._disk = DiskTier(
                    settings.dir,
                    max_bytes=byte_limit(settings.disk_max_size_mb),
                    policy=settings.eviction_policy,
                    codec=codec,
                    memory_map=settings.memory_map,
                    min_free_mb=settings.disk_min_free_mb,
                    journal_mode=settings.journal_mode,
                )
            except CacheError as exc:
                if not is_index_damaged(exc):
                    raise
                self._without_disk = (None, str(exc))
                _log.warning(_WITHOUT_DISK, str(settings.dir), exc)

    def _outlive_damage(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` says the disk index is damaged, which the cache outlives.

        The index was replaced by an empty one (:mod:`._damage`): the call that met the
        damage is a miss, or its value is not stored on disk. If it could not be, or was
        damaged again, this process goes on without its disk tier. Anything else: ``False``,
        to be raised.
        """
        if not isinstance(exc, CacheError) or not is_index_damaged(exc):
            return False
        disk = self._disk
        if disk is not None and not disk.usable:
            self._go_without_disk(f"its index is damaged ({exc.message})")
        return True

    def _go_without_disk(self, reason: str) -> None:
        """Use the memory tier only from now on, in this process; logged once."""
        with self._warn_lock:
            disk = self._disk
            if disk is None:
                return
            self._disk = None
            self._without_disk = (disk, reason)
        self._compute.forget_disk()
        _log.warning(_WITHOUT_DISK, str(self.cache_dir), reason)

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError("the cache is closed", hint="create a new CacheManager")

    @staticmethod
    def _unhashable(key: Any) -> CacheError:
        return CacheError(
            f"cache keys must be hashable, got a {type(key).__name__}",
            value=key,
            hint="use a str, a number or a tuple (e.g. tuple(a_list))",
        )


class _UnlessDamaged:
    """``with manager._unless_damaged:`` a disk call whose damaged index the cache outlives.

    The block ends early on such an error, and what follows it runs (the caller set its
    fallback before the block); any other exception propagates. A class, not a generator
    context manager: it guards every disk call and costs a fraction as much.
    """

    __slots__ = ("_outlive",)

    def __init__(self, outlive: Callable[[BaseException | None], bool]) -> None:
        self._outlive = outlive

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> bool:
        return exc is not None and self._outlive(exc)

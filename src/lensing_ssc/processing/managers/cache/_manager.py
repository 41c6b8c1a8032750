"""``CacheManager``: expensive results cached in memory and on disk, arrays first.

The memory tier holds values by reference, bounded by entries and by bytes (counted with
:func:`lensing_ssc.core.io.estimate_size`, so a view of a big array costs the big array),
evicting ``lru``, ``lfu`` or ``fifo`` in O(1). With a ``cache_dir`` a disk tier sits behind
it: every put is written through, a memory miss that hits disk is promoted (except arrays
returned memory-mapped, ``memory_map=True`` or ``"verify"``: they already live in the page
cache), and the directory outlives the process and is shared safely by every process of a
run. Entries may expire (``ttl``), carry any number of tags, and be memoized per call with
compute-once across threads and processes. ``shrink`` gives memory back under pressure.
A value too large for a tier is logged once per tier as a WARNING record on the
``lensing_ssc.processing.managers.cache`` logger (not a Python warning: the caller's code is
not at fault, and a library is quiet unless logging is configured); ``get_stats()`` counts
every rejection.

Thread safety: every mutation takes a lock; for ``lru`` and ``fifo`` a memory hit takes
none, because it consists of single C-level dict operations that the GIL makes atomic (on
a free-threaded Python the hit path takes the lock). Each process has its own memory
tier: a put or invalidation in one process reaches the others through the disk tier, not
their memory tiers. A child forked while threads use the cache gets new locks
(:mod:`._fork`). A damaged disk index never fails a call: it is replaced by an empty one,
and if that fails (or it is damaged again) this process goes on with its memory tier only
(``get_status()["disk_bypassed"]`` says why).

The read path is in :mod:`._reading`, the write path in :mod:`._writing`, the tiers and
what a damaged disk index costs in :mod:`._tiers`; the other pieces live beside them (see
the package's docstring). The design and the measured figures are in
``docs/cache_manager.md``. The command line is ``lensing-ssc cache``
(:mod:`lensing_ssc.cli._cache`).

Example:
    >>> with CacheManager(max_size_mb=64, max_entries=100) as cache:
    ...     cache.put("answer", 42, tags=["demo"])
    ...     cache.get("answer"), cache.invalidate_by_tags(["demo"]), cache.get("answer")
    (42, 1, None)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from lensing_ssc.core.config import (
    NOT_GIVEN,
    CacheSection,
    NotGiven,
    ReadOnlySettings,
    resolve_settings,
)
from lensing_ssc.core.io import resolve_codec

from ._fork import register as register_for_forks
from ._fork import unregister as unregister_for_forks
from ._memoize import ComputeOnce, memoized
from ._memory import MISSING, MemoryTier
from ._policies import EvictionPolicy
from ._reading import CacheReads
from ._settings import (
    byte_limit,
    check_tags,
    check_ttl,
    gil_enabled,
    rebuild_arguments,
    settings_status,
)
from ._stats import CacheStats, SharedStats, TierStats
from ._writing import CacheWrites, new_stripes

if TYPE_CHECKING:
    from lensing_ssc.core.config import ProcessingConfig

__all__ = ["CacheManager", "CacheStats", "SharedStats", "TierStats"]

_F = TypeVar("_F", bound=Callable[..., Any])


class CacheManager(CacheReads, CacheWrites, ReadOnlySettings):
    """A two-tier cache: bounded memory in front, an optional shared disk directory behind.

    Args:
        max_size_mb: Memory tier byte limit, in MiB (default 512, or ``config.cache``).
        max_entries: Memory tier entry limit (default 1000, or ``config.cache``).
        eviction_policy: ``"lru"`` (default), ``"lfu"`` or ``"fifo"``, for both tiers.
        cache_dir: Directory of the disk tier; ``None`` for memory only. Not given, a
            given ``config`` decides (``config.cache_dir``; ``None`` when ``cache.disk``
            is off); without both, memory only.
        compression: Codec for values on disk: ``"none"`` (default), ``"auto"``,
            ``"zstd"``, ``"lz4"``, ``"gzip"``. Data that does not shrink is stored raw.
        default_ttl: Seconds an entry lives when ``put`` gives no ``ttl``; ``None`` (default)
            for no expiry.
        disk_max_size_mb: Disk tier byte limit, in MiB (default 4096).
        disk_min_free_mb: Free space, in MiB, the disk tier leaves on its filesystem: it
            evicts, and then stops storing, rather than go below it. ``None`` (default):
            the smaller of 1 GiB and 10 % of the filesystem; ``0``: no reserve (a put that
            finds the disk full is still dropped, not raised).
        memory_map: Return large raw arrays from disk as read-only memory maps instead of
            reading them into fresh arrays: ``True`` without reading them (their digest is
            then not checked), ``"verify"`` checking their digest through the map (no copy
            and no new memory; the right choice for arrays read whole, again and again).
        lease_ttl: Seconds a memoize lease lives without renewal (default 60); a crashed
            holder blocks others at most this long (on the same host, not at all).
        lease_heartbeat: Seconds between a memoize lease holder's renewals (default 5);
            a holder on another host whose last renewal is three of them old is taken to
            be dead, so a worker lost with its node blocks others about 15 s.
        journal_mode: The index's SQLite journal: ``"auto"`` (default: WAL on a local
            disk, the rollback journal on NFS, Lustre, GPFS and other filesystems hosts
            share), ``"wal"`` or ``"delete"``. Every process of a cache must agree.
        config: A :class:`~lensing_ssc.core.config.ProcessingConfig`; explicit arguments
            override its ``cache`` section. Arguments left ``None`` (or, where ``None``
            means something, not given) come from it, else from the section's defaults.

    Raises:
        ConfigError: A bad setting (a limit or TTL that is not positive, an unknown
            policy or codec), naming the field (``cache.max_size_mb``), value and range.
        CacheError: ``cache_dir`` cannot be created or written.

    Example:
        >>> cache = CacheManager(max_size_mb=512, max_entries=1000)
        >>> cache.put("kappa_smoothed", [1.0, 2.0], ttl=3600, tags=["maps"])
        >>> cache.get("kappa_smoothed")
        [1.0, 2.0]
        >>> print(f"Hit rate: {cache.get_stats().hit_rate:.2%}")
        Hit rate: 100.00%
    """

    _read_only: ClassVar[Mapping[str, tuple[str | None, str]]] = {
        "eviction_policy": (
            "cache.eviction_policy",
            "pass eviction_policy=... to CacheManager(...) or set it in the config's cache section",
        ),
        "cache_dir": (
            "cache.dir",
            "pass cache_dir=... to CacheManager(...) or set it in the config's cache section",
        ),
        "default_ttl": (
            "cache.default_ttl",
            "pass default_ttl=... to CacheManager(...) or set it in the config's cache section",
        ),
    }

    def __init__(
        self,
        max_size_mb: float | None = None,
        max_entries: int | None = None,
        *,
        eviction_policy: EvictionPolicy | str | None = None,
        cache_dir: str | os.PathLike[str] | NotGiven | None = NOT_GIVEN,
        compression: str | bool | None = None,
        default_ttl: float | NotGiven | None = NOT_GIVEN,
        disk_max_size_mb: float | None = None,
        disk_min_free_mb: float | NotGiven | None = NOT_GIVEN,
        memory_map: bool | Literal["verify"] | None = None,
        lease_ttl: float | None = None,
        lease_heartbeat: float | None = None,
        journal_mode: str | None = None,
        config: ProcessingConfig | None = None,
    ) -> None:
        if cache_dir is NOT_GIVEN:
            cache_dir = None if config is None else config.cache_dir
        self._settings = settings = resolve_settings(
            CacheSection,
            config,
            dir=cache_dir,
            disk=cache_dir is not None,
            max_size_mb=max_size_mb,
            max_entries=max_entries,
            eviction_policy=eviction_policy,
            compression=compression,
            default_ttl=default_ttl,
            disk_max_size_mb=disk_max_size_mb,
            disk_min_free_mb=disk_min_free_mb,
            memory_map=memory_map,
            lease_ttl=lease_ttl,
            lease_heartbeat=lease_heartbeat,
            journal_mode=journal_mode,
        )
        self._codec = resolve_codec(settings.compression).name
        self.eviction_policy: EvictionPolicy = settings.eviction_policy
        self.cache_dir = settings.dir
        self.default_ttl = settings.default_ttl
        self._memory = MemoryTier(
            max_bytes=byte_limit(settings.max_size_mb),
            max_entries=settings.max_entries,
            policy=settings.eviction_policy,
            lock_free_hits=gil_enabled(),
        )
        self._bind_hit_path()
        self._stripes = new_stripes()
        self._warned = set()
        self._warn_lock = threading.Lock()
        self._open_disk(settings, self._codec)
        self._compute = ComputeOnce(
            self._disk, lease_ttl=settings.lease_ttl, heartbeat=settings.lease_heartbeat
        )
        self._closed = False
        register_for_forks(self)

    # -- memoize ------------------------------------------------------------------------
    @overload
    def memoize(self, func: _F, /) -> _F: ...

    @overload
    def memoize(
        self,
        func: None = None,
        /,
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        key: Callable[..., Hashable] | None = None,
        durable: bool = True,
    ) -> Callable[[_F], _F]: ...

    def memoize(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        key: Callable[..., Hashable] | None = None,
        durable: bool = True,
    ) -> Any:
        """Decorate a function so each distinct call is computed once and then cached.

        The key combines the function's module, name, source and bytecode, what it carries
        (closure values, a partial's arguments, a bound ``self``: see ``docs/cache_manager.md``)
        and its arguments (numpy arrays by content, keyword or positional alike, defaults
        applied). Concurrent calls for one missing key compute it once: threads of a process
        wait on a per-key lock, other processes sharing the cache directory on a lease that
        dies with its holder.

        Args:
            func: The function, when used as ``@cache.memoize`` without arguments.
            ttl: Seconds results live (``None``: ``default_ttl``).
            tags: Tags of every result, for :meth:`invalidate_by_tags`.
            key: Builds the key from the arguments instead (for arguments that cannot be
                hashed by value, such as ``self``).
            durable: As for :meth:`put`; ``False`` for results that are cheap to recompute.

        Raises:
            CacheError: The function captures a value with no canonical key (a lock, a
                logger), naming it: pass it as an argument instead.

        Example:
            >>> @cache.memoize(ttl=3600, tags=["theory"])  # doctest: +SKIP
            ... def power_spectrum(ell, omega_m=0.3):
            ...     ...
        """
        ttl = None if ttl is None else check_ttl(ttl)
        checked = check_tags(tags)

        def store(cache_key: Hashable, value: Any) -> None:
            self.put(cache_key, value, ttl=ttl, tags=checked, durable=durable)

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            return memoized(
                function,
                coordinator=self._compute,
                get=lambda cache_key: self.get(cache_key, MISSING),
                peek=self._peek,
                store=store,
                key=key,
            )

        return decorate if func is None else decorate(func)

    # -- reporting ----------------------------------------------------------------------
    def get_stats(self) -> CacheStats:
        """Hits, misses, hit rate, evictions, expirations, rejections, bytes, per tier.

        The counters are this process's; ``shared`` has the disk lookups of every process
        using the cache directory since this cache opened (worker processes' included).
        """
        memory = self._memory.stats()
        disk = self._disk
        stats = CacheStats.combine(memory, None)
        if disk is not None and not self._closed:
            with self._unless_damaged:
                stats = CacheStats.combine(memory, disk.stats(), disk.shared_stats())
        return stats

    def get_status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: settings, whether closed, and :meth:`get_stats`."""
        settings = settings_status(self._settings, self._codec)
        index_mode = None if self._disk is None else self._disk.journal_mode
        bypassed = self._without_disk
        return {
            **settings,
            "index_journal_mode": index_mode,
            "disk_bypassed": None if bypassed is None else bypassed[1],
            "closed": self._closed,
            **self.get_stats().to_dict(),
        }

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Flush the disk tier's batched reads, close it and empty memory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        unregister_for_forks(self)
        self._compute.close()
        self._memory.clear()
        bypassed = None if self._without_disk is None else self._without_disk[0]
        for disk in (self._disk, bypassed):
            if disk is not None:
                with self._unless_damaged:
                    disk.close()

    def before_fork(self) -> None:
        """Make both tiers safe to copy into a child about to be forked (see :mod:`._fork`)."""
        self._memory.before_fork()
        if self._disk is not None:
            self._disk.before_fork()

    def after_fork(self, *, in_child: bool) -> None:
        """After a fork: in a child, new locks for everything other threads may have held."""
        self._memory.after_fork(in_child=in_child)
        disk_usable = self._disk is None or self._disk.after_fork(in_child=in_child)
        if in_child:
            self._stripes = new_stripes()
            self._warn_lock = threading.Lock()
            self._compute.after_fork_in_child()
            if not disk_usable:
                self._go_without_disk("it was forked while another thread waited on the index")

    def __enter__(self) -> CacheManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # Workers of a process pool get a cache on the same directory, with an empty
        # memory tier of their own.
        return (_reopen, (rebuild_arguments(self._settings),))

    def __repr__(self) -> str:
        where = "memory" if self.cache_dir is None else f"memory+disk at {str(self.cache_dir)!r}"
        return f"<CacheManager {self.eviction_policy} {where}{' closed' if self._closed else ''}>"


def _reopen(settings: dict[str, Any]) -> CacheManager:
    return CacheManager(**settings)

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

Implementation pieces live in :mod:`._cache` beside this module; the design and the
measured figures are in ``docs/cache_manager.md``. The command line is
``lensing-ssc cache`` (:mod:`lensing_ssc.cli._cache`).

Example:
    >>> with CacheManager(max_size_mb=64, max_entries=100) as cache:
    ...     cache.put("answer", 42, tags=["demo"])
    ...     cache.get("answer"), cache.invalidate_by_tags(["demo"]), cache.get("answer")
    (42, 1, None)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

import numpy as np

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.config import (
    NOT_GIVEN,
    CacheSection,
    NotGiven,
    ReadOnlySettings,
    resolve_settings,
)
from lensing_ssc.core.io import estimate_size, resolve_codec

from ._damage import is_index_damaged
from ._disk import DiskTier, Outcome
from ._fork import register as register_for_forks
from ._fork import unregister as unregister_for_forks
from ._keys import encode_key
from ._memoize import ComputeOnce, memoized
from ._memory import MISSING, MemoryTier
from ._policies import EvictionPolicy
from ._settings import (
    byte_limit,
    check_tags,
    check_ttl,
    gil_enabled,
    rebuild_arguments,
    rejection_message,
    settings_status,
    shrink_target,
)
from ._stats import CacheStats, SharedStats, TierStats

if TYPE_CHECKING:
    from lensing_ssc.core.config import ProcessingConfig

__all__ = ["CacheManager", "CacheStats", "SharedStats", "TierStats"]


_log = logging.getLogger("lensing_ssc.processing.managers.cache")

_STRIPES = 64  # per-key locks keeping both tiers in one order for puts of one key
_WITHOUT_DISK = (
    "the cache in %r goes on in memory only in this process: %s. Values are still "
    "computed and returned; the next process that opens the cache uses its disk again"
)
_F = TypeVar("_F", bound=Callable[..., Any])
_NOTHING: dict[Hashable, Any] = {}  # never written: lookups in it always miss


class CacheManager(ReadOnlySettings):
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
        # The hit path reads these directly: one attribute load each, no method layers.
        # Where hits must take the lock, it looks in an empty dict and so always falls
        # through to the locked path (still raising TypeError for unhashable keys).
        self._lookup: Callable[[Hashable, Any], Any] = self._memory.values.get
        if not self._memory.lock_free_hits:
            self._lookup = _NOTHING.get
        self._expiry = self._memory.expiry
        self._touch = self._memory.touch
        self._hits = self._memory.hits.counter
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()
        self._unless_damaged = _UnlessDamaged(self._outlive_damage)
        self._disk: DiskTier | None = None
        self._without_disk: tuple[DiskTier | None, str] | None = None  # bypassed, and why
        if settings.dir is not None:
            try:
                self._disk = DiskTier(
                    settings.dir,
                    max_bytes=byte_limit(settings.disk_max_size_mb),
                    policy=settings.eviction_policy,
                    codec=self._codec,
                    memory_map=settings.memory_map,
                    min_free_mb=settings.disk_min_free_mb,
                    journal_mode=settings.journal_mode,
                )
            except CacheError as exc:
                if not is_index_damaged(exc):
                    raise
                self._without_disk = (None, str(exc))
                _log.warning(_WITHOUT_DISK, str(settings.dir), exc)
        self._compute = ComputeOnce(
            self._disk, lease_ttl=settings.lease_ttl, heartbeat=settings.lease_heartbeat
        )
        self._closed = False
        register_for_forks(self)

    # -- reading ------------------------------------------------------------------------
    def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the value cached under ``key``, or ``default``.

        A memory hit costs about one dict lookup; a memory miss asks the disk tier and
        promotes what it finds. Expired entries are misses.

        Raises:
            CacheError: ``key`` is unhashable, cannot be encoded for the disk tier, or
                the cache is closed.
        """
        try:
            value = self._lookup(key, MISSING)
        except TypeError as exc:
            raise self._unhashable(key) from exc
        if value is not MISSING and (not self._expiry or key not in self._expiry):
            touch = self._touch
            if touch is not None:
                try:  # noqa: SIM105 - contextlib.suppress would double the cost of a hit
                    touch(key)
                except KeyError:
                    pass  # evicted by another thread since the lookup: still a hit
            next(self._hits)
            return value
        return self._get_slow(key, default)

    def _get_slow(self, key: Hashable, default: Any) -> Any:
        self._check_open()
        value = self._memory.lookup(key)
        if value is not MISSING:
            return value
        disk = self._disk
        found = default
        if disk is not None:
            with self._unless_damaged:
                found = self._from_disk(disk, key, default, count=True)
        return found

    def _from_disk(self, disk: DiskTier, key: Hashable, default: Any, *, count: bool) -> Any:
        epoch = self._memory.epoch
        found = disk.get(encode_key(key), count=count)
        if found is None:
            return default
        value, row = found
        if isinstance(value, np.memmap):
            # Already in memory (the page cache); holding it would also hold a descriptor.
            return value
        ttl = None if row.expires is None else row.expires - time.time()
        self._memory.promote(
            key, value, size=estimate_size(value), ttl=ttl, tags=row.tag_tuple(), epoch=epoch
        )
        return value

    def _peek(self, key: Hashable) -> Any:
        value = self._memory.peek(key)
        disk = self._disk
        if value is MISSING and disk is not None:
            with self._unless_damaged:
                value = self._from_disk(disk, key, MISSING, count=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` has a live entry in either tier (statistics are not touched)."""
        self._check_open()
        try:
            if self._memory.contains(key):
                return True
        except TypeError as exc:
            raise self._unhashable(key) from exc
        disk = self._disk
        found = False
        if disk is not None:
            with self._unless_damaged:
                found = disk.contains(encode_key(key))
        return found

    # -- writing ------------------------------------------------------------------------
    def put(
        self,
        key: Hashable,
        value: Any,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        *,
        durable: bool = True,
    ) -> None:
        """Cache ``value`` under ``key`` in every tier, replacing any previous value.

        Args:
            key: Any hashable; with a disk tier, made of str, bytes, int, float, bool,
                None, tuples and frozensets.
            value: Any value; with a disk tier, it must be picklable (plain numpy arrays
                are stored raw).
            ttl: Seconds to live; ``None`` uses ``default_ttl``.
            tags: Any number of tags, for :meth:`invalidate_by_tags`.
            durable: Flush a large value's file to disk (``fsync``) before the entry
                becomes visible, so that it survives a power cut. ``False`` saves that
                wait for values that are cheap to recompute: after a power cut such an
                entry may be lost, which its digest check turns into a miss. Either way a
                killed process never leaves a torn entry.

        A value larger than a tier's byte limit is not stored in that tier; it is counted
        as rejected and warned about once per tier. Nor is a value whose write would leave
        less than ``disk_min_free_mb`` free on the disk tier's filesystem even after
        evicting, or that finds the disk full: it is counted as rejected, and the first of a
        run of them logs a warning naming the directory and the free space; the put returns
        normally, and the value stays in the memory tier if it fits there.

        Raises:
            CacheError: A bad ``ttl`` or tag, an unhashable key, a key or value the disk
                tier cannot store (naming the key and the value's type), a closed cache;
                on a disk so full that an older value of ``key`` can be neither replaced
                nor removed, rather than leave it to be read later.
        """
        self._check_open()
        ttl = self.default_ttl if ttl is None else check_ttl(ttl)
        checked_tags = check_tags(tags)
        try:
            stripe = self._stripes[hash(key) % _STRIPES]
        except TypeError as exc:
            raise self._unhashable(key) from exc
        disk = self._disk
        encoded = None if disk is None else encode_key(key)
        size = estimate_size(value)
        with stripe:
            on_disk = False
            if disk is not None and encoded is not None:
                outcome = Outcome.NO_ROOM
                with self._unless_damaged:
                    outcome = disk.put(
                        encoded, value, label=key, ttl=ttl, tags=checked_tags, durable=durable
                    )
                on_disk = outcome is Outcome.STORED
                if outcome is Outcome.TOO_LARGE:
                    self._warn_rejected("disk", key, value)
            stored = self._memory.store(key, value, size=size, ttl=ttl, tags=checked_tags)
        if not stored:
            self._warn_rejected("memory", key, value, size=size, kept=on_disk)

    def delete(self, key: Hashable) -> bool:
        """Remove ``key`` from every tier; whether any tier held it."""
        self._check_open()
        try:
            stripe = self._stripes[hash(key) % _STRIPES]
        except TypeError as exc:
            raise self._unhashable(key) from exc
        with stripe:
            in_memory = self._memory.discard(key)
            disk = self._disk
            on_disk = False
            if disk is not None:
                with self._unless_damaged:
                    on_disk = disk.delete([encode_key(key)]) > 0
        return in_memory or on_disk

    def invalidate_by_tags(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of ``tags``, in every tier.

        Returns:
            The number of entries removed (an entry held by both tiers counts once).
        """
        self._check_open()
        checked = check_tags(tags)
        if not checked:
            return 0
        in_memory = self._memory.invalidate(checked)
        disk = self._disk
        on_disk: set[bytes] = set()
        if disk is not None:
            with self._unless_damaged:
                on_disk = set(disk.invalidate(checked))
        if not on_disk:
            return len(in_memory)
        return len(on_disk) + sum(encode_key(key) not in on_disk for key in in_memory)

    def clear(self) -> None:
        """Remove every entry from every tier (statistics are kept)."""
        self._check_open()
        self._memory.clear()
        disk = self._disk
        if disk is not None:
            with self._unless_damaged:
                disk.clear()

    def expire(self) -> int:
        """Remove expired entries from every tier now; the number removed."""
        self._check_open()
        removed = self._memory.purge_expired()
        disk = self._disk
        if disk is not None:
            with self._unless_damaged:
                removed += disk.expire()
        return removed

    def shrink(self, target_bytes: int | None = None, *, fraction: float | None = None) -> int:
        """Free memory: evict from the memory tier by policy down to a target.

        Puts write through to the disk tier, so what is evicted here stays available from
        disk (except values too large for the disk tier's limit). The ResourceManager's
        memory warnings call this through the ManagerContext.

        Args:
            target_bytes: Bytes the memory tier may keep.
            fraction: Or the fraction of its current bytes it may keep (``0`` empties it).
                With neither, half is kept.

        Returns:
            The bytes freed.
        """
        self._check_open()
        target = shrink_target(self._memory.bytes, target_bytes, fraction)
        return self._memory.shrink(target)

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
            self._stripes = [threading.Lock() for _ in range(_STRIPES)]
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

    # -- helpers ------------------------------------------------------------------------
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

    def _warn_rejected(
        self, tier: str, key: Hashable, value: Any, *, size: int | None = None, kept: bool = False
    ) -> None:
        with self._warn_lock:
            if tier in self._warned:
                return
            self._warned.add(tier)
        mib = self._settings.max_size_mb if tier == "memory" else self._settings.disk_max_size_mb
        limit = byte_limit(mib)
        _log.warning(rejection_message(tier, key, value, size=size, limit=limit, kept=kept))


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


def _reopen(settings: dict[str, Any]) -> CacheManager:
    return CacheManager(**settings)

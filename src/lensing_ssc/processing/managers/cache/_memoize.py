"""``CacheManager.memoize``: compute each missing result once, per process and across them.

Keys come from the function's identity and its bound arguments (:func:`._keys.call_key`),
arrays hashed by content. When a call misses, the caller takes a per-key lock, so other
threads of the process asking for the same key wait instead of computing it too. With a
disk tier it also takes a *lease* on the key in the shared index: a row naming its owner
(host, pid, a random token) and an expiry. Other processes wait while the lease lives,
polling the cache for the result; the lease ends when its holder stores the result or
fails, when it expires (a daemon thread renews the leases this process holds), or at once
when its holder is a dead process on this host. So a killed worker never blocks the rest.
On a disk too full to record a lease, the caller computes without one: results are still
right, only possibly computed by more than one process.

Waiting uses an :class:`threading.Event` that closing the manager sets; the renewal
thread (``lensing_ssc-cache-lease``) stops on the same signal and is joined by
:meth:`ComputeOnce.close`.
"""

from __future__ import annotations

import functools
import inspect
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import psutil

from lensing_ssc.core.base.exceptions import CacheError

from ._disk import DiskTier
from ._keys import call_key, encode_key, function_identity
from ._memory import MISSING
from ._reserve import is_disk_full, suppress_disk_full

__all__ = ["ComputeOnce", "lease_holder", "memoized", "take_lease"]

_FIRST_POLL = 0.005  # seconds; waits double up to _LAST_POLL
_LAST_POLL = 0.25


def lease_holder(conn: sqlite3.Connection, key: bytes) -> tuple[str, str, int, float] | None:
    """``(owner, host, pid, expires)`` of the lease on ``key``, or ``None``."""
    found = conn.execute(
        "SELECT owner, host, pid, expires FROM leases WHERE key = ?", (key,)
    ).fetchone()
    return None if found is None else (found[0], found[1], found[2], found[3])


def take_lease(
    conn: sqlite3.Connection, key: bytes, owner: str, host: str, pid: int, expires: float
) -> None:
    """Write (or overwrite) the lease on ``key``, inside a write transaction."""
    conn.execute(
        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)", (key, owner, host, pid, expires)
    )


def _holder_is_dead(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return False
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


class ComputeOnce:
    """Per-key locks and cross-process leases shared by a manager's memoized functions.

    Args:
        disk: The disk tier holding the leases, or ``None`` for one process only.
        lease_ttl: Seconds a lease lives without renewal.
    """

    def __init__(self, disk: DiskTier | None, *, lease_ttl: float) -> None:
        self._disk = disk
        self._lease_ttl = lease_ttl
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list[Any]] = {}  # key -> [lock, users]
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        self._held: set[bytes] = set()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def run(
        self,
        key: Hashable,
        compute: Callable[[], Any],
        peek: Callable[[Hashable], Any],
        store: Callable[[Hashable, Any], None],
    ) -> Any:
        """Return the cached value of ``key``, computing and storing it if no one else is.

        Args:
            key: The cache key.
            compute: Makes the value.
            peek: Looks the key up without counting statistics; :data:`MISSING` if absent.
            store: Caches a computed value.
        """
        with self._guard:
            slot = self._locks.setdefault(key, [threading.Lock(), 0])
            slot[1] += 1
        try:
            with slot[0]:
                value = peek(key)
                if value is not MISSING:
                    return value
                if self._disk is None:
                    value = compute()
                    store(key, value)
                    return value
                return self._run_leased(self._disk, key, compute, peek, store)
        finally:
            with self._guard:
                slot[1] -= 1
                if not slot[1]:
                    del self._locks[key]

    def _run_leased(
        self,
        disk: DiskTier,
        key: Hashable,
        compute: Callable[[], Any],
        peek: Callable[[Hashable], Any],
        store: Callable[[Hashable, Any], None],
    ) -> Any:
        encoded = encode_key(key)
        delay = _FIRST_POLL
        while not self._take(disk, encoded):
            if self._stop.wait(delay):
                raise CacheError(
                    f"the cache was closed while waiting for {key!r}",
                    value=key,
                    hint="keep the CacheManager open while memoized functions run",
                )
            delay = min(2 * delay, _LAST_POLL)
            value = peek(key)
            if value is not MISSING:
                return value
        try:
            value = peek(key)  # finished by the previous holder just before we took over
            if value is MISSING:
                value = compute()
                store(key, value)
            return value
        finally:
            self._release(disk, encoded)

    def _take(self, disk: DiskTier, key: bytes) -> bool:
        """Take the lease on ``key``; ``False`` while another live holder has it."""
        now = time.time()
        try:
            with disk.lease_transaction() as conn:
                holder = lease_holder(conn, key)
                if (
                    holder is not None
                    and holder[0] != self._owner
                    and holder[3] > now
                    and not _holder_is_dead(holder[1], holder[2])
                ):
                    return False
                take_lease(
                    conn, key, self._owner, socket.gethostname(), os.getpid(), now + self._lease_ttl
                )
        except CacheError as exc:
            if not is_disk_full(exc):
                raise
            return True  # no room to record it: compute without a lease
        with self._guard:
            self._held.add(key)
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_loop,
                    args=(disk,),
                    name="lensing_ssc-cache-lease",
                    daemon=True,
                )
                self._renewer.start()
        return True

    def _release(self, disk: DiskTier, key: bytes) -> None:
        with self._guard:
            self._held.discard(key)
        # A lease taken over by another is kept; one that cannot be removed for lack of
        # room expires on its own, or dies with this process.
        with suppress_disk_full(), disk.lease_transaction() as conn:
            conn.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, self._owner))

    def _renew_loop(self, disk: DiskTier) -> None:
        while not self._stop.wait(self._lease_ttl / 3):
            with self._guard:
                held = list(self._held)
            if held:
                expires = time.time() + self._lease_ttl
                with suppress_disk_full(), disk.lease_transaction() as conn:
                    conn.executemany(
                        "UPDATE leases SET expires = ? WHERE key = ? AND owner = ?",
                        [(expires, key, self._owner) for key in held],
                    )

    def close(self) -> None:
        """Stop waiting and renewing; join the renewal thread. Idempotent."""
        self._stop.set()
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.join()


def memoized(
    func: Callable[..., Any],
    *,
    coordinator: ComputeOnce,
    get: Callable[[Hashable], Any],
    peek: Callable[[Hashable], Any],
    store: Callable[[Hashable, Any], None],
    key: Callable[..., Hashable] | None,
) -> Callable[..., Any]:
    """Wrap ``func`` so results are cached; see ``CacheManager.memoize``.

    Args:
        func: The function.
        coordinator: The manager's :class:`ComputeOnce`.
        get: Counting lookup (``MISSING`` if absent); the first look of each call.
        peek: Non-counting lookup used while waiting.
        store: Caches a result with the decorator's ttl and tags.
        key: Builds the key from the call's arguments instead of hashing them.
    """
    identity = function_identity(func)
    signature = inspect.signature(func)

    def cache_key(*args: Any, **kwargs: Any) -> Hashable:
        if key is not None:
            return (identity, key(*args, **kwargs))
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{func.__qualname__}(): {exc}") from None
        bound.apply_defaults()
        return call_key(identity, dict(bound.arguments))

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cache_key_ = cache_key(*args, **kwargs)
        value = get(cache_key_)
        if value is not MISSING:
            return value
        return coordinator.run(cache_key_, lambda: func(*args, **kwargs), peek, store)

    wrapper.cache_key = cache_key  # type: ignore[attr-defined]
    return wrapper

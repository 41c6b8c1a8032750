"""``CacheManager.memoize``: compute each missing result once, per process and across them.

Keys come from the function's identity, what it captures (closure values, a partial's
arguments, a bound ``self``: :func:`._keys.captured_key`, re-read when a captured name is
rebound) and its bound arguments (:func:`._keys.call_key`), arrays hashed by content; a
function capturing something with no canonical key is refused when it is decorated. When a
call misses, the caller takes a per-key lock, so other threads of the process asking for the
same key wait instead of computing it too. With a disk tier it also takes a *lease* on the
key in the shared index: a row naming its owner (host, pid, a random token), its expiry, its
*heartbeat* (the owner's clock at its last renewal) and its *beat* (the seconds between
renewals). A daemon thread renews the leases this process holds every beat
(``lease_heartbeat``, at most a third of ``lease_ttl``). Other processes wait while the
lease lives, polling the cache for the result. The lease ends when its holder stores the
result or fails, when it expires (``lease_ttl`` without renewal), and, for a holder that
died:

- on this host, at once: its pid is not running (or is a zombie);
- on another host, where its pid cannot be checked, once its heartbeat is older than
  :data:`STALE_BEATS` beats: a worker lost with its node blocks the others that long
  (15 s by default), not ``lease_ttl``. The bound compares the holder's clock with the
  waiter's, so it assumes hosts agree to within a few seconds (NTP); a holder whose
  renewal thread is starved (a C call holding the GIL that long) may see its key
  computed twice, which costs time but never a wrong result.

A process's host name is an argument of :class:`ComputeOnce` (tests give a fake one).
On a disk too full to record a lease, the caller computes without one: results are still
right, only possibly computed by more than one process.

Waiting uses an :class:`threading.Event` that closing the manager sets; the renewal
thread (``lensing_ssc-cache-lease``) stops on the same signal and is joined by
:meth:`ComputeOnce.close`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple

import psutil

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import hash_bytes

from ._damage import is_index_damaged
from ._disk import DiskTier
from ._keys import (
    EMPTY_CELL,
    MEMOIZED_ATTRIBUTE,
    call_key,
    captured_key,
    encode_key,
    function_identity,
)
from ._memory import MISSING
from ._reserve import is_disk_full

__all__ = [
    "STALE_BEATS",
    "ComputeOnce",
    "Lease",
    "holder_is_gone",
    "lease_holder",
    "memoized",
    "take_lease",
]

_FIRST_POLL = 0.005  # seconds; waits double up to _LAST_POLL
_LAST_POLL = 0.25
STALE_BEATS = 3.0
"""Missed renewals after which a lease held from another host is taken over."""


class Lease(NamedTuple):
    """A lease row: who holds a key and when they last said so."""

    owner: str
    host: str
    pid: int
    expires: float
    heartbeat: float
    beat: float


def lease_holder(conn: sqlite3.Connection, key: bytes) -> Lease | None:
    """The lease on ``key``, or ``None``."""
    found = conn.execute(
        "SELECT owner, host, pid, expires, heartbeat, beat FROM leases WHERE key = ?", (key,)
    ).fetchone()
    return None if found is None else Lease(*found)


def take_lease(conn: sqlite3.Connection, key: bytes, lease: Lease) -> None:
    """Write (or overwrite) the lease on ``key``, inside a write transaction."""
    conn.execute(
        "INSERT OR REPLACE INTO leases (key, owner, host, pid, expires, heartbeat, beat) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key, *lease),
    )


def _pid_is_dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def holder_is_gone(lease: Lease, host: str, now: float) -> bool:
    """Whether ``lease`` may be taken over by a process on ``host`` at time ``now``."""
    if lease.expires <= now:
        return True
    if lease.host == host:
        return _pid_is_dead(lease.pid)
    # A beat of 0 is a row written before heartbeats were kept: only its expiry counts.
    return lease.beat > 0 and now - lease.heartbeat > STALE_BEATS * lease.beat


@contextlib.contextmanager
def _tidying() -> Iterator[None]:
    """Let a lease's removal or renewal wait: on a full disk, or a damaged index, it expires."""
    try:
        yield
    except CacheError as exc:
        if not (is_disk_full(exc) or is_index_damaged(exc)):
            raise


class ComputeOnce:
    """Per-key locks and cross-process leases shared by a manager's memoized functions.

    Args:
        disk: The disk tier holding the leases, or ``None`` for one process only.
        lease_ttl: Seconds a lease lives without renewal.
        heartbeat: Seconds between renewals of held leases (at most ``lease_ttl / 3``).
        host: This process's host name as leases record it (default: the real one).
    """

    def __init__(
        self,
        disk: DiskTier | None,
        *,
        lease_ttl: float,
        heartbeat: float = 5.0,
        host: str | None = None,
    ) -> None:
        self._disk = disk
        self._lease_ttl = lease_ttl
        self._beat = min(heartbeat, lease_ttl / 3)
        self._host = socket.gethostname() if host is None else host
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list[Any]] = {}  # key -> [lock, users]
        self._owner = f"{self._host}:{os.getpid()}:{secrets.token_hex(8)}"
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
                if not slot[1] and self._locks.get(key) is slot:  # not a forked child's
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
                    and holder.owner != self._owner
                    and not holder_is_gone(holder, self._host, now)
                ):
                    return False
                mine = Lease(
                    self._owner, self._host, os.getpid(), now + self._lease_ttl, now, self._beat
                )
                take_lease(conn, key, mine)
        except CacheError as exc:
            if not (is_disk_full(exc) or is_index_damaged(exc)):
                raise
            return True  # no room to record it, or no index: compute without a lease
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
        # room (or of an index) expires on its own, or dies with this process.
        with _tidying(), disk.lease_transaction() as conn:
            conn.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, self._owner))

    def _renew_loop(self, disk: DiskTier) -> None:
        while not self._stop.wait(self._beat):
            with self._guard:
                held = list(self._held)
            if held:
                now = time.time()
                expires = now + self._lease_ttl
                with _tidying(), disk.lease_transaction() as conn:
                    conn.executemany(
                        "UPDATE leases SET expires = ?, heartbeat = ? WHERE key = ? AND owner = ?",
                        [(expires, now, key, self._owner) for key in held],
                    )

    def forget_disk(self) -> None:
        """Coordinate this process's threads only from now on (the manager left its disk)."""
        self._disk = None

    def after_fork_in_child(self) -> None:
        """In a forked child: new locks, no leases held, and a lease owner of its own.

        The parent's leases stay the parent's: with its owner's name the child would take
        them over as its own (and remove them when done), and its renewal thread is not
        in the child.
        """
        self._guard = threading.Lock()
        self._locks = {}
        self._held = set()
        self._renewer = None
        closed = self._stop.is_set()
        self._stop = threading.Event()
        if closed:
            self._stop.set()
        self._owner = f"{self._host}:{os.getpid()}:{secrets.token_hex(8)}"

    def close(self) -> None:
        """Stop waiting and renewing; join the renewal thread. Idempotent."""
        self._stop.set()
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.join()


class _CallKeys:
    """The keys of one memoized function's calls: its identity, captures and arguments.

    The function's identity and what it captures (:func:`._keys.captured_key`) are
    encoded once, when it is decorated, and again whenever a closure cell it reads from
    holds another object (a ``nonlocal`` assignment after decorating); its defaults are
    read again when ``__defaults__`` or ``__kwdefaults__`` is replaced.

    Raises:
        CacheError: The function captures a value that has no canonical key.
    """

    def __init__(self, func: Callable[..., Any], key: Callable[..., Hashable] | None) -> None:
        self._func = func
        self._key = key
        self._base = function_identity(func)
        self._identity, self._cells = self._captures()
        self._defaults = getattr(func, "__defaults__", None)
        self._kwdefaults = getattr(func, "__kwdefaults__", None)
        self._signature = inspect.signature(func)

    def _captures(self) -> tuple[str, list[tuple[Any, Any]]]:
        captured, cells = captured_key(self._func)
        if not captured:
            return self._base, cells
        return f"{self._base}+{hash_bytes(captured).partition(':')[2][:16]}", cells

    def identity(self) -> str:
        """The function's identity with its captures as they are now."""
        for cell, value in self._cells:
            try:
                current = cell.cell_contents
            except ValueError:  # not assigned yet, or emptied with ``del``
                current = EMPTY_CELL
            if current is not value:
                self._identity, self._cells = self._captures()
                break
        return self._identity

    def __call__(self, *args: Any, **kwargs: Any) -> Hashable:
        identity = self.identity() if self._cells else self._identity
        if self._key is not None:
            return (identity, self._key(*args, **kwargs))
        func = self._func
        if (
            getattr(func, "__defaults__", None) is not self._defaults
            or getattr(func, "__kwdefaults__", None) is not self._kwdefaults
        ):
            self._signature = inspect.signature(func)
            self._defaults = getattr(func, "__defaults__", None)
            self._kwdefaults = getattr(func, "__kwdefaults__", None)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self._func.__qualname__}(): {exc}") from None
        bound.apply_defaults()
        return call_key(identity, dict(bound.arguments))


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

    Raises:
        CacheError: ``func`` captures a value that has no canonical key (naming it).
    """
    cache_key = _CallKeys(func, key)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cache_key_ = cache_key(*args, **kwargs)
        value = get(cache_key_)
        if value is not MISSING:
            return value
        return coordinator.run(cache_key_, lambda: func(*args, **kwargs), peek, store)

    wrapper.cache_key = cache_key  # type: ignore[attr-defined]
    setattr(wrapper, MEMOIZED_ATTRIBUTE, func)
    return wrapper

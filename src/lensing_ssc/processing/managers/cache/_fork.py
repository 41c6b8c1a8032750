"""Keeping every open cache usable in a child forked while other threads use it.

A fork copies the forking thread only, and every lock as it was at that moment: a lock
another thread held then stays held in the child for ever, and the child's first put
hangs (29 of 30 children forked while two threads were putting, in #22). So every open
:class:`~._manager.CacheManager` registers here (weakly), and hooks installed with
:func:`os.register_at_fork` run around every fork of the process:

- before it, each cache takes its memory tier's lock: that lock is held only for dict
  operations, so the wait is short, and the child's copy of the memory tier is whole;
- after it, in the parent, they are released;
- after it, in the child, they are released too, and every other lock of the cache (the
  per-key stripes, the index's, the free-space guard's, memoize's) is replaced by a new
  one, together with what it guarded that belongs to the parent alone: batched reads not
  yet written, held leases, the lease renewal thread and the lease owner's name. The
  index's connection is reopened on first use, as SQLite requires.

The other locks are not taken before the fork: they are held across disk writes and SQLite
waits (up to a minute while another process holds the index), which would stall every
fork of the process, and their state is either dropped or rebuilt in the child anyway.
Each part's own reset is its ``after_fork_in_child`` method; the order is the manager's.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "register", "unregister"]


class ForkAware(Protocol):
    """What a registered object does around a fork of its process."""

    def before_fork(self) -> None:
        """Take what must be whole in the child (in the forking thread, before the fork)."""

    def after_fork(self, *, in_child: bool) -> None:
        """Release it; in the child, also replace the locks other threads may have held."""


_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_lock = threading.Lock()
_forking: list[ForkAware] = []  # the objects prepared for the fork under way


def register(obj: ForkAware) -> None:
    """Run ``obj``'s hooks around every fork while it lives (or until :func:`unregister`)."""
    with _lock:
        _registered.add(obj)


def unregister(obj: ForkAware) -> None:
    """Stop running ``obj``'s hooks (a closed cache needs none)."""
    with _lock:
        _registered.discard(obj)


def _before() -> None:
    _lock.acquire()  # held across the fork: no cache registers or leaves meanwhile
    _forking[:] = list(_registered)
    for obj in _forking:
        obj.before_fork()


def _after(*, in_child: bool) -> None:
    try:
        for obj in _forking:
            obj.after_fork(in_child=in_child)
    finally:
        _forking.clear()
        _lock.release()


if hasattr(os, "register_at_fork"):  # POSIX: there is no fork elsewhere
    os.register_at_fork(
        before=_before,
        after_in_parent=lambda: _after(in_child=False),
        after_in_child=lambda: _after(in_child=True),
    )

"""How processes sharing a checkpoint directory take turns: ``flock`` on two lock files.

``.lock`` is held shared by saves and loads, and exclusively (never waiting) by retention
and garbage collection, so that nothing a save or load is using is removed under it.
``.commit.lock`` is held exclusively, waiting, for the moment a manifest is numbered and
renamed into place, so that sequence numbers follow the order of commits. Both files are
opened with ``O_NOFOLLOW``: a link planted in their place is never followed (nor created
through); the directory is then used without that lock, and without ``.lock`` nothing is
collected. Where the filesystem has no ``flock`` (some network filesystems), every lock is
granted and :attr:`DirectoryLocks.working` turns false, which collection heeds.

What the locks protect is :mod:`._store`'s and :mod:`._housekeeping`'s business.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["DirectoryLocks"]

_NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})
_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class DirectoryLocks:
    """The two lock files of the checkpoint directory ``root``."""

    def __init__(self, root: Path) -> None:
        self.lock_path = root / ".lock"
        self.commit_lock_path = root / ".commit.lock"
        self.working = fcntl is not None

    @contextlib.contextmanager
    def _flock(self, path: Path, operation: int) -> Iterator[bool]:
        if fcntl is None:
            yield True
            return
        try:
            fd = os.open(path, _FLAGS, 0o666)
        except OSError:  # a read-only copy of someone's checkpoints, or a planted link
            yield operation & fcntl.LOCK_NB == 0
            return
        try:
            try:
                fcntl.flock(fd, operation)
                acquired = True
            except BlockingIOError:
                acquired = False
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise
                self.working, acquired = False, True
            yield acquired
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def shared(self) -> contextlib.AbstractContextManager[bool]:
        """Hold the directory shared (saving, loading): collection waits for us."""
        return self._flock(self.lock_path, fcntl.LOCK_SH if fcntl is not None else 0)

    def try_exclusive(self) -> contextlib.AbstractContextManager[bool]:
        """Try to hold the directory alone, without waiting; yields whether it worked."""
        operation = fcntl.LOCK_EX | fcntl.LOCK_NB if fcntl is not None else 0
        return self._flock(self.lock_path, operation)

    def commit(self) -> contextlib.AbstractContextManager[bool]:
        """Hold the right to commit, waiting for it: one commit at a time."""
        return self._flock(self.commit_lock_path, fcntl.LOCK_EX if fcntl is not None else 0)

"""What opening a task journal checks, and the error that names a journal it cannot use.

Before a run appends to a path, the path must hold a journal or nothing
(:func:`check_is_journal`: never erase another file), and a journal written by the same
function (:func:`check_same_function`: never return another function's results). An
``OSError`` met while opening, appending or syncing becomes a ``CheckpointError`` naming the
journal, what was being done and what to do about it (:func:`io_error`).

Not here: the record format and reading (:mod:`._records`), opening, locking and the commit
thread (:mod:`._journal`), appending (:mod:`._journal_appends`).

Example:
    >>> import errno
    >>> from pathlib import Path
    >>> io_error("open", Path("tasks/power.journal"), OSError(errno.EROFS, "Read-only")).hint
    'the filesystem is read-only: put the journal on a writable one'
"""

from __future__ import annotations

import errno
import stat
from pathlib import Path

from lensing_ssc.core.base.exceptions import CheckpointError, ConfigError
from lensing_ssc.processing.runner._keys import same_function
from lensing_ssc.processing.runner._records import MAGIC, read_journal

__all__ = ["check_is_journal", "check_same_function", "io_error"]

_ZERO_BLOCK = 64 * 1024
_HINTS = {
    errno.ENOENT: "the directory does not exist (or was removed): create it or fix the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: fix the path",
    errno.EACCES: "the directory or file is not writable by this user",
    errno.EPERM: "the directory or file is not writable by this user",
    errno.EROFS: "the filesystem is read-only: put the journal on a writable one",
    errno.ENOSPC: "the disk is full: free space, then run again (finished items are kept)",
    errno.EDQUOT: "the disk quota is exhausted: free space, then run again",
    errno.EBUSY: "another driver took this journal over (its heartbeat looked stale): stop "
    "one of the two runs; the one left continues from the journal",
}


def io_error(action: str, path: Path, exc: OSError) -> CheckpointError:
    """The ``CheckpointError`` for ``exc``, met while trying to ``action`` the journal."""
    hint = _HINTS.get(
        exc.errno or 0, "check that the directory is writable and the filesystem is healthy"
    )
    return CheckpointError(
        f"could not {action} the task journal {str(path)!r}: {exc.strerror or exc}",
        value=str(path),
        hint=hint,
    )


def check_is_journal(path: Path) -> bool:
    """Whether ``path`` exists; raises ``ConfigError`` when it holds no journal.

    A file is a journal when it is empty, starts with a record's magic (or a part of it:
    a first record torn by a crash), holds only zeros (reserved by a run killed before its
    first record), or holds at least one valid record (its start damaged).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"journal path {str(path)!r} is not a regular file",
            value=str(path),
            field="journal",
            hint="give the path of a file, e.g. tasks/power.journal",
        )
    with open(path, "rb") as file:
        head = file.read(len(MAGIC))
        if not head or MAGIC.startswith(head):
            return True
        while head and not head.strip(b"\0"):
            head = file.read(_ZERO_BLOCK)
        if not head:
            return True
    if read_journal(path)[0].records:
        return True
    raise ConfigError(
        f"{str(path)!r} is not a task journal: it holds other data, which using it as the "
        "journal would erase",
        value=str(path),
        field="journal",
        hint="give a journal path of its own (e.g. tasks/power.journal), or move the file away",
    )


def check_same_function(path: Path, recorded: str, function: str) -> None:
    """Refuse a journal whose results were computed by another function."""
    if same_function(recorded, function):
        return
    raise ConfigError(
        f"task journal {str(path)!r} holds results of {recorded}, not of {function}; "
        "reusing them would return another function's results",
        value=recorded,
        field="journal",
        hint="give this function a journal of its own (in ManagerContext.map, another name=), "
        "or pass resume=False to start this journal afresh",
    )

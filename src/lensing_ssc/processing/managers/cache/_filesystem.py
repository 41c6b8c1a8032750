"""Which SQLite journal mode a cache directory's index may use: WAL only on a local disk.

SQLite's write-ahead log keeps its index of the log in shared memory (``index.sqlite-shm``,
mapped by every connection), which is coherent only between processes of one host. On a
filesystem shared by several hosts (NFS, Lustre, GPFS, CIFS, ...) two hosts in WAL mode
each see their own copy of that memory and can corrupt the database; SQLite's own
documentation says WAL "does not work over a network filesystem". The rollback journal
(``DELETE`` mode) needs only POSIX byte-range locks (``fcntl``), which these filesystems
keep across hosts when they are mounted with working locks (NFSv4, NFSv3 with ``lockd``,
Lustre mounted ``flock``, GPFS).

``cache.journal_mode`` is ``"wal"``, ``"delete"`` or ``"auto"`` (the default). ``auto``
looks up the directory's mount in ``/proc/mounts`` (Linux) and chooses ``delete`` when its
filesystem type is one that several hosts may share: the types in :data:`SHARED_TYPES`,
and any ``fuse.*`` type (sshfs, gcsfuse, CephFS and GlusterFS clients...). Elsewhere, and
wherever the mount cannot be read (another OS, no ``/proc``), it chooses ``delete`` too:
WAL is a speed-up, the rollback journal is correct everywhere.

What the index does with the mode is in :mod:`._database`; the choice is made once per
directory when :class:`._connection.IndexAccess` opens it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "JOURNAL_MODES",
    "SHARED_TYPES",
    "choose_journal_mode",
    "filesystem_type",
    "is_shared_type",
]

JOURNAL_MODES = ("auto", "wal", "delete")

SHARED_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "beegfs",
        "panfs",
        "wekafs",
        "pvfs2",
        "orangefs",
        "afs",
        "9p",
        "gfs2",
        "ocfs2",
        "fuse",
        "fuseblk",
    }
)
"""Filesystem types (as ``/proc/mounts`` names them) that ``auto`` treats as shared."""

_MOUNTS = Path("/proc/mounts")
_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A ``/proc/mounts`` field with its octal escapes (``\\040`` for a space) decoded."""
    if "\\" not in field:
        return field
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def filesystem_type(directory: Path, *, mounts: Path = _MOUNTS) -> str | None:
    """The filesystem type of the mount holding ``directory``, or ``None`` if unknown.

    Args:
        directory: An existing directory (or a path below one).
        mounts: The mount table to read (``/proc/mounts``; a test passes its own).
    """
    try:
        # UTF-8 with surrogateescape keeps any byte and loads no codec a worker lacks.
        table = mounts.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    target = os.path.realpath(directory)
    best, found = -1, None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:  # the last, longest mount point wins (overmounts)
            best, found = len(point), fields[2]
        elif inside and len(point) == best:
            found = fields[2]
    return found


def is_shared_type(kind: str) -> bool:
    """Whether ``kind`` is a filesystem type several hosts may mount at once."""
    return kind in SHARED_TYPES or kind.startswith("fuse.")


def choose_journal_mode(
    setting: str,
    directory: Path,
    *,
    fstype: Callable[[Path], str | None] = filesystem_type,
) -> str:
    """``"wal"`` or ``"delete"`` for the index in ``directory``, given ``cache.journal_mode``.

    Args:
        setting: ``"auto"``, ``"wal"`` or ``"delete"``.
        directory: The cache directory (it exists).
        fstype: Tells a directory's filesystem type (``None``: unknown); tests inject one.
    """
    if setting != "auto":
        return setting
    kind = fstype(directory)
    if kind is None or is_shared_type(kind):
        return "delete"
    return "wal"

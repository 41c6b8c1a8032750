"""Opening files in directories that other people can write: regular files only.

A checkpoint or cache directory may be shared, copied from elsewhere, or prepared by
someone else. A name in it may then be a symbolic link (to a file of whoever opens it, to
``/dev/zero``), a FIFO (whose ``open`` blocks until a writer comes, forever), a device or
a directory. :func:`open_regular_file` opens a name only when it is a plain file in that
directory: never through a final symbolic link (``O_NOFOLLOW``), never waiting on a FIFO
(``O_NONBLOCK``, which changes nothing for a regular file), and checks what it opened.

Creating files there is :mod:`._atomic`'s business: its temporary files are created with
``O_EXCL``, which refuses an existing name, a planted link included.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

__all__ = ["open_regular_file"]

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a plain file")


def open_regular_file(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for unbuffered binary reading if it is a regular file, itself.

    Raises:
        FileNotFoundError: Nothing has that name.
        OSError: The name is a symbolic link, FIFO, device, socket or directory (``errno``
            ``ELOOP`` for a link, ``EINVAL`` otherwise; the message starts with ``not a
            regular file``), or it cannot be opened (permissions, I/O).

    Example:
        >>> with open_regular_file("state.bin") as fh:  # doctest: +SKIP
        ...     header = fh.read(128)
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise OSError(errno.ELOOP, "not a regular file (a symbolic link)", str(path)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_kind(mode)})", str(path))
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise

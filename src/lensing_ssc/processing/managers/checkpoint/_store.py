"""The checkpoint directory: content-addressed blobs, manifests, checked reads.

Writing a checkpoint: each piece is hashed; a blob with that digest already on disk is
reused only once it is known intact (see below), otherwise it is written with
``atomic_write`` (temporary file, fsync, rename, directory fsync), replacing a damaged
one. Then the manifest is written the same way, holding the commit lock, with the next
sequence number in its name: its rename is the commit. A process killed at any moment
leaves either no new checkpoint or a whole one, plus perhaps unreferenced blobs and
temporary files, which :mod:`._housekeeping` removes later.

**Known intact.** A blob is trusted without reading it again only if this store wrote or
fully verified it and its inode, size, modification and change times are unchanged since.
Any other blob is read and checked before it is reused or counted by retention: one
damaged blob shared by every checkpoint would otherwise be named by each later save.

**Files others may have planted.** Manifests and blobs are opened only when they are
regular files, never through a final symbolic link and never waiting on a FIFO
(:func:`~lensing_ssc.core.io.open_regular_file`); anything else is damage. The write
probe is created with ``O_EXCL`` under a random name, and a writer refuses ``manifests/``
or ``blobs/`` that are symbolic links.

The locks are :mod:`._locks`'s, the byte formats :mod:`._format`'s, what a manifest may
hold :mod:`._schema`'s, the state encoding :mod:`._encode`'s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import (
    atomic_write,
    compress,
    fsync_directory,
    hash_bytes,
    open_regular_file,
    verify_digest,
)
from lensing_ssc.processing.managers.checkpoint._encode import Piece
from lensing_ssc.processing.managers.checkpoint._format import (
    BLOB_HEADER_SIZE,
    MANIFEST_SUFFIX,
    MAX_SEQUENCE,
    BlobHeader,
    DamagedError,
    blob_relpath,
    is_manifest_name,
    pack_blob_header,
    read_and_hash,
    read_decompressed,
    sequence_of,
    unpack_blob_header,
    unpack_manifest,
)
from lensing_ssc.processing.managers.checkpoint._locks import DirectoryLocks
from lensing_ssc.processing.managers.checkpoint._schema import check_manifest

__all__ = ["CheckpointStore"]

_MIN_RATIO = 0.9  # keep compressed data only when it saves at least 10 %
_PROBE_ABOVE = 1 << 20  # larger pieces are judged on a sample before compressing in full
_PROBE_WINDOW = 64 << 10
# What open_regular_file raises for a link, FIFO, device or directory (ENXIO: a socket).
_NOT_A_FILE = frozenset({errno.ELOOP, errno.EINVAL, errno.ENXIO})
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _sample(view: memoryview) -> memoryview:
    step = (view.nbytes - _PROBE_WINDOW) // 3
    return memoryview(b"".join(view[i * step : i * step + _PROBE_WINDOW] for i in range(4)))


def _identity(raw_size: int, stat: os.stat_result) -> tuple[int, ...]:
    return (raw_size, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class CheckpointStore:
    """One checkpoint directory on disk.

    Args:
        root: The directory; created (with ``manifests/`` and ``blobs/``) by :meth:`open`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_dir = root / "manifests"
        self.blob_dir = root / "blobs"
        self.locks = DirectoryLocks(root)
        self._intact: dict[str, tuple[int, ...]] = {}  # digest -> _identity when checked

    # -- set-up and locks --------------------------------------------------------------
    def open(self) -> None:
        """Create the directories and check that files can be created in them.

        Raises:
            CheckpointError: The directory cannot be created or written, or ``manifests/``
                or ``blobs/`` is a symbolic link; says which and why.
        """
        root = str(self.root)
        for directory in (self.manifest_dir, self.blob_dir):
            if directory.is_symlink():
                raise CheckpointError(
                    f"cannot use checkpoint directory {root!r}: {directory} is a symbolic link",
                    value=str(directory),
                    hint="replace the link with a real directory: checkpoints never write or "
                    "delete files through one",
                )
        try:
            for directory in (self.root, self.manifest_dir, self.blob_dir):
                directory.mkdir(parents=True, exist_ok=True)
            # A random name created with O_EXCL | O_NOFOLLOW: a link planted in a shared
            # directory is never followed, so it cannot make us truncate someone's file.
            fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != root else ""
            raise CheckpointError(
                f"cannot use checkpoint directory {root!r}: {exc.strerror or exc}{where}",
                value=root,
                hint="pass a writable checkpoint_dir or set checkpoint.dir in the config",
            ) from exc

    @property
    def locking(self) -> bool:
        """Whether ``flock`` works here (collection is more careful where it does not)."""
        return self.locks.working

    def shared(self) -> contextlib.AbstractContextManager[bool]:
        """Hold the directory shared (saving, loading): collection waits for us."""
        return self.locks.shared()

    def try_exclusive(self) -> contextlib.AbstractContextManager[bool]:
        """Try to hold the directory alone, without waiting; yields whether it worked."""
        return self.locks.try_exclusive()

    @contextlib.contextmanager
    def committing(self) -> Iterator[int]:
        """Hold ``.commit.lock`` (waiting for it) and yield the sequence number of the
        manifest committed inside: one more than the highest present."""
        # A name at the limit (crafted: no honest directory gets there) sorts first but is
        # not counted: a number past it would make a name no reader accepts.
        with self.locks.commit():
            numbers = (sequence_of(cid) for cid in self.ids())
            yield max((n for n in numbers if n < MAX_SEQUENCE), default=0) + 1

    def open_subdirectory(self, directory: Path) -> int:
        """A descriptor on ``manifests/`` or ``blobs/``, never through a symbolic link.

        Raises:
            OSError: It is a symbolic link (says so), or cannot be opened.
        """
        try:
            return os.open(directory, _DIR_FLAGS | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or not directory.is_symlink():
                raise
            raise OSError(
                errno.ELOOP, "is a symbolic link: nothing is deleted through one", str(directory)
            ) from exc

    # -- knowing what is intact ---------------------------------------------------------
    def _remember(self, digest: str, raw_size: int, stat: os.stat_result) -> None:
        self._intact[digest] = _identity(raw_size, stat)

    def known_intact(self, digest: str, raw_size: int) -> int | None:
        """The file size of a blob this store wrote or verified, if it is unchanged since;
        ``None`` when it must be read to be trusted."""
        record = self._intact.get(digest)
        if record is None:
            return None
        try:
            stat = os.lstat(self.blob_path(digest))
        except OSError:
            stat = None
        if stat is None or _identity(raw_size, stat) != record:
            self._intact.pop(digest, None)
            return None
        return stat.st_size

    # -- writing -----------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Absolute path of the blob with ``digest``."""
        return self.root / blob_relpath(digest)

    def put_blob(self, piece: Piece, codec: str, digest: str | None = None) -> tuple[str, int, int]:
        """Store a piece unless an intact blob with its content exists.

        Args:
            piece: What to store.
            codec: Compression codec name (used only where it pays).
            digest: The piece's digest, when already computed.

        Returns:
            ``(digest, file size, bytes written)``; bytes written is 0 for a reused blob.
        """
        digest = digest or hash_bytes(piece.data)
        path = self.blob_path(digest)
        existing = self.known_intact(digest, piece.nbytes)
        if existing is None:
            with contextlib.suppress(DamagedError):  # missing or damaged: write it afresh
                existing = self.verify_blob(digest, piece.nbytes, f"blob {digest}")
        if existing is not None:
            if not self.locking:
                with contextlib.suppress(OSError):
                    os.utime(path)  # tell lock-less collection that this blob is in use again
                    self._remember(digest, piece.nbytes, os.lstat(path))
            return digest, existing, 0
        name, payload = self._compress(piece.data, codec)
        size = payload.nbytes if isinstance(payload, np.ndarray) else len(payload)
        stored_digest = hash_bytes(payload) if name != "none" else ""
        header = pack_blob_header(name, piece.nbytes, size, stored_digest)
        atomic_write(path, [header, payload], sync_directory=False)  # see sync_blobs()
        self._remember(digest, piece.nbytes, os.lstat(path))
        return digest, BLOB_HEADER_SIZE + size, BLOB_HEADER_SIZE + size

    def _compress(self, data: Any, codec: str) -> tuple[str, Any]:
        if codec == "none":
            return "none", data
        view = memoryview(data)
        if (
            view.nbytes > _PROBE_ABOVE
            and compress(_sample(view), codec, min_ratio=_MIN_RATIO)[0] == "none"
        ):
            return "none", data
        return compress(view, codec, min_ratio=_MIN_RATIO)

    def sync_blobs(self) -> None:
        """Make the names of the blobs written (or reused) so far durable: one directory
        ``fsync`` for a whole save, before its manifest names them."""
        fsync_directory(self.blob_dir)

    def commit(self, checkpoint_id: str, data: bytes) -> Path:
        """Write a manifest: the atomic step that makes the checkpoint exist."""
        path = self.manifest_path(checkpoint_id)
        atomic_write(path, data)
        return path

    # -- reading -----------------------------------------------------------------------
    def manifest_path(self, checkpoint_id: str) -> Path:
        """The manifest file of ``checkpoint_id``."""
        return self.manifest_dir / f"{checkpoint_id}{MANIFEST_SUFFIX}"

    def ids(self) -> list[str]:
        """Ids of every manifest present, newest (highest sequence number) first."""
        try:
            with os.scandir(self.manifest_dir) as entries:
                names = [entry.name for entry in entries if is_manifest_name(entry.name)]
        except FileNotFoundError:
            return []
        ids = (name[: -len(MANIFEST_SUFFIX)] for name in names)
        return sorted(ids, key=lambda cid: (sequence_of(cid), cid), reverse=True)

    def read_manifest(self, checkpoint_id: str) -> tuple[dict[str, Any], int]:
        """Read and check a manifest (checksum, format, every field); returns it with its
        file size.

        Raises:
            FileNotFoundError: It was deleted meanwhile.
            DamagedError: Its checksum, format or content is wrong, or it is not a
                regular file.
            OSError: It cannot be read (permissions, I/O): not known to be damaged.
        """
        what = f"manifest of {checkpoint_id}"
        try:
            with open_regular_file(self.manifest_path(checkpoint_id)) as fh:
                data = fh.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno not in _NOT_A_FILE:
                raise
            raise DamagedError(what, exc.strerror or str(exc)) from exc
        manifest = unpack_manifest(data, what)
        check_manifest(manifest, checkpoint_id, what)
        return manifest, len(data)

    def _open_blob(
        self, digest: str, raw_size: int, what: str
    ) -> tuple[Any, BlobHeader, os.stat_result]:
        try:
            fh = open_regular_file(self.blob_path(digest))
        except FileNotFoundError as exc:
            raise DamagedError(what, "blob file is missing") from exc
        except OSError as exc:
            raise DamagedError(what, exc.strerror or str(exc)) from exc
        try:
            stat = os.fstat(fh.fileno())
            header = unpack_blob_header(fh.read(BLOB_HEADER_SIZE), what)
            if header.raw_size != raw_size:
                raise DamagedError(what, "blob length differs from the manifest's")
            if stat.st_size != BLOB_HEADER_SIZE + header.stored_size:
                raise DamagedError(what, "blob file has the wrong length")
        except OSError as exc:
            fh.close()
            raise DamagedError(what, f"cannot read: {exc.strerror or exc}") from exc
        except BaseException:
            fh.close()
            raise
        return fh, header, stat

    def read_blob(
        self,
        digest: str,
        raw_size: int,
        what: str,
        allocate: Callable[[], memoryview] | None = None,
    ) -> memoryview | bytes:
        """Read a blob's raw content, verifying its digest.

        Args:
            digest: The blob's digest (its raw content's).
            raw_size: Its length, as the manifest records it.
            what: Names it in errors.
            allocate: Returns the writable ``memoryview`` of ``raw_size`` bytes to read
                into; called only once that size is known real (the file's own length,
                or compressed data that inflated to it), never for a blob that lies.

        Raises:
            DamagedError: Missing or unreadable file, bad header, wrong length, failed
                decompression or a checksum mismatch.
        """
        fh, header, stat = self._open_blob(digest, raw_size, what)
        with fh:
            try:
                if header.codec == "none":
                    target = allocate() if allocate is not None else memoryview(bytearray(raw_size))
                    read_and_hash(fh, digest, raw_size, what, target)
                    self._remember(digest, raw_size, stat)
                    return target
                data = read_decompressed(fh, header, raw_size, what)
            except OSError as exc:
                raise DamagedError(what, f"cannot read: {exc.strerror or exc}") from exc
        if not verify_digest(data, digest):
            raise DamagedError(what, "checksum mismatch")
        self._remember(digest, raw_size, stat)
        if allocate is None:
            return data
        into = allocate()
        into[:] = data
        return into

    def verify_blob(self, digest: str, raw_size: int, what: str) -> int:
        """Check a blob without keeping its content; returns its file size (all read).

        Raises:
            DamagedError: As :meth:`read_blob`.
        """
        fh, header, stat = self._open_blob(digest, raw_size, what)
        with fh:
            try:
                if header.codec == "none":
                    read_and_hash(fh, digest, raw_size, what, None)
                else:
                    data = read_decompressed(fh, header, raw_size, what)
                    if not verify_digest(data, digest):
                        raise DamagedError(what, "checksum mismatch")
            except OSError as exc:
                raise DamagedError(what, f"cannot read: {exc.strerror or exc}") from exc
        self._remember(digest, raw_size, stat)
        return stat.st_size

    def map_blob(
        self, digest: str, raw_size: int, what: str, dtype: np.dtype[Any], shape: tuple[int, ...]
    ) -> Any:
        """Memory-map a raw blob copy-on-write after verifying it; ``None`` if compressed."""
        fh, header, stat = self._open_blob(digest, raw_size, what)
        with fh:
            if header.codec != "none":
                return None
            mapped = np.memmap(fh, dtype=dtype, mode="c", offset=BLOB_HEADER_SIZE, shape=shape)
        if not verify_digest(mapped.reshape(-1).view(np.uint8), digest):
            raise DamagedError(what, "checksum mismatch")
        self._remember(digest, raw_size, stat)
        return mapped

    # -- removing ----------------------------------------------------------------------
    def delete_manifests(self, ids: Iterable[str]) -> list[str]:
        """Remove manifests (each removal is atomic); returns the ids removed.

        Raises:
            OSError: ``manifests/`` is a symbolic link, or a removal failed.
        """
        removed = []
        fd = self.open_subdirectory(self.manifest_dir)
        try:
            for checkpoint_id in ids:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{checkpoint_id}{MANIFEST_SUFFIX}", dir_fd=fd)
                    removed.append(checkpoint_id)
        finally:
            os.close(fd)
        if removed:
            fsync_directory(self.manifest_dir)
        return removed

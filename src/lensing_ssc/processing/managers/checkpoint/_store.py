"""The checkpoint directory: content-addressed blobs, manifests, locks and clean-up.

Writing a checkpoint: each piece is hashed; a blob with that digest already on disk (from
a kept checkpoint) is reused, otherwise it is written with ``atomic_write`` (temporary
file, fsync, rename, directory fsync). Then the manifest is written the same way: its
rename is the commit. A process killed at any moment leaves either no new checkpoint or a
whole one, plus perhaps unreferenced blobs and temporary files, which :meth:`collect`
removes later.

Processes coordinate with ``flock`` on ``.lock``: saving and loading hold it shared;
retention and garbage collection take it exclusively and only when nobody else holds it
(never waiting), so they never delete a blob that a save in flight is about to name, or
that a load is reading. Where the filesystem has no ``flock``, collection only removes
blobs untouched for an hour.

The state encoding is in :mod:`._encode`, the byte formats in :mod:`._format`, reading
states back in :mod:`._reading`; the policies (what to keep) in :mod:`._writing`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import (
    atomic_write,
    cleanup_temp_files,
    compress,
    fsync_directory,
    hash_bytes,
    is_temp_file,
    verify_digest,
)
from lensing_ssc.processing.managers.checkpoint._encode import Piece
from lensing_ssc.processing.managers.checkpoint._format import (
    BLOB_HEADER_SIZE,
    MANIFEST_SUFFIX,
    DamagedError,
    UnsupportedVersionError,
    blob_relpath,
    is_manifest_name,
    pack_blob_header,
    read_and_hash,
    read_decompressed,
    unpack_blob_header,
    unpack_manifest,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["CheckpointStore"]

_MIN_RATIO = 0.9  # keep compressed data only when it saves at least 10 %
_PROBE_ABOVE = 1 << 20  # larger pieces are judged on a sample before compressing in full
_PROBE_WINDOW = 64 << 10
_UNLOCKED_GRACE = 3600.0  # seconds; collection's safety margin without flock
_NO_FLOCK = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


def _sample(view: memoryview) -> memoryview:
    step = (view.nbytes - _PROBE_WINDOW) // 3
    return memoryview(b"".join(view[i * step : i * step + _PROBE_WINDOW] for i in range(4)))


class CheckpointStore:
    """One checkpoint directory on disk.

    Args:
        root: The directory; created (with ``manifests/`` and ``blobs/``) by :meth:`open`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_dir = root / "manifests"
        self.blob_dir = root / "blobs"
        self.lock_path = root / ".lock"
        self.locking = fcntl is not None

    # -- set-up and locks --------------------------------------------------------------
    def open(self) -> None:
        """Create the directories and check that files can be created in them.

        Raises:
            CheckpointError: The directory cannot be created or written; says which and why.
        """
        try:
            for directory in (self.root, self.manifest_dir, self.blob_dir):
                directory.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.unlink(probe)
        except OSError as exc:
            root = str(self.root)
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) != root else ""
            raise CheckpointError(
                f"cannot use checkpoint directory {root!r}: {exc.strerror or exc}{where}",
                value=root,
                hint="pass a writable checkpoint_dir or set checkpoint.dir in the config",
            ) from exc

    @contextlib.contextmanager
    def _flock(self, operation: int) -> Iterator[bool]:
        if fcntl is None:
            yield True
            return
        try:
            fd = os.open(
                self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666
            )
        except OSError:  # a read-only copy of someone's checkpoints: reading needs no lock
            yield operation & fcntl.LOCK_SH != 0
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
                self.locking, acquired = False, True
            yield acquired
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def shared(self) -> contextlib.AbstractContextManager[bool]:
        """Hold the directory shared (saving, loading): collection waits for us."""
        return self._flock(fcntl.LOCK_SH if fcntl is not None else 0)

    def try_exclusive(self) -> contextlib.AbstractContextManager[bool]:
        """Try to hold the directory alone, without waiting; yields whether it worked."""
        return self._flock(fcntl.LOCK_EX | fcntl.LOCK_NB if fcntl is not None else 0)

    # -- writing -----------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Absolute path of the blob with ``digest``."""
        return self.root / blob_relpath(digest)

    def put_blob(self, piece: Piece, codec: str, digest: str | None = None) -> tuple[str, int, int]:
        """Store a piece unless a blob with its content exists.

        Args:
            piece: What to store.
            codec: Compression codec name (used only where it pays).
            digest: The piece's digest, when already computed.

        Returns:
            ``(digest, file size, bytes written)``; bytes written is 0 for a reused blob.
        """
        digest = digest or hash_bytes(piece.data)
        path = self.blob_path(digest)
        existing = self._reusable_size(path, piece.nbytes)
        if existing is not None:
            return digest, existing, 0
        name, payload = self._compress(piece.data, codec)
        size = payload.nbytes if isinstance(payload, np.ndarray) else len(payload)
        stored_digest = hash_bytes(payload) if name != "none" else ""
        header = pack_blob_header(name, piece.nbytes, size, stored_digest)
        atomic_write(path, [header, payload], sync_directory=False)  # see sync_blobs()
        return digest, BLOB_HEADER_SIZE + size, BLOB_HEADER_SIZE + size

    def _reusable_size(self, path: Path, raw_size: int) -> int | None:
        try:
            with open(path, "rb") as fh:
                header = unpack_blob_header(fh.read(BLOB_HEADER_SIZE), str(path))
                size = os.fstat(fh.fileno()).st_size
        except (OSError, DamagedError):
            return None  # missing, or a damaged header: write it afresh
        if header.raw_size != raw_size or size != BLOB_HEADER_SIZE + header.stored_size:
            return None
        if not self.locking:
            with contextlib.suppress(OSError):
                os.utime(path)  # tell lock-less collection that this blob is in use again
        return size

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
        """Ids of every manifest present, newest first."""
        try:
            with os.scandir(self.manifest_dir) as entries:
                names = [entry.name for entry in entries if is_manifest_name(entry.name)]
        except FileNotFoundError:
            return []
        return sorted((name[: -len(MANIFEST_SUFFIX)] for name in names), reverse=True)

    def read_manifest(self, checkpoint_id: str) -> tuple[dict[str, Any], int]:
        """Read and check a manifest; returns it with its file size.

        Raises:
            FileNotFoundError: It was deleted meanwhile.
            DamagedError: Its checksum or format is wrong.
        """
        data = self.manifest_path(checkpoint_id).read_bytes()
        manifest = unpack_manifest(data, f"manifest of {checkpoint_id}")
        blobs = manifest.get("blobs")
        if manifest.get("id") != checkpoint_id or not isinstance(blobs, dict):
            raise DamagedError(f"manifest of {checkpoint_id}", "inconsistent content")
        return manifest, len(data)

    def _open_blob(self, digest: str, raw_size: int, what: str) -> tuple[Any, Any]:
        try:
            fh = open(self.blob_path(digest), "rb", buffering=0)  # noqa: SIM115 - returned open
        except FileNotFoundError as exc:
            raise DamagedError(what, "blob file is missing") from exc
        try:
            header = unpack_blob_header(fh.read(BLOB_HEADER_SIZE), what)
            if header.raw_size != raw_size:
                raise DamagedError(what, "blob length differs from the manifest's")
            if os.fstat(fh.fileno()).st_size != BLOB_HEADER_SIZE + header.stored_size:
                raise DamagedError(what, "blob file has the wrong length")
        except BaseException:
            fh.close()
            raise
        return fh, header

    def read_blob(
        self, digest: str, raw_size: int, what: str, into: memoryview | None = None
    ) -> Any:
        """Read a blob's raw content (into ``into`` when given), verifying its digest.

        Raises:
            DamagedError: Missing file, bad header, wrong length, failed decompression or
                a checksum mismatch.
        """
        fh, header = self._open_blob(digest, raw_size, what)
        with fh:
            if header.codec == "none":
                target = into if into is not None else memoryview(bytearray(raw_size))
                read_and_hash(fh, digest, raw_size, what, target)
                return target
            data = read_decompressed(fh, header, raw_size, what)
        if not verify_digest(data, digest):
            raise DamagedError(what, "checksum mismatch")
        if into is None:
            return data
        into[:] = data
        return into

    def verify_blob(self, digest: str, raw_size: int, what: str) -> int:
        """Check a blob without keeping its content; returns the bytes read.

        Raises:
            DamagedError: As :meth:`read_blob`.
        """
        fh, header = self._open_blob(digest, raw_size, what)
        with fh:
            if header.codec == "none":
                read_and_hash(fh, digest, raw_size, what, None)
                return BLOB_HEADER_SIZE + raw_size
            data = read_decompressed(fh, header, raw_size, what)
        if not verify_digest(data, digest):
            raise DamagedError(what, "checksum mismatch")
        return BLOB_HEADER_SIZE + header.stored_size

    def map_blob(
        self, digest: str, raw_size: int, what: str, dtype: np.dtype[Any], shape: tuple[int, ...]
    ) -> Any:
        """Memory-map a raw blob copy-on-write after verifying it; ``None`` if compressed."""
        fh, header = self._open_blob(digest, raw_size, what)
        with fh:
            if header.codec != "none":
                return None
            mapped = np.memmap(fh, dtype=dtype, mode="c", offset=BLOB_HEADER_SIZE, shape=shape)
        if not verify_digest(mapped.reshape(-1).view(np.uint8), digest):
            raise DamagedError(what, "checksum mismatch")
        return mapped

    # -- maintenance -------------------------------------------------------------------
    def delete_manifests(self, ids: Iterable[str]) -> list[str]:
        """Remove manifests (each removal is atomic); returns the ids removed."""
        removed = []
        for checkpoint_id in ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.manifest_path(checkpoint_id))
                removed.append(checkpoint_id)
        if removed:
            fsync_directory(self.manifest_dir)
        return removed

    def referenced_blobs(self) -> set[str] | None:
        """Digests named by every readable manifest; ``None`` if one is of a newer format."""
        referenced: set[str] = set()
        for checkpoint_id in self.ids():
            try:
                manifest, _ = self.read_manifest(checkpoint_id)
            except UnsupportedVersionError:
                return None  # a newer package's checkpoint: we cannot tell what it needs
            except (FileNotFoundError, DamagedError):
                continue  # a damaged manifest cannot be loaded, so it keeps nothing alive
            referenced.update(manifest["blobs"])
        return referenced

    def collect(self) -> tuple[int, int]:
        """Remove unreferenced blobs and dead writers' temporary files.

        The caller holds the exclusive lock. Safe to kill at any point: every removal is
        a single unlink of something no manifest needs.

        Returns:
            ``(files removed, bytes freed)``.
        """
        referenced = self.referenced_blobs()
        removed, freed = 0, 0
        for directory in (self.root, self.manifest_dir):
            removed += len(cleanup_temp_files(directory))
        if not self.blob_dir.is_dir():
            return removed, freed
        grace_until = time.time() - _UNLOCKED_GRACE
        removed += len(cleanup_temp_files(self.blob_dir))
        if referenced is None:
            return removed, freed
        with os.scandir(self.blob_dir) as entries:
            for entry in entries:
                algorithm, sep, hexdigest = entry.name.partition("-")
                if not sep or is_temp_file(entry.name) or f"{algorithm}:{hexdigest}" in referenced:
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                    if not self.locking and stat.st_mtime > grace_until:
                        continue
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                removed += 1
                freed += stat.st_size
        return removed, freed

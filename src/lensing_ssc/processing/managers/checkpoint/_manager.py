"""Crash-safe, verified, incremental checkpoints of a job's state.

:class:`CheckpointManager` saves a state (dicts, lists, numbers, strings, bytes, numpy
arrays, anything picklable) into a directory and gives back the newest intact one after a
crash. A checkpoint appears only when its manifest is renamed into place, after every
piece of data it names is on disk; every file carries a checksum checked on load; a
damaged newest checkpoint is skipped, logged as a WARNING record. Arrays are stored raw (loadable at
memory speed, or memory-mapped) and only when their content changed since a kept
checkpoint. On-disk formats and the directory's housekeeping live in the private modules
beside this one; the ``lensing-ssc checkpoints`` commands in :mod:`lensing_ssc.cli`; the
user guide in ``docs/checkpoint_manager.md``.

Example:
    >>> import numpy as np
    >>> kappa = np.zeros((64, 64), dtype=np.float32)
    >>> with CheckpointManager("./checkpoints") as ckpt:
    ...     info = ckpt.save_checkpoint({"step": 10, "kappa": kappa}, description="step 10")
    ...     state = ckpt.load_checkpoint()
    >>> state["step"], state["kappa"].shape
    (10, (64, 64))
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any, ClassVar

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.config import (
    CheckpointSection,
    ProcessingConfig,
    ReadOnlySettings,
    resolve_settings,
)
from lensing_ssc.core.io import resolve_codec
from lensing_ssc.processing.managers.checkpoint._background import BackgroundSaver, BufferPool
from lensing_ssc.processing.managers.checkpoint._format import DamagedError
from lensing_ssc.processing.managers.checkpoint._housekeeping import maintain
from lensing_ssc.processing.managers.checkpoint._reading import (
    load_named,
    load_newest,
    resolve_id,
    verify_manifest,
)
from lensing_ssc.processing.managers.checkpoint._records import (
    CheckpointInfo,
    CheckpointVerification,
)
from lensing_ssc.processing.managers.checkpoint._store import CheckpointStore
from lensing_ssc.processing.managers.checkpoint._writing import (
    IdClock,
    Snapshot,
    take_snapshot,
    write_snapshot,
)

__all__ = ["CheckpointInfo", "CheckpointManager", "CheckpointVerification"]

_log = logging.getLogger("lensing_ssc.processing.managers.checkpoint")


class CheckpointManager(ReadOnlySettings):
    """Save and restore the state of a long job, surviving kills at any moment.

    Args:
        checkpoint_dir: Directory of the checkpoints; default ``config.checkpoint_dir``
            (``run_dir/checkpoints``). Created if missing.
        max_checkpoints: Newest checkpoints kept; older ones are deleted after each save,
            except those tagged with one of ``keep_tags``.
        compression: ``"auto"`` or ``True`` (best installed codec, used where it pays),
            ``"zstd"``, ``"lz4"``, ``"gzip"``, or ``"none"``/``False``.
        format: ``"native"`` (arrays as raw blobs) or ``"json"`` (everything in one
            human-readable manifest; for small states).
        keep_tags: Tags that protect a checkpoint from retention (default ``["keep"]``).
        auto_save_interval: Seconds after which :meth:`should_auto_save` turns true.
        allow_pickle: Whether loading may unpickle pieces that were not plain data.
        read_only: Only read (list, load, verify): nothing is created or cleaned up.
        config: A :class:`ProcessingConfig`; explicit arguments override its
            ``checkpoint`` section, and arguments left ``None`` come from it (else from
            the section's defaults).

    Raises:
        CheckpointError: The directory cannot be created or written (says which and why).
        ConfigError: An invalid setting, naming the field (``checkpoint.max_checkpoints``),
            the value and the allowed range.
        ModuleNotFoundError: The named codec's package is not installed.

    Example:
        >>> ckpt = CheckpointManager("./checkpoints", max_checkpoints=3)
        >>> info = ckpt.save_checkpoint({"step": 10}, description="Processing step 10")
        >>> ckpt.load_checkpoint()["step"]
        10
        >>> ckpt.close()
    """

    _read_only: ClassVar[Mapping[str, tuple[str | None, str]]] = {
        "checkpoint_dir": ("checkpoint_dir", "pass checkpoint_dir=... to CheckpointManager(...)"),
        "settings": (
            "checkpoint",
            "pass the settings as arguments (max_checkpoints=..., ...) to CheckpointManager(...)",
        ),
        "read_only": (None, "pass read_only=... to CheckpointManager(...)"),
    }

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        *,
        max_checkpoints: int | None = None,
        compression: str | bool | None = None,
        format: str | None = None,
        keep_tags: Iterable[str] | None = None,
        auto_save_interval: float | None = None,
        allow_pickle: bool | None = None,
        read_only: bool = False,
        config: ProcessingConfig | None = None,
    ) -> None:
        if checkpoint_dir is None:
            checkpoint_dir = (config or ProcessingConfig()).checkpoint_dir
        self.checkpoint_dir = root = Path(checkpoint_dir).expanduser()
        self.settings = section = resolve_settings(
            CheckpointSection,
            config,
            none_is_not_given=True,
            dir=root,
            max_checkpoints=max_checkpoints,
            compression=compression,
            format=format,
            keep_tags=keep_tags,
            auto_save_interval=auto_save_interval,
            allow_pickle=allow_pickle,
        )
        self._codec = resolve_codec(section.compression).name
        self.read_only = read_only
        self._store = CheckpointStore(root)
        self._lock = threading.Lock()
        self._ids = IdClock()
        self._last_save_started = time.monotonic()
        self._last_save: dict[str, Any] | None = None
        self._last_error: str | None = None
        self._saves = 0
        self._saver: BackgroundSaver | None = None
        self._buffers = BufferPool()
        self._futures: set[Future[CheckpointInfo]] = set()
        self._closed = False
        if not read_only:
            self._store.open()
            self._maintain(retention=False)

    # -- saving ------------------------------------------------------------------------
    def save_checkpoint(
        self, state: Any, description: str = "", tags: Iterable[str] | str = ()
    ) -> CheckpointInfo:
        """Save ``state`` as a new checkpoint and return its record.

        Args:
            state: What to save; dicts, lists, tuples, sets, str, numbers, bool, None,
                bytes and numpy arrays are stored without pickle, other objects pickled.
            description: Free text shown by ``list_checkpoints`` and the CLI.
            tags: Labels; a tag in ``keep_tags`` (default ``"keep"``) protects it.

        Raises:
            CheckpointError: A part of the state cannot be stored (names its key path),
                or the disk refused the write; earlier checkpoints stay intact.
        """
        return self._write(self._snapshot(state, description, tags, allocate=None))

    def save_checkpoint_async(
        self, state: Any, description: str = "", tags: Iterable[str] | str = ()
    ) -> Future[CheckpointInfo]:
        """Snapshot ``state`` now and write it in the background; returns a future.

        The caller is blocked only while the state is encoded and its arrays copied (or,
        when a previous background save is still queued, until it starts writing). The
        copy buffers are kept for the next asynchronous save (a copy into memory already
        touched is several times faster) until ``close()``, which also waits for pending
        saves, as does leaving the ``with`` block.

        Raises:
            CheckpointError: A part of the state cannot be stored (raised here, at once).
        """
        snapshot = self._snapshot(state, description, tags, allocate=self._buffers.take)
        with self._lock:
            if self._closed:
                raise CheckpointError("cannot save: this checkpoint manager is closed")
            if self._saver is None:
                self._saver = BackgroundSaver()
            saver = self._saver
        future: Future[CheckpointInfo] = saver.submit(lambda: self._write_async(snapshot))
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _write_async(self, snapshot: Snapshot) -> CheckpointInfo:
        try:
            return self._write(snapshot)
        finally:
            self._buffers.give_back(p.data for p in snapshot.encoded.pieces if p.buffer)

    def _forget(self, future: Future[CheckpointInfo]) -> None:
        with self._lock:
            self._futures.discard(future)
            if not future.cancelled() and future.exception() is not None:
                self._last_error = str(future.exception())

    def wait_for_saves(self, timeout: float | None = None) -> bool:
        """Wait until background saves finish; ``False`` if ``timeout`` ran out first."""
        with self._lock:
            pending = list(self._futures)
        return not wait_futures(pending, timeout=timeout).not_done

    def _snapshot(
        self,
        state: Any,
        description: str,
        tags: Iterable[str] | str,
        *,
        allocate: Callable[[int], Any] | None,
    ) -> Snapshot:
        if self._closed or self.read_only:
            why = "closed" if self._closed else "read-only"
            raise CheckpointError(f"cannot save: this checkpoint manager is {why}")
        created, count = self._ids.next()
        self._last_save_started = time.monotonic()
        setting = self.settings.compression
        return take_snapshot(
            state,
            description,
            tags,
            created=created,
            count=count,
            layout=self.settings.format,
            compression=f"auto:{self._codec}" if setting == "auto" else self._codec,
            allocate=allocate,
        )

    def _write(self, snapshot: Snapshot) -> CheckpointInfo:
        started = time.monotonic()
        try:
            manifest, path, size = write_snapshot(self._store, snapshot, codec=self._codec)
        except OSError as exc:
            self._maintain(retention=False)  # a full disk may get room back from old garbage
            raise CheckpointError(
                f"could not save a checkpoint in {str(self.checkpoint_dir)!r}: "
                f"{exc.strerror or exc}",
                value=str(self.checkpoint_dir),
                hint="free disk space or choose another directory; earlier checkpoints are intact",
            ) from exc
        info = CheckpointInfo.from_manifest(manifest, path, size)
        with self._lock:
            self._saves += 1
            self._last_save = {
                "id": info.id,
                "seconds": time.monotonic() - started,
                "written_bytes": info.written_bytes,
            }
        self._maintain(retention=True)
        return info

    def _maintain(self, *, retention: bool) -> None:
        """Apply retention and collect garbage, if no other save or load is running."""
        try:
            maintain(self._store, self.settings if retention else None)
        except OSError as exc:
            self._last_error = f"clean-up of {self.checkpoint_dir} failed: {exc}"
            _log.warning(self._last_error)

    def should_auto_save(self) -> bool:
        """Whether ``auto_save_interval`` seconds passed since the last save began."""
        interval = self.settings.auto_save_interval
        return interval is not None and time.monotonic() - self._last_save_started >= interval

    # -- reading -----------------------------------------------------------------------
    def load_checkpoint(
        self,
        checkpoint_id: str | None = None,
        *,
        mmap: bool = False,
        allow_pickle: bool | None = None,
    ) -> Any:
        """Return the state of a checkpoint: the newest intact one, or the one named.

        Args:
            checkpoint_id: An id from :meth:`list_checkpoints` (or a unique prefix);
                ``None`` for the newest intact checkpoint.
            mmap: Memory-map raw arrays copy-on-write instead of reading them into memory.
            allow_pickle: Override the manager's ``allow_pickle`` for this load.

        Returns:
            The state, or ``None`` when the directory holds no checkpoint at all.

        Raises:
            CheckpointError: The named checkpoint does not exist (lists those that do) or
                is damaged; without a name, checkpoints exist but none is intact (names
                each and what is damaged); pickled pieces are refused or cannot be
                unpickled.

        Logs:
            A WARNING record on ``lensing_ssc.processing.managers.checkpoint`` for each
            damaged checkpoint skipped while looking for the newest intact one, naming
            what is damaged (``get_status()["damaged"]`` lists them too).
        """
        allow = self.settings.allow_pickle if allow_pickle is None else allow_pickle
        with self._store.shared():
            if checkpoint_id is None:
                return load_newest(self._store, mmap=mmap, allow_pickle=allow)
            resolved = self._newest(checkpoint_id)
            return load_named(self._store, resolved, mmap=mmap, allow_pickle=allow)

    def list_checkpoints(self) -> list[CheckpointInfo]:
        """Records of the readable checkpoints, newest first (damaged manifests omitted)."""
        return [info for info in map(self._info, self._store.ids()) if info is not None]

    def _info(self, checkpoint_id: str) -> CheckpointInfo | None:
        try:
            manifest, size = self._store.read_manifest(checkpoint_id)
        except CheckpointError:  # an OSError too, but ours: the call stack is too deep
            raise
        except (DamagedError, OSError):  # damaged, unreadable, or deleted meanwhile
            return None
        return CheckpointInfo.from_manifest(
            manifest, self._store.manifest_path(checkpoint_id), size
        )

    def _newest(self, checkpoint_id: str | None) -> str:
        ids = self._store.ids()
        if checkpoint_id is None and not ids:
            where = str(self.checkpoint_dir)
            raise CheckpointError(f"no checkpoints in {where!r}", value=where)
        return (
            ids[0]
            if checkpoint_id is None
            else resolve_id(ids, checkpoint_id, str(self.checkpoint_dir))
        )

    def get_checkpoint_info(self, checkpoint_id: str | None = None) -> CheckpointInfo:
        """The record of one checkpoint (the newest when ``None``).

        Raises:
            CheckpointError: It does not exist, or its manifest is damaged.
        """
        resolved = self._newest(checkpoint_id)
        info = self._info(resolved)
        if info is None:
            report = verify_manifest(self._store, resolved)
            raise CheckpointError(
                f"checkpoint {resolved} is unreadable: {'; '.join(report.problems)}", value=resolved
            )
        return info

    def verify_checkpoint(self, checkpoint_id: str | None = None) -> CheckpointVerification:
        """Read every file of a checkpoint (the newest when ``None``) and check its checksum.

        Raises:
            CheckpointError: The checkpoint does not exist.
        """
        resolved = self._newest(checkpoint_id)
        with self._store.shared():
            return verify_manifest(self._store, resolved)

    def delete_checkpoint(self, checkpoint_id: str) -> str:
        """Delete one checkpoint (damaged or not); returns its id.

        Blobs no other checkpoint uses are collected.

        Raises:
            CheckpointError: It does not exist (lists those that do), or the manager is
                read-only.
        """
        if self.read_only:
            raise CheckpointError(
                "cannot delete: this checkpoint manager is read-only", value=checkpoint_id
            )
        resolved = self._newest(checkpoint_id)
        self._store.delete_manifests([resolved])
        self._maintain(retention=False)
        return resolved

    # -- status and life cycle ----------------------------------------------------------
    def get_status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: settings, checkpoints on disk, the last save, pending saves."""
        infos = self.list_checkpoints()
        with self._lock:
            last_save = dict(self._last_save) if self._last_save else None
            pending = len(self._futures)
            last_error = self._last_error
        since = time.monotonic() - self._last_save_started
        return {
            "checkpoint_dir": str(self.checkpoint_dir),
            "format": self.settings.format,
            "compression": self.settings.compression,
            "codec": self._codec,
            "max_checkpoints": self.settings.max_checkpoints,
            "keep_tags": list(self.settings.keep_tags),
            "allow_pickle": self.settings.allow_pickle,
            "auto_save_interval": self.settings.auto_save_interval,
            "checkpoints": len(infos),
            "latest": infos[0].to_dict() if infos else None,
            "damaged": sorted(set(self._store.ids()) - {info.id for info in infos}, reverse=True),
            "saves": self._saves,
            "last_save": last_save,
            "seconds_since_save": since if self._saves else None,
            "should_auto_save": self.should_auto_save(),
            "pending_saves": pending,
            "snapshot_buffer_bytes": self._buffers.nbytes,
            "last_error": last_error,
            "read_only": self.read_only,
            "closed": self._closed,
        }

    def close(self) -> None:
        """Wait for background saves, stop their thread. Idempotent; loading still works."""
        with self._lock:
            self._closed = True
            saver, self._saver = self._saver, None
        if saver is not None:
            saver.close()
        self._buffers.clear()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointManager({str(self.checkpoint_dir)!r}, format={self.settings.format!r})"

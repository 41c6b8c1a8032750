"""Writing checkpoints: the snapshot, the write-then-commit sequence, and retention.

:func:`take_snapshot` encodes a state and fills the manifest's fields (in the caller's
thread: after it returns the caller may change its state freely when ``copy=True``);
:func:`write_snapshot` stores the pieces as blobs and commits the manifest, holding the
directory's shared lock; :func:`retention_victims` says which checkpoints retention
removes. Timing, threads and error translation are the manager's.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc._version import __version__
from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.config import CheckpointSection
from lensing_ssc.core.io import hash_bytes
from lensing_ssc.processing.managers.checkpoint._encode import EncodedState, Piece, encode_state
from lensing_ssc.processing.managers.checkpoint._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    DamagedError,
    UnsupportedVersionError,
    make_checkpoint_id,
    pack_manifest,
)
from lensing_ssc.processing.managers.checkpoint._store import CheckpointStore

__all__ = [
    "IdClock",
    "Snapshot",
    "maintain",
    "retention_victims",
    "take_snapshot",
    "write_snapshot",
]

INLINE_LIMIT = 4096  # bytes; smaller arrays, bytes and pickles stay in the manifest
_PIPELINE_ABOVE = 16 << 20  # bytes; larger snapshots hash the next piece while writing one


class IdClock:
    """Hands out checkpoint ids whose times strictly increase within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._last = 0.0

    def next(self) -> tuple[str, float]:
        """A fresh ``(checkpoint id, creation time)``."""
        with self._lock:
            self._last = max(time.time(), self._last + 1e-6)
            self._seq += 1
            return make_checkpoint_id(self._last, os.getpid(), self._seq), self._last


@dataclass
class Snapshot:
    """A state ready to be written: the encoded tree and pieces, and the manifest fields."""

    checkpoint_id: str
    encoded: EncodedState
    meta: dict[str, Any]


def _step(state: Any) -> int | None:
    step = state.get("step") if isinstance(state, dict) else None
    if isinstance(step, (int, np.integer)) and not isinstance(step, (bool, np.bool_)):
        return int(step)
    return None


def _tags(tags: Iterable[str] | str) -> list[str]:
    tag_list = [tags] if isinstance(tags, str) else list(tags)
    if not all(isinstance(tag, str) and tag for tag in tag_list):
        raise CheckpointError(
            "tags must be non-empty strings", value=tag_list, hint='e.g. tags=["keep"]'
        )
    return tag_list


def take_snapshot(
    state: Any,
    description: str,
    tags: Iterable[str] | str,
    *,
    checkpoint_id: str,
    created: float,
    layout: str,
    compression: str,
    allocate: Callable[[int], Any] | None,
) -> Snapshot:
    """Encode ``state`` and prepare its manifest fields.

    With ``allocate`` (a background save), arrays are copied into buffers it returns;
    without, the snapshot views the caller's arrays.

    Raises:
        CheckpointError: Bad description or tags, or a part of the state that cannot be
            stored (names its key path).
    """
    if not isinstance(description, str):
        raise CheckpointError(
            f"description must be a str, got {type(description).__name__}", value=description
        )
    tag_list = _tags(tags)
    inline_limit = None if layout == "json" else INLINE_LIMIT
    if allocate is None:
        encoded = encode_state(state, inline_limit=inline_limit, copy=False)
    else:
        encoded = encode_state(state, inline_limit=inline_limit, copy=True, allocate=allocate)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "id": checkpoint_id,
        "created": created,
        "description": description,
        "tags": tag_list,
        "step": _step(state),
        "package_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "layout": layout,
        "compression": compression,
        "data_bytes": encoded.data_bytes,
        "pickled": encoded.pickled,
    }
    return Snapshot(checkpoint_id, encoded, meta)


def _digests(pieces: list[Piece]) -> Generator[str | None, None, None]:
    """Digests of ``pieces`` in order, computed one piece ahead on a helper thread.

    Hashing releases the GIL, so hashing the next piece overlaps writing this one. Small
    snapshots are hashed by :meth:`CheckpointStore.put_blob` itself (``None`` here).
    """
    if len(pieces) < 2 or sum(piece.nbytes for piece in pieces) < _PIPELINE_ABOVE:
        yield from (None for _ in pieces)
        return
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lensing_ssc-checkpoint-hash")
    try:
        futures = [executor.submit(hash_bytes, piece.data) for piece in pieces]
        for future in futures:
            yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def write_snapshot(
    store: CheckpointStore, snapshot: Snapshot, *, codec: str
) -> tuple[dict[str, Any], Path, int]:
    """Write the blobs a snapshot needs, then commit its manifest.

    Returns:
        ``(manifest, manifest path, manifest size)``.

    Raises:
        OSError: The disk refused a write; no manifest was committed.
    """
    pieces = snapshot.encoded.pieces
    with store.shared():
        blobs: dict[str, list[int]] = {}
        written = 0
        with contextlib.closing(_digests(pieces)) as digests:  # stops hashing on error
            for piece, known in zip(pieces, digests, strict=True):
                digest, file_size, new_bytes = store.put_blob(piece, codec, known)
                piece.node["blob"] = digest
                blobs[digest] = [piece.nbytes, file_size]
                written += new_bytes
        if blobs:
            store.sync_blobs()  # reused blobs too: another writer may not have synced yet
        body = {**snapshot.meta, "blob_bytes_written": written, "blobs": blobs}
        body["state"] = snapshot.encoded.tree
        data = pack_manifest(body, indent=1 if snapshot.meta["layout"] == "json" else None)
        path = store.commit(snapshot.checkpoint_id, data)
    return body, path, len(data)


def retention_victims(
    store: CheckpointStore, max_checkpoints: int, keep_tags: Iterable[str]
) -> list[str]:
    """Checkpoints that retention removes, newest first.

    The newest ``max_checkpoints`` intact checkpoints stay, and so does every checkpoint
    tagged with one of ``keep_tags``. A damaged manifest stays while it is newer than the
    oldest checkpoint kept (for inspection), and goes after. A manifest of a newer format
    version is never removed.
    """
    keep = set(keep_tags)
    kept, victims = 0, []
    for checkpoint_id in store.ids():
        try:
            manifest, _ = store.read_manifest(checkpoint_id)
        except FileNotFoundError:
            continue
        except UnsupportedVersionError:
            continue
        except DamagedError:
            if kept >= max_checkpoints:
                victims.append(checkpoint_id)
            continue
        if kept < max_checkpoints:
            kept += 1
        elif not keep.intersection(manifest.get("tags", ())):
            victims.append(checkpoint_id)
    return victims


def maintain(store: CheckpointStore, settings: CheckpointSection | None) -> None:
    """Apply retention (when ``settings`` are given), or collect garbage (when not).

    After retention, garbage is collected only if a checkpoint was removed; without
    ``settings`` (on opening a directory, after a failed save or a deletion) always, which
    also picks up what killed processes left. Does nothing when another save, load or
    clean-up holds the directory: it never waits, and the next call tries again.

    Raises:
        OSError: A removal failed for another reason than a concurrent removal.
    """
    with store.try_exclusive() as alone:
        if not alone:
            return
        if settings is not None:
            victims = retention_victims(store, settings.max_checkpoints, settings.keep_tags)
            if not store.delete_manifests(victims):
                return
        store.collect()

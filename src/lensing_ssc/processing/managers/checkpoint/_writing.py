"""Writing checkpoints: the snapshot, and the write-then-commit sequence.

:func:`take_snapshot` encodes a state and fills the manifest's fields (in the caller's
thread: after it returns the caller may change its state freely when ``copy=True``);
:func:`write_snapshot` stores the pieces as blobs and commits the manifest, holding the
directory's shared lock, and names it only then, with the directory's next sequence
number. What retention and collection remove afterwards is :mod:`._housekeeping`'s;
timing, threads and error translation are the manager's.
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
from lensing_ssc.core.io import hash_bytes
from lensing_ssc.processing.managers.checkpoint._encode import EncodedState, Piece, encode_state
from lensing_ssc.processing.managers.checkpoint._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    make_checkpoint_id,
    pack_manifest,
)
from lensing_ssc.processing.managers.checkpoint._store import CheckpointStore

__all__ = ["IdClock", "Snapshot", "take_snapshot", "write_snapshot"]

INLINE_LIMIT = 4096  # bytes; smaller arrays, bytes and pickles stay in the manifest
_PIPELINE_ABOVE = 16 << 20  # bytes; larger snapshots hash the next piece while writing one


class IdClock:
    """Hands out creation times that strictly increase within this process, and a count
    of saves that keeps this process's ids distinct."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._last = 0.0

    def next(self) -> tuple[float, int]:
        """A fresh ``(creation time, count)``."""
        with self._lock:
            self._last = max(time.time(), self._last + 1e-6)
            self._count += 1
            return self._last, self._count


@dataclass
class Snapshot:
    """A state ready to be written: the encoded tree and pieces, and the manifest fields
    (all but ``id``, which the commit gives it)."""

    encoded: EncodedState
    meta: dict[str, Any]
    count: int

    def checkpoint_id(self, sequence: int) -> str:
        """The id this snapshot has when committed as number ``sequence``."""
        return make_checkpoint_id(sequence, self.meta["created"], self.meta["pid"], self.count)


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
    created: float,
    count: int,
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
    return Snapshot(encoded, meta, count)


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
        with store.committing() as sequence:
            checkpoint_id = snapshot.checkpoint_id(sequence)
            meta = snapshot.meta
            body = {"format": meta["format"], "version": meta["version"], "id": checkpoint_id}
            body.update(meta)
            body.update(blob_bytes_written=written, blobs=blobs, state=snapshot.encoded.tree)
            data = pack_manifest(body, indent=1 if snapshot.meta["layout"] == "json" else None)
            path = store.commit(checkpoint_id, data)
    return body, path, len(data)

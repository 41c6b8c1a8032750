"""Reading checkpoints back: blob-backed pieces, full verification, finding ids.

:class:`BlobReader` serves :func:`._decode.decode_state` (checked reads, optional memory
maps); :func:`verify_manifest` checks every byte of a checkpoint without building its
state, blob by blob in bounded memory; :func:`resolve_id` turns what a user typed into a
checkpoint id. Writing is in :mod:`._writing`, files and locks in :mod:`._store`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.processing.managers.checkpoint._decode import blob_paths, decode_state
from lensing_ssc.processing.managers.checkpoint._encode import TreeError
from lensing_ssc.processing.managers.checkpoint._format import DamagedError, blob_relpath
from lensing_ssc.processing.managers.checkpoint._records import CheckpointVerification
from lensing_ssc.processing.managers.checkpoint._store import CheckpointStore

__all__ = [
    "BlobReader",
    "load_named",
    "load_newest",
    "load_state",
    "resolve_id",
    "verify_manifest",
]

_log = logging.getLogger("lensing_ssc.processing.managers.checkpoint")

_LISTED_IDS = 10  # ids named in an "unknown checkpoint" error
_PATHS_SHOWN = 3
_DAMAGE_SHOWN = 3  # damaged checkpoints named when none can be loaded


def _unreadable(checkpoint_id: str, exc: OSError) -> str:
    return f"manifest of {checkpoint_id}: cannot be read: {exc.strerror or exc}"


def verify_manifest(store: CheckpointStore, checkpoint_id: str) -> CheckpointVerification:
    """Check every byte of ``checkpoint_id``; damage is reported, never raised."""
    path = store.manifest_path(checkpoint_id)
    try:
        manifest, size = store.read_manifest(checkpoint_id)
    except FileNotFoundError:
        return CheckpointVerification(checkpoint_id, False, (f"{path.name}: missing",), 0, 0)
    except (DamagedError, OSError) as exc:
        problem = str(exc) if isinstance(exc, DamagedError) else _unreadable(checkpoint_id, exc)
        try:
            size = os.lstat(path).st_size
        except OSError:
            size = 0
        return CheckpointVerification(checkpoint_id, False, (problem,), 1, size)
    problems: list[str] = []
    files, checked = 1, size
    users = blob_paths(manifest["state"])
    for digest, (raw_size, _) in manifest["blobs"].items():
        files += 1
        where = ", ".join(users.get(digest, ["an unreferenced piece"])[:_PATHS_SHOWN])
        what = f"{where} (blob {blob_relpath(digest).as_posix()})"
        try:
            checked += store.verify_blob(digest, raw_size, what)
        except DamagedError as exc:
            problems.append(str(exc))
    return CheckpointVerification(checkpoint_id, not problems, tuple(problems), files, checked)


class BlobReader:
    """Reads the blob-backed nodes of one manifest for :func:`._decode.decode_state`."""

    def __init__(self, store: CheckpointStore, blobs: dict[str, Any], *, mmap: bool) -> None:
        self.store = store
        self.blobs = blobs
        self.mmap = mmap

    def _raw_size(self, digest: str, path: str) -> int:
        sizes = self.blobs.get(digest)
        if type(sizes) is not list or len(sizes) != 2 or type(sizes[0]) is not int:
            raise DamagedError(f"{path} ({digest})", "blob not listed in the manifest")
        return sizes[0]

    def _what(self, digest: str, path: str) -> str:
        return f"{path} (blob {blob_relpath(digest).as_posix()})"

    def read_array(
        self, digest: str, dtype: np.dtype[Any], shape: tuple[int, ...], order: str, path: str
    ) -> np.ndarray[Any, Any]:
        """Load an array blob, memory-mapped when asked and stored raw."""
        raw_size = self._raw_size(digest, path)
        what = self._what(digest, path)
        if math.prod(shape) * dtype.itemsize != raw_size:
            raise DamagedError(what, "array size differs from the blob's")
        stored_shape = shape[::-1] if order == "F" else shape
        arr: Any = None
        if self.mmap and raw_size:
            arr = self.store.map_blob(digest, raw_size, what, dtype, stored_shape)
        if arr is None:
            made: list[Any] = []

            def allocate() -> memoryview:
                made.append(np.empty(stored_shape, dtype=dtype))
                return memoryview(made[0].reshape(-1).view(np.uint8))

            self.store.read_blob(digest, raw_size, what, allocate)
            arr = made[0]
        return arr.T if order == "F" else arr

    def read_bytes(self, digest: str, path: str) -> bytes:
        """Load a bytes or pickle blob."""
        data = self.store.read_blob(digest, self._raw_size(digest, path), self._what(digest, path))
        return bytes(data)


def resolve_id(ids: list[str], checkpoint_id: str, directory: str) -> str:
    """The id in ``ids`` that ``checkpoint_id`` names exactly or as a unique prefix.

    Raises:
        CheckpointError: No match (lists what exists) or several (lists them).
    """
    if checkpoint_id in ids:
        return checkpoint_id
    matches = [cid for cid in ids if checkpoint_id and cid.startswith(checkpoint_id)]
    if len(matches) == 1:
        return matches[0]
    shown_ids = matches or ids
    shown = ", ".join(shown_ids[:_LISTED_IDS]) or "none"
    if len(shown_ids) > _LISTED_IDS:
        shown += f" (and {len(shown_ids) - _LISTED_IDS} more)"
    problem = (
        f"is ambiguous, it matches: {shown}" if matches else f"does not exist; available: {shown}"
    )
    raise CheckpointError(
        f"checkpoint {checkpoint_id!r} in {directory!r} {problem}",
        value=checkpoint_id,
        hint="use an id from list_checkpoints() or `lensing-ssc checkpoints list`",
    )


def load_state(
    store: CheckpointStore, checkpoint_id: str, *, mmap: bool, allow_pickle: bool
) -> Any:
    """Read, verify and rebuild the state of one checkpoint.

    Raises:
        FileNotFoundError: The manifest was deleted meanwhile.
        DamagedError, TreeError: Something stored does not match its checksum or format.
        CheckpointError: Pickled pieces are refused or cannot be unpickled.
    """
    manifest, _ = store.read_manifest(checkpoint_id)
    pickled = manifest.get("pickled") or []
    if pickled and not allow_pickle:
        raise CheckpointError(
            f"checkpoint {checkpoint_id} holds pickled pieces ({', '.join(pickled[:5])}); "
            "refusing to unpickle them because allow_pickle=False",
            value=checkpoint_id,
            hint="unpickling runs code: allow it only for checkpoints you trust",
        )
    reader = BlobReader(store, manifest["blobs"], mmap=mmap)
    try:
        return decode_state(manifest["state"], reader, allow_pickle=allow_pickle)
    except RecursionError as exc:  # the state is at most MAX_DEPTH deep: the caller is deep
        raise CheckpointError(
            f"cannot load checkpoint {checkpoint_id}: the call stack is too deep to rebuild "
            "its state",
            value=checkpoint_id,
            hint="load it from a shallower call, or raise sys.setrecursionlimit()",
        ) from exc


def load_named(
    store: CheckpointStore, checkpoint_id: str, *, mmap: bool, allow_pickle: bool
) -> Any:
    """:func:`load_state`, with damage reported as a :class:`CheckpointError`."""
    try:
        return load_state(store, checkpoint_id, mmap=mmap, allow_pickle=allow_pickle)
    except CheckpointError:  # an OSError too, but already ours: pickles refused, ...
        raise
    except (DamagedError, TreeError, OSError) as exc:
        unreadable = isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
        problem = f"cannot be read: {exc}" if unreadable else f"is damaged: {exc}"
        raise CheckpointError(
            f"checkpoint {checkpoint_id} {problem}",
            value=checkpoint_id,
            hint="load_checkpoint() without an id returns the newest intact checkpoint",
        ) from exc


def load_newest(store: CheckpointStore, *, mmap: bool, allow_pickle: bool) -> Any:
    """The state of the newest intact checkpoint; logs each damaged one skipped.

    Returns:
        The state, or ``None`` when the directory holds no checkpoint at all.

    Raises:
        CheckpointError: Checkpoints exist but none is intact (names each and what is
            damaged in it: never ``None``, which would read as "start afresh"); or
            pickled pieces are refused or cannot be unpickled.
    """
    skipped: list[str] = []
    for checkpoint_id in store.ids():
        try:
            return load_state(store, checkpoint_id, mmap=mmap, allow_pickle=allow_pickle)
        except CheckpointError:  # an OSError too, but ours (pickles refused...): not damage
            raise
        except FileNotFoundError:
            continue
        except (DamagedError, TreeError, OSError) as exc:
            problem = str(exc) if not isinstance(exc, OSError) else _unreadable(checkpoint_id, exc)
            _log.warning("checkpoint %s is damaged and was skipped: %s", checkpoint_id, problem)
            skipped.append(f"{checkpoint_id}: {problem}")
    if not skipped:
        return None
    shown = "; ".join(skipped[:_DAMAGE_SHOWN])
    if len(skipped) > _DAMAGE_SHOWN:
        shown += f" (and {len(skipped) - _DAMAGE_SHOWN} more)"
    where = str(store.root)
    raise CheckpointError(
        f"no intact checkpoint in {where!r}: {len(skipped)} "
        f"{'is' if len(skipped) == 1 else 'are'} damaged: {shown}",
        value=where,
        hint=f"`lensing-ssc checkpoints verify {where} --all` lists every problem; delete "
        "the damaged checkpoints to start afresh",
    )

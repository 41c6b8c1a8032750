"""Reading checkpoints back: blob-backed pieces, full verification, finding ids.

:class:`BlobReader` serves :func:`._decode.decode_state` (checked reads, optional memory
maps); :func:`verify_manifest` checks every byte of a checkpoint without building its
state, blob by blob in bounded memory; :func:`resolve_id` turns what a user typed into a
checkpoint id. Writing is in :mod:`._writing`, files and locks in :mod:`._store`.
"""

from __future__ import annotations

import math
import warnings
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

_LISTED_IDS = 10  # ids named in an "unknown checkpoint" error
_PATHS_SHOWN = 3


def verify_manifest(store: CheckpointStore, checkpoint_id: str) -> CheckpointVerification:
    """Check every byte of ``checkpoint_id``; damage is reported, never raised."""
    path = store.manifest_path(checkpoint_id)
    try:
        manifest, size = store.read_manifest(checkpoint_id)
    except FileNotFoundError:
        return CheckpointVerification(checkpoint_id, False, (f"{path.name}: missing",), 0, 0)
    except DamagedError as exc:
        return CheckpointVerification(checkpoint_id, False, (str(exc),), 1, path.stat().st_size)
    problems: list[str] = []
    files, checked = 1, size
    users = blob_paths(manifest.get("state"))
    for digest, sizes in manifest["blobs"].items():
        files += 1
        try:
            where = ", ".join(users.get(digest, ["an unreferenced piece"])[:_PATHS_SHOWN])
            what = f"{where} (blob {blob_relpath(digest).as_posix()})"
            if type(sizes) is not list or len(sizes) != 2 or type(sizes[0]) is not int:
                raise DamagedError(what, "invalid sizes in the manifest")
            checked += store.verify_blob(digest, sizes[0], what)
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
            arr = np.empty(stored_shape, dtype=dtype)
            self.store.read_blob(
                digest, raw_size, what, into=memoryview(arr.reshape(-1).view(np.uint8))
            )
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
    return decode_state(manifest.get("state"), reader, allow_pickle=allow_pickle)


def load_named(
    store: CheckpointStore, checkpoint_id: str, *, mmap: bool, allow_pickle: bool
) -> Any:
    """:func:`load_state`, with damage reported as a :class:`CheckpointError`."""
    try:
        return load_state(store, checkpoint_id, mmap=mmap, allow_pickle=allow_pickle)
    except (DamagedError, TreeError, FileNotFoundError) as exc:
        raise CheckpointError(
            f"checkpoint {checkpoint_id} is damaged: {exc}",
            value=checkpoint_id,
            hint="load_checkpoint() without an id returns the newest intact checkpoint",
        ) from exc


def load_newest(store: CheckpointStore, *, mmap: bool, allow_pickle: bool) -> Any:
    """The state of the newest intact checkpoint, or ``None``; warns about each damaged one."""
    for checkpoint_id in store.ids():
        try:
            return load_state(store, checkpoint_id, mmap=mmap, allow_pickle=allow_pickle)
        except FileNotFoundError:
            continue
        except (DamagedError, TreeError) as exc:
            warnings.warn(
                f"checkpoint {checkpoint_id} is damaged and was skipped: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
    return None

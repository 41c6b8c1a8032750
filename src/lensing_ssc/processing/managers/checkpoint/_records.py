"""Value objects of the checkpoint manager: what a checkpoint is, and what verifying found.

Both are frozen dataclasses built from a manifest (:mod:`._format`); ``to_dict()`` is their
JSON-ready view, used by ``get_status()`` and the ``lensing-ssc checkpoints`` commands.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CheckpointInfo", "CheckpointVerification"]


@dataclass(frozen=True)
class CheckpointInfo:
    """One saved checkpoint, as :meth:`CheckpointManager.list_checkpoints` reports it.

    Attributes:
        id: The checkpoint's name (``ckpt-<sequence>-<UTC time>-<host>-<pid>-<count>``);
            the sequence number, one more than the directory's highest at its commit,
            orders checkpoints.
        created: When it was saved, in seconds since the epoch (``created_at`` as datetime).
        description: The text given to ``save_checkpoint``.
        tags: Its tags; tags listed in ``keep_tags`` (default ``keep``) protect it from
            retention.
        step: ``state["step"]`` when the state was a dict with an integer ``step``.
        size: Bytes on disk the checkpoint needs: its manifest and every blob it uses,
            including blobs shared with other checkpoints.
        written_bytes: Bytes this save actually wrote (unchanged pieces are not rewritten).
        data_bytes: Bytes of array, bytes and pickle data in the state, uncompressed.
        blobs: Number of blob files it uses.
        format: ``"native"`` (arrays as raw blobs) or ``"json"`` (everything in the manifest).
        compression: The compression setting the save used.
        package_version: The ``lensing_ssc`` version that wrote it.
        host: Host name of the writer.
        pid: Process id of the writer.
        pickled: Key paths of the pieces stored with pickle (refused by ``allow_pickle=False``).
        path: The manifest file.
    """

    id: str
    created: float
    description: str
    tags: tuple[str, ...]
    step: int | None
    size: int
    written_bytes: int
    data_bytes: int
    blobs: int
    format: str
    compression: str
    package_version: str
    host: str
    pid: int
    pickled: tuple[str, ...]
    path: Path

    @property
    def created_at(self) -> _dt.datetime:
        """``created`` as a timezone-aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.created, tz=_dt.timezone.utc)

    @classmethod
    def from_manifest(
        cls, manifest: dict[str, Any], path: Path, manifest_size: int
    ) -> CheckpointInfo:
        """Build the record of a parsed manifest (``manifest_size`` is its file's length)."""
        blobs = manifest.get("blobs", {})
        step = manifest.get("step")
        return cls(
            id=str(manifest["id"]),
            created=float(manifest["created"]),
            description=str(manifest.get("description", "")),
            tags=tuple(str(tag) for tag in manifest.get("tags", ())),
            step=step if type(step) is int else None,
            size=manifest_size + sum(int(sizes[1]) for sizes in blobs.values()),
            written_bytes=manifest_size + int(manifest.get("blob_bytes_written", 0)),
            data_bytes=int(manifest.get("data_bytes", 0)),
            blobs=len(blobs),
            format=str(manifest.get("layout", "native")),
            compression=str(manifest.get("compression", "none")),
            package_version=str(manifest.get("package_version", "")),
            host=str(manifest.get("host", "")),
            pid=int(manifest.get("pid", 0)),
            pickled=tuple(str(p) for p in manifest.get("pickled", ())),
            path=path,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``created_iso`` added, ``path`` as a string)."""
        return {
            "id": self.id,
            "created": self.created,
            "created_iso": self.created_at.isoformat(timespec="seconds"),
            "description": self.description,
            "tags": list(self.tags),
            "step": self.step,
            "size": self.size,
            "written_bytes": self.written_bytes,
            "data_bytes": self.data_bytes,
            "blobs": self.blobs,
            "format": self.format,
            "compression": self.compression,
            "package_version": self.package_version,
            "host": self.host,
            "pid": self.pid,
            "pickled": list(self.pickled),
            "path": str(self.path),
        }


@dataclass(frozen=True)
class CheckpointVerification:
    """What :meth:`CheckpointManager.verify_checkpoint` found.

    Attributes:
        checkpoint_id: The checkpoint checked.
        ok: ``True`` when the manifest and every blob matched their checksums.
        problems: One line per damaged or missing file, naming the key path it holds.
        checked_files: Files read (the manifest and each blob).
        checked_bytes: Bytes read.
    """

    checkpoint_id: str
    ok: bool
    problems: tuple[str, ...]
    checked_files: int
    checked_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "checkpoint_id": self.checkpoint_id,
            "ok": self.ok,
            "problems": list(self.problems),
            "checked_files": self.checked_files,
            "checked_bytes": self.checked_bytes,
        }

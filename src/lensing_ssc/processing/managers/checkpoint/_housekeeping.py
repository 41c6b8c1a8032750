"""What leaves a checkpoint directory, and when: retention, then garbage collection.

:func:`retention_victims` picks the checkpoints retention removes; it counts toward
``max_checkpoints`` only checkpoints whose every blob is intact, so a newer checkpoint
with missing or damaged data (a crash elsewhere, a copy gone wrong, a crafted manifest)
never pushes out the intact ones a restart needs. :func:`collect` removes what no
manifest needs: unreferenced blobs and dead writers' temporary files. It deletes only
regular files whose names are this store's own content addresses (``xxh3_128-`` or
``blake2b-`` and 32 hex digits), works through descriptors opened without following
links, and so never deletes a file it did not write, in ``blobs/`` or through a link out
of it. :func:`maintain` runs them under the directory's exclusive lock, never waiting.

The directory's files and locks are :mod:`._store`'s; what a save writes is
:mod:`._writing`'s.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import Any

from lensing_ssc.core.config import CheckpointSection
from lensing_ssc.core.io import cleanup_temp_files
from lensing_ssc.processing.managers.checkpoint._decode import blob_paths
from lensing_ssc.processing.managers.checkpoint._format import (
    DamagedError,
    UnsupportedVersionError,
)
from lensing_ssc.processing.managers.checkpoint._store import CheckpointStore

__all__ = ["checkpoint_intact", "collect", "maintain", "referenced_blobs", "retention_victims"]

_UNLOCKED_GRACE = 3600.0  # seconds; collection's safety margin without flock
_CONTENT_ADDRESS = re.compile(r"(xxh3_128|blake2b)-([0-9a-f]{32})")  # what put_blob names


def checkpoint_intact(store: CheckpointStore, manifest: dict[str, Any]) -> bool:
    """Whether every blob of a (checked) manifest is intact, and its state names no blob
    it does not list. Blobs not known intact are read and checked now."""
    blobs: dict[str, list[int]] = manifest["blobs"]
    if not blobs.keys() >= blob_paths(manifest["state"]).keys():
        return False
    for digest, (raw_size, _) in blobs.items():
        if store.known_intact(digest, raw_size) is None:
            try:
                store.verify_blob(digest, raw_size, f"blob {digest}")
            except DamagedError:
                return False
    return True


def retention_victims(
    store: CheckpointStore, max_checkpoints: int, keep_tags: Iterable[str]
) -> list[str]:
    """Checkpoints that retention removes, newest first.

    The newest ``max_checkpoints`` checkpoints that are intact (manifest and every blob)
    stay, and so does every checkpoint tagged with one of ``keep_tags``. A damaged one
    stays while it is newer than the oldest checkpoint kept (for inspection), and goes
    after. A manifest of a newer format version, or one that cannot be read (permissions,
    I/O), is never removed and never counted.
    """
    ids = store.ids()
    if len(ids) <= max_checkpoints:
        return []
    keep = set(keep_tags)
    kept, victims = 0, []
    for checkpoint_id in ids:
        try:
            manifest, _ = store.read_manifest(checkpoint_id)
        except (FileNotFoundError, UnsupportedVersionError):
            continue
        except DamagedError:
            if kept >= max_checkpoints:
                victims.append(checkpoint_id)
            continue
        except OSError:
            continue
        if kept < max_checkpoints:
            if checkpoint_intact(store, manifest):
                kept += 1
        elif not keep.intersection(manifest.get("tags", ())):
            victims.append(checkpoint_id)
    return victims


def referenced_blobs(store: CheckpointStore) -> set[str] | None:
    """Digests named by every readable manifest; ``None`` when a manifest is of a newer
    format or cannot be read, so that what it needs cannot be told."""
    referenced: set[str] = set()
    for checkpoint_id in store.ids():
        try:
            manifest, _ = store.read_manifest(checkpoint_id)
        except UnsupportedVersionError:
            return None
        except (FileNotFoundError, DamagedError):
            continue  # a damaged manifest cannot be loaded, so it keeps nothing alive
        except OSError:
            return None
        referenced.update(manifest["blobs"])
    return referenced


def _remove_unreferenced(store: CheckpointStore, fd: int, referenced: set[str]) -> tuple[int, int]:
    """Unlink, in the directory open as ``fd``, the unreferenced blobs of this store."""
    grace_until = time.time() - _UNLOCKED_GRACE
    removed, freed = 0, 0
    with os.scandir(fd) as entries:
        for entry in entries:
            match = _CONTENT_ADDRESS.fullmatch(entry.name)
            if match is None or f"{match[1]}:{match[2]}" in referenced:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
                if not store.locking and stat.st_mtime > grace_until:
                    continue
                os.unlink(entry.name, dir_fd=fd)
            except FileNotFoundError:
                continue
            removed += 1
            freed += stat.st_size
    return removed, freed


def collect(store: CheckpointStore) -> tuple[int, int]:
    """Remove unreferenced blobs and dead writers' temporary files.

    The caller holds the exclusive lock. Safe to kill at any point: every removal is
    a single unlink of something no manifest needs.

    Returns:
        ``(files removed, bytes freed)``.

    Raises:
        OSError: ``manifests/`` or ``blobs/`` is a symbolic link (nothing is deleted
            through it), or a removal failed.
    """
    referenced = referenced_blobs(store)
    removed = len(cleanup_temp_files(store.root))
    freed = 0
    for directory in (store.manifest_dir, store.blob_dir):
        try:
            fd = store.open_subdirectory(directory)
        except FileNotFoundError:
            continue
        try:
            removed += len(cleanup_temp_files(fd))
            if directory == store.blob_dir and referenced is not None:
                blobs_removed, freed = _remove_unreferenced(store, fd, referenced)
                removed += blobs_removed
        finally:
            os.close(fd)
    return removed, freed


def maintain(store: CheckpointStore, settings: CheckpointSection | None) -> None:
    """Apply retention (when ``settings`` are given), or collect garbage (when not).

    After retention, garbage is collected only if a checkpoint was removed; without
    ``settings`` (on opening a directory, after a failed save or a deletion) always, which
    also picks up what killed processes left. Does nothing when another save, load or
    clean-up holds the directory: it never waits, and the next call tries again.

    Raises:
        OSError: A removal failed for another reason than a concurrent removal, or a
            sub-directory is a symbolic link.
    """
    with store.try_exclusive() as alone:
        if not alone:
            return
        if settings is not None:
            victims = retention_victims(store, settings.max_checkpoints, settings.keep_tags)
            if not store.delete_manifests(victims):
                return
        collect(store)

"""The CheckpointManager: crash-safe, content-addressed checkpoints of a job's state.

Private parts: :mod:`._encode`/:mod:`._decode` (state to pieces and back), :mod:`._format`
(manifests and ids), :mod:`._schema` (what a manifest may contain), :mod:`._store` (files,
locks, checked reads), :mod:`._writing` (snapshots, commit), :mod:`._housekeeping`
(retention, garbage collection), :mod:`._background` (the asynchronous saver thread),
:mod:`._reading` (loading, verification, finding ids) and :mod:`._records` (the value
objects). The manager itself is in :mod:`._manager`.
"""

from ._manager import (
    CheckpointInfo,
    CheckpointManager,
    CheckpointVerification,
)

__all__ = [
    "CheckpointInfo",
    "CheckpointManager",
    "CheckpointVerification",
]

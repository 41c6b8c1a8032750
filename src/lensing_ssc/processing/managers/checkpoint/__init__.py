"""The CheckpointManager: crash-safe, content-addressed checkpoints of a job's state.

Private parts: :mod:`._encode`/:mod:`._decode` (state to pieces and back), :mod:`._format`
(manifests and ids), :mod:`._store` (files and locks), :mod:`._writing` (snapshots, commit,
retention), :mod:`._background` (the asynchronous saver thread), :mod:`._reading`
(verification, finding ids) and :mod:`._records` (the value objects). The manager itself is
in :mod:`._manager`.
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

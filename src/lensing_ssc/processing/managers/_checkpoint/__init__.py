"""The machinery behind :class:`~lensing_ssc.processing.managers.CheckpointManager`.

- ``_encode`` / ``_decode``: a state as a JSON tree plus raw pieces (no pickle for plain
  data), and back;
- ``_format``: the bytes on disk: blob headers, checksummed manifests, checkpoint ids;
- ``_store``: the directory: content-addressed blobs, manifests, locks, garbage collection;
- ``_saving``: snapshot, write-then-commit, retention; ``_saver``: the background thread;
- ``_reading``: loading with verification and fallback, full verification, id lookup;
- ``_records``: the value objects users see (``CheckpointInfo``, ``CheckpointVerification``).

Nothing here is public: import from :mod:`lensing_ssc.processing.managers.checkpoint_manager`.
"""

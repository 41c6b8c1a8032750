"""``RunDir``: where each file and directory of a run lives, named in one place.

A run directory holds::

    checkpoints/            the CheckpointManager's checkpoints    (checkpoint.dir moves it)
    cache/                  the disk cache every process shares    (cache.dir moves it)
    logs/lensing_ssc.log    the run's log                          (logging.file moves it)
    status.json             the run's state, refreshed while it is alive
    run.lock                held by the run using the directory (:mod:`.runlock`)
    tasks/<name>.journal    what each ``ManagerContext.map`` call has finished
    pipeline.json           a pipeline's fingerprint of what its results depend on
    results/                a pipeline's results files and text summary
    figures/                a pipeline's figures

The first four are the locations :class:`~lensing_ssc.core.config.ProcessingConfig` reports
(``config.checkpoint_dir``, ``cache_dir``, ``log_file``, ``status_file``); the config is the
lower layer and cannot ask this module, so :class:`RunDir` reads those four from it and names
the rest itself. What goes into each file is its writer's business: :mod:`.status`,
:mod:`.context`, the managers, :mod:`lensing_ssc.pipelines`. The ``lensing-ssc`` commands
that take a ``RUN_DIR`` find its parts here too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from lensing_ssc.core.config import ProcessingConfig

__all__ = ["RunDir"]

# Journal file names keep a readable form of the call's name, short enough for any filesystem.
_MAX_NAME_BYTES = 100
_CUT_BYTES = 80


@dataclass(frozen=True, init=False)
class RunDir:
    """The paths of one run directory's files and directories.

    ``RunDir(path)`` puts every part under ``path``; :meth:`from_config` honours the
    config's ``checkpoint.dir``, ``cache.dir``, ``cache.disk`` and ``logging.file``. Nothing
    is created: each writer creates what it writes.

    Args:
        path: The run directory.

    Attributes:
        path: The run directory.
        checkpoints: The checkpoint directory.
        cache: The disk cache's directory; ``None`` when the config turns the disk tier off.
        log_file: The run's log file.
        status_file: The run's status file, read by ``lensing-ssc status``.

    Example:
        >>> run = RunDir("runs/example")
        >>> run.checkpoints, run.journal("maps")
        (PosixPath('runs/example/checkpoints'), PosixPath('runs/example/tasks/maps.journal'))
    """

    path: Path
    checkpoints: Path
    cache: Path | None
    log_file: Path
    status_file: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # A config's defaults are where its sections put their parts when they name none.
        self._locate(ProcessingConfig(run_dir=Path(path)))

    @classmethod
    def from_config(cls, config: ProcessingConfig) -> RunDir:
        """The layout of ``config.run_dir``, with the parts the config's sections move.

        Example:
            >>> config = ProcessingConfig(run_dir="runs/x", cache={"dir": "/scratch/cache"})
            >>> RunDir.from_config(config).cache
            PosixPath('/scratch/cache')
        """
        run_dir = cls.__new__(cls)
        run_dir._locate(config)
        return run_dir

    def _locate(self, config: ProcessingConfig) -> None:
        # Frozen: the fields are set once, here, as the dataclass's own __init__ would.
        object.__setattr__(self, "path", Path(config.run_dir))
        object.__setattr__(self, "checkpoints", config.checkpoint_dir)
        object.__setattr__(self, "cache", config.cache_dir)
        object.__setattr__(self, "log_file", config.log_file)
        object.__setattr__(self, "status_file", config.status_file)

    @property
    def tasks(self) -> Path:
        """The directory of the task journals (one per ``ManagerContext.map`` name)."""
        return self.path / "tasks"

    def journal(self, name: str) -> Path:
        """The journal of the ``map`` call named ``name``: one file inside :attr:`tasks`.

        A name of letters, digits, ``-``, ``_`` and ``.``, at most 100 bytes long, is the
        file's name as it is. In any other name, other characters become ``_``, it is cut
        to 80 bytes, and 12 hex digits of a digest of the whole name follow: two names
        never share a file because they differ only in such characters or after the cut.

        Example:
            >>> RunDir("runs/x").journal("maps").name
            'maps.journal'
            >>> RunDir("runs/x").journal("maps/patch 1").name
            'maps_patch_1-03d590c5ba8f.journal'
        """
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        encoded = safe.encode("utf-8")
        if safe != name or len(encoded) > _MAX_NAME_BYTES:
            digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=6)
            cut = encoded[:_CUT_BYTES].decode("utf-8", "ignore")
            safe = f"{cut}-{digest.hexdigest()}"
        return self.tasks / f"{safe or 'tasks'}.journal"

    @property
    def lock_file(self) -> Path:
        """The file a run holds while it uses the directory (:class:`.runlock.RunLock`)."""
        return self.path / "run.lock"

    @property
    def pipeline_file(self) -> Path:
        """The pipeline's record of what the run's results depend on (its fingerprint)."""
        return self.path / "pipeline.json"

    @property
    def results(self) -> Path:
        """The directory of the run's results files and text summary."""
        return self.path / "results"

    @property
    def figures(self) -> Path:
        """The directory of the run's figures."""
        return self.path / "figures"

"""How a patch-statistics run is set up before anything runs: its paths, executor and device.

:func:`absolute_paths` makes the run directory, and the directories the config names, absolute
before any of the config is shipped to workers (the light-cone job uses it too);
:func:`executor_of` and :func:`device_of` resolve the ``executor`` and ``device``
arguments of :func:`.patch_statistics.run_patch_statistics` against the ``pipeline``
section, refusing an executor that cannot join the configured Dask cluster.

Not here: which executor runs how many workers, and where, is the task runner's
(:mod:`lensing_ssc.processing.runner`); what a device is, :mod:`lensing_ssc.analysis`'s
(:func:`~lensing_ssc.analysis.select_device`); the run itself,
:func:`.patch_statistics.run_patch_statistics`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lensing_ssc.analysis import ArrayDevice, select_device
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines._config import PipelineConfig, PipelineSection

__all__ = ["absolute_paths", "device_of", "executor_of"]


def absolute_paths(config: PipelineConfig) -> PipelineConfig:
    """``config`` with its run directory, and the directories it names, as absolute paths.

    Workers resolve a relative path against their own working directory, which on another
    node is not the driver's: each would build its own cache there.
    """

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else Path(os.path.abspath(path))

    return config.model_copy(
        update={
            "run_dir": absolute(config.run_dir),
            "cache": config.cache.model_copy(update={"dir": absolute(config.cache.dir)}),
            "checkpoint": config.checkpoint.model_copy(
                update={"dir": absolute(config.checkpoint.dir)}
            ),
            "logging": config.logging.model_copy(update={"file": absolute(config.logging.file)}),
        }
    )


def executor_of(section: PipelineSection, executor: Any) -> Any:
    """The executor to run on: ``executor`` (a name or an executor object) if given, else
    the section's.

    Raises:
        ConfigError: ``executor`` is not ``"dask"`` while ``pipeline.scheduler`` names a
            cluster to join.
    """
    if executor is None:
        return section.executor
    if section.scheduler is not None and executor != "dask":
        named = executor if isinstance(executor, str) else type(executor).__name__
        raise ConfigError(
            f"executor {named!r} was asked for, but pipeline.scheduler "
            f"({section.scheduler!r}) joins a Dask cluster",
            value=executor,
            hint="use executor 'dask', or drop pipeline.scheduler",
            field="executor",
        )
    return executor


def device_of(section: PipelineSection, device: str | ArrayDevice | None) -> ArrayDevice:
    """The device to measure on: ``device`` if given (a name or a device), else the section's."""
    if isinstance(device, ArrayDevice):
        return device
    if device is None:
        return select_device(section.device, setting="pipeline.device")
    return select_device(device, setting="device")

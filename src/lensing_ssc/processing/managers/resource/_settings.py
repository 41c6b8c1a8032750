"""The directory whose filesystem a ResourceManager watches.

The manager's settings are the config's ``resources`` section, resolved by
:func:`lensing_ssc.core.config.resolve_settings` (explicit argument, else the config, else
the section's defaults), which also states every bound. What is left here is the one
setting that needs the filesystem: ``disk_path`` must exist, and when not set it is the
run directory or its nearest existing parent. Limits read from the system are in
:mod:`._limits`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lensing_ssc.core.base.exceptions import ConfigError

if TYPE_CHECKING:
    from lensing_ssc.core.config import ProcessingConfig

__all__ = ["watched_directory"]


def watched_directory(disk_path: Path | None, config: ProcessingConfig | None) -> Path:
    """``disk_path`` when set, else the run directory (or the current one), or its parent.

    Raises:
        ConfigError: ``disk_path`` does not exist, naming it.
    """
    if disk_path is not None:
        if not disk_path.exists():
            raise ConfigError(
                f"disk_path {str(disk_path)!r} does not exist",
                value=str(disk_path),
                field="resources.disk_path",
                hint="pass an existing directory on the filesystem to watch, or leave it unset",
            )
        return disk_path
    # The run directory may not be created yet: watch the filesystem it will live on.
    path = (config.run_dir if config is not None else Path.cwd()).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path

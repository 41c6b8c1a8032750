"""Settings of the ResourceManager: explicit arguments over the config, each validated.

Covers merging constructor arguments with the ``resources`` section of a
:class:`~lensing_ssc.core.config.ProcessingConfig`, validating every value with an error
that names it, and choosing the directory whose filesystem is watched. It does not read
limits from the system (see :mod:`.limits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lensing_ssc.core.base.exceptions import ResourceError
from lensing_ssc.core.config import ResourcesSection

if TYPE_CHECKING:
    from lensing_ssc.core.config import ProcessingConfig

__all__ = ["ResourceSettings", "resolve_settings"]


@dataclass(frozen=True)
class ResourceSettings:
    """Every setting of a ResourceManager, validated; ``None`` disables a limit."""

    memory_limit_mb: float | None
    memory_limit_percent: float | None
    cpu_limit_percent: float | None
    disk_limit_percent: float | None
    disk_min_free_gb: float | None
    swap_limit_percent: float | None
    monitor_interval: float
    warning_fraction: float
    history_size: int
    graceful_stop: bool
    disk_path: Path


def resolve_settings(
    explicit: dict[str, Any], disk_path: str | Path | None, config: ProcessingConfig | None
) -> ResourceSettings:
    """Explicit (non-``None``) arguments over ``config.resources`` over the defaults.

    Raises:
        ResourceError: naming the setting and the offending value.
    """
    section = config.resources if config is not None else ResourcesSection()
    merged = {
        name: (value if value is not None else getattr(section, name))
        for name, value in explicit.items()
    }
    for name in ("memory_limit_mb", "cpu_limit_percent", "disk_min_free_gb"):
        merged[name] = _positive(name, merged[name])
    for name in ("memory_limit_percent", "disk_limit_percent", "swap_limit_percent"):
        merged[name] = _positive(name, merged[name], upper=100.0)
    merged["monitor_interval"] = _positive("monitor_interval", merged["monitor_interval"])
    fraction = _number("warning_fraction", merged["warning_fraction"])
    if not 0.0 < fraction < 1.0:
        raise ResourceError(
            f"warning_fraction must be between 0 and 1 (exclusive), got {fraction!r}",
            value=fraction,
            hint="use e.g. 0.8 to warn at 80% of each limit",
        )
    merged["warning_fraction"] = fraction
    size = merged["history_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ResourceError(
            f"history_size must be a positive integer, got {size!r}",
            value=size,
            hint="the number of samples kept, e.g. 3600",
        )
    stop = merged["graceful_stop"]
    if not isinstance(stop, bool):
        raise ResourceError(f"graceful_stop must be True or False, got {stop!r}", value=stop)
    merged["disk_path"] = _disk_path(disk_path, config)
    return ResourceSettings(**merged)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ResourceError(f"{name} must be a number, got {value!r}", value=value)
    return float(value)


def _positive(name: str, value: Any, *, upper: float | None = None) -> float | None:
    if value is None:
        return None
    number = _number(name, value)
    if number <= 0 or math.isinf(number):
        raise ResourceError(
            f"{name} must be a finite number > 0, got {value!r}",
            value=value,
            hint="pass None (or leave it unset) to disable the limit",
        )
    if upper is not None and number > upper:
        raise ResourceError(
            f"{name} must be at most {upper:g}, got {value!r}",
            value=value,
            hint="it is a percentage",
        )
    return number


def _disk_path(disk_path: str | Path | None, config: ProcessingConfig | None) -> Path:
    if disk_path is not None:
        path = Path(disk_path)
        if not path.exists():
            raise ResourceError(
                f"disk_path {str(path)!r} does not exist",
                value=str(path),
                hint="pass an existing directory on the filesystem to watch, or leave it unset",
            )
        return path
    # The run directory may not be created yet: watch the filesystem it will live on.
    path = (config.run_dir if config is not None else Path.cwd()).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path

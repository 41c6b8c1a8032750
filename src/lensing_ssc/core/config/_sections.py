"""The typed sections of :class:`~lensing_ssc.core.config.ProcessingConfig`.

One pydantic model per manager; every field has a default that works out of the box, and
every directory defaults to ``None``, meaning "a sub-directory of ``run_dir``" (resolved by
:class:`ProcessingConfig`, not here). Validation rules live next to the fields they guard.
Loading from files and the environment is in :mod:`._loading`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lensing_ssc.core.config._errors import translate_validation_error
from lensing_ssc.core.config._numbers import Integer, Real, RealOrNone

__all__ = [
    "CacheSection",
    "CheckpointSection",
    "LoggingSection",
    "ProgressSection",
    "ResourcesSection",
    "Section",
]

CompressionName = Literal["auto", "none", "gzip", "zstd", "lz4"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["standard", "json", "detailed"]
EvictionPolicy = Literal["lru", "lfu", "fifo"]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def __setattr__(self, name: str, value: object) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise translate_validation_error(exc, type(self)) from exc


class ResourcesSection(Section):
    """Limits and sampling of the ResourceManager.

    ``None`` disables a limit. The effective memory limit is the lowest of
    ``memory_limit_mb``, the job's cgroup limits and its rlimits.
    """

    memory_limit_mb: RealOrNone = Field(default=None, gt=0)
    memory_limit_percent: RealOrNone = Field(default=None, gt=0, le=100)
    cpu_limit_percent: RealOrNone = Field(default=None, gt=0)
    disk_limit_percent: RealOrNone = Field(default=None, gt=0, le=100)
    disk_min_free_gb: RealOrNone = Field(default=None, gt=0)
    swap_limit_percent: RealOrNone = Field(default=None, gt=0, le=100)
    monitor_interval: Real = Field(default=1.0, gt=0)
    warning_fraction: Real = Field(default=0.8, gt=0, lt=1)
    history_size: Integer = Field(default=3600, gt=0)
    graceful_stop: bool = False


class CheckpointSection(Section):
    """Where and how the CheckpointManager saves; ``dir`` defaults to ``run_dir/checkpoints``."""

    dir: Path | None = None
    max_checkpoints: Integer = Field(default=5, gt=0)
    compression: CompressionName = "auto"
    format: Literal["native", "json"] = "native"
    keep_tags: list[str] = Field(default_factory=lambda: ["keep"])
    auto_save_interval: RealOrNone = Field(default=None, gt=0)
    allow_pickle: bool = True


class CacheSection(Section):
    """Limits of the CacheManager's tiers; ``dir`` defaults to ``run_dir/cache``.

    ``disk`` turns the disk tier on or off for managers built from this config.
    ``disk_min_free_mb`` is the free space the disk tier leaves on its filesystem: ``None``
    (the default) for the smaller of 1 GiB and 10 % of the filesystem, ``0`` for none.
    """

    dir: Path | None = None
    disk: bool = True
    max_size_mb: Real = Field(default=512.0, gt=0)
    max_entries: Integer = Field(default=1000, gt=0)
    eviction_policy: EvictionPolicy = "lru"
    default_ttl: RealOrNone = Field(default=None, gt=0)
    disk_max_size_mb: Real = Field(default=4096.0, gt=0)
    disk_min_free_mb: RealOrNone = Field(default=None, ge=0, allow_inf_nan=False)
    compression: CompressionName = "none"


class LoggingSection(Section):
    """Level, format and file of the LogManager; ``file`` defaults to ``run_dir/logs/``."""

    level: LogLevel = "INFO"
    format: LogFormat = "standard"
    file: Path | None = None
    console: bool = True
    max_bytes: Integer = Field(default=10 * 1024 * 1024, gt=0)
    backup_count: Integer = Field(default=5, ge=0)
    compress_rotated: bool = True
    retention_days: RealOrNone = Field(default=None, gt=0)

    @field_validator("level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class ProgressSection(Section):
    """Display of the ProgressManager.

    ``enabled=False`` (or ``LENSING_SSC_PROGRESS__ENABLED=false``) shows nothing.
    ``heartbeat_interval`` is the seconds between plain lines when output is not a terminal.
    """

    enabled: bool = True
    heartbeat_interval: Real = Field(default=30.0, gt=0)
    refresh_per_second: Real = Field(default=4.0, gt=0)

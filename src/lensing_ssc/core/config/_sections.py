"""The typed sections of :class:`~lensing_ssc.core.config.ProcessingConfig`.

One pydantic model per manager; every field has a default that works out of the box, and
every directory defaults to ``None``, meaning "a sub-directory of ``run_dir``" (resolved by
:class:`ProcessingConfig`, not here). Every setting of a manager is a field here, and its
bounds are stated here once: the managers resolve their constructor arguments through these
models (:mod:`._resolve`) and check nothing again. Loading from files and the environment
is in :mod:`._loading`; collaborators of a manager (samplers, clocks, streams) are not
settings and are not here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from lensing_ssc.core.config._errors import translate_validation_error
from lensing_ssc.core.config._numbers import (
    BOOL_FOR_NUMBER,
    Integer,
    IntegerOrNone,
    Real,
    RealOrNone,
)

__all__ = [
    "CacheSection",
    "CheckpointSection",
    "LoggingSection",
    "ProgressSection",
    "ResourcesSection",
    "RunPath",
    "Section",
]

CompressionName = Literal["auto", "none", "gzip", "zstd", "lz4"]
LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["standard", "json", "detailed"]
EvictionPolicy = Literal["lru", "lfu", "fifo"]
CacheJournalMode = Literal["auto", "wal", "delete"]
CheckpointFormat = Literal["native", "json"]
_LEVEL_NAMES = ", ".join(repr(name) for name in get_args(LevelName)[:-1])
_LEVEL_NAMES += f" or {get_args(LevelName)[-1]!r}"


def _any_case(choices: object) -> BeforeValidator:
    """Accept a name of ``choices`` (a ``Literal``) in any case; leave anything else as given.

    Left as given, a wrong value is reported as the caller wrote it, not lower-cased.
    """
    names = get_args(choices)

    def check(value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in names:
            return value.strip().lower()
        return value

    return BeforeValidator(check)


def _path(value: object) -> object:
    """A string or ``os.PathLike`` is a path, also where code passes it (strict validation).

    ``~`` and ``~user`` are expanded (YAML and TOML files are not read by a shell); an empty
    path (which would mean the current directory) and a NUL character (which no system call
    takes) are refused where the config is read, not when the run first opens a file.
    """
    if not isinstance(value, (str, os.PathLike)):
        return value
    text = os.fspath(value)
    if isinstance(text, bytes):
        return value  # pydantic's own error: a path is text
    if not text.strip():
        raise PydanticCustomError(
            "path_empty", "Input should be a path, not empty (write '.' for this directory)"
        )
    if "\0" in text:
        raise PydanticCustomError("path_nul", "Input should be a path without a NUL character")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of a user this system does not know, or no home directory
        raise PydanticCustomError(
            "path_home", "Input should be a path whose '~' this system can expand"
        ) from None


def _compression(value: object) -> object:
    """``True``/``False`` mean ``"auto"``/``"none"``."""
    if isinstance(value, bool):
        return "auto" if value else "none"
    return value


def _level(value: object) -> object:
    """A level name in any case, or a level number 0 or more (``logging.DEBUG`` is 10)."""
    if isinstance(value, str) and value.strip().upper() in get_args(LevelName):
        return value.strip().upper()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    wanted = f"Input should be {_LEVEL_NAMES} (any case), or a level number at least 0"
    if isinstance(value, bool):
        raise PydanticCustomError(BOOL_FOR_NUMBER, wanted + ", not true or false")
    raise PydanticCustomError("log_level", wanted)


def _memory_map(value: object) -> object:
    if isinstance(value, bool) or (isinstance(value, str) and value == "verify"):
        return value
    raise PydanticCustomError("memory_map", "Input should be true, false or 'verify'")


def _names(kind: Callable[[Iterable[object]], object], lone: str | None = None) -> BeforeValidator:
    """Any collection of names stands for ``kind`` of them; a lone string is refused, except
    ``lone`` (``capture="root"``), which stands for itself alone."""

    def check(value: object) -> object:
        if isinstance(value, str):
            if value == lone:
                return kind([value])
            allowed = "a list of names" if lone is None else f"a list of names or {lone!r}"
            raise PydanticCustomError(
                "names_not_string", f"Input should be {allowed}, not one string"
            )
        if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
            return kind(value)
        return value

    return BeforeValidator(check)


OptionalPath = Annotated[Path | None, BeforeValidator(_path)]
RunPath = Annotated[Path, BeforeValidator(_path)]
"""A path setting that must be given (``run_dir``): as :data:`OptionalPath`, without None."""
# Before-validators run last first: a boolean becomes a name, then a name loses its case.
Compression = Annotated[CompressionName, _any_case(CompressionName), BeforeValidator(_compression)]
LogLevel = Annotated[LevelName | Annotated[int, Field(ge=0)], BeforeValidator(_level)]
"""A level name (any case) or number, as :mod:`logging` takes it."""
MemoryMap = Annotated[Literal[False, True, "verify"], BeforeValidator(_memory_map)]
LoggerNames = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], _names(tuple, "root")]
"""Names of loggers; ``"root"`` (alone or in the list) is the root logger: every logger."""


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
    ``memory_limit_mb``, the job's cgroup limits and its rlimits. ``disk_path`` is the
    directory whose filesystem is watched; ``None`` for the run directory's (or the
    current directory's).
    """

    memory_limit_mb: RealOrNone = Field(default=None, gt=0, allow_inf_nan=False)
    memory_limit_percent: RealOrNone = Field(default=None, gt=0, le=100)
    cpu_limit_percent: RealOrNone = Field(default=None, gt=0, allow_inf_nan=False)
    disk_limit_percent: RealOrNone = Field(default=None, gt=0, le=100)
    disk_min_free_gb: RealOrNone = Field(default=None, gt=0, allow_inf_nan=False)
    swap_limit_percent: RealOrNone = Field(default=None, gt=0, le=100)
    monitor_interval: Real = Field(default=1.0, gt=0, allow_inf_nan=False)
    warning_fraction: Real = Field(default=0.8, gt=0, lt=1)
    history_size: Integer = Field(default=3600, gt=0)
    graceful_stop: bool = False
    disk_path: OptionalPath = None


class CheckpointSection(Section):
    """Where and how the CheckpointManager saves; ``dir`` defaults to ``run_dir/checkpoints``."""

    dir: OptionalPath = None
    max_checkpoints: Integer = Field(default=5, gt=0)
    compression: Compression = "auto"
    format: Annotated[CheckpointFormat, _any_case(CheckpointFormat)] = "native"
    keep_tags: Annotated[list[str], _names(list)] = Field(default_factory=lambda: ["keep"])
    auto_save_interval: RealOrNone = Field(default=None, gt=0)
    allow_pickle: bool = True


class CacheSection(Section):
    """Limits of the CacheManager's tiers; ``dir`` defaults to ``run_dir/cache``.

    ``disk`` turns the disk tier on or off for managers built from this config.
    ``disk_min_free_mb`` is the free space the disk tier leaves on its filesystem: ``None``
    (the default) for the smaller of 1 GiB and 10 % of the filesystem, ``0`` for none.
    ``memory_map`` returns large arrays from disk as read-only maps (``"verify"`` also checks
    their digest); ``lease_ttl`` is the seconds a memoize lease lives without renewal;
    ``lease_heartbeat`` the seconds between its holder's renewals (a holder on another host
    whose heartbeat is three beats old is taken to be dead). ``journal_mode`` is the
    index's SQLite journal: ``"auto"`` uses WAL on a local disk and the rollback journal
    (``"delete"``) on a filesystem several hosts share (NFS, Lustre, GPFS, ...).
    """

    dir: OptionalPath = None
    disk: bool = True
    max_size_mb: Real = Field(default=512.0, gt=0, allow_inf_nan=False)
    max_entries: Integer = Field(default=1000, gt=0)
    eviction_policy: Annotated[EvictionPolicy, _any_case(EvictionPolicy)] = "lru"
    default_ttl: RealOrNone = Field(default=None, gt=0)
    disk_max_size_mb: Real = Field(default=4096.0, gt=0, allow_inf_nan=False)
    disk_min_free_mb: RealOrNone = Field(default=None, ge=0, allow_inf_nan=False)
    compression: Compression = "none"
    memory_map: MemoryMap = False
    lease_ttl: Real = Field(default=60.0, gt=0)
    lease_heartbeat: Real = Field(default=5.0, gt=0, allow_inf_nan=False)
    journal_mode: Annotated[CacheJournalMode, _any_case(CacheJournalMode)] = "auto"


class LoggingSection(Section):
    """Level, format, file and writer of the LogManager; ``file`` defaults to ``run_dir/logs/``.

    ``max_bytes`` is the size a file rotates at (``None``: never; ``backup_count=0`` also
    turns rotation off). ``capture`` names further loggers to write for (``"root"``: every
    logger, as ``capture_root``), ``capture_root`` writes for every library, ``propagate``
    also passes ``lensing_ssc`` records to the root logger's handlers. ``flush_interval`` is
    the seconds between the writer's rounds (the most a SIGKILL can lose), ``queue_size`` the
    records waiting before callers wait for the writer. ``handle_sigterm`` writes every record
    on SIGTERM.
    """

    level: LogLevel = "INFO"
    format: Annotated[LogFormat, _any_case(LogFormat)] = "standard"
    file: OptionalPath = None
    console: bool = False
    max_bytes: IntegerOrNone = Field(default=10 * 1024 * 1024, gt=0)
    backup_count: Integer = Field(default=5, ge=0)
    compress_rotated: bool = True
    retention_days: RealOrNone = Field(default=None, gt=0)
    capture: LoggerNames = ()
    capture_root: bool = False
    propagate: bool = False
    flush_interval: Real = Field(default=0.1, gt=0, allow_inf_nan=False)
    queue_size: Integer = Field(default=20_000, ge=1)
    timing_level: LogLevel = "INFO"
    handle_sigterm: bool = False


class ProgressSection(Section):
    """Display of the ProgressManager.

    ``enabled=False`` (or ``LENSING_SSC_PROGRESS__ENABLED=false``) shows nothing.
    ``heartbeat_interval`` is the seconds between plain lines when output is not a terminal:
    120 s writes about 3.2 KB an hour to a batch log (a line is about 105 bytes).
    """

    enabled: bool = True
    heartbeat_interval: Real = Field(default=120.0, gt=0)
    refresh_per_second: Real = Field(default=4.0, gt=0)

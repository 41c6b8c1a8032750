"""Settings and value objects of a :class:`LogManager`.

:func:`resolve_settings` validates every argument and raises
:class:`~lensing_ssc.core.base.exceptions.LoggingError` naming the value and the valid
choices; the result is a frozen :class:`LogSettings`. :class:`LogWorkerConfig` is what a
worker process needs to send its records to the parent's writer (picklable, so it can go
through any executor or start method). Building pipelines from settings is the manager's
job (:mod:`lensing_ssc.processing.managers.log._manager`); :class:`LogStats` is what
``get_stats()`` returns.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lensing_ssc.core.base.exceptions import LoggingError
from lensing_ssc.processing.managers.log._format import FORMATS
from lensing_ssc.processing.managers.log._timing import TimingStats

if TYPE_CHECKING:
    from lensing_ssc.core.config import ProcessingConfig

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LEVELS",
    "UNSET",
    "LogSettings",
    "LogStats",
    "LogWorkerConfig",
    "Unset",
    "parse_level",
    "resolve_settings",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_LEVEL_HINT = f"use one of {', '.join(LEVELS)} (any case) or a level number"


class Unset:
    """Type of :data:`UNSET`: "take the value from the config, else the default"."""

    def __repr__(self) -> str:
        return "<from config>"


UNSET = Unset()


@dataclass(frozen=True)
class LogSettings:
    """Validated settings of one manager."""

    level: int
    format_type: str
    file_path: Path | None
    console: bool
    max_bytes: int | None
    backup_count: int
    compress_rotated: bool
    retention_days: float | None
    capture: tuple[str, ...]
    capture_root: bool
    propagate: bool
    flush_interval: float
    queue_size: int
    timing_level: int
    handle_sigterm: bool

    @property
    def rotates(self) -> bool:
        """Size rotation is on (as in the stdlib, ``backup_count=0`` turns it off)."""
        return self.max_bytes is not None and self.backup_count > 0


@dataclass(frozen=True)
class LogWorkerConfig:
    """What a worker process needs to log through its parent's writer (picklable).

    Get one from ``LogManager.worker_config()`` in the parent; pass it to
    ``LogManager.attach_worker(config)`` in the worker (e.g. as a pool initializer).
    """

    address: Any
    token: str
    level: int
    format_type: str
    capture: tuple[str, ...]
    capture_root: bool
    propagate: bool
    flush_interval: float
    queue_size: int
    timing_level: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LogStats:
    """Counters of a manager (``get_stats()``).

    ``records`` counts records per level that reached the writer in this process;
    ``from_workers`` counts records of worker processes; ``written`` counts records
    every sink took, ``dropped`` those at least one sink failed to take (a full disk,
    a closed stream); ``errors`` counts sink and handler failures; ``queued`` is what
    waits for the writer now. ``timings`` maps each timed name to its
    :class:`TimingStats`; ``metrics`` holds the last value of each logged metric.
    """

    records: dict[str, int]
    written: int
    from_workers: int
    dropped: int
    errors: int
    queued: int
    rotations: int
    compressed: int
    timings: dict[str, TimingStats]
    metrics: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready view."""
        return asdict(self)


def parse_level(value: object, what: str = "log level") -> int:
    """A level name (any case) or non-negative number as a number.

    Raises:
        LoggingError: for anything else, listing the valid names.
    """
    if isinstance(value, str):
        name = value.strip().upper()
        if name in LEVELS:
            return int(logging.getLevelName(name))
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise LoggingError(f"unknown {what} {value!r}", value=value, hint=_LEVEL_HINT)


def _format(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in FORMATS:
        return value.strip().lower()
    raise LoggingError(
        f"unknown log format {value!r}", value=value, hint=f"use one of {', '.join(FORMATS)}"
    )


def _number(name: str, value: object, *, minimum: float, integer: bool, strict: bool) -> Any:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and (value > minimum if strict else value >= minimum):  # type: ignore[operator]
        return value
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    kind = "an integer" if integer else "a number"
    raise LoggingError(f"{name} must be {kind} {bound}, got {value!r}", value=value)


def _pick(explicit: Any, from_config: Any, default: Any) -> Any:
    if explicit is not UNSET and explicit is not None:
        return explicit
    return from_config if from_config is not None else default


def resolve_settings(
    *,
    level: Any,
    file_path: Any,
    format_type: Any,
    max_bytes: Any,
    backup_count: Any,
    console: Any,
    compress_rotated: Any,
    retention_days: Any,
    capture: Any,
    capture_root: bool,
    propagate: bool,
    flush_interval: Any,
    queue_size: Any,
    timing_level: Any,
    handle_sigterm: bool,
    config: ProcessingConfig | None,
) -> LogSettings:
    """Merge explicit arguments (``None``/:data:`UNSET`: not given) over ``config``."""
    section = config.logging if config is not None else None
    path = file_path if file_path is not None else (config.log_file if config else None)
    if max_bytes is UNSET:
        max_bytes = section.max_bytes if section else DEFAULT_MAX_BYTES
    if retention_days is UNSET:
        retention_days = section.retention_days if section else None
    names = () if isinstance(capture, str) else tuple(capture)
    if isinstance(capture, str) or not all(isinstance(n, str) and n for n in names):
        raise LoggingError(
            f"capture must be a tuple of logger names, got {capture!r}",
            value=capture,
            hint='e.g. capture=("mypipeline",)',
        )
    if path is not None and not isinstance(path, (str, Path)):
        raise LoggingError(f"file_path must be a path, got {path!r}", value=path)
    return LogSettings(
        level=parse_level(_pick(level, section.level if section else None, "INFO")),
        format_type=_format(_pick(format_type, section.format if section else None, "standard")),
        file_path=Path(path) if path is not None else None,
        console=bool(_pick(console, section.console if section else None, True)),
        max_bytes=None
        if max_bytes is None
        else _number("max_bytes", max_bytes, minimum=0, integer=True, strict=True),
        backup_count=_number(
            "backup_count",
            _pick(backup_count, section.backup_count if section else None, 5),
            minimum=0,
            integer=True,
            strict=False,
        ),
        compress_rotated=bool(
            _pick(compress_rotated, section.compress_rotated if section else None, True)
        ),
        retention_days=None
        if retention_days is None
        else _number("retention_days", retention_days, minimum=0, integer=False, strict=True),
        capture=names,
        capture_root=bool(capture_root),
        propagate=bool(propagate),
        flush_interval=_number(
            "flush_interval", flush_interval, minimum=0, integer=False, strict=True
        ),
        queue_size=_number("queue_size", queue_size, minimum=1, integer=True, strict=False),
        timing_level=parse_level(timing_level, "timing level"),
        handle_sigterm=bool(handle_sigterm),
    )

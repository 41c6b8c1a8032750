"""Values of a :class:`LogManager` beside its settings, and what it derives from them.

The settings themselves are the config's ``logging`` section, resolved by
:func:`lensing_ssc.core.config.resolve_settings` (explicit argument, else the config, else
the section's defaults), which also states every bound: a bad one raises ``ConfigError``
naming the field. Here: :func:`level_number` and :func:`rotates`, derived from the
settings; :class:`LogWorkerConfig`, what a worker process needs to send its records to the
parent's writer (picklable, so it can go through any executor or start method); and
:class:`LogStats`, what ``get_stats()`` returns. Building pipelines from settings is the
manager's job (:mod:`lensing_ssc.processing.managers.log._manager`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from lensing_ssc.core.config import LoggingSection
from lensing_ssc.processing.managers.log._timing import TimingStats

__all__ = ["LogStats", "LogWorkerConfig", "level_number", "rotates"]


def level_number(level: str | int) -> int:
    """A validated level, a name (``"INFO"``) or a number, as the number :mod:`logging` uses."""
    return level if isinstance(level, int) else int(logging.getLevelName(level))


def rotates(settings: LoggingSection) -> bool:
    """Size rotation is on (as in the stdlib, ``backup_count=0`` turns it off)."""
    return settings.max_bytes is not None and settings.backup_count > 0


@dataclass(frozen=True)
class LogWorkerConfig:
    """What a worker process needs to log through its parent's writer (picklable).

    Get one from ``LogManager.worker_config()`` in the parent; pass it to
    ``LogManager.attach_worker(config)`` in the worker (e.g. as a pool initializer).
    ``settings`` are the parent's: the worker takes its level, format, captured loggers and
    writer settings, and writes no file and no console of its own.
    """

    address: Any
    token: str
    settings: LoggingSection
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

"""The one exception tree of ``lensing_ssc``.

Every error the package raises on purpose derives from :class:`LensingSSCError`, so
``except LensingSSCError`` catches them all. A bad setting is a :class:`ConfigError` wherever
it comes from (a file, a variable or a manager's argument); each area has its own subclass
for what goes wrong at work, which also derives from the builtin a caller would naturally
catch::

    LensingSSCError (Exception)
    ├── ConfigError (ValueError)            invalid settings (files, environment, arguments)
    ├── ResourceError (RuntimeError)        a memory/CPU/disk/swap limit exceeded
    ├── CheckpointError (OSError)           saving, loading or verifying a checkpoint failed
    ├── ProgressError (ValueError)          invalid totals, increments or task names
    ├── CacheError (RuntimeError)           a value cannot be cached or the cache dir is unusable
    ├── LoggingError (ValueError)           an unwritable log path, an unreachable log writer
    ├── AnalysisError (ValueError)          invalid maps, patches or statistic settings
    └── InterruptedRunError (RuntimeError)  a graceful stop was requested (SIGTERM, SIGINT, USR1)

Each error carries the offending value in ``.value`` (``None`` when there is none) and,
where it helps, a ``.hint`` saying how to fix it; both are part of ``str(error)``.
Errors raised by a dependency are translated and chained with ``raise ... from exc``.
``.retryable`` tells the task runner whether trying again can help: ``False`` for
:class:`ConfigError` and :class:`AnalysisError` (bad settings and bad data fail the same
way every time), ``True`` for the others; the runner retries any other exception.

This module holds no logic beyond message formatting; the managers decide when to raise.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AnalysisError",
    "CacheError",
    "CheckpointError",
    "ConfigError",
    "InterruptedRunError",
    "LensingSSCError",
    "LoggingError",
    "ProgressError",
    "ResourceError",
]

_MISSING: Any = object()


class LensingSSCError(Exception):
    """Root of every error ``lensing_ssc`` raises on purpose.

    Args:
        message: What went wrong, in one sentence.
        value: The offending value, kept on the instance for callers and tests.
        hint: What the user can do about it; appended to the message.

    Example:
        >>> try:
        ...     raise ConfigError("memory_limit_mb must be > 0", value=-1, hint="use e.g. 8000")
        ... except LensingSSCError as exc:
        ...     print(exc.value)
        -1
    """

    retryable = True

    def __init__(self, message: str, *, value: Any = _MISSING, hint: str | None = None) -> None:
        self.message = message
        self.value = None if value is _MISSING else value
        self.has_value = value is not _MISSING
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text} ({self.hint})" if not text.endswith(".") else f"{text} {self.hint}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep value, hint and subclass fields across pickling: errors travel back from
        # worker processes, and the default reduction would call __init__ with args only.
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type[LensingSSCError], text: str, state: dict[str, Any]) -> LensingSSCError:
    err = cls.__new__(cls)
    Exception.__init__(err, text)
    err.__dict__.update(state)
    return err


class ConfigError(LensingSSCError, ValueError):
    """Invalid configuration: a wrong type, a bad value, an unknown key, an unreadable file.

    ``field`` is the dotted path of the offending setting (``"resources.memory_limit_mb"``)
    and ``source`` the file or environment variable it came from, when known. Not retried
    by the task runner (``retryable = False``): the same settings fail the same way.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        value: Any = _MISSING,
        hint: str | None = None,
        field: str | None = None,
        source: str | None = None,
    ) -> None:
        self.field = field
        self.source = source
        super().__init__(message, value=value, hint=hint)


class ResourceError(LensingSSCError, RuntimeError):
    """A resource limit was exceeded, or a resource setting is invalid."""


class CheckpointError(LensingSSCError, OSError):
    """A checkpoint could not be saved, loaded, verified or found."""


class ProgressError(LensingSSCError, ValueError):
    """Invalid progress input: a negative total or increment, a duplicate task name."""


class CacheError(LensingSSCError, RuntimeError):
    """A value could not be cached, or the cache directory is unusable."""


class LoggingError(LensingSSCError, ValueError):
    """Invalid logging setup: an unknown level or format, an unwritable log path."""


class AnalysisError(LensingSSCError, ValueError):
    """Invalid analysis input: a map of the wrong shape, NaNs, an unknown statistic.

    Not retried by the task runner (``retryable = False``): the same data fail the same way.
    One that wraps a failed read (an ``OSError``, which may pass) sets ``retryable = True``.
    """

    retryable = False


class InterruptedRunError(LensingSSCError, RuntimeError):
    """A graceful stop was requested (SIGTERM, SIGINT, a scheduler's early warning, a breach).

    ``signal_name`` names the signal or reason. The run's completed work is saved before
    this is raised, so rerunning continues where it stopped.
    """

    def __init__(
        self,
        message: str,
        *,
        value: Any = _MISSING,
        hint: str | None = None,
        signal_name: str | None = None,
    ) -> None:
        self.signal_name = signal_name
        super().__init__(message, value=value, hint=hint)

"""Translation of pydantic validation errors into :class:`ConfigError`.

Every message names the field (dotted path), the offending value and where it came from
(a file, an environment variable, or the caller); unknown keys get a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from lensing_ssc.core.base.exceptions import ConfigError

__all__ = ["translate_validation_error"]

# Fields whose null is not "no limit", with the hint that says what it is instead.
_FIELD_HINTS = {
    "cache.disk_min_free_mb": "use 0 or more MiB (0: no reserve), or null for the smaller of "
    "1 GiB and 10 % of the filesystem",
}


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at ``loc[:-1]`` inside ``model``, for "did you mean" hints."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def _field_hint(field: str) -> str | None:
    """The hint of ``field`` (a dotted path, or a bare name when a section was validated)."""
    for name, hint in _FIELD_HINTS.items():
        if field == name or name.endswith(f".{field}"):
            return hint
    return None


def _describe(error: Mapping[str, Any], model: type[BaseModel]) -> tuple[str, str, Any, str]:
    """Return (field, message, value, hint) for one pydantic error."""
    loc = tuple(error.get("loc", ()))
    field = ".".join(str(part) for part in loc) or "<root>"
    value = error.get("input")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        choices = _known_keys(model, loc)
        close = difflib.get_close_matches(str(loc[-1]), choices, n=1) if loc else []
        hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(choices)}"
        return field, f"unknown key {field!r}", value, hint
    message = str(error.get("msg", "invalid value"))
    hint = ""
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        hint = _field_hint(field) or "use a positive number, or null to disable the limit"
    return field, f"invalid value {value!r} for {field!r}: {message}", value, hint


def translate_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    source: str | None = None,
    field_sources: Mapping[str, str] | None = None,
) -> ConfigError:
    """Build one :class:`ConfigError` describing every problem in ``exc``.

    Args:
        exc: The pydantic error.
        model: The model that was validated (for "did you mean" hints).
        source: Where the data came from (a file path), if known.
        field_sources: Dotted field paths that came from elsewhere (environment variables),
            mapped to their source name; they take precedence over ``source``.
    """
    field_sources = field_sources or {}
    lines: list[str] = []
    first: tuple[str, Any, str | None, str] | None = None
    for error in exc.errors():
        field, message, value, hint = _describe(error, model)
        origin = field_sources.get(field, source)
        where = f" in {origin}" if origin else ""
        lines.append(f"{message}{where}" + (f" ({hint})" if hint else ""))
        if first is None:
            first = (field, value, origin, hint)
    assert first is not None  # pydantic never raises an empty ValidationError
    field, value, origin, hint = first
    if len(lines) == 1:
        text = lines[0]
    else:
        text = f"{len(lines)} configuration errors:\n  - " + "\n  - ".join(lines)
    return ConfigError(text, value=value, field=field, source=origin)

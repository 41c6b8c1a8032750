"""Translation of pydantic validation errors into :class:`ConfigError`.

Every message names the field (dotted path), the offending value and where it came from
(a file, an environment variable, or the caller); unknown keys get a "did you mean", and a
rejected number the field's own range ("use a whole number at least 1"), with null offered
only where the field takes it.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config._numbers import BOOL_FOR_NUMBER

__all__ = ["translate_validation_error"]

# Errors about a number field's value: the hint says which numbers (and null, when the field
# takes it) would do.
_NUMBER_ERRORS = {
    BOOL_FOR_NUMBER,
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "int_type",
    "int_parsing",
    "int_from_float",
    "float_type",
    "float_parsing",
    "finite_number",
}
_BOUND_WORDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}


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


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """The declaration of the field at ``loc``, or ``None`` (a list item, the model itself)."""
    current: Any = model
    info: FieldInfo | None = None
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None
        info = fields[part]
        current = info.annotation
    return info


def _types_of(annotation: Any) -> set[Any]:
    """The plain types an annotation accepts: ``IntegerOrNone`` gives ``{int, NoneType}``."""
    if get_origin(annotation) is Annotated:
        return _types_of(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(_types_of(arg) for arg in get_args(annotation)))
    return {annotation}


def _number_hint(error: Mapping[str, Any], info: FieldInfo | None) -> str:
    """What to write instead, true of this field: its bounds, and null only if it takes None.

    For example ``use a number greater than 0 and at most 100, or null for the default``
    (``resources.memory_limit_percent``) or ``use a whole number at least 1``
    (``pipeline.synthetic.n_large_fields``). Without the field's declaration (a list item),
    the bound pydantic reports is used.
    """
    ctx = error.get("ctx") or {}
    bounds = [(key, ctx[key]) for key in _BOUND_WORDS if key in ctx]
    kinds: set[Any] = set()
    if info is not None:
        kinds = _types_of(info.annotation)
        # Field(gt=0, le=100) keeps annotated_types.Gt(0) and Le(100) in the metadata.
        declared = [
            (key, getattr(item, key))
            for item in info.metadata
            for key in _BOUND_WORDS
            if getattr(item, key, None) is not None
        ]
        bounds = declared or bounds
    nullable = type(None) in kinds
    if not bounds and not nullable:
        return ""  # "use a number" would only repeat pydantic's message
    noun = "a whole number" if int in kinds and float not in kinds else "a number"
    hint = f"use {noun}"
    if bounds:
        hint += " " + " and ".join(f"{_BOUND_WORDS[key]} {value}" for key, value in bounds)
    if nullable:
        hint += ", or null" + (" for the default" if info and info.default is None else "")
    return hint


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
    if kind in _NUMBER_ERRORS:
        hint = _number_hint(error, _field_at(model, loc))
    return field, f"invalid value {_shown(value)} for {field!r}: {message}", value, hint


_SHOWN_CHARS = 200


def _shown(value: Any) -> str:
    """``repr(value)``, cut to 200 characters: a value pasted by mistake can be megabytes
    long, and an integer of more than 4300 digits has no ``repr`` at all."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def _origin(field: str, field_sources: Mapping[str, str], source: str | None) -> str | None:
    """Where ``field`` came from: the variable that set it or a field holding it, else ``source``.

    A list set by one variable (``LENSING_SSC_PIPELINE__STATISTICS__N_GAL=-3``) fails at an
    item (``pipeline.statistics.n_gal.0``); the variable is still its origin.
    """
    parts = field.split(".")
    for end in range(len(parts), 0, -1):
        name = field_sources.get(".".join(parts[:end]))
        if name is not None:
            return name
    return source


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
        origin = _origin(field, field_sources, source)
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

"""Turning one :class:`logging.LogRecord` into one line: ``standard``, ``detailed``, ``json``.

Formatters run on the writer thread (or in a ``flush()``), never on the caller's, and never
raise: a message whose ``__str__`` fails, an extra that JSON cannot encode, a NaN, a
circular structure all become strings. Each formatter instance caches the rendered time
of the current second; the writer calls it from one thread at a time.

JSON lines carry ``time`` (ISO 8601, UTC, microseconds), ``level``, ``logger``,
``message``, then the context fields (:mod:`._context`) and the record's extras at
the top level, then ``exc_type``, ``exc_message`` and ``traceback`` when the record has an
exception, and ``stack`` for ``stack_info``. A context field or extra named like one of the
fixed keys is written with a trailing underscore (``level_``) instead of replacing it.

``standard`` and ``detailed`` are for people: local time, as :mod:`logging` shows it,
fields as ``name=value`` after the message, tracebacks on the following lines.
Where lines go (files, rotation, the console) is :mod:`._sinks`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from lensing_ssc.processing.managers.log._context import CONTEXT_ATTR

__all__ = [
    "FORMATS",
    "DetailedFormatter",
    "JsonFormatter",
    "RecordFormatter",
    "StandardFormatter",
    "make_formatter",
    "safe_str",
]

FORMATS = ("standard", "json", "detailed")

#: Attributes every LogRecord has; anything else on a record is an ``extra`` field.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    CONTEXT_ATTR,
}
_BASE = list(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
_BASE_LEN, _LAST_BASE = len(_BASE), _BASE[-1]
#: Attributes of a record that has no extras but carries its context.
_PLAIN_LEN = _BASE_LEN + 1
_NO_FIELDS: Mapping[str, Any] = {}
_JSON_KEYS = frozenset({"time", "level", "logger", "message", "exc_type", "exc_message"}) | {
    "traceback",
    "stack",
}


def safe_str(value: object) -> str:
    """``str(value)``, or a description of ``value`` when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception as exc:  # a user's __str__ may raise anything; a log line must not
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def _message(record: logging.LogRecord) -> str:
    msg = record.msg
    if type(msg) is str and not record.args:
        return msg  # the usual case: the handler rendered ``msg % args`` at call time
    try:
        return record.getMessage()
    except Exception as exc:  # the handler renders at call time; this is records from elsewhere
        return f"<unformattable message {safe_str(record.msg)!r}: {type(exc).__name__}: {exc}>"


def _fields(record: logging.LogRecord, static: Mapping[str, Any]) -> Mapping[str, Any]:
    """Static, then context fields, then extras (later wins), copying only when needed."""
    attrs = record.__dict__
    context: Mapping[str, Any] = attrs.get(CONTEXT_ATTR) or _NO_FIELDS
    if len(attrs) == _PLAIN_LEN and CONTEXT_ATTR in attrs and not static:
        return context  # fast path: a record with no extras (counting is cheaper than sets)
    names = list(attrs)
    if len(names) > _BASE_LEN and names[_BASE_LEN - 1] == _LAST_BASE:
        # LogRecord.__init__ sets its attributes first, so extras follow, in the caller's order
        extra_names = [n for n in names[_BASE_LEN:] if n not in _RESERVED]
    else:
        extra_names = [n for n in names if n not in _RESERVED]
    if not extra_names and not static:
        return context
    merged = {**static, **context}
    for name in extra_names:
        merged[name] = attrs[name]
    return merged


def _traceback_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        if not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        return record.exc_text
    return record.exc_text or None


class RecordFormatter(ABC):
    """Base of the formatters: ``formatter(record) -> str`` (one record, ending in newline)."""

    name = ""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        #: Fields written with every record (a worker's ``worker_config(**fields)``).
        self.static_fields: Mapping[str, Any] = {}

    @abstractmethod
    def __call__(self, record: logging.LogRecord) -> str:
        """The record as text, ending in a newline."""

    def _local_time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._prefix},{int(created * 1000) % 1000:03d}"


def _logfmt_value(value: object) -> str:
    text = safe_str(value)
    if not text or any(ch in text for ch in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _logfmt(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={_logfmt_value(value)}" for name, value in fields.items())


class StandardFormatter(RecordFormatter):
    """``2026-05-09 19:55:25,123 INFO     lensing_ssc.run: message [step=fit]``.

    Only scalar fields are shown: nested structures (a progress snapshot, a list of
    warnings) are data for the ``json`` and ``detailed`` formats, not for a person's line.
    """

    name = "standard"

    def __call__(self, record: logging.LogRecord) -> str:
        line = f"{self._local_time(record.created)} {record.levelname:<8} {record.name}: "
        line += _message(record)
        fields = {
            name: value
            for name, value in _fields(record, self.static_fields).items()
            if not isinstance(value, (dict, list, tuple, set))
        }
        if fields:
            line += f" [{_logfmt(fields)}]"
        return _with_tail(line, record)


class DetailedFormatter(RecordFormatter):
    """Standard plus process, thread, and source location of the call."""

    name = "detailed"

    def __call__(self, record: logging.LogRecord) -> str:
        line = (
            f"{self._local_time(record.created)} {record.levelname:<8} {record.name} "
            f"[pid {record.process} {record.threadName}] "
            f"{record.filename}:{record.lineno} in {record.funcName}: {_message(record)}"
        )
        fields = _fields(record, self.static_fields)
        if fields:
            line += f" [{_logfmt(fields)}]"
        return _with_tail(line, record)


def _with_tail(line: str, record: logging.LogRecord) -> str:
    tb = _traceback_text(record)
    if tb:
        line += "\n" + tb
    if record.stack_info:
        line += "\n" + record.stack_info
    return line + "\n"


def _json_default(value: object) -> object:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=safe_str)
    return safe_str(value)


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, default=_json_default, separators=(",", ":")
)
_encode: Callable[[object], str] = _ENCODER.encode
_c_iterencode = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        # The C encoder without JSONEncoder.encode's Python layers: a third of the cost.
        # No circularity markers: a circular value ends in RecursionError, caught below.
        None,
        _json_default,
        encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
)


def _encode_record(data: dict[str, Any]) -> str:
    if _c_iterencode is None:  # pragma: no cover - CPython always has the C encoder
        return _encode(data)
    return "".join(_c_iterencode(data, 0))


def _encode_field(value: object) -> str:
    """One value that made the whole record fail: encode alone, else as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return _encode(repr(value))
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError):
        return _encode(safe_str(value))


class JsonFormatter(RecordFormatter):
    """One JSON object per line; never raises, whatever the extras hold."""

    name = "json"

    def __call__(self, record: logging.LogRecord) -> str:
        created = record.created
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        data: dict[str, Any] = {
            "time": f"{self._prefix}.{int(created * 1_000_000) % 1_000_000:06d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        fields = _fields(record, self.static_fields)
        if fields:
            if _JSON_KEYS.isdisjoint(fields):
                data.update(fields)
            else:
                for name, value in fields.items():
                    key = name
                    while key in data:  # a fixed key, or a field renamed onto this name
                        key += "_"
                    data[key] = value
        if record.exc_info or record.exc_text:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                data["exc_type"] = type(exc).__qualname__
                data["exc_message"] = safe_str(exc)
            data["traceback"] = _traceback_text(record)
        if record.stack_info:
            data["stack"] = record.stack_info
        try:
            return _encode_record(data) + "\n"
        except (TypeError, ValueError, RecursionError):
            return _encode_items(data.items()) + "\n"


def _encode_items(items: Iterable[tuple[str, object]]) -> str:
    parts = (f"{_encode(safe_str(name))}:{_encode_field(value)}" for name, value in items)
    return "{" + ",".join(parts) + "}"


def make_formatter(format_type: str) -> RecordFormatter:
    """A new formatter for ``format_type`` (one of :data:`FORMATS`, already validated)."""
    classes: dict[str, type[RecordFormatter]] = {
        "standard": StandardFormatter,
        "json": JsonFormatter,
        "detailed": DetailedFormatter,
    }
    return classes[format_type]()

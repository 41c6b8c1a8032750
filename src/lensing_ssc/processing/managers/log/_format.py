"""Turning one record into one line: ``standard``, ``detailed``, ``json``.

A record is a :class:`logging.LogRecord`, or the tuple a :class:`~._direct.DirectLogger`
queues instead (:data:`RecordTuple`: no caller's frame, process or thread, which only the
``detailed`` format shows; that format takes LogRecords only). ``line(record)`` and
``tuple_line(item)`` give the bytes the writer writes; ``formatter(record)`` the same as
text. Formatters run on the writer thread (or in a ``flush()``), never on the caller's, and
never raise: a message whose ``__str__`` fails, an extra that JSON cannot encode, a NaN, a
circular structure all become strings. Each formatter instance caches the rendered time
of the current second; the writer calls it from one thread at a time.

JSON lines carry ``time`` (ISO 8601, UTC, microseconds), ``level``, ``logger``,
``message``, then the context fields (:mod:`._context`) and the record's extras at
the top level, then ``exc_type``, ``exc_message`` and ``traceback`` when the record has an
exception, and ``stack`` for ``stack_info``. A context field or extra named like one of the
fixed keys is written with a trailing underscore (``level_``) instead of replacing it.
What each value becomes, with orjson or without, is :mod:`._json`'s.

``standard`` and ``detailed`` are for people: local time, as :mod:`logging` shows it,
fields as ``name=value`` after the message, tracebacks on the following lines. A record's
first line holds no line break: a break in the message, the logger's name, or a field's
name or value (any character :meth:`str.splitlines` splits at: ``\\n``, ``\\r``, NEL,
U+2028, ...) is written as its JSON escape (``\\n``, ``\\u2028``), so data cannot forge a
record. The traceback and stack lines after it are Python's, with the same escapes for every
line break but their own newlines, and a line of theirs that begins with a digit (an
exception message over several lines) indented by two spaces: only a record's first line
begins with its date.

Where lines go (files, rotation, the console) is :mod:`._sinks`.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from lensing_ssc.processing.managers.log._context import CONTEXT_ATTR
from lensing_ssc.processing.managers.log._json import encode, safe_str

__all__ = [
    "FORMATS",
    "RECORD_NAMES",
    "DetailedFormatter",
    "JsonFormatter",
    "RecordFormatter",
    "RecordTuple",
    "StandardFormatter",
    "make_formatter",
    "one_line",
    "record_of",
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
#: Names an extra may not have: ``makeRecord`` refuses them (KeyError), and so does the
#: DirectLogger, by leaving such a call to it.
RECORD_NAMES = _RESERVED

#: A record queued without a LogRecord (:mod:`._direct`): ``(created, levelno, logger name,
#: message, extras or None, context)``; the message is rendered (``msg % args``) unless the
#: call had no arguments, as on a LogRecord after the handler.
RecordTuple = tuple[float, int, str, object, "Mapping[str, Any] | None", Mapping[str, Any]]


def record_of(item: RecordTuple) -> logging.LogRecord:
    """A LogRecord with what a queued tuple holds, for a handler that needs one.

    The caller's source location, process and thread are not known: a record built here
    has the values a LogRecord takes when they are unknown or turned off.
    """
    created, levelno, name, msg, extra, context = item
    record = logging.LogRecord(name, levelno, "(unknown file)", 0, msg, None, None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    attrs = record.__dict__
    if extra:
        attrs.update(extra)
    attrs[CONTEXT_ATTR] = context
    return record


def _tuple_fields(
    static: Mapping[str, Any], context: Mapping[str, Any], extra: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    """Static, then context fields, then extras (later wins), copying only when needed."""
    if not extra:
        return {**static, **context} if static else context
    if not static and not context:
        return extra
    return {**static, **context, **extra}


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
    """Base of the formatters: ``formatter(record) -> str`` (one record, ending in newline).

    The writer calls ``line(record)`` and ``tuple_line(item)``, which give UTF-8 bytes (a
    lone surrogate as its ``\\udcxx`` escape).
    """

    name = ""
    #: Whether this format can be written from a :data:`RecordTuple` (no source location).
    takes_tuples = True

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        #: Fields written with every record (a worker's ``worker_config(**fields)``).
        self.static_fields: Mapping[str, Any] = {}

    @abstractmethod
    def __call__(self, record: logging.LogRecord) -> str:
        """The record as text, ending in a newline."""

    def line(self, record: logging.LogRecord) -> bytes:
        """The record as the bytes of its line."""
        return self(record).encode("utf-8", "backslashreplace")

    def tuple_line(self, item: RecordTuple) -> bytes:
        """A queued tuple as the bytes of its line."""
        return self.line(record_of(item))

    def _local_time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._prefix},{int(created * 1000) % 1000:03d}"


#: What ``str.splitlines`` splits at, as JSON escapes them (which ``json.dumps`` does for the
#: control characters, not for NEL, U+2028 and U+2029).
_BREAKS = {
    "\n": "\\n",
    "\r": "\\r",
    "\x0b": "\\u000b",
    "\x0c": "\\f",
    "\x1c": "\\u001c",
    "\x1d": "\\u001d",
    "\x1e": "\\u001e",
    "\x85": "\\u0085",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_ONE_LINE = str.maketrans(_BREAKS)
_TAIL = str.maketrans({char: escape for char, escape in _BREAKS.items() if char != "\n"})
_DIGIT_AT_START = re.compile(r"^(?=\d)", re.MULTILINE)


def one_line(text: str) -> str:
    """``text`` with every line break written as its escape (``\\n``, ``\\u2028``)."""
    if text.isprintable():  # no break, no control character: the usual text, 3 ns a character
        return text
    return text.translate(_ONE_LINE)


def _tail(text: str) -> str:
    """Traceback or stack lines: Python's newlines kept, other breaks escaped, no line that
    begins with a digit (as a record's first line does)."""
    return _DIGIT_AT_START.sub("  ", text.translate(_TAIL))


def _logfmt_value(value: object) -> str:
    """A field's name or value, quoted as a JSON string when it holds a space, ``=``, ``"``
    or anything not printable (line breaks escaped, which ``json.dumps`` leaves NEL,
    U+2028 and U+2029 out of)."""
    text = safe_str(value)
    if text.isprintable() and " " not in text and '"' not in text and "=" not in text and text:
        return text  # four checks: a third of what a generator over the characters costs
    return one_line(json.dumps(text, ensure_ascii=False))


def _logfmt(fields: Mapping[str, Any]) -> str:
    return " ".join(
        f"{_logfmt_value(name)}={_logfmt_value(value)}" for name, value in fields.items()
    )


class StandardFormatter(RecordFormatter):
    """``2026-05-09 19:55:25,123 INFO     lensing_ssc.run: message [step=fit]``.

    Only scalar fields are shown: nested structures (a progress snapshot, a list of
    warnings) are data for the ``json`` and ``detailed`` formats, not for a person's line.
    """

    name = "standard"

    def __call__(self, record: logging.LogRecord) -> str:
        line = self._text(
            record.created,
            record.levelname,
            record.name,
            _message(record),
            _fields(record, self.static_fields),
        )
        return _with_tail(line, record)

    def tuple_line(self, item: RecordTuple) -> bytes:
        created, levelno, name, msg, extra, context = item
        line = self._text(
            created,
            logging.getLevelName(levelno),
            name,
            msg if type(msg) is str else safe_str(msg),
            _tuple_fields(self.static_fields, context, extra),
        )
        return (line + "\n").encode("utf-8", "backslashreplace")

    def _text(
        self, created: float, level: str, name: str, message: str, fields: Mapping[str, Any]
    ) -> str:
        """The record's line, whose parts from outside (names, message, fields) are escaped."""
        line = f"{self._local_time(created)} {one_line(level):<8} {one_line(name)}: "
        line += one_line(message)
        scalars = {
            key: value
            for key, value in fields.items()
            if not isinstance(value, (dict, list, tuple, set))
        }
        if scalars:
            line += f" [{_logfmt(scalars)}]"
        return line


class DetailedFormatter(RecordFormatter):
    """Standard plus process, thread, and source location of the call."""

    name = "detailed"
    takes_tuples = False

    def __call__(self, record: logging.LogRecord) -> str:
        line = (
            f"{self._local_time(record.created)} {record.levelname:<8} {record.name} "
            f"[pid {record.process} {record.threadName}] "
            f"{record.filename}:{record.lineno} in {record.funcName}: {_message(record)}"
        )
        fields = _fields(record, self.static_fields)
        if fields:
            line += f" [{_logfmt(fields)}]"
        return _with_tail(one_line(line), record)


def _with_tail(line: str, record: logging.LogRecord) -> str:
    """``line`` (already one line) with the record's traceback and stack on the next lines."""
    tb = _traceback_text(record)
    if tb:
        line += "\n" + _tail(tb)
    if record.stack_info:
        line += "\n" + _tail(record.stack_info)
    return line + "\n"


class JsonFormatter(RecordFormatter):
    """One JSON object per line; never raises, whatever the extras hold.

    Args:
        encode: Turns the line's dict into its bytes; default :mod:`._json`'s ``encode``
            (orjson where installed). ``encode_stdlib`` gives the lines of a machine
            without orjson.
    """

    name = "json"

    def __init__(self, encode: Callable[[dict[str, Any]], bytes] = encode) -> None:
        super().__init__()
        self._encode = encode

    def __call__(self, record: logging.LogRecord) -> str:
        return self.line(record).decode("utf-8")

    def line(self, record: logging.LogRecord) -> bytes:
        data = self._head(record.created, record.levelname, record.name, _message(record))
        fields = _fields(record, self.static_fields)
        if fields:
            _add_fields(data, fields)
        if record.exc_info or record.exc_text:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                data["exc_type"] = type(exc).__qualname__
                data["exc_message"] = safe_str(exc)
            data["traceback"] = _traceback_text(record)
        if record.stack_info:
            data["stack"] = record.stack_info
        return self._encode(data)

    def tuple_line(self, item: RecordTuple) -> bytes:
        created, levelno, name, msg, extra, context = item
        data = self._head(
            created,
            logging.getLevelName(levelno),
            name,
            msg if type(msg) is str else safe_str(msg),
        )
        fields = _tuple_fields(self.static_fields, context, extra)
        if fields:
            _add_fields(data, fields)
        return self._encode(data)

    def _head(self, created: float, level: str, name: str, message: str) -> dict[str, Any]:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return {
            "time": f"{self._prefix}.{int(created * 1_000_000) % 1_000_000:06d}Z",
            "level": level,
            "logger": name,
            "message": message,
        }


def _add_fields(data: dict[str, Any], fields: Mapping[str, Any]) -> None:
    if _JSON_KEYS.isdisjoint(fields):
        data.update(fields)
        return
    for name, value in fields.items():
        key = name
        while key in data:  # a fixed key, or a field renamed onto this name
            key += "_"
        data[key] = value


def make_formatter(format_type: str) -> RecordFormatter:
    """A new formatter for ``format_type`` (one of :data:`FORMATS`, already validated)."""
    classes: dict[str, type[RecordFormatter]] = {
        "standard": StandardFormatter,
        "json": JsonFormatter,
        "detailed": DetailedFormatter,
    }
    return classes[format_type]()

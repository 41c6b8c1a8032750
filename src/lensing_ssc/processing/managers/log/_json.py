"""The bytes of one JSON log line: orjson when installed (the ``fast`` extra), else the stdlib.

Both paths write the same JSON: parsed, their lines are equal (a float may be spelled
differently, ``1e-07`` by the stdlib and ``1e-7`` by orjson). What a value becomes:

- ``str``, ``int``, ``float``, ``bool``, ``None``, ``list``, ``tuple`` and ``dict`` as
  JSON, their subclasses as their base type (an ``IntEnum`` as its number, a namedtuple as
  an array); integer, float, bool and ``None`` keys as the stdlib writes them (``"1"``,
  ``"true"``, ``"null"``).
- NaN and the infinities as the strings ``"nan"``, ``"inf"``, ``"-inf"``, wherever they
  are, so every line is strict JSON and says which one it was.
- A set as an array sorted by ``str``; an :class:`~enum.Enum` as its value.
- A numpy scalar as the Python ``bool``, ``int``, ``float`` or ``str`` it holds
  (``np.int64(3)`` → ``3``, ``np.float32(0.5)`` → ``0.5``, ``np.bool_(True)`` → ``true``);
  arrays and other numpy values as their ``str()``. orjson writes numpy values only with
  ``OPT_SERIALIZE_NUMPY``, arrays as nested lists of any size, which a log line should
  not hold; neither path asks numpy for more than ``item()``.
- Everything else (dates and times, dataclasses, paths, bytes) as its ``str()``; orjson's
  passthrough options hand dates and dataclasses to that rule instead of writing them
  its own way. A field whose keys JSON cannot hold (a tuple key) or that contains itself
  is written as its ``str()``, and a value whose ``__str__`` raises as a description.

Both write U+2028, U+2029 and NEL (U+0085) as ``\\u2028``, ``\\u2029``, ``\\u0085``: JSON
allows them raw in a string, but ``str.splitlines``, editors and JavaScript before ES2019
end a line there, so a message holding one would split its record for such a reader.

orjson refuses a few values the stdlib writes (integers beyond 64 bits, strings with lone
surrogates, keys that are not strings, nesting deeper than 254) and writes non-finite floats
as ``null``: a record with any of these, or with a ``null`` anywhere in its line, is
encoded again by the stdlib path, so such a value costs time, never a different line. A
lone surrogate is written as its ``\\udcxx`` escape.

The fields of a line and their order are :mod:`._format`'s.
"""

from __future__ import annotations

import enum
import json
import math
import sys
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the fast extra is installed in development
    orjson = None  # type: ignore[assignment]

__all__ = ["encode", "encode_orjson", "encode_stdlib", "json_default", "safe_str"]


def safe_str(value: object) -> str:
    """``str(value)``, or a description of ``value`` when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception as exc:  # a user's __str__ may raise anything; a log line must not
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


def json_default(value: Any) -> Any:
    """What a value that is not plain JSON becomes (both paths' ``default``)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=safe_str)
    if isinstance(value, enum.Enum):
        return value.value
    # Subclasses of the JSON types: orjson hands them here (OPT_PASSTHROUGH_SUBCLASS),
    # the stdlib writes them as their base type; these conversions write the same.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    numpy = sys.modules.get("numpy")  # a numpy value exists only once numpy is imported
    if numpy is not None and isinstance(value, numpy.generic):
        item = value.item()
        if isinstance(item, (bool, int, float, str)):
            return item
    return safe_str(value)


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, default=json_default, separators=(",", ":")
)
_c_iterencode = (
    None
    if c_make_encoder is None
    else c_make_encoder(
        # The C encoder without JSONEncoder.encode's Python layers: a third of the cost.
        # No circularity markers: a circular value ends in RecursionError, caught below.
        None,
        json_default,
        encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
)


def _dumps(value: object) -> str:
    if _c_iterencode is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(value)
    return "".join(_c_iterencode(value, 0))


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float, also inside containers, as its name."""
    if isinstance(value, float):
        return value if math.isfinite(value) else float.__repr__(value)
    if isinstance(value, (str, int)) or value is None:
        return value
    if isinstance(value, dict):
        return {_finite_key(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    converted = json_default(value)
    return converted if isinstance(converted, str) else _finite(converted)


def _finite_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return float.__repr__(key)
    return key


def _dumps_field(value: object) -> str:
    """One field of a record that failed as a whole: alone, else as its ``str()``."""
    try:
        return _dumps(value)
    except ValueError:  # a non-finite float somewhere inside
        try:
            return _dumps(_finite(value))
        except (TypeError, ValueError, RecursionError):
            pass
    except (TypeError, RecursionError):  # a key JSON cannot hold, a circular value
        pass
    return _dumps(safe_str(value))


def _escape_separators(line: bytes) -> bytes:
    """``line`` with U+2028, U+2029 and NEL escaped (called for lines that are not ASCII).

    A UTF-8 sequence begins with a lead byte, so it is found only where its character is;
    in JSON the character can only be inside a string, where its escape means the same.
    A search for the lead byte (``memchr``) first: 60 ns, where each ``replace`` that
    finds nothing scans the line for 200 ns (a 150-byte line with a ``κ``).
    """
    if line.find(0xE2) >= 0:  # U+2028 is E2 80 A8, U+2029 E2 80 A9
        line = line.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    if line.find(0xC2) >= 0:  # NEL is C2 85
        line = line.replace(b"\xc2\x85", b"\\u0085")
    return line


def encode_stdlib(data: dict[Any, Any]) -> bytes:
    """``data`` as one line of JSON (ending in a newline), by the stdlib's C encoder."""
    try:
        text = _dumps(data)
    except (TypeError, ValueError, RecursionError):
        parts = (f"{_dumps(safe_str(name))}:{_dumps_field(value)}" for name, value in data.items())
        text = "{" + ",".join(parts) + "}"
    line = (text + "\n").encode("utf-8", "backslashreplace")
    return line if line.isascii() else _escape_separators(line)


_OPTIONS = (
    0
    if orjson is None
    else orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def encode_orjson(data: dict[Any, Any]) -> bytes:
    """``data`` as one line of JSON (ending in a newline), by orjson where it can.

    Raises:
        ModuleNotFoundError: orjson is not installed (``pip install 'lensing-ssc[fast]'``).
    """
    if orjson is None:
        raise ModuleNotFoundError(
            "encode_orjson needs orjson: pip install 'lensing-ssc[fast]'", name="orjson"
        )
    try:
        line = orjson.dumps(data, json_default, _OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a value orjson refuses (module docstring)
        return encode_stdlib(data)
    if b"null" in line:  # a None, or a non-finite float that orjson wrote as null
        return encode_stdlib(data)
    if not line.isascii():  # 20 ns for an ASCII line; the search only for the others
        line = _escape_separators(line)
    # A copy with the newline, not OPT_APPEND_NEWLINE: orjson's bytes sit in a 1 KiB block
    # shrunk in place, and a batch of 2048 of them kept until written grows the heap by
    # 2 MiB, which the allocator gives back after each batch and faults in again: 2.3 µs a
    # line on our CI machines against 0.17 µs for the copy, which frees the block at once.
    return line + b"\n"


#: The encoder of every JSON line: orjson's where it is installed.
encode: Callable[[dict[Any, Any]], bytes] = encode_stdlib if orjson is None else encode_orjson

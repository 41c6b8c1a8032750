"""Canonical byte encodings of cache keys and of memoized calls.

The disk tier cannot use Python's ``hash``: it differs between processes. It stores keys
by a canonical, type-tagged encoding instead (:func:`encode_key`), which equal keys share
across processes and machines. Keys follow dict semantics, so ``1``, ``1.0`` and ``True``
encode alike, as they are one key in the memory tier. Encoded keys are only ever stored
and compared; file names come from their digest, so no key can name a path.

:func:`call_key` builds the key of a memoized call from the function's identity and its
bound arguments, hashing numpy arrays by content (:func:`lensing_ssc.core.io.hash_array`).
Value encoding is in :mod:`._values`.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import os
import types
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import hash_array, hash_bytes

__all__ = ["call_key", "encode_key", "function_identity"]

_KEY_TYPES = "str, bytes, int, float, bool, None, or tuples and frozensets of them"


def _varint(number: int) -> bytes:
    return str(number).encode("ascii") + b":"


def _encode(value: Any, out: list[bytes], top: Any) -> None:
    kind = type(value)
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out.append(b"s" + _varint(len(data)) + data)
    elif kind is bytes:
        out.append(b"b" + _varint(len(value)) + value)
    elif kind is int or kind is bool:
        out.append(b"i" + _varint(int(value)))
    elif kind is float:
        if math.isfinite(value) and value.is_integer():
            out.append(b"i" + _varint(int(value)))
        else:
            out.append(b"f" + repr(value).encode("ascii") + b":")
    elif value is None:
        out.append(b"n")
    elif kind is tuple:
        out.append(b"t" + _varint(len(value)))
        for item in value:
            _encode(item, out, top)
    elif kind is frozenset:
        items = sorted(encode_key(item) for item in value)
        out.append(b"z" + _varint(len(items)) + b"".join(items))
    elif isinstance(value, (np.integer, np.bool_)):
        out.append(b"i" + _varint(int(value)))
    elif isinstance(value, np.floating):
        _encode(float(value), out, top)
    else:
        raise CacheError(
            f"cache key {top!r} cannot be stored on disk: it contains a {type(value).__name__}",
            value=top,
            hint=f"use keys made of {_KEY_TYPES}",
        )


def encode_key(key: Hashable) -> bytes:
    """The canonical bytes of ``key``, equal for keys a dict treats as equal.

    Raises:
        CacheError: ``key`` holds a type with no canonical encoding (naming it).

    Example:
        >>> encode_key(("kappa", 1)) == encode_key(("kappa", 1.0))
        True
    """
    out: list[bytes] = []
    _encode(key, out, key)
    return b"".join(out)


def function_identity(func: Callable[..., Any]) -> str:
    """Module, qualified name and a digest of the source (or bytecode) of ``func``.

    Editing a memoized function changes its identity, so results of the old code are
    never served for the new one.
    """
    module = str(getattr(func, "__module__", None) or "?")
    name = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))
    try:
        body = inspect.getsource(func).encode("utf-8")
    except (OSError, TypeError):  # no source file (exec, a REPL): use the compiled code
        code = getattr(func, "__code__", None)
        body = _code_fingerprint(code) if code is not None else name.encode("utf-8")
    return f"{module}.{name}@{hash_bytes(body).partition(':')[2][:16]}"


def _code_fingerprint(code: types.CodeType) -> bytes:
    """Bytecode, names and constants of ``code`` and its nested functions."""
    parts = [code.co_code, repr(code.co_names).encode("utf-8")]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_fingerprint(const))
        else:
            parts.append(repr(const).encode("utf-8"))
    return b"\0".join(parts)


def _encode_argument(value: Any, out: list[bytes], name: str) -> None:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            _unsupported(name, value)
        out.append(b"a" + hash_array(value).encode("ascii") + b":")
    elif isinstance(value, (list, tuple)):
        out.append((b"l" if isinstance(value, list) else b"t") + _varint(len(value)))
        for item in value:
            _encode_argument(item, out, name)
    elif isinstance(value, dict):
        items = []
        for item_key, item_value in value.items():
            parts: list[bytes] = []
            _encode_argument(item_key, parts, name)
            _encode_argument(item_value, parts, name)
            items.append(b"".join(parts))
        out.append(b"d" + _varint(len(items)) + b"".join(sorted(items)))
    elif isinstance(value, (set, frozenset)):
        members = []
        for item in value:
            parts = []
            _encode_argument(item, parts, name)
            members.append(b"".join(parts))
        out.append(b"z" + _varint(len(members)) + b"".join(sorted(members)))
    elif isinstance(value, enum.Enum):
        out.append(b"e" + f"{type(value).__qualname__}.{value.name}".encode() + b":")
        _encode_argument(value.value, out, name)
    elif isinstance(value, os.PathLike):
        out.append(b"p")
        _encode_argument(os.fspath(value), out, name)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append(b"c" + type(value).__qualname__.encode() + b":")
        _encode_argument(
            {field.name: getattr(value, field.name) for field in dataclasses.fields(value)},
            out,
            name,
        )
    else:
        try:
            _encode(value, out, value)
        except CacheError:
            _unsupported(name, value)


def _unsupported(name: str, value: Any) -> None:
    raise CacheError(
        f"cannot build a memoize key from argument {name!r} of type {type(value).__name__}",
        value=value,
        hint="pass arrays, numbers, strings, bytes, paths, enums, dataclasses or containers "
        "of them, or give memoize(key=...) a function that returns a key",
    )


def call_key(identity: str, arguments: dict[str, Any]) -> str:
    """The cache key of one call: ``"memoize:<identity>:<digest of the arguments>"``.

    Args:
        identity: :func:`function_identity` of the function.
        arguments: Bound arguments by parameter name, defaults applied.

    Raises:
        CacheError: An argument has no canonical encoding (naming it and its type).
    """
    out: list[bytes] = []
    for name in sorted(arguments):
        out.append(name.encode("utf-8") + b"=")
        _encode_argument(arguments[name], out, name)
    return f"memoize:{identity}:{hash_bytes(b''.join(out)).partition(':')[2]}"

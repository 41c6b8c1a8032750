"""Canonical byte encodings of cache keys and of memoized calls.

The disk tier cannot use Python's ``hash``: it differs between processes. It stores keys
by a canonical, type-tagged encoding instead (:func:`encode_key`), which equal keys share
across processes and machines. Keys follow dict semantics, so ``1``, ``1.0`` and ``True``
encode alike, as they are one key in the memory tier. Encoded keys are only ever stored
and compared; file names come from their digest, so no key can name a path.

:func:`call_key` builds the key of a memoized call from the function's identity (its
name and a digest of its source and bytecode: :func:`function_identity`) and its bound
arguments, hashing numpy arrays by content (:func:`lensing_ssc.core.io.hash_array`).
:func:`captured_key` encodes what a function carries besides: closure cells, a partial's
arguments, a bound ``self``, a callable object's own fields; a captured function by its
identity and its own captures. Two closures over different values are two functions to
the cache; a captured value that cannot be encoded (a lock, a logger, an open file) makes
the function impossible to memoize, and the error names it. Module globals are not keyed.
Value encoding is in :mod:`._values`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import math
import os
import types
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, NoReturn

import numpy as np

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import hash_array, hash_bytes

__all__ = [
    "EMPTY_CELL",
    "MEMOIZED_ATTRIBUTE",
    "call_key",
    "captured_key",
    "captured_values",
    "encode_key",
    "function_identity",
]

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


_FUNCTION_TYPES = (types.FunctionType, types.MethodType, functools.partial)
_NAMED_TYPES = (
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.MethodWrapperType,
    np.ufunc,
)
MEMOIZED_ATTRIBUTE = "__lensing_ssc_memoized__"
"""Set on a memoized wrapper, naming the function it wraps (keyed in its place)."""
EMPTY_CELL: Any = object()
"""What :func:`captured_values` reads from a closure cell not yet assigned."""


def _memoized_target(func: Any) -> Any:
    """The function a memoized wrapper wraps, or ``func`` itself."""
    if isinstance(func, types.FunctionType):
        return func.__dict__.get(MEMOIZED_ATTRIBUTE, func)
    return func


def _qualified_name(obj: Any) -> tuple[str, str]:
    module = str(getattr(obj, "__module__", None) or "?")
    name = str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or "?")
    return module, name


def function_identity(func: Callable[..., Any]) -> str:
    """Module, qualified name and a digest of the source and bytecode of ``func``.

    Editing a memoized function changes its identity, so results of the old code are
    never served for the new one; so does any change of its compiled code, which tells
    apart two lambdas written on one line (they share their source line). A partial is
    named by its function, a bound method by its function, a callable object by its class;
    what they carry besides (bound arguments, ``self``, the object) is keyed by
    :func:`captured_key`.
    """
    func = _memoized_target(func)
    if isinstance(func, functools.partial):
        return f"functools.partial({function_identity(func.func)})"
    if isinstance(func, types.MethodType):
        return function_identity(func.__func__)
    if isinstance(func, (types.FunctionType, type, *_NAMED_TYPES)):
        named: Any = func
        code = getattr(func, "__code__", None)
    else:  # a callable object: its class's code decides what it does
        named = type(func)
        code = getattr(inspect.getattr_static(named, "__call__", None), "__code__", None)
    module, name = _qualified_name(named)
    parts = []
    try:
        parts.append(inspect.getsource(named).encode("utf-8"))
    except (OSError, TypeError):  # no source file (exec, a REPL, a builtin)
        parts.append(name.encode("utf-8"))
    if isinstance(code, types.CodeType):
        parts.append(_code_fingerprint(code))
    digest = hash_bytes(b"\0".join(parts)).partition(":")[2]
    return f"{module}.{name}@{digest[:16]}"


def _code_fingerprint(code: types.CodeType) -> bytes:
    """Bytecode, names and constants of ``code`` and its nested functions."""
    parts = [code.co_code, repr(code.co_names).encode("utf-8")]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_fingerprint(const))
        else:
            parts.append(repr(const).encode("utf-8"))
    return b"\0".join(parts)


def captured_values(func: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """What ``func`` carries besides its arguments and code, as ``(name, value, cell)``.

    A function's closure cells by the names it uses them under (a cell not yet filled
    holds an internal marker), a partial's ``partial.args`` and ``partial.keywords``, a
    bound method's (or builtin method's) ``self``, and a callable object itself. ``cell``
    is the closure cell the value was read from, else ``None``.
    """
    func = _memoized_target(func)
    if isinstance(func, functools.partial):
        bound = [("partial.args", func.args, None), ("partial.keywords", dict(func.keywords), None)]
        return [*bound, *captured_values(func.func)]
    if isinstance(func, types.MethodType):
        return [("self", func.__self__, None), *captured_values(func.__func__)]
    if isinstance(func, types.FunctionType):
        cells = func.__closure__ or ()
        return [
            (name, _cell_value(cell), cell)
            for name, cell in zip(func.__code__.co_freevars, cells, strict=True)
        ]
    if isinstance(func, (type, *_NAMED_TYPES)):
        owner = getattr(func, "__self__", None)
        if owner is None or isinstance(owner, (types.ModuleType, type)):
            return []
        return [("self", owner, None)]
    return [("self", func, None)]


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # not yet assigned (a nested function that names itself)
        return EMPTY_CELL


class _Place(NamedTuple):
    """Where a value being keyed comes from, for the error that refuses it."""

    name: str
    owner: str | None = None  # the function that captures it; None for an argument


def captured_key(func: Callable[..., Any]) -> tuple[bytes, list[tuple[Any, Any]]]:
    """The canonical bytes of what ``func`` captures, and the closure cells they came from.

    Returns:
        ``b""`` when ``func`` captures nothing; and every ``(cell, value)`` read, nested
        captured functions' cells included, so that a caller can tell when a captured name
        is bound to another object (a value changed in place is not seen).

    Raises:
        CacheError: Something captured has no canonical encoding (naming it, the function
            capturing it, and its type).
    """
    out: list[bytes] = []
    cells: list[tuple[Any, Any]] = []
    _encode_captures(func, out, cells, {id(_memoized_target(func))})
    return b"".join(out), cells


def _encode_captures(
    func: Any, out: list[bytes], cells: list[tuple[Any, Any]], seen: set[int]
) -> None:
    owner = ".".join(_qualified_name(_memoized_target(func)))
    for name, value, cell in captured_values(func):
        if cell is not None:
            cells.append((cell, value))
        out.append(name.encode("utf-8") + b"=")
        _encode_argument(value, out, _Place(name, owner), seen, cells)


def _encode_callable(
    value: Any, out: list[bytes], cells: list[tuple[Any, Any]], seen: set[int]
) -> None:
    target = _memoized_target(value)
    if id(target) in seen:  # a function that captures itself, directly or not
        out.append(b"r")
        return
    seen.add(id(target))
    out.append(b"F" + function_identity(target).encode("utf-8") + b":")
    _encode_captures(target, out, cells, seen)
    out.append(b";")


_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


def _encode_argument(
    value: Any,
    out: list[bytes],
    place: _Place | str,
    seen: set[int] | None = None,
    cells: list[tuple[Any, Any]] | None = None,
) -> None:
    """Append the canonical bytes of ``value``; ``place`` is an argument's name or a capture."""
    if type(value) in _SCALARS:
        _encode(value, out, value)
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            _unsupported(place, value)
        out.append(b"a" + hash_array(value).encode("ascii") + b":")
    elif isinstance(value, (list, tuple)):
        out.append((b"l" if isinstance(value, list) else b"t") + _varint(len(value)))
        for item in value:
            _encode_argument(item, out, place, seen, cells)
    elif isinstance(value, dict):
        items = []
        for item_key, item_value in value.items():
            parts: list[bytes] = []
            _encode_argument(item_key, parts, place, seen, cells)
            _encode_argument(item_value, parts, place, seen, cells)
            items.append(b"".join(parts))
        out.append(b"d" + _varint(len(items)) + b"".join(sorted(items)))
    elif isinstance(value, (set, frozenset)):
        members = []
        for item in value:
            parts = []
            _encode_argument(item, parts, place, seen, cells)
            members.append(b"".join(parts))
        out.append(b"z" + _varint(len(members)) + b"".join(sorted(members)))
    elif isinstance(value, enum.Enum):
        out.append(b"e" + f"{type(value).__qualname__}.{value.name}".encode() + b":")
        _encode_argument(value.value, out, place, seen, cells)
    elif isinstance(value, os.PathLike):
        out.append(b"p")
        _encode_argument(os.fspath(value), out, place, seen, cells)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        out.append(b"c" + type(value).__qualname__.encode() + b":")
        _encode_argument(
            {field.name: getattr(value, field.name) for field in dataclasses.fields(value)},
            out,
            place,
            seen,
            cells,
        )
    elif isinstance(value, _FUNCTION_TYPES):
        found = [] if cells is None else cells
        _encode_callable(value, out, found, set() if seen is None else seen)
    elif isinstance(value, (type, *_NAMED_TYPES)):
        out.append(b"T" + ".".join(_qualified_name(value)).encode("utf-8") + b":")
        for name, owner, _ in captured_values(value):  # a builtin method's object
            holder = place if isinstance(place, str) else (place.owner or place.name)
            _encode_argument(owner, out, _Place(name, holder), seen, cells)
    elif isinstance(value, types.ModuleType):
        out.append(b"M" + value.__name__.encode("utf-8") + b":")
    elif value is EMPTY_CELL:
        out.append(b"u")
    else:
        try:
            _encode(value, out, value)
        except CacheError:
            _unsupported(place, value)


_KEYABLE = (
    "arrays, numbers, strings, bytes, paths, enums, dataclasses, functions, classes, "
    "modules or containers of them"
)


def _unsupported(place: _Place | str, value: Any) -> NoReturn:
    kind = type(value).__name__
    if isinstance(place, str) or place.owner is None:
        name = place if isinstance(place, str) else place.name
        raise CacheError(
            f"cannot build a memoize key from argument {name!r} of type {kind}",
            value=value,
            hint=f"pass {_KEYABLE}, or give memoize(key=...) a function that returns a key",
        )
    raise CacheError(
        f"cannot build a memoize key for {place.owner}: it captures {place.name!r} of type "
        f"{kind}, which has no canonical key",
        value=value,
        hint="a memoized function's result is keyed on what it captures as well as on its "
        f"arguments: pass {place.name!r} as an argument instead (with memoize(key=...) if it "
        f"cannot be hashed), or capture only {_KEYABLE}",
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

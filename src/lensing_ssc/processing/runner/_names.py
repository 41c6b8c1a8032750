"""Naming a journal by what its function computes: :func:`journal_name`.

A ``ManagerContext.map`` call given no ``name=`` is journalled (and shown in the progress
display) under this name. A call's journal holds its results, so two calls computing
different things must never share a name, and a rerun of the same call must find its name
again. A function that is defined at the top of a module (or a class's function, a
builtin) is named by its ``__name__``, as before: ``ctx.map(patch_power, ...)`` journals
into ``tasks/patch_power.journal``, and another function of that name is refused by the
journal, which records the function's module and qualified name (:mod:`._keys`).

Anything else is named by what it computes: its name, a ``-``, and 12 hex digits of a
digest of its code and what it captures (``lambda-3f2a9c01b7d4``):

- a lambda, a nested function or a closure: its code, its defaults, the values of its
  closure cells;
- a ``functools.partial``: the function, its arguments and keywords;
- a bound method: the function and its object; a callable object: its class and itself.

Captured values are digested by content: numbers, strings, containers of them (sets in a
stable order), numpy arrays, and anything else by its pickle; captured functions by their
own code and captures. A value that cannot be pickled (a lock, an open file, a context)
has no stable identity, and the call is refused with a :class:`ConfigError` asking for
``name=``. A value whose pickle changes from run to run gives a new name each run: the
call then starts afresh rather than resume (``name=`` resumes it).

Where the journal of a name lives is ``RunDir``'s, in :mod:`lensing_ssc.processing.managers`.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import hash_array
from lensing_ssc.processing.runner._keys import code_digest

__all__ = ["journal_name"]

_DIGITS = 12
_NAMED = (
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    np.ufunc,
)


class _Unnameable(Exception):
    """A captured value without a stable identity: ``(name, value)``."""


def journal_name(func: Callable[..., Any]) -> str:
    """The name of ``func``'s journal when its caller gives none (``ctx.map(func, items)``).

    Raises:
        ConfigError: ``func`` captures a value that has no stable identity (naming it).

    Example:
        >>> journal_name(abs)
        'abs'
        >>> journal_name(lambda x: x).startswith("lambda-")
        True
    """
    func = _unwrapped(func)
    if _is_plain(func):
        return str(func.__name__)
    parts: list[bytes] = []
    try:
        _describe(func, parts, set())
    except RecursionError:
        raise _refusal(func, "values nested too deeply to name", None) from None
    except _Unnameable as exc:
        name, value = exc.args
        raise _refusal(func, f"{name} ({type(value).__name__})", value) from None
    digest = hashlib.blake2b(b"\0".join(parts), digest_size=16).hexdigest()[:_DIGITS]
    return f"{_readable(func)}-{digest}"


def _refusal(func: Any, what: str, value: Any) -> ConfigError:
    return ConfigError(
        f"cannot name a journal for {_qualname(func)}: it captures {what}, which has no "
        "identity that a rerun would find again",
        value=_qualname(func),
        field="name",
        hint="pass name= (what this call computes, e.g. name='patch_power'): its results "
        "are journalled under that name, and a rerun with it resumes them",
    )


def _unwrapped(func: Any) -> Any:
    """What ``functools.wraps`` wrappers wrap: the function that computes."""
    seen = set()
    while id(func) not in seen:
        seen.add(id(func))
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None or isinstance(func, functools.partial):
            break
        func = wrapped
    return func


def _is_plain(func: Any) -> bool:
    """A function whose qualified name alone says what it is."""
    if isinstance(func, types.FunctionType):  # its defaults are part of its definition
        return func.__closure__ is None and "<" not in func.__qualname__
    if isinstance(func, _NAMED):
        owner = getattr(func, "__self__", None)
        return owner is None or isinstance(owner, types.ModuleType)
    return False


def _qualname(func: Any) -> str:
    target = func.func if isinstance(func, functools.partial) else func
    if not isinstance(target, (types.FunctionType, types.MethodType, *_NAMED)):
        target = type(target)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}:{getattr(target, '__qualname__', None) or type(target).__qualname__}"


def _readable(func: Any) -> str:
    """The name part: the function's (``lambda`` for a lambda), or the object's class."""
    if isinstance(func, functools.partial):
        return _readable(func.func)
    if isinstance(func, types.MethodType):
        return _readable(func.__func__)
    if isinstance(func, (types.FunctionType, *_NAMED)):
        name = str(func.__name__)
        return "lambda" if name == "<lambda>" else name
    return type(func).__name__


def _describe(func: Any, parts: list[bytes], seen: set[int]) -> None:
    """Append the bytes that say what ``func`` computes: its code and what it captures."""
    if id(func) in seen:  # a function that reaches itself through what it captures
        parts.append(b"R")
        return
    seen.add(id(func))
    if isinstance(func, functools.partial):
        parts.append(b"P")
        _describe(func.func, parts, seen)
        _value(func.args, parts, "the partial's arguments", seen)
        _value(dict(func.keywords), parts, "the partial's keywords", seen)
    elif isinstance(func, types.MethodType):
        parts.append(b"M")
        _describe(func.__func__, parts, seen)
        _value(func.__self__, parts, "the object of its method", seen)
    elif isinstance(func, types.FunctionType):
        code = func.__code__
        parts.append(f"F{func.__module__}:{func.__qualname__}@{code_digest(code)}".encode())
        _value(func.__defaults__, parts, f"the defaults of {func.__qualname__}", seen)
        _value(func.__kwdefaults__, parts, f"the defaults of {func.__qualname__}", seen)
        for name, cell in zip(code.co_freevars, func.__closure__ or (), strict=True):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not yet filled (a function naming itself)
                parts.append(b"E")
                continue
            _value(value, parts, repr(name), seen)
    elif isinstance(func, _NAMED):
        parts.append(f"B{_qualname(func)}".encode())
        owner = getattr(func, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            _value(owner, parts, "the object of its method", seen)
    else:  # a callable object: its class, and itself
        parts.append(f"O{_qualname(func)}".encode())
        _value(func, parts, f"the {type(func).__name__} object", seen)


def _value(value: Any, parts: list[bytes], place: str, seen: set[int]) -> None:
    """Append the bytes of one captured value, the same in every run that captures it."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        parts.append(b"v" + repr(value).encode())
    elif isinstance(value, (list, tuple)):
        parts.append(b"l" if isinstance(value, list) else b"t")
        for item in value:
            _value(item, parts, place, seen)
        parts.append(b")")
    elif isinstance(value, dict):
        parts.append(b"d")
        for key, item in value.items():
            _value(key, parts, place, seen)
            _value(item, parts, place, seen)
        parts.append(b")")
    elif isinstance(value, (set, frozenset)):
        members = []
        for item in value:
            inner: list[bytes] = []
            _value(item, inner, place, seen)
            members.append(b"\0".join(inner))
        parts.append(b"s" + b"\1".join(sorted(members)))
    elif isinstance(value, np.ndarray) and not value.dtype.hasobject:
        parts.append(b"a" + hash_array(value).encode())
    elif isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
        _describe(value, parts, seen)
    elif isinstance(value, (type, types.ModuleType, *_NAMED)):
        parts.append(b"n" + _qualname(value).encode())
    else:
        try:
            parts.append(b"p" + pickle.dumps(value, protocol=4))
        except RecursionError:
            raise
        except Exception as exc:  # any failure to pickle: no identity to name a journal by
            raise _Unnameable(place, value) from exc

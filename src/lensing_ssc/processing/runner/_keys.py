"""Stable keys for items and identities for functions, so a rerun finds its own results.

The rule (also in ``docs/runner.md``):

- Without ``key=``, an item's key is its position and a content hash of its pickle:
  ``"12-<32 hex digits>"``. Changing, inserting or reordering items changes the keys of the
  positions affected, so those are computed again; stale results are never returned.
  Items whose pickle is not deterministic (sets of strings, objects pickling a timestamp)
  get new keys every run and are always recomputed: pass ``key=`` for them.
- With ``key=``, the caller's function names each item (``key=lambda path: path.name``).
  The caller promises that equal keys mean equal work; keys must be unique in one run.

Keys name items, not code. The function's identity (module and qualified name) is written
into the journal, and reusing a journal with another function logs a warning; the code
inside a function is not hashed. After changing what a function computes, start the
journal afresh (``resume=False``) or use another journal. Journals are in :mod:`._journal`.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import hash_bytes

__all__ = ["MAX_KEY_LENGTH", "function_identity", "item_keys"]

MAX_KEY_LENGTH = 1024
"""Longest key, in characters, that a journal record holds."""


def _content_digest(index: int, item: Any) -> str:
    try:
        blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"item {index} cannot be pickled, so it has no default key ({exc})",
            value=type(item).__name__,
            hint="pass key= (a function naming each item), or journal=None",
            field="key",
        ) from exc
    return hash_bytes(blob).partition(":")[2][:32]


def item_keys(items: Sequence[Any], key: Callable[[Any], Any] | None) -> list[str]:
    """Return one key per item, in input order.

    Args:
        items: The run's items.
        key: ``None`` for position + content hash, or a function returning a ``str`` or an
            ``int`` per item.

    Raises:
        ConfigError: An item cannot be pickled (without ``key=``); ``key`` returned another
            type, an over-long string, or the same key for two items.
    """
    if key is None:
        return [f"{index}-{_content_digest(index, item)}" for index, item in enumerate(items)]
    keys: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        raw = key(item)
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise ConfigError(
                f"key= must return a str or an int, got {type(raw).__name__} for item {index}",
                value=raw,
                hint="return e.g. a file name or an id",
                field="key",
            )
        text = str(raw)
        if len(text) > MAX_KEY_LENGTH:
            raise ConfigError(
                f"key of item {index} is {len(text)} characters long; at most "
                f"{MAX_KEY_LENGTH} are allowed",
                value=text[:80] + "...",
                hint="return a shorter name, e.g. a hash of the long one",
                field="key",
            )
        first = seen.setdefault(text, index)
        if first != index:
            raise ConfigError(
                f"key= gave items {first} and {index} the same key {text!r}",
                value=text,
                hint="keys must be unique within one run",
                field="key",
            )
        keys.append(text)
    return keys


def function_identity(func: Callable[..., Any]) -> str:
    """Name a callable as ``module:qualname`` (through ``functools.partial`` layers and
    wrappers that name what they wrap in ``__wrapped__``, as ``functools.wraps`` does).

    Example:
        >>> function_identity(len)
        'builtins:len'
    """
    while True:
        if isinstance(func, functools.partial):
            func = func.func
            continue
        wrapped = getattr(func, "__wrapped__", None)
        if wrapped is None or wrapped is func:
            break
        func = wrapped
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}:{qualname}"
